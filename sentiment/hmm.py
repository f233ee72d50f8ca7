"""Statistical regime layer: a Gaussian HMM (hmmlearn) that never looks ahead.

* **Features** per bar, each from data at or before the bar's close
  (:func:`feature_frame`): log return, realised volatility (standard deviation of the last
  ``volatility_window`` log returns), volume ratio (log of volume over its
  ``volume_window``-bar mean), funding rate and OI change (log change of the open interest
  as of the bar's close). Funding and OI are left out of a model whose training window has
  them on fewer than 90 % of its rows. Standardised with the mean and standard deviation
  of the training window only.
* **Training** (:func:`train_regime_model`): hmmlearn's ``GaussianHMM`` (diagonal
  covariances) for each K in ``n_states`` with several seeded restarts; the best
  log-likelihood per K, then the K with the lowest BIC. States are put in a canonical order
  (by mean log return), so the same data always gives the same parameters.
* **Labels** (:func:`label_states`), a deterministic rule on the states' log-return mean
  and standard deviation, in the features' own units:

  1. the state with the largest return standard deviation is ``high_volatility`` when
     that deviation is at least ``HIGH_VOL_RATIO`` (1.5) times the smallest one;
  2. every other state is ``bull`` when its mean return is above ``TREND_RATIO`` (0.1)
     of its standard deviation, ``bear`` when below minus that, else ``calm``.

  Several states may share a label; a label's probability is the sum of its states'.
* **Filtering** (:meth:`RegimeModel.filter`, :class:`ForwardFilter`): the forward
  recursion ``a_t ∝ (a_{t-1} A) * b(x_t)`` from the fitted ``startprob_``, ``transmat_``,
  ``means_`` and ``covars_``: p(state_t | rows <= t), O(K²) per bar. hmmlearn's
  ``predict`` and ``predict_proba`` smooth over the whole sequence (they use the future),
  so they are never used on history; this recursion is written here because hmmlearn has
  no public forward-only filter. A feature missing on a bar is marginalised out (its
  term left away, exact for diagonal covariances); a bar with none takes the transition
  step only.
* **Walk-forward** (:func:`boundaries`, :func:`apply_models`): models are retrained at
  fixed boundaries in data time (every Monday 00:00 UTC, DESIGN 8.8) on the last
  ``window_bars`` bars closed by then; a bar closing after a boundary uses the newest model
  trained at or before it, filtered from the start of that model's training window.
* **Storage**: :meth:`RegimeModel.to_dict` gives plain JSON parameters (never pickle).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from sentiment.errors import InputError

log = logging.getLogger(__name__)

FEATURES = ("log_return", "realized_volatility", "volume_ratio", "funding_rate", "oi_change")
OPTIONAL_FEATURES = ("funding_rate", "oi_change")
#: Share of a training window's rows an optional feature must have to be used.
OPTIONAL_COVERAGE = 0.9
#: Version of the training rules (2: optional features by coverage).
MODEL_VERSION = 2
LABELS = ("bull", "bear", "high_volatility", "calm")
HIGH_VOL_RATIO = 1.5
TREND_RATIO = 0.1
#: Which rule-based regimes each HMM label agrees with (DESIGN 8.8).
AGREES = {
    "bull": ("trending_up",),
    "bear": ("trending_down",),
    "high_volatility": ("high_volatility", "breakout", "capitulation"),
    "calm": ("ranging", "squeeze"),
}
_MIN_VARIANCE = 1e-12
#: Threads the math libraries may use while fitting. hmmlearn initialises with
#: scikit-learn's k-means, whose OpenMP pool takes every core: on a loaded 2-core machine
#: one fit took 43 s with the default pool and 2.9 s with one thread (bench/bench_hmm.py).
#: The cap is set here, in code, so it holds whatever the caller's environment says.
FIT_THREADS: int | None = 1


class HMMDataError(InputError):
    """The data cannot train or feed a model (too few bars, a constant feature, NaN)."""

    def __init__(self, message: str, *, symbol: str | None = None, field: str | None = None):
        super().__init__("hmm", message, symbol=symbol, field=field)


# ------------------------------------------------------------------------------ features


def feature_frame(timestamp, close, volume, funding_rate=None, open_interest=None, *,
                  volatility_window: int = 24, volume_window: int = 20) -> pd.DataFrame:
    """The HMM features of each bar, indexed by the bar's close time.

    ``funding_rate`` and ``open_interest`` are the values as of each bar's close (the
    ``sentiment_history`` columns), or None. Every feature at row t uses rows <= t only.
    """
    close = np.asarray(close, dtype=np.float64)
    volume = np.asarray(volume, dtype=np.float64)
    log_close = np.log(close)
    log_return = np.full(len(close), np.nan)
    log_return[1:] = np.diff(log_close)
    returns = pd.Series(log_return)
    realized = returns.rolling(volatility_window, min_periods=volatility_window).std(ddof=0)
    mean_volume = pd.Series(volume).rolling(volume_window, min_periods=volume_window).mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        volume_ratio = np.log(volume / mean_volume.to_numpy())
    volume_ratio[~np.isfinite(volume_ratio)] = np.nan
    frame = pd.DataFrame({
        "log_return": log_return,
        "realized_volatility": realized.to_numpy(),
        "volume_ratio": volume_ratio,
        "funding_rate": np.nan if funding_rate is None else np.asarray(
            funding_rate, dtype=np.float64),
        "oi_change": np.nan,
    }, index=pd.DatetimeIndex(pd.to_datetime(timestamp), name="timestamp"))
    if open_interest is not None:
        oi = np.asarray(open_interest, dtype=np.float64)
        change = np.full(len(oi), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            change[1:] = np.log(oi[1:] / oi[:-1])
        change[~np.isfinite(change)] = np.nan
        frame["oi_change"] = change
    return frame


# ------------------------------------------------------------------------------- model


@dataclass
class RegimeModel:
    """A fitted HMM as plain parameters, with the standardisation and the label map."""

    features: list[str]
    center: np.ndarray  # (F,) training means
    scale: np.ndarray  # (F,) training standard deviations
    startprob: np.ndarray  # (K,)
    transmat: np.ndarray  # (K, K)
    means: np.ndarray  # (K, F), standardised units
    covars: np.ndarray  # (K, F) diagonal variances, standardised units
    labels: list[str]
    log_likelihood: float
    bic: dict[int, float]
    n_train: int
    train_start: dt.datetime | None = None
    train_end: dt.datetime | None = None
    symbol: str | None = None
    interval: str | None = None
    settings: dict = field(default_factory=dict)

    @property
    def n_states(self) -> int:
        return len(self.startprob)

    @property
    def model_id(self) -> str:
        """Deterministic: symbol, interval, training end and K (DESIGN 8.8)."""
        end = self.train_end.strftime("%Y%m%dT%H%M") if self.train_end else "none"
        return f"{self.symbol}-{self.interval}-{end}-K{self.n_states}"

    def state_summary(self) -> pd.DataFrame:
        """Per state: label, mean and standard deviation of each feature in its own units."""
        rows = {}
        for k in range(self.n_states):
            row = {"label": self.labels[k]}
            for j, name in enumerate(self.features):
                row[f"{name}_mean"] = float(self.means[k, j] * self.scale[j] + self.center[j])
                row[f"{name}_std"] = float(math.sqrt(self.covars[k, j]) * self.scale[j])
            rows[k] = row
        return pd.DataFrame.from_dict(rows, orient="index")

    # -- filtering ----------------------------------------------------------------------

    def _standardise(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        if isinstance(features, pd.DataFrame):
            missing = [f for f in self.features if f not in features.columns]
            if missing:
                raise HMMDataError(f"features lack {missing}", symbol=self.symbol,
                                   field=missing[0])
            x = features[self.features].to_numpy(dtype=np.float64)
        else:
            x = np.asarray(features, dtype=np.float64)
        return (x - self.center) / self.scale

    def log_emissions(self, features) -> np.ndarray:
        """log b_k(x_t), (T, K), over the features present in each row: with diagonal
        covariances a missing feature is marginalised out by leaving its term away, so a
        model keeps reading the price features when funding or OI stop. A row with no
        feature at all is zeros (no evidence: the transition step only)."""
        z = self._standardise(features)
        present = np.isfinite(z)
        diff = np.where(present, z, 0.0)[:, None, :] - self.means[None, :, :]
        terms = (np.log(2 * np.pi * self.covars)[None, :, :]
                 + diff * diff / self.covars[None, :, :])
        return -0.5 * np.where(present[:, None, :], terms, 0.0).sum(axis=2)

    def filter(self, features) -> np.ndarray:
        """p(state_t | rows <= t) for every row, (T, K). Forward only: row t never depends
        on a row after t."""
        logb = self.log_emissions(features)
        out = np.empty_like(logb)
        f = ForwardFilter(self)
        for t in range(len(logb)):
            out[t] = f.step(logb[t])
        return out

    def label_probabilities(self, probs: np.ndarray) -> pd.DataFrame:
        """Sum the state probabilities of each label, (T, labels present)."""
        names = sorted(set(self.labels), key=LABELS.index)
        cols = {name: probs[:, [k for k, lab in enumerate(self.labels) if lab == name]]
                .sum(axis=1) for name in names}
        return pd.DataFrame(cols)

    def to_hmmlearn(self):
        """The same parameters as a hmmlearn ``GaussianHMM`` over standardised features."""
        from hmmlearn.hmm import GaussianHMM

        model = GaussianHMM(self.n_states, covariance_type="diag", init_params="",
                            params="")
        model.n_features = len(self.features)
        model.startprob_ = self.startprob.copy()
        model.transmat_ = self.transmat.copy()
        model.means_ = self.means.copy()
        model.covars_ = self.covars.copy()
        return model

    # -- storage ------------------------------------------------------------------------

    def to_dict(self) -> dict:
        def iso(t):
            return None if t is None else pd.Timestamp(t).isoformat()

        return {
            "model_id": self.model_id, "symbol": self.symbol, "interval": self.interval,
            "features": list(self.features), "center": self.center.tolist(),
            "scale": self.scale.tolist(), "startprob": self.startprob.tolist(),
            "transmat": self.transmat.tolist(), "means": self.means.tolist(),
            "covars": self.covars.tolist(), "labels": list(self.labels),
            "log_likelihood": self.log_likelihood,
            "bic": {str(k): v for k, v in self.bic.items()}, "n_train": self.n_train,
            "train_start": iso(self.train_start), "train_end": iso(self.train_end),
            "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, data: dict) -> RegimeModel:
        def when(v):
            return None if v is None else pd.Timestamp(v).to_pydatetime()

        def arr(name, ndim):
            a = np.asarray(data[name], dtype=np.float64)
            if a.ndim != ndim or not np.isfinite(a).all():
                raise HMMDataError(f"stored model parameter {name} is not a finite "
                                   f"{ndim}-d array", symbol=data.get("symbol"), field=name)
            return a

        return cls(
            features=list(data["features"]), center=arr("center", 1), scale=arr("scale", 1),
            startprob=arr("startprob", 1), transmat=arr("transmat", 2),
            means=arr("means", 2), covars=arr("covars", 2), labels=list(data["labels"]),
            log_likelihood=float(data["log_likelihood"]),
            bic={int(k): float(v) for k, v in data["bic"].items()},
            n_train=int(data["n_train"]), train_start=when(data.get("train_start")),
            train_end=when(data.get("train_end")), symbol=data.get("symbol"),
            interval=data.get("interval"), settings=dict(data.get("settings") or {}),
        )

    def to_row(self, trained_at: dt.datetime) -> dict:
        """The model as an ``hmm_models`` row."""
        params = self.to_dict()
        return {
            "model_id": self.model_id, "symbol": self.symbol, "interval": self.interval,
            "trained_at": trained_at, "train_start": self.train_start,
            "train_end": self.train_end, "n_states": self.n_states,
            "bic": self.bic[self.n_states], "log_likelihood": self.log_likelihood,
            "params": json.dumps(params, allow_nan=False), "labels": json.dumps(self.labels),
        }

    @classmethod
    def from_row(cls, row) -> RegimeModel:
        return cls.from_dict(json.loads(row["params"]))


class ForwardFilter:
    """The forward recursion one bar at a time: O(K²) per bar, state = one K-vector."""

    def __init__(self, model: RegimeModel, alpha: np.ndarray | None = None):
        self.model = model
        self.alpha = None if alpha is None else np.asarray(alpha, dtype=np.float64)

    def step(self, log_emission: np.ndarray) -> np.ndarray:
        prior = (self.model.startprob if self.alpha is None
                 else self.alpha @ self.model.transmat)
        weights = np.exp(log_emission - log_emission.max())
        alpha = prior * weights
        total = alpha.sum()
        if not total > 0 or not np.isfinite(total):
            # Every state gives the row ~zero likelihood: fall back to the prior.
            alpha, total = prior, prior.sum()
        self.alpha = alpha / total
        return self.alpha

    def update(self, features_row) -> np.ndarray:
        return self.step(self.model.log_emissions(np.atleast_2d(features_row))[0])


# ------------------------------------------------------------------------------ training


def label_states(return_mean: np.ndarray, return_std: np.ndarray) -> list[str]:
    """The label rule of the module docstring, from each state's return mean and std."""
    k = len(return_mean)
    labels = [""] * k
    high = int(np.argmax(return_std))
    if k > 1 and return_std[high] >= HIGH_VOL_RATIO * return_std.min():
        labels[high] = "high_volatility"
    for i in range(k):
        if labels[i]:
            continue
        ratio = return_mean[i] / return_std[i] if return_std[i] > 0 else 0.0
        labels[i] = "bull" if ratio > TREND_RATIO else "bear" if ratio < -TREND_RATIO else "calm"
    return labels


def _n_parameters(k: int, f: int) -> int:
    return (k - 1) + k * (k - 1) + 2 * k * f  # start, transitions, means, diag variances


def _fit_all(z, ks, restarts, random_state, n_iter, tol, best) -> None:
    """The best log-likelihood fit per K over the seeded restarts, into ``best``."""
    from hmmlearn.hmm import GaussianHMM

    for k in ks:
        for r in range(restarts):
            model = GaussianHMM(k, covariance_type="diag", n_iter=n_iter, tol=tol,
                                random_state=random_state + r, implementation="scaling",
                                min_covar=1e-6)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(z)
                    ll = float(model.score(z))
            except (ValueError, np.linalg.LinAlgError) as exc:
                log.debug("HMM fit K=%d seed=%d failed: %s", k, random_state + r, exc)
                continue
            params = (model.startprob_, model.transmat_, model.means_, model.covars_)
            if not math.isfinite(ll) or not all(np.isfinite(p).all() for p in params):
                continue
            if k not in best or ll > best[k][0]:
                best[k] = (ll, model)


def train_regime_model(
    features: pd.DataFrame,
    n_states: Sequence[int] = (2, 3, 4),
    random_state: int = 0,
    *,
    restarts: int = 3,
    n_iter: int = 100,
    tol: float = 1e-4,
    min_bars: int = 100,
    symbol: str | None = None,
    interval: str | None = None,
) -> RegimeModel:
    """Fit K states for every K in ``n_states`` (``restarts`` seeds each), keep the lowest BIC.

    ``features``: one row per bar (columns from :data:`FEATURES`; an optional feature
    present on fewer than :data:`OPTIONAL_COVERAGE` of the rows is dropped). Rows with a
    missing value are left out of training. Raises
    :class:`HMMDataError` for too few rows, a constant or non-finite feature, or when no fit
    converges to usable parameters.
    """
    if not isinstance(features, pd.DataFrame) or features.empty:
        raise HMMDataError("no feature rows to train on", symbol=symbol)
    # An optional feature missing from part of the window (funding that starts or stops
    # inside it) is left out rather than shrinking the window to the rows that have it.
    columns = [c for c in features.columns
               if not (c in OPTIONAL_FEATURES
                       and features[c].notna().mean() < OPTIONAL_COVERAGE)]
    x = features[columns].to_numpy(dtype=np.float64)
    if np.isinf(x).any():
        j = int(np.flatnonzero(np.isinf(x).any(axis=0))[0])
        raise HMMDataError("infinite value", symbol=symbol, field=columns[j])
    keep = np.isfinite(x).all(axis=1)
    x = x[keep]
    ks = sorted({int(k) for k in n_states})
    if not ks or ks[0] < 1:
        raise HMMDataError(f"n_states must be positive integers, got {list(n_states)}",
                           symbol=symbol)
    need = max(min_bars, 10 * _n_parameters(ks[-1], len(columns)) // len(columns))
    if len(x) < need:
        raise HMMDataError(f"too few complete bars to train: {len(x)} < {need}",
                           symbol=symbol)
    center = x.mean(axis=0)
    scale = x.std(axis=0)
    flat = np.flatnonzero(scale <= 1e-12 * np.maximum(1.0, np.abs(center)))
    if flat.size:
        raise HMMDataError("constant over the training window", symbol=symbol,
                           field=columns[int(flat[0])])
    z = (x - center) / scale
    index = features.index[keep]

    best: dict[int, tuple[float, object]] = {}
    quiet = logging.getLogger("hmmlearn")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "Model is not converging" at every non-monotone step
    try:
        with threadpool_limits(limits=FIT_THREADS):
            _fit_all(z, ks, restarts, random_state, n_iter, tol, best)
    finally:
        quiet.setLevel(level)
    if not best:
        raise HMMDataError("no fit gave usable parameters", symbol=symbol)
    t = len(z)
    bic = {k: -2.0 * ll + _n_parameters(k, len(columns)) * math.log(t)
           for k, (ll, _) in best.items()}
    k = min(bic, key=lambda key: (bic[key], key))
    ll, model = best[k]
    covars = np.array([np.diag(c) for c in model.covars_]) if model.covars_.ndim == 3 \
        else np.asarray(model.covars_)
    means = np.asarray(model.means_)
    r = columns.index("log_return") if "log_return" in columns else 0
    ret_mean = means[:, r] * scale[r] + center[r]
    ret_std = np.sqrt(covars[:, r]) * scale[r]
    order = np.lexsort((ret_std, ret_mean))  # canonical state order
    startprob = np.asarray(model.startprob_)[order]
    transmat = np.asarray(model.transmat_)[np.ix_(order, order)]
    return RegimeModel(
        features=columns, center=center, scale=scale, startprob=startprob,
        transmat=transmat, means=means[order], covars=np.maximum(covars[order],
                                                                 _MIN_VARIANCE),
        labels=label_states(ret_mean[order], ret_std[order]), log_likelihood=ll, bic=bic,
        n_train=t, train_start=pd.Timestamp(index[0]).to_pydatetime(),
        train_end=pd.Timestamp(index[-1]).to_pydatetime(), symbol=symbol, interval=interval,
    )


# --------------------------------------------------------------------------- walk-forward


def boundaries(first: dt.datetime, last: dt.datetime) -> list[dt.datetime]:
    """Every Monday 00:00 UTC in ``(first, last]`` (retrain boundaries in data time)."""
    start = pd.Timestamp(first).normalize()
    start -= pd.Timedelta(days=start.weekday())
    out = []
    b = start
    while b <= pd.Timestamp(last):
        if b > pd.Timestamp(first):
            out.append(b.to_pydatetime())
        b += pd.Timedelta(days=7)
    return out


def boundaries_since(first: dt.datetime, last: dt.datetime,
                     since: dt.datetime | None = None) -> list[dt.datetime]:
    """The boundaries of :func:`boundaries` whose models rows closing at or after ``since``
    can use: the last one before ``since`` and every one after (all when None)."""
    bounds = boundaries(first, last)
    if since is None:
        return bounds
    before = [b for b in bounds if b < pd.Timestamp(since)]
    return before[-1:] + [b for b in bounds if b >= pd.Timestamp(since)]


def settings_of(config) -> dict:
    """The settings a stored model must have been trained with to be reused."""
    h = config.hmm
    # model_version: bumped when training changes, so older stored models are retrained.
    return {"model_version": MODEL_VERSION, "window_bars": h.window_bars, "min_bars": h.min_bars,
            "n_states": list(h.n_states), "restarts": h.restarts, "n_iter": h.n_iter,
            "tol": h.tol, "volatility_window": h.volatility_window,
            "volume_window": h.volume_window, "random_state": h.random_state}


def settings_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def train_at(features: pd.DataFrame, boundary: dt.datetime, config, *, symbol: str,
             interval: str) -> RegimeModel | None:
    """The model of one boundary: the last ``window_bars`` bars closed by it, or None when
    they are too few or unusable (logged, never a corrupt model)."""
    h = config.hmm
    window = features[features.index <= pd.Timestamp(boundary)].tail(h.window_bars)
    try:
        model = train_regime_model(
            window, h.n_states, h.random_state, restarts=h.restarts, n_iter=h.n_iter,
            tol=h.tol, min_bars=h.min_bars, symbol=symbol, interval=interval)
    except HMMDataError as exc:
        log.info("no HMM for %s %s at %s: %s", symbol, interval, boundary, exc)
        return None
    model.train_end = pd.Timestamp(boundary).to_pydatetime()  # the boundary names it
    model.settings = settings_of(config)
    return model


def apply_models(features: pd.DataFrame, models: Iterable[RegimeModel]) -> pd.DataFrame:
    """HMM columns for every row of ``features``: label, its probability, model id and the
    label probabilities as JSON. A row closing after a model's ``train_end`` uses the
    newest such model, filtered from the start of that model's training window."""
    n = len(features)
    out = pd.DataFrame({"hmm_regime": pd.Series([None] * n, dtype=object),
                        "hmm_probability": np.full(n, np.nan),
                        "hmm_model_id": pd.Series([None] * n, dtype=object),
                        "hmm_state_probabilities": pd.Series([None] * n, dtype=object)})
    models = sorted(models, key=lambda m: m.train_end)
    if not models or n == 0:
        return out
    ts = features.index
    for i, model in enumerate(models):
        lo = pd.Timestamp(model.train_end)
        hi = pd.Timestamp(models[i + 1].train_end) if i + 1 < len(models) else None
        use = (ts > lo) if hi is None else (ts > lo) & (ts <= hi)
        if not use.any():
            continue
        last = int(np.flatnonzero(use)[-1])
        first = int(np.searchsorted(ts, pd.Timestamp(model.train_start), side="left"))
        probs = model.filter(features.iloc[first:last + 1])
        labels = model.label_probabilities(probs)
        rows = np.flatnonzero(use)
        sub = labels.iloc[rows - first]
        best = sub.to_numpy().argmax(axis=1)
        names = np.array(sub.columns, dtype=object)
        out.loc[rows, "hmm_regime"] = names[best]
        out.loc[rows, "hmm_probability"] = sub.to_numpy()[np.arange(len(rows)), best]
        out.loc[rows, "hmm_model_id"] = model.model_id
        out.loc[rows, "hmm_state_probabilities"] = [
            json.dumps({c: round(float(v), 12) for c, v in zip(sub.columns, r, strict=True)})
            for r in sub.to_numpy()]
    return out


def ensemble_confidence(regime, confidence, hmm_regime, hmm_probability,
                        weight: float) -> np.ndarray:
    """The rule-based regime confidence moved by the HMM (the rule-based label stays).

    Agreeing labels (:data:`AGREES`): ``c + (1 - c) * w * p``; contradicting: ``c * (1 - w *
    p)``; no HMM or no regime: unchanged. ``p`` is the HMM label's probability, ``w`` the
    configured ``hmm.ensemble_weight``.
    """
    c = np.asarray(confidence, dtype=np.float64).copy()
    p = np.asarray(hmm_probability, dtype=np.float64)
    for i, (reg, lab) in enumerate(zip(regime, hmm_regime, strict=True)):
        if not isinstance(reg, str) or not isinstance(lab, str) or not np.isfinite(c[i]) \
                or not np.isfinite(p[i]):
            continue
        if reg in AGREES.get(lab, ()):
            c[i] = c[i] + (1.0 - c[i]) * weight * p[i]
        else:
            c[i] = c[i] * (1.0 - weight * p[i])
    return c
