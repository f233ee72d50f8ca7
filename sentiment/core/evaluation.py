"""How good the regime and the composite are on a history: rows in, metrics out.

Pure (numpy and pandas only): :func:`evaluate` takes ``sentiment_history`` rows of one
symbol and interval and returns a :class:`Evaluation`. ``sentiment evaluate`` (the CLI),
the dashboard's Quality page and ``bench/bench_quality.py`` all call it, so they show the
same figures.

Windows are defined in hours for hourly bars and scaled to other intervals by time: a
window of ``h`` hours is ``max(1, round(h x 60 / interval minutes))`` bars (the forward
volatility window at least 2 bars). The price thresholds (5 %, 7 %, 8 %) are moves over
24 hours and stay as they are. Rows are first placed on the interval's regular time grid,
so a missing bar is a hole, never a shorter window.

Forward outcomes (the per-regime return and volatility distributions, ``fwd_vol_ratio``)
use only bars whose forward window has closed inside the rows given: the figures for
"where the market went after this label" never include a window that was still open.

Metric definitions (hourly bars):

===================== ================================================================
transitions_per_month (runs of equal confirmed regime - 1) / (days between the first and
                      last non-null regime bar / 30.44)
stale_share           share of non-null-regime bars with ``regime_confidence <= 0.25``
contradiction_share   share of non-null-regime bars where (r24 = close / close 24 bars
                      earlier - 1) the regime is trending_up and r24 < -5 %, trending_down
                      and r24 > +5 %, or ranging/squeeze and \\|r24\\| > 7 %
crash_catch_rate      crash onsets: r24 < -8 % with no such bar in the 48 bars before;
                      caught when the regime at the onset or the next 2 bars is
                      trending_down, high_volatility or capitulation
pump_catch_rate       the same with r24 > +8 % and trending_up, high_volatility, breakout
fwd_vol_ratio         mean over high_volatility bars of the std of the next 24 log
                      returns, over the same mean over ranging + squeeze bars
very_bull_share       share of bars with a composite >= 0.7 (very_bear_share: <= -0.7)
breakout_max_bars     longest run of consecutive breakout bars
===================== ================================================================
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sentiment.core.timeutil import naive_utc, naive_utc_series
from sentiment.errors import InputError
from sentiment.models import INTERVAL_MINUTES, REGIMES

#: Hours of each window at hourly bars (scaled by time to other intervals).
RETURN_HOURS = 24  # r24 and the forward windows
ONSET_GAP_HOURS = 48  # a crash or pump onset has no such bar in this many hours before it
CATCH_HOURS = 2  # the regime may catch an onset this many hours after it
#: 24-hour moves the contradiction and catch metrics compare with.
TREND_CONTRADICTION = 0.05
RANGE_CONTRADICTION = 0.07
SHOCK_MOVE = 0.08
STALE_CONFIDENCE = 0.25
VERY_BULLISH = 0.7
DAYS_PER_MONTH = 30.44

CRASH_CATCHERS = frozenset({"trending_down", "high_volatility", "capitulation"})
PUMP_CATCHERS = frozenset({"trending_up", "high_volatility", "breakout"})
CALM_REGIMES = frozenset({"ranging", "squeeze"})

#: The regime-quality goals (hourly bars): metric -> (comparison, bound).
TARGETS: dict[str, tuple[str, float]] = {
    "transitions_per_month": ("<=", 15.0),
    "stale_share": ("<=", 0.02),
    "contradiction_share": ("<=", 0.003),
    "crash_catch_rate": (">=", 0.95),
    "pump_catch_rate": (">=", 0.90),
    "fwd_vol_ratio": (">=", 1.6),
    "very_bull_share": (">=", 0.01),
    "very_bear_share": (">=", 0.01),
    "breakout_max_bars": ("<=", 12.0),
}
#: Bounds on each regime's share of bars that keep every regime meaningful.
SHARE_TARGETS: dict[str, tuple[str, float]] = {
    "high_volatility": ("<=", 0.35),
    "trending_up": (">=", 0.08),
    "trending_down": (">=", 0.08),
    "ranging": (">=", 0.08),
    "squeeze": (">=", 0.03),
    "breakout": (">=", 0.005),
}
#: The metrics of :data:`TARGETS`, in report order.
METRICS: tuple[str, ...] = tuple(TARGETS)


@dataclass(frozen=True)
class Windows:
    """The metric windows in bars for one interval."""

    ret: int
    onset_gap: int
    catch: int
    forward: int
    minutes: int

    @classmethod
    def of(cls, interval: str) -> Windows:
        if str(interval) not in INTERVAL_MINUTES:
            raise InputError("evaluation", f"unknown interval {interval!r}", field="interval")
        minutes = INTERVAL_MINUTES[str(interval)]

        def bars(hours: float, least: int = 1) -> int:
            return max(least, int(round(hours * 60.0 / minutes)))

        return cls(bars(RETURN_HOURS), bars(ONSET_GAP_HOURS), bars(CATCH_HOURS),
                   bars(RETURN_HOURS, 2), minutes)


@dataclass(frozen=True)
class Event:
    """A named window of market history (``--events``)."""

    name: str
    start: pd.Timestamp
    end: pd.Timestamp


@dataclass
class Evaluation:
    """Everything :func:`evaluate` measured."""

    symbol: str | None
    interval: str
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    bars: int
    metrics: dict[str, float]
    counts: dict[str, int]
    regimes: pd.DataFrame  # one row per regime
    hmm: dict[str, Any] = field(default_factory=dict)
    events: pd.DataFrame | None = None

    def passed(self) -> dict[str, bool | None]:
        """Per target metric: met (True), missed (False), or not measurable (None)."""
        out: dict[str, bool | None] = {}
        for name, (op, bound) in TARGETS.items():
            out[name] = meets(self.metrics.get(name), op, bound)
        for name, (op, bound) in SHARE_TARGETS.items():
            share = self.regimes.loc[name, "share"] if name in self.regimes.index else None
            out[f"share_{name}"] = meets(share, op, bound)
        return out

    def to_dict(self) -> dict:
        """Plain JSON types (NaN as None)."""
        def clean(v):
            if isinstance(v, float | np.floating):
                return None if not math.isfinite(v) else float(v)
            if isinstance(v, np.integer):
                return int(v)
            if isinstance(v, pd.Timestamp):
                return v.isoformat()
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list | tuple):
                return [clean(x) for x in v]
            return v

        out = {
            "symbol": self.symbol, "interval": self.interval,
            "start": clean(self.start), "end": clean(self.end), "bars": self.bars,
            "metrics": clean(self.metrics), "counts": clean(self.counts),
            "targets": {k: {"goal": f"{op} {b:g}", "met": self.passed()[k]}
                        for k, (op, b) in TARGETS.items()},
            "regimes": {name: clean(row) for name, row in
                        self.regimes.to_dict("index").items()},
            "hmm": clean(self.hmm),
        }
        if self.events is not None:
            out["events"] = [clean(r) for r in self.events.to_dict("records")]
        return out


def meets(value, op: str, bound: float) -> bool | None:
    if value is None or not np.isfinite(value):
        return None
    return bool(value <= bound) if op == "<=" else bool(value >= bound)


# ------------------------------------------------------------------------------ helpers


def runs(labels: Iterable) -> list[tuple[object, int, int]]:
    """Runs of equal consecutive values: (value, first index, length)."""
    out: list[tuple[object, int, int]] = []
    for i, v in enumerate(labels):
        if out and out[-1][0] == v:
            value, first, n = out[-1]
            out[-1] = (value, first, n + 1)
        else:
            out.append((v, i, 1))
    return out


def on_grid(rows: pd.DataFrame, minutes: int) -> pd.DataFrame:
    """``rows`` reindexed onto the regular grid of the interval (missing bars are NaN)."""
    ts = naive_utc_series(rows["timestamp"])
    frame = rows.assign(timestamp=ts.astype("datetime64[ns]")).sort_values("timestamp")
    if frame["timestamp"].duplicated().any():
        dup = frame["timestamp"][frame["timestamp"].duplicated()].iloc[0]
        raise InputError("evaluation", f"duplicate timestamp {dup}", field="timestamp")
    frame = frame.set_index("timestamp")
    if frame.empty:
        return frame
    step = pd.Timedelta(minutes=minutes)
    if minutes < 10080:
        grid = pd.date_range(frame.index[0], frame.index[-1], freq=step)
        if len(grid) == len(frame) or frame.index.isin(grid).all():
            return frame.reindex(grid)
    return frame  # weekly bars, or times off the grid: taken as they are


def _forward_std(log_ret: np.ndarray, window: int) -> np.ndarray:
    """Std (ddof 0) of the next ``window`` log returns after each bar; NaN where the window
    is not complete."""
    s = pd.Series(log_ret)
    # rolling over [i+1, i+window] = the window ending at i+window, shifted back
    std = s.rolling(window, min_periods=window).std(ddof=0).shift(-window)
    return std.to_numpy()


def _onsets(move: np.ndarray, gap: int) -> np.ndarray:
    """Bars where ``move`` holds and did not hold on any of the ``gap`` bars before."""
    hit = np.nan_to_num(move.astype(float), nan=0.0) > 0
    before = pd.Series(hit.astype(float)).rolling(gap, min_periods=1).max().shift(1)
    return np.flatnonzero(hit & ~(before.fillna(0.0).to_numpy() > 0))


def _catch(onsets: np.ndarray, regime: np.ndarray, catchers, catch: int,
           first_valid: int) -> tuple[int, int]:
    onsets = onsets[onsets >= first_valid]
    caught = 0
    for i in onsets:
        window = regime[i:i + catch + 1]
        if any(isinstance(r, str) and r in catchers for r in window):
            caught += 1
    return caught, len(onsets)


def _quantiles(values: np.ndarray) -> tuple[float, float, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return (math.nan, math.nan, math.nan)
    q = np.quantile(values, [0.5, 0.1, 0.9])
    return float(q[0]), float(q[1]), float(q[2])


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 and np.isfinite(num) and np.isfinite(den) else math.nan


# ------------------------------------------------------------------------------ evaluate


def evaluate(rows: pd.DataFrame, interval: str | None = None,
             events: Iterable[Event] | None = None) -> Evaluation:
    """Metrics of one symbol and interval's ``sentiment_history`` rows.

    Parameters
    ----------
    rows
        Columns ``timestamp`` (bar close), ``close``, ``regime``, ``regime_confidence``,
        ``sentiment_score``; optional ``hmm_regime``, ``symbol``, ``interval``.
    interval
        Bybit kline code; taken from the ``interval`` column when None.
    events
        Named windows to report the regimes shown and the price move over.
    """
    for name in ("timestamp", "close", "regime", "regime_confidence", "sentiment_score"):
        if name not in rows.columns:
            raise InputError("evaluation", "rows lack a column", field=name)
    symbol = None
    if "symbol" in rows.columns and len(rows):
        symbols = rows["symbol"].dropna().unique()
        if len(symbols) > 1:
            raise InputError("evaluation", f"rows of several symbols {list(symbols)}: "
                             "evaluate one at a time", field="symbol")
        symbol = str(symbols[0]) if len(symbols) else None
    if interval is None:
        if "interval" not in rows.columns or rows["interval"].dropna().nunique() != 1:
            raise InputError("evaluation", "pass the interval (rows have none or several)",
                             symbol=symbol, field="interval")
        interval = str(rows["interval"].dropna().iloc[0])
    w = Windows.of(str(interval))
    frame = on_grid(rows, w.minutes)
    n = len(frame)

    close = pd.to_numeric(frame["close"], errors="coerce").to_numpy(dtype=np.float64,
                                                                     na_value=np.nan)
    regime = frame["regime"].astype(object).where(frame["regime"].notna(), None).to_numpy()
    conf = pd.to_numeric(frame["regime_confidence"], errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan)
    score = pd.to_numeric(frame["sentiment_score"], errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan)
    valid = np.array([isinstance(r, str) for r in regime], dtype=bool)
    index = frame.index

    with np.errstate(divide="ignore", invalid="ignore"):
        r24 = np.full(n, np.nan)
        if n > w.ret:
            # rounded so a move of exactly 5 % (95 / 100 - 1 = -0.05000000000000004 in
            # binary) compares as 5 % against the strict thresholds
            r24[w.ret:] = np.round(close[w.ret:] / close[:-w.ret] - 1.0, 12)
        log_ret = np.full(n, np.nan)
        if n > 1:
            log_ret[1:] = np.diff(np.log(close))
        fwd_ret = np.full(n, np.nan)
        if n > w.forward:
            fwd_ret[:-w.forward] = close[w.forward:] / close[:-w.forward] - 1.0
    fwd_vol = _forward_std(log_ret, w.forward)

    metrics: dict[str, float] = {}
    counts: dict[str, int] = {"bars": int(valid.sum())}
    labelled = [(r, i) for i, r in enumerate(regime) if isinstance(r, str)]
    first_valid = labelled[0][1] if labelled else n
    regime_runs = runs(r for r, _ in labelled)
    if len(labelled) > 1:
        days = (index[labelled[-1][1]] - index[labelled[0][1]]) / pd.Timedelta(days=1)
        metrics["transitions_per_month"] = _ratio(len(regime_runs) - 1, days / DAYS_PER_MONTH)
    else:
        metrics["transitions_per_month"] = math.nan
    counts["transitions"] = max(0, len(regime_runs) - 1)
    nv = int(valid.sum())
    metrics["stale_share"] = _ratio(float((valid & ~(conf > STALE_CONFIDENCE)).sum()), nv)

    is_ = {name: np.array([r == name for r in regime], dtype=bool) for name in REGIMES}
    with np.errstate(invalid="ignore"):
        contra = ((is_["trending_up"] & (r24 < -TREND_CONTRADICTION))
                  | (is_["trending_down"] & (r24 > TREND_CONTRADICTION))
                  | ((is_["ranging"] | is_["squeeze"]) & (np.abs(r24) > RANGE_CONTRADICTION)))
        crash_onsets = _onsets(r24 < -SHOCK_MOVE, w.onset_gap)
        pump_onsets = _onsets(r24 > SHOCK_MOVE, w.onset_gap)
    metrics["contradiction_share"] = _ratio(float(contra.sum()), nv)
    counts["contradictions"] = int(contra.sum())
    caught, total = _catch(crash_onsets, regime, CRASH_CATCHERS, w.catch, first_valid)
    metrics["crash_catch_rate"] = _ratio(caught, total)
    counts["crash_onsets"], counts["crashes_caught"] = total, caught
    caught, total = _catch(pump_onsets, regime, PUMP_CATCHERS, w.catch, first_valid)
    metrics["pump_catch_rate"] = _ratio(caught, total)
    counts["pump_onsets"], counts["pumps_caught"] = total, caught

    calm = is_["ranging"] | is_["squeeze"]
    hv_vol = np.nanmean(fwd_vol[is_["high_volatility"]]) if (
        np.isfinite(fwd_vol[is_["high_volatility"]]).any()) else math.nan
    calm_vol = np.nanmean(fwd_vol[calm]) if np.isfinite(fwd_vol[calm]).any() else math.nan
    metrics["fwd_vol_ratio"] = _ratio(hv_vol, calm_vol)
    scored = np.isfinite(score)
    metrics["very_bull_share"] = _ratio(float((score >= VERY_BULLISH).sum()), scored.sum())
    metrics["very_bear_share"] = _ratio(float((score <= -VERY_BULLISH).sum()), scored.sum())
    grid_runs = runs(regime)
    metrics["breakout_max_bars"] = float(max(
        (length for value, _, length in grid_runs if value == "breakout"), default=0))

    table = []
    for name in REGIMES:
        mask = is_[name]
        lengths = [length for value, _, length in regime_runs if value == name]
        median, p10, p90 = _quantiles(fwd_ret[mask])
        vmed, v10, v90 = _quantiles(fwd_vol[mask])
        table.append({
            "regime": name, "bars": int(mask.sum()), "share": _ratio(mask.sum(), nv),
            "runs": len(lengths),
            "mean_duration": float(np.mean(lengths)) if lengths else math.nan,
            "closed_bars": int(np.isfinite(fwd_ret[mask]).sum()),
            "fwd_return_median": median, "fwd_return_p10": p10, "fwd_return_p90": p90,
            "fwd_vol_median": vmed, "fwd_vol_p10": v10, "fwd_vol_p90": v90,
        })
    regimes = pd.DataFrame(table).set_index("regime")

    out = Evaluation(
        symbol=symbol, interval=str(interval),
        start=index[first_valid] if first_valid < n else None,
        end=index[labelled[-1][1]] if labelled else None,
        bars=n, metrics=metrics, counts=counts, regimes=regimes,
        hmm=_hmm_quality(frame, fwd_vol),
    )
    if events is not None:
        out.events = _events(frame, close, regime, list(events))
    return out


def _hmm_quality(frame: pd.DataFrame, fwd_vol: np.ndarray) -> dict[str, Any]:
    """The HMM layer's own figures: label shares and its high-volatility fwd_vol_ratio."""
    if "hmm_regime" not in frame.columns:
        return {}
    labels = frame["hmm_regime"].astype(object).where(frame["hmm_regime"].notna(), None)
    labels = labels.to_numpy()
    known = np.array([isinstance(v, str) for v in labels], dtype=bool)
    if not known.any():
        return {}
    shares = {name: float(np.mean(labels[known] == name))
              for name in ("bull", "bear", "high_volatility", "calm")}
    hv = known & (labels == "high_volatility")
    calm = known & (labels == "calm")
    hv_vol = np.nanmean(fwd_vol[hv]) if np.isfinite(fwd_vol[hv]).any() else math.nan
    calm_vol = np.nanmean(fwd_vol[calm]) if np.isfinite(fwd_vol[calm]).any() else math.nan
    changes = len(runs(labels[known])) - 1
    return {"bars": int(known.sum()), "label_shares": shares,
            "fwd_vol_ratio": _ratio(hv_vol, calm_vol), "label_changes": changes}


def _events(frame: pd.DataFrame, close: np.ndarray, regime: np.ndarray,
            events: list[Event]) -> pd.DataFrame:
    index = frame.index
    out = []
    for ev in events:
        # Bars closing after the start: the bar closing at 00:00 belongs to the day before.
        inside = np.flatnonzero((index > ev.start) & (index <= ev.end))
        if not len(inside):
            out.append({"event": ev.name, "start": ev.start, "end": ev.end, "bars": 0,
                        "move": math.nan, "low": math.nan, "regimes": "",
                        "capitulation": False})
            continue
        first, last = inside[0], inside[-1]
        base = close[first - 1] if first > 0 and np.isfinite(close[first - 1]) else close[first]
        window = close[first:last + 1]
        shown = [(v, length) for v, _, length in runs(regime[first:last + 1])]
        out.append({
            "event": ev.name, "start": ev.start, "end": ev.end, "bars": len(inside),
            "move": float(close[last] / base - 1.0),
            "low": float(np.nanmin(window) / base - 1.0),
            "regimes": ", ".join(f"{v or 'none'} {length}" for v, length in shown),
            "capitulation": bool(any(v == "capitulation" for v in regime[first:last + 1])),
        })
    return pd.DataFrame(out)


def read_events(frame: pd.DataFrame) -> list[Event]:
    """Events from a frame with columns name, start, end (times UTC; a date alone as
    ``end`` covers its whole day)."""
    for col in ("name", "start", "end"):
        if col not in frame.columns:
            raise InputError("events", "an events file needs columns name, start, end",
                             field=col)
    out = []
    for rec in frame.to_dict("records"):
        try:
            start = naive_utc(rec["start"])
            end = naive_utc(rec["end"])
        except (ValueError, TypeError) as exc:
            raise InputError("events", f"bad time in event {rec['name']!r}: {exc}",
                             field="start/end") from None
        if len(str(rec["end"]).strip()) <= 10:  # a date: through its last bar
            end = end + pd.Timedelta(days=1)
        if end < start:
            raise InputError("events", f"event {rec['name']!r} ends before it starts",
                             field="end")
        out.append(Event(str(rec["name"]), start, end))
    return out


def format_report(ev: Evaluation, baseline: Mapping[str, float] | None = None) -> str:
    """The evaluation as plain text tables (what ``sentiment evaluate`` prints)."""
    passed = ev.passed()
    head = (f"{ev.symbol or ''} {ev.interval}  {ev.start:%Y-%m-%d %H:%M} .. "
            f"{ev.end:%Y-%m-%d %H:%M}  ({ev.counts['bars']:,} bars with a regime)"
            if ev.start is not None else f"{ev.symbol or ''} {ev.interval}: no regime rows")
    lines = [head, ""]
    lines.append(f"{'metric':<24}{'value':>10}  {'goal':<9}{'':4}"
                 + (f"{'before':>10}" if baseline else ""))
    for name in METRICS:
        op, bound = TARGETS[name]
        value = ev.metrics.get(name, math.nan)
        mark = {True: "ok", False: "MISS", None: "n/a"}[passed[name]]
        line = f"{name:<24}{format_metric(name, value):>10}  {op} {bound:<6g}{mark:>5}"
        if baseline:
            line += f"{format_metric(name, baseline.get(name, math.nan)):>10}"
        lines.append(line)
    c = ev.counts
    lines.append(f"crash onsets caught {c['crashes_caught']}/{c['crash_onsets']}, pump "
                 f"onsets caught {c['pumps_caught']}/{c['pump_onsets']}, "
                 f"{c['transitions']} transitions")
    lines += ["", "Per regime: share of bars, mean run length, and the next 24 h (closed "
              "windows only): return median [p10, p90], realised vol median [p10, p90]"]
    lines.append(f"{'regime':<16}{'share':>7}{'goal':>9}{'runs':>6}{'mean':>7}"
                 f"{'ret med':>9}{'[p10':>8}{'p90]':>8}{'vol med':>9}{'[p10':>8}{'p90]':>8}")
    for name, row in ev.regimes.iterrows():
        goal = SHARE_TARGETS.get(name)
        g = f"{goal[0]}{goal[1]:g}" if goal else ""
        lines.append(
            f"{name:<16}{format_pct(row['share']):>7}{g:>9}{int(row['runs']):>6}"
            f"{format_num(row['mean_duration'], 1):>7}{format_pct(row['fwd_return_median'], 2):>9}"
            f"{format_pct(row['fwd_return_p10'], 1):>8}{format_pct(row['fwd_return_p90'], 1):>8}"
            f"{format_pct(row['fwd_vol_median'], 2):>9}{format_pct(row['fwd_vol_p10'], 2):>8}"
            f"{format_pct(row['fwd_vol_p90'], 2):>8}")
    if ev.hmm:
        shares = ", ".join(f"{k} {format_pct(v)}" for k, v in ev.hmm["label_shares"].items())
        lines += ["", f"HMM layer: {ev.hmm['bars']:,} bars; labels {shares}; "
                  f"high-volatility fwd_vol_ratio {format_num(ev.hmm['fwd_vol_ratio'], 2)}; "
                  f"{ev.hmm['label_changes']} label changes"]
    if ev.events is not None and len(ev.events):
        lines += ["", "Events: price move (close to close) and low, regimes shown (bars)"]
        for rec in ev.events.to_dict("records"):
            lines.append(f"  {rec['event']:<28}{format_pct(rec['move'], 1):>8}"
                         f"{format_pct(rec['low'], 1):>8}  {rec['regimes']}")
    return "\n".join(lines)


def format_metric(name: str, value: float) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    if name in ("transitions_per_month", "fwd_vol_ratio"):
        return f"{value:.2f}"
    if name == "breakout_max_bars":
        return f"{value:.0f}"
    return f"{value:.4f}" if value < 0.01 else f"{value:.3f}"


def format_pct(value, digits: int = 1) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value * 100:.{digits}f}%"


def format_num(value, digits: int) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"
