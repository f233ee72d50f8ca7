"""Batch computation of a whole history: ``compute_history``.

The batch twin of :class:`~sentiment.tracker.MarketSentimentTracker`: TA-Lib's Function API
and the vectorised forms of the indicators written here over whole arrays, the slower
inputs joined as of each bar's close, then the same compiled engine step in a loop. The
rows equal, within 1e-9, what the tracker produces bar by bar (tests hold them to it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sentiment import hmm
from sentiment.config import Config, load_config
from sentiment.core import engine
from sentiment.core.indicators import custom
from sentiment.core.indicators.talib_set import BAR_FIELDS, compute_talib
from sentiment.core.inputs import SLOW_INPUTS, asof_inputs
from sentiment.core.layout import (
    N_INPUTS,
    N_OUTPUTS,
    Y_CONFIDENCE,
    Y_DURATION,
    Y_EXCHANGE,
    Y_FLOW,
    Y_MACRO,
    Y_MOMENTUM,
    Y_REGIME,
    Y_REGIME_CONF,
    Y_SCORE,
    Y_TRANSITION_FROM,
    Y_TREND,
    Y_VOLATILITY,
    X,
)
from sentiment.core.regime import move_bars
from sentiment.core.timeutil import (
    MINUTE_MS,
    epoch_ms,
    epoch_ms_array,
    ms_to_datetime,
    ms_to_timestamps,
)
from sentiment.errors import CheckpointMismatch, InputError
from sentiment.models import HISTORY_COLUMNS, HISTORY_FLOAT_COLUMNS, INTERVAL_MINUTES, REGIMES
from sentiment.tracker import CHECKPOINT_VERSION, CMF_PERIOD, KELTNER_MULT, SUPERTREND_FACTOR

_ENGINE_COLUMNS = {
    "sentiment_score": Y_SCORE, "confidence": Y_CONFIDENCE, "regime_confidence": Y_REGIME_CONF,
    "trend_score": Y_TREND, "momentum_score": Y_MOMENTUM, "volatility_score": Y_VOLATILITY,
    "volume_flow_score": Y_FLOW, "exchange_sentiment": Y_EXCHANGE, "macro_sentiment": Y_MACRO,
}
_RAW_COLUMNS = (
    "funding_rate", "open_interest", "open_interest_delta_pct", "long_short_ratio",
    "liquidation_intensity", "order_book_imbalance", "fear_greed_index",
)


def compute_history(
    candles: pd.DataFrame,
    funding: pd.DataFrame | None = None,
    open_interest: pd.DataFrame | None = None,
    long_short: pd.DataFrame | None = None,
    fear_greed: pd.DataFrame | None = None,
    config: Config | None = None,
    *,
    liquidations: pd.DataFrame | None = None,
    orderbook_imbalance: pd.DataFrame | None = None,
    hmm_models: pd.DataFrame | None = None,
    symbol: str | None = None,
    interval: str | None = None,
) -> pd.DataFrame:
    """One ``sentiment_history`` row per closed bar of ``candles``.

    :func:`compute_history_and_transitions` also returns the ``regime_transitions`` rows.

    Parameters
    ----------
    candles
        Rows shaped like the ``candles`` table; several symbols and intervals are computed
        separately. Without ``symbol`` / ``interval`` columns pass ``symbol=`` and
        ``interval=``.
    funding, open_interest, long_short, fear_greed, liquidations, orderbook_imbalance
        Rows shaped like their tables, or ``None`` when that input has no data (its tier is
        then left out, never read as zero).
    config
        ``None`` loads ``sentiment.yaml``.

    Returns
    -------
    DataFrame
        Exactly the ``sentiment_history`` columns, ordered by symbol, interval, timestamp.
    """
    return compute_history_and_transitions(
        candles, funding, open_interest, long_short, fear_greed, config,
        liquidations=liquidations, orderbook_imbalance=orderbook_imbalance,
        hmm_models=hmm_models, symbol=symbol, interval=interval,
    )[0]


def compute_history_and_transitions(
    candles: pd.DataFrame,
    funding: pd.DataFrame | None = None,
    open_interest: pd.DataFrame | None = None,
    long_short: pd.DataFrame | None = None,
    fear_greed: pd.DataFrame | None = None,
    config: Config | None = None,
    *,
    liquidations: pd.DataFrame | None = None,
    orderbook_imbalance: pd.DataFrame | None = None,
    hmm_models: pd.DataFrame | None = None,
    symbol: str | None = None,
    interval: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`compute_history` plus the confirmed regime changes (``regime_transitions``)."""
    config = config if config is not None else load_config()
    frame = candles
    if "symbol" not in frame.columns or "interval" not in frame.columns:
        if symbol is None or interval is None:
            raise InputError("candles", "without symbol/interval columns pass symbol= and "
                             "interval=", symbol=symbol, field="symbol")
        frame = frame.assign(symbol=symbol, interval=str(interval))
    models = _as_models(hmm_models)
    parts = []
    for (sym, ivl), group in frame.groupby(["symbol", "interval"], sort=True):
        series = compute_series(
            group, config, symbol=str(sym), interval=str(ivl), with_features=models is not None,
            inputs=dict(funding=funding, open_interest=open_interest, long_short=long_short,
                        fear_greed=fear_greed, liquidations=liquidations,
                        orderbook_imbalance=orderbook_imbalance),
        )
        rows = series.rows
        if models is not None:
            mine = [m for m in models if m.symbol == sym and m.interval == ivl]
            rows = with_hmm(rows, mine, config, series.features)
        parts.append((rows, series.transitions))
    if not parts:
        return history_frame({name: [] for name in HISTORY_COLUMNS}), _transitions(
            "", "", np.empty(0, dtype=np.int64), np.empty((0, N_OUTPUTS)))
    return (pd.concat([h for h, _ in parts], ignore_index=True),
            pd.concat([t for _, t in parts], ignore_index=True))




def _bars(symbol: str, interval: str, group: pd.DataFrame) -> tuple[np.ndarray, dict]:
    group = group.sort_values("open_time", kind="stable")
    open_ms = epoch_ms_array(group["open_time"])
    if len(open_ms) > 1 and (np.diff(open_ms) <= 0).any():
        i = int(np.flatnonzero(np.diff(open_ms) <= 0)[0])
        raise InputError("candles", f"duplicate open_time {group['open_time'].iloc[i + 1]}",
                         symbol=symbol, field="open_time")
    bars = {}
    for name in BAR_FIELDS:
        values = pd.to_numeric(group[name], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            when = group["open_time"].iloc[int(np.flatnonzero(bad)[0])]
            raise InputError("candles", f"not a finite number at {when} ({interval})",
                             symbol=symbol, field=name)
        bars[name] = values
    if (bars["volume"] < 0).any():
        raise InputError("candles", "negative volume", symbol=symbol, field="volume")
    if (bars["high"] < bars["low"]).any():
        raise InputError("candles", "high below low", symbol=symbol, field="high")
    return open_ms, bars


def indicator_frame(bars: dict[str, np.ndarray], config: Config) -> dict[str, np.ndarray]:
    """Every indicator over whole arrays: TA-Lib outputs plus the ones written here."""
    ta = compute_talib(bars)
    ta["atr_rank"] = custom.atr_percent_rank(custom.settled_atr(ta["atr"], bars["close"]),
                                             config.regime.atr_lookback)
    ta["kc_upper"], ta["kc_lower"] = custom.keltner(ta["kc_basis"], ta["atr_20"], KELTNER_MULT)
    ta["squeeze"], ta["squeeze_fired"] = custom.squeeze(
        ta["bb_upper"], ta["bb_lower"], ta["kc_upper"], ta["kc_lower"]
    )
    ta["supertrend"], ta["supertrend_dir"], ta["supertrend_flip"] = custom.supertrend(
        bars["high"], bars["low"], bars["close"], ta["atr_10"], SUPERTREND_FACTOR
    )
    ta["cmf"] = custom.cmf(bars["high"], bars["low"], bars["close"], bars["volume"],
                           CMF_PERIOD)
    return ta


def day_move(close: np.ndarray, bars: int) -> np.ndarray:
    """``close / close bars earlier - 1`` (NaN for the first ``bars`` bars)."""
    out = np.full(len(close), np.nan)
    if len(close) > bars:
        out[bars:] = close[bars:] / close[:-bars] - 1.0
    return out


def _as_models(hmm_models) -> list[hmm.RegimeModel] | None:
    if hmm_models is None:
        return None
    if isinstance(hmm_models, pd.DataFrame):
        return [hmm.RegimeModel.from_row(row) for row in hmm_models.to_dict("records")]
    return list(hmm_models)


def hmm_features(rows: pd.DataFrame, volume, config: Config) -> pd.DataFrame:
    """The HMM features of history rows (one symbol and interval, in time order) and the
    volume of their bars: close, funding and open interest as the rows hold them, i.e. as
    of each bar's close."""
    def floats(name):
        return rows[name].to_numpy(dtype=np.float64, na_value=np.nan)

    return hmm.feature_frame(
        rows["timestamp"], floats("close"), volume, floats("funding_rate"),
        floats("open_interest"), volatility_window=config.hmm.volatility_window,
        volume_window=config.hmm.volume_window)


def with_hmm(rows: pd.DataFrame, models, config: Config,
             features: pd.DataFrame) -> pd.DataFrame:
    """Rows with the HMM columns filled by the walk-forward ``models`` and the regime
    confidence moved by the ensemble rule (:func:`sentiment.hmm.ensemble_confidence`).

    The one place the HMM layer meets the rows, for the backfill, the live job and
    :func:`compute_history` alike. ``features`` are those of every bar of the series; the
    rows are its last ``len(rows)`` bars (the live job computes only the newest)."""
    cols = hmm.apply_models(features, models)
    if len(features) != len(rows):
        cols = cols.iloc[len(features) - len(rows):].reset_index(drop=True)
    out = rows.copy()
    for name in ("hmm_regime", "hmm_model_id", "hmm_state_probabilities"):
        out[name] = _strings(cols[name].where(cols[name].notna(), None))
    out["hmm_probability"] = pd.array(cols["hmm_probability"].to_numpy(), dtype="Float64")
    conf = hmm.ensemble_confidence(
        out["regime"].to_numpy(dtype=object, na_value=None),
        out["regime_confidence"].to_numpy(dtype=np.float64, na_value=np.nan),
        out["hmm_regime"].to_numpy(dtype=object, na_value=None),
        out["hmm_probability"].to_numpy(dtype=np.float64, na_value=np.nan),
        config.hmm.ensemble_weight)
    out["regime_confidence"] = pd.array(conf, dtype="Float64")
    return out


def with_walk_forward_hmm(rows: pd.DataFrame, volume, config: Config, *, symbol: str,
                          interval: str) -> tuple[pd.DataFrame, list[hmm.RegimeModel]]:
    """Rows (one symbol and interval, in time order) with the HMM layer the pipeline would
    have stored: a model trained at every weekly boundary on the bars closed by then, each
    applied until the next. Returns the rows and the models trained."""
    if rows.empty:
        return rows, []
    features = hmm_features(rows, volume, config)
    models = [m for b in hmm.boundaries(features.index[0], features.index[-1])
              if (m := hmm.train_at(features, b, config, symbol=symbol, interval=interval))
              is not None]
    return with_hmm(rows, models, config, features), models


@dataclass
class Series:
    """One symbol and interval computed by :func:`compute_series`."""

    #: ``sentiment_history`` rows of the bars fed to the engine (all, or those after the
    #: checkpoint resumed from), without the HMM columns.
    rows: pd.DataFrame
    #: The ``regime_transitions`` rows among them, read from the engine's own output.
    transitions: pd.DataFrame
    #: The HMM features of every bar (``None`` unless asked for).
    features: pd.DataFrame | None
    #: The engine state after the last bar closed by ``checkpoint_until`` (``None`` without
    #: ``checkpoint_until``, or when no bar fed here closed by then), and that bar's close.
    checkpoint: dict[str, Any] | None
    checkpoint_time: dt.datetime | None
    #: Whether the engine continued from the checkpoint it was given.
    resumed: bool


def engine_checkpoint(config: Config, symbol: str, interval: str, n_bars: int,
                      state: np.ndarray, last_ms: int) -> dict[str, Any]:
    """The engine's state after ``n_bars`` bars, as plain JSON types. Everything else the
    rows depend on (indicators, as-of inputs) is a pure function of the stored bars and
    inputs, so this is all a run needs to continue."""
    return {"version": CHECKPOINT_VERSION, "symbol": symbol, "interval": interval,
            "params": engine.fingerprint(config, interval), "n_bars": n_bars,
            "last_ms": last_ms, "engine": [None if v != v else float(v) for v in state]}


def _resume(checkpoint: dict[str, Any], config: Config, symbol: str, interval: str,
            close_ms: np.ndarray) -> tuple[int, np.ndarray]:
    """(bars already done, engine state) of a checkpoint that continues these bars; a
    :class:`CheckpointMismatch` names why it does not."""
    def mismatch(what, field):
        return CheckpointMismatch("checkpoint", what, symbol=symbol, field=field)

    if checkpoint.get("version") != CHECKPOINT_VERSION:
        raise mismatch(f"unsupported version {checkpoint.get('version')!r}", "version")
    if checkpoint.get("params") != engine.fingerprint(config, interval):
        raise mismatch("made with a different configuration (weights, thresholds or enabled "
                       "inputs)", "params")
    done = int(checkpoint["n_bars"])
    last = checkpoint.get("last_ms")
    if not 0 < done <= len(close_ms) or (last is not None and close_ms[done - 1] != last):
        # A bar before the checkpoint arrived late (the exchange had left it out): the
        # checkpoint no longer continues the stored history.
        raise mismatch(f"made over {done} bars, which the stored bars no longer continue",
                       "candles")
    state = np.array([np.nan if v is None else v for v in checkpoint["engine"]],
                     dtype=np.float64)
    if state.shape != engine.new_state().shape:
        raise mismatch("engine state of another size", "engine")
    return done, state


def compute_series(candles: pd.DataFrame, config: Config, *, symbol: str, interval: str,
                   inputs: dict[str, pd.DataFrame | None] | None = None,
                   resume: dict[str, Any] | None = None,
                   checkpoint_until: dt.datetime | None = None,
                   with_features: bool = False) -> Series:
    """The one computation of a symbol and interval, for the backfill and the live job.

    Indicators and as-of inputs are computed over every stored bar (vectorised; they are
    pure functions of the bars and inputs). The engine then runs from a fresh state over
    every bar, or, given ``resume`` (a :func:`engine_checkpoint`), from that state over the
    bars after it: the two differ only in where the state comes from and how many bars
    they feed. A checkpoint that does not continue these bars raises
    :class:`~sentiment.errors.CheckpointMismatch`.
    """
    if interval not in INTERVAL_MINUTES:
        raise InputError("candles", f"unknown interval {interval!r}", symbol=symbol,
                         field="interval")
    open_ms, bars = _bars(symbol, interval, candles)
    minutes = INTERVAL_MINUTES[interval]
    close_ms = open_ms + minutes * MINUTE_MS
    ind = indicator_frame(bars, config)
    ind["move_24h"] = day_move(bars["close"], move_bars(minutes))
    ex = config.exchange_data
    slow_values = asof_inputs(
        symbol, open_ms, close_ms, bars["close"],
        open_interest_interval=ex.open_interest_interval,
        long_short_period=ex.long_short_period, interval_minutes=minutes, **(inputs or {}),
    )
    n = len(close_ms)
    xs = np.empty((n, N_INPUTS))
    for name, col in X.items():
        if name in bars:
            xs[:, col] = bars[name]
        elif name in slow_values:
            xs[:, col] = slow_values[name]
        else:
            xs[:, col] = ind[name]

    first, state = 0, engine.new_state()
    if resume is not None:
        first, state = _resume(resume, config, symbol, interval, close_ms)
    # The checkpoint goes after the last bar closed by ``checkpoint_until`` (none without).
    cut = first if checkpoint_until is None else int(np.searchsorted(
        close_ms, epoch_ms(checkpoint_until), side="right"))
    p = engine.params(config, interval)
    checkpoint, checkpoint_time = None, None
    if cut > first:
        ys_done = engine.run_batch(state, xs[first:cut], p)
        checkpoint = engine_checkpoint(config, symbol, interval, cut, state,
                                       int(close_ms[cut - 1]))
        checkpoint_time = ms_to_datetime(close_ms[cut - 1])
        ys = np.vstack([ys_done, engine.run_batch(state, xs[cut:], p)])
    else:
        ys = engine.run_batch(state, xs[first:], p)

    m = n - first
    columns: dict[str, object] = {
        "symbol": _constant(symbol, m),
        "interval": _constant(interval, m),
        "timestamp": ms_to_timestamps(close_ms[first:]),
        "close": bars["close"][first:],
    }
    for name, col in _ENGINE_COLUMNS.items():
        columns[name] = ys[:, col]
    codes = ys[:, Y_REGIME]
    columns["regime"] = _regime_names(codes)
    columns["regime_duration_bars"] = np.where(np.isfinite(codes), ys[:, Y_DURATION], np.nan)
    for name in _RAW_COLUMNS:
        columns[name] = xs[first:, X[name]]
    features = None
    if with_features:
        features = hmm.feature_frame(
            pd.DatetimeIndex(ms_to_timestamps(close_ms)), bars["close"], bars["volume"],
            xs[:, X["funding_rate"]], xs[:, X["open_interest"]],
            volatility_window=config.hmm.volatility_window,
            volume_window=config.hmm.volume_window)
    return Series(history_frame(columns), _transitions(symbol, interval, close_ms[first:], ys),
                  features, checkpoint, checkpoint_time, resume is not None)


def _transitions(symbol, interval, close_ms, ys) -> pd.DataFrame:
    frm = ys[:, Y_TRANSITION_FROM]
    idx = np.flatnonzero(np.isfinite(frm) & (frm >= 0))
    names = np.array(REGIMES, dtype=object)
    return pd.DataFrame({
        "symbol": symbol,
        "interval": interval,
        "timestamp": ms_to_timestamps(close_ms[idx]),
        "from_regime": names[frm[idx].astype(np.int64)],
        "to_regime": names[ys[idx, Y_REGIME].astype(np.int64)],
    })


def _floats(values) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return values.astype(np.float64, copy=False)
    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan)


def _strings(values) -> pd.api.extensions.ExtensionArray:
    if not isinstance(values, pa.Array):
        values = pa.array(list(values), type=pa.string(), from_pandas=True)
    return pd.array(values, dtype=pd.StringDtype("pyarrow", na_value=np.nan))


def history_frame(columns: dict[str, object]) -> pd.DataFrame:
    """A frame with exactly the ``sentiment_history`` columns and their dtypes (NULL as NA).

    Missing columns are all NULL; floats are nullable ``Float64`` (NaN becomes NA), the
    duration ``Int64``, text pandas' default ``str`` (missing = NaN).
    """
    n = len(next(iter(columns.values()))) if columns else 0
    data = {}
    for name in HISTORY_COLUMNS:
        values = columns.get(name)
        if values is None:
            values = (np.full(n, np.nan) if name in HISTORY_FLOAT_COLUMNS
                      else pa.nulls(n, pa.string()))
        if name in HISTORY_FLOAT_COLUMNS:
            f = _floats(values)
            data[name] = pd.arrays.FloatingArray(f, np.isnan(f))
        elif name == "regime_duration_bars":
            f = _floats(values)
            missing = np.isnan(f)
            data[name] = pd.arrays.IntegerArray(np.where(missing, 0, f).astype(np.int64),
                                                missing)
        elif name == "timestamp":
            data[name] = pd.to_datetime(pd.Series(values)).astype("datetime64[ns]")
        else:
            data[name] = _strings(values)
    return pd.DataFrame(data, copy=False)


def _constant(value: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype=np.int32)), pa.array([value])
    ).cast(pa.string())


def _regime_names(codes: np.ndarray) -> pa.Array:
    missing = ~np.isfinite(codes)
    idx = pa.array(np.where(missing, 0, codes).astype(np.int32), mask=missing)
    return pa.DictionaryArray.from_arrays(idx, pa.array(list(REGIMES))).cast(pa.string())


__all__ = ["compute_history", "compute_history_and_transitions", "compute_series",
           "history_frame", "indicator_frame", "SLOW_INPUTS", "Series"]
