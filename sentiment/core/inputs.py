"""Slower inputs joined to bars as of each bar's close, with publication lags.

A value is usable at a bar's close ``t`` only when its timestamp plus its publication lag is
``<= t`` (DESIGN 8.3), and only while it is fresh (at most its maximum age after it became
usable); otherwise the input is missing for that bar and its tier says so.

=================  ==============================  ===============  ============
input              usable from                     maximum age      window
=================  ==============================  ===============  ============
funding rate       settlement time (settled rate)  24 h             -
open interest      ``ts`` + its period             3 periods        4 h and 1 h
long/short ratio   ``ts`` + its period             3 periods        -
Fear & Greed       its day (00:00 UTC)             48 h             -
liquidations       inside the bar [open, close)    -                24 bars min.
order-book OBI     inside the bar [open, close)    -                -
=================  ==============================  ===============  ============

Stream inputs (liquidations, order-book samples) go to the bar whose ``[open, close)`` holds
their own timestamp. A bar has stream data when at least one liquidation or order-book
sample falls in it (the stream samples the book on a fixed cadence, so a running stream
always leaves samples); without any, its liquidation and OBI inputs are missing (NULL), not
zero. Open interest and long/short records are read at exactly the configured period.
A stored liquidation whose notional (size x price, in float64) is not finite or above
``MAX_NOTIONAL`` (a row loaded before the stream checked its pushes) is skipped with a
warning, by the batch and the live code alike, so a backfill still equals the live run.

:func:`asof_inputs` does this for whole arrays (batch); :class:`LiveInputs` keeps the same
rules for one value at a time (live). Times are int64 milliseconds since the epoch; plain
numbers given as times are read as epoch milliseconds too.
"""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right
from collections import deque

import numpy as np
import pandas as pd

from sentiment.core.liquidations import LONG_SIDE, MAX_NOTIONAL
from sentiment.core.timeutil import HOUR_MS, MINUTE_MS, epoch_ms_array
from sentiment.errors import InputError
from sentiment.models import PERIOD_MINUTES

log = logging.getLogger(__name__)

FUNDING_MAX_AGE_MS = 24 * HOUR_MS
FEAR_GREED_MAX_AGE_MS = 48 * HOUR_MS
PERIODS_OF_AGE = 3
OI_WINDOW_MS = 4 * HOUR_MS  # open_interest_delta_pct: change over 4 h (status: "%/4h")
OI_SHORT_WINDOW_MS = HOUR_MS  # capitulation: change over 1 h
LIQUIDATION_MIN_BARS = 24

#: Names of the slower inputs, in the engine's input order.
SLOW_INPUTS: tuple[str, ...] = (
    "funding_rate", "open_interest", "open_interest_delta_pct", "open_interest_change_1h_pct",
    "price_change_oi_window_pct", "long_short_ratio", "fear_greed_index",
    "liquidation_intensity", "liquidation_net", "order_book_imbalance",
)


#: The name :mod:`sentiment.history` imports; :func:`sentiment.core.timeutil.epoch_ms_array`.
to_ms = epoch_ms_array


def period_ms(code: str | None, default_minutes: int = 60) -> int:
    return PERIOD_MINUTES.get(code, default_minutes) * MINUTE_MS if code else (
        default_minutes * MINUTE_MS
    )


def liquidation_window_bars(interval_minutes: int) -> int:
    """Bars in the liquidation average: one hour of bars, at least 24."""
    return max(LIQUIDATION_MIN_BARS, 60 // max(1, interval_minutes))


# --------------------------------------------------------------------------- batch


def _asof(times: np.ndarray, usable: np.ndarray, values: np.ndarray, max_age) -> np.ndarray:
    """Value usable at each time (latest usable <= time, not older than ``max_age``)."""
    out = np.full(len(times), np.nan)
    if len(usable) == 0:
        return out
    idx = np.searchsorted(usable, times, side="right") - 1
    ok = idx >= 0
    safe = np.where(ok, idx, 0)
    age = times - usable[safe]
    ok &= age <= max_age
    out[ok] = values[safe[ok]]
    return out


def _series(frame, time_col, value_col, lag_ms, symbol=None,
            source=None) -> tuple[np.ndarray, np.ndarray] | None:
    """(usable times, values) sorted; NaN values dropped, infinities refused."""
    if frame is None or len(frame) == 0:
        return None
    df = frame
    if symbol is not None and "symbol" in df.columns:
        df = df[df["symbol"] == symbol]
    df = df[[time_col, value_col]]
    values = pd.to_numeric(df[value_col], errors="coerce").to_numpy(dtype=np.float64)
    if np.isinf(values).any():
        raise InputError(source or value_col, "infinite value", symbol=symbol,
                         field=value_col)
    keep = ~np.isnan(values) & df[time_col].notna().to_numpy()
    if not keep.any():
        return None
    usable = epoch_ms_array(df[time_col][keep]) + lag_ms
    values = values[keep]
    order = np.argsort(usable, kind="stable")
    return usable[order], values[order]


def _of_period(frame, column: str, code: str, symbol: str):
    """This symbol's rows at exactly the configured period (all rows when the frame has no
    period column: they are taken to be of that period)."""
    if frame is None or len(frame) == 0:
        return frame
    if "symbol" in frame.columns:
        frame = frame[frame["symbol"] == symbol]
    if column in frame.columns:
        frame = frame[frame[column].astype(str) == code]
    return frame


def _pct_change(now: np.ndarray, before: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (now / before - 1.0) * 100.0
    return np.where(before > 0, out, np.nan)


def asof_inputs(
    symbol: str,
    open_ms: np.ndarray,
    close_ms: np.ndarray,
    close: np.ndarray,
    *,
    funding=None,
    open_interest=None,
    long_short=None,
    fear_greed=None,
    liquidations=None,
    orderbook_imbalance=None,
    open_interest_interval: str = "1h",
    long_short_period: str = "1h",
    interval_minutes: int = 60,
) -> dict[str, np.ndarray]:
    """Every slower input as of each bar's close (arrays of len(close_ms))."""
    n = len(close_ms)
    out = {name: np.full(n, np.nan) for name in SLOW_INPUTS}

    s = _series(funding, "funding_time", "funding_rate", 0, symbol, "funding")
    if s:
        out["funding_rate"] = _asof(close_ms, *s, FUNDING_MAX_AGE_MS)

    oi = _of_period(open_interest, "interval", open_interest_interval, symbol)
    lag = period_ms(open_interest_interval)
    s = _series(oi, "ts", "open_interest", lag, symbol, "open_interest")
    if s:
        max_age = PERIODS_OF_AGE * lag
        now = _asof(close_ms, *s, max_age)
        out["open_interest"] = now
        out["open_interest_delta_pct"] = _pct_change(
            now, _asof(close_ms - OI_WINDOW_MS, *s, max_age)
        )
        out["open_interest_change_1h_pct"] = _pct_change(
            now, _asof(close_ms - OI_SHORT_WINDOW_MS, *s, max_age)
        )
        # The price over the same 4 h: the close of the last bar closed by then.
        before = _asof(close_ms - OI_WINDOW_MS, close_ms, close, np.iinfo(np.int64).max)
        out["price_change_oi_window_pct"] = _pct_change(close, before)

    ls = _of_period(long_short, "period", long_short_period, symbol)
    lag = period_ms(long_short_period)
    s = _series(ls, "ts", "buy_ratio", lag, symbol, "long_short_ratio")
    if s:
        out["long_short_ratio"] = _asof(close_ms, *s, PERIODS_OF_AGE * lag)

    s = _series(fear_greed, "ts", "value", 0, None, "fear_greed")
    if s:
        out["fear_greed_index"] = _asof(close_ms, *s, FEAR_GREED_MAX_AGE_MS)

    liq = _bar_events(symbol, open_ms, close_ms, liquidations, "liquidations")
    if liq is not None:
        liq = _usable_liquidations(symbol, *liq)
    obi = _bar_events(symbol, open_ms, close_ms, orderbook_imbalance, "orderbook_imbalance")
    if liq is not None or obi is not None:
        n_bars = len(close_ms)
        covered = np.zeros(n_bars, dtype=bool)
        long_vol: np.ndarray = np.zeros(n_bars)
        short_vol: np.ndarray = np.zeros(n_bars)
        if liq is not None:
            bar, df, notional = liq
            covered[bar] = True
            is_long = (df["side"].astype(str) == LONG_SIDE).to_numpy()
            long_vol = np.bincount(bar, weights=np.where(is_long, notional, 0.0),
                                   minlength=n_bars)
            short_vol = np.bincount(bar, weights=np.where(is_long, 0.0, notional),
                                    minlength=n_bars)
        if obi is not None:
            bar, df = obi
            covered[bar] = True
            values = _finite(df, "obi", symbol)
            counts = np.bincount(bar, minlength=n_bars)
            sums = np.bincount(bar, weights=values, minlength=n_bars)
            has = counts > 0
            out["order_book_imbalance"][has] = sums[has] / counts[has]
        window = liquidation_window_bars(interval_minutes)
        intensity, net = out["liquidation_intensity"], out["liquidation_net"]
        totals: deque[float] = deque(maxlen=window)
        for i in range(n_bars):
            total = long_vol[i] + short_vol[i] if covered[i] else float("nan")
            totals.append(total)
            if covered[i]:
                intensity[i], net[i] = liquidation_reading(
                    long_vol[i], short_vol[i], totals)
    return out


def _finite(df, column, symbol) -> np.ndarray:
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise InputError("stream", "missing or non-finite value", symbol=symbol, field=column)
    return values


def usable_notional(notional: float) -> bool:
    """Whether a liquidation's size x price can count: finite and at most MAX_NOTIONAL (the
    one rule of the batch and the live code)."""
    return abs(notional) <= MAX_NOTIONAL  # False for NaN and infinities (arrays too)


def _usable_liquidations(symbol, bar, df):
    """(bar index, rows, notional) of the liquidations that can count; the others are
    skipped with a warning. None if none is left."""
    size = pd.to_numeric(df["size"], errors="coerce").to_numpy(dtype=np.float64)
    price = pd.to_numeric(df["price"], errors="coerce").to_numpy(dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        notional = size * price
        keep = usable_notional(notional)
    if not keep.all():
        first = df[~keep].iloc[0]
        log.warning("liquidations %s: %d stored row(s) skipped, size x price not finite or "
                    "above %g (the first at %s: size %r, price %r)", symbol,
                    int((~keep).sum()), MAX_NOTIONAL, first["ts"], first["size"],
                    first["price"])
        if not keep.any():
            return None
    return bar[keep], df[keep], notional[keep]


def _bar_events(symbol, open_ms, close_ms, frame, source):
    """(bar index, rows) of the events that fall inside a bar's [open, close)."""
    if frame is None or len(frame) == 0 or len(close_ms) == 0:
        return None
    df = frame[frame["symbol"] == symbol] if "symbol" in frame.columns else frame
    if df.empty:
        return None
    ts = epoch_ms_array(df["ts"])
    idx = np.searchsorted(open_ms, ts, side="right") - 1
    inside = (idx >= 0) & (ts < close_ms[np.clip(idx, 0, None)])
    if not inside.any():
        return None
    return idx[inside], df[inside]


def liquidation_reading(long_vol: float, short_vol: float, totals) -> tuple[float, float]:
    """(intensity, net pressure) of a bar with stream data; ``totals`` are the last window's
    bar totals, this bar last, NaN where a bar had no stream data."""
    total = long_vol + short_vol
    s = 0.0
    n = 0
    for v in totals:
        if v == v:
            s += v
            n += 1
    avg = s / n
    intensity = total / avg if avg > 0 else 0.0
    net = (short_vol - long_vol) / total if total > 0 else 0.0
    return intensity, net


# --------------------------------------------------------------------------- live


class _Series:
    """Usable times (sorted) and values, with the same as-of rule as :func:`_asof`."""

    def __init__(self, max_age: int, keep_ms: int):
        self.max_age = max_age
        self.keep_ms = keep_ms
        self.times: list[int] = []
        self.values: list[float] = []

    @property
    def items(self) -> list[tuple[int, float]]:
        return list(zip(self.times, self.values, strict=True))

    def load(self, items) -> None:
        self.times = [int(t) for t, _ in items]
        self.values = [float(v) for _, v in items]

    def add(self, usable: int, value: float) -> None:
        if value != value:
            return
        i = bisect_right(self.times, usable)
        if i and self.times[i - 1] == usable:
            self.values[i - 1] = value
        else:
            self.times.insert(i, usable)
            self.values.insert(i, value)

    def at(self, t: int) -> float:
        i = bisect_right(self.times, t) - 1
        if i < 0 or t - self.times[i] > self.max_age:
            return float("nan")
        return self.values[i]

    def trim(self, now: int) -> None:
        """Forget what no later bar can use (keeps the value as of ``now - keep``)."""
        if len(self.times) < 64:
            return
        cut = bisect_right(self.times, now - self.keep_ms) - 1
        if cut > 0:
            del self.times[:cut]
            del self.values[:cut]


class LiveInputs:
    """The slower inputs of one symbol, fed as they arrive, read as of each bar close.

    Stream events are held with their own timestamps until the bar that contains them
    closes; an event for a bar already closed is late and dropped (a backfill counts it).
    """

    def __init__(self, interval_minutes: int, open_interest_interval: str = "1h",
                 long_short_period: str = "1h"):
        self.interval_ms = interval_minutes * MINUTE_MS
        self.oi_lag = period_ms(open_interest_interval)
        self.ls_lag = period_ms(long_short_period)
        keep = OI_WINDOW_MS + 2 * self.interval_ms
        self.funding = _Series(FUNDING_MAX_AGE_MS, keep)
        self.open_interest = _Series(PERIODS_OF_AGE * self.oi_lag, keep)
        self.long_short = _Series(PERIODS_OF_AGE * self.ls_lag, keep)
        self.fear_greed = _Series(FEAR_GREED_MAX_AGE_MS, keep)
        self.closes = _Series(np.iinfo(np.int64).max, keep)
        self.liq_totals: deque[float] = deque(maxlen=liquidation_window_bars(interval_minutes))
        # Pending stream events: (ts, kind, a, b); kind 0 long liq, 1 short liq, 2 OBI.
        self.events: list[tuple[int, int, float, float]] = []
        self._unsorted = False
        self.last_close = -(2**62)
        self.late_events = 0

    def _event(self, ts: int, kind: int, a: float, b: float) -> None:
        if ts < self.last_close:
            self.late_events += 1
            return
        if self.events and ts < self.events[-1][0]:
            self._unsorted = True
        self.events.append((ts, kind, a, b))

    def add_liquidation(self, ts: int, side: str, size: float, price: float) -> None:
        notional = float(size) * float(price)
        if not usable_notional(notional):
            log.warning("liquidations: a row at %s skipped, size x price not finite or above "
                        "%g (size %r, price %r)", ts, MAX_NOTIONAL, size, price)
            return
        long = side == LONG_SIDE
        self._event(ts, 0 if long else 1, notional, 0.0)

    def add_obi(self, ts: int, obi: float) -> None:
        self._event(ts, 2, obi, 0.0)

    def _stream(self, open_ms: int, close_ms: int) -> tuple[float, float, float]:
        """(intensity, net, OBI) of the bar [open, close) from the pending events (kept in
        time order, so a bar takes only its own: a restore may feed weeks of them)."""
        if self._unsorted:
            self.events.sort(key=lambda e: e[0])
            self._unsorted = False
        cut = bisect_left(self.events, close_ms, key=lambda e: e[0])
        if cut == 0:
            self.liq_totals.append(float("nan"))
            return float("nan"), float("nan"), float("nan")
        mine = self.events[:cut]
        del self.events[:cut]
        inside = [e for e in mine if e[0] >= open_ms]  # earlier ones fell in a gap
        long_vol = short_vol = obi_sum = 0.0
        obi_n = 0
        for _, kind, a, _b in inside:
            if kind == 0:
                long_vol += a
            elif kind == 1:
                short_vol += a
            else:
                obi_sum += a
                obi_n += 1
        if not inside:
            self.liq_totals.append(float("nan"))
            return float("nan"), float("nan"), float("nan")
        self.liq_totals.append(long_vol + short_vol)
        intensity, net = liquidation_reading(long_vol, short_vol, self.liq_totals)
        return intensity, net, obi_sum / obi_n if obi_n else float("nan")

    def at_close(self, open_ms: int, close_ms: int, close: float) -> tuple[float, ...]:
        """The slower inputs for the bar [open_ms, close_ms)."""
        self.closes.add(close_ms, close)
        oi = self.open_interest.at(close_ms)
        oi_4h = self.open_interest.at(close_ms - OI_WINDOW_MS)
        oi_1h = self.open_interest.at(close_ms - OI_SHORT_WINDOW_MS)
        price_before = self.closes.at(close_ms - OI_WINDOW_MS)
        if self.events:
            intensity, net, obi = self._stream(open_ms, close_ms)
        else:
            self.liq_totals.append(float("nan"))
            intensity = net = obi = float("nan")
        self.last_close = close_ms
        values = (
            self.funding.at(close_ms),
            oi,
            _pct(oi, oi_4h) if oi == oi else float("nan"),
            _pct(oi, oi_1h) if oi == oi else float("nan"),
            _pct(close, price_before),
            self.long_short.at(close_ms),
            self.fear_greed.at(close_ms),
            intensity,
            net,
            obi,
        )
        for series in (self.funding, self.open_interest, self.long_short, self.fear_greed,
                       self.closes):
            series.trim(close_ms)
        return values

    def state(self) -> dict:
        return {
            name: getattr(self, name).items
            for name in ("funding", "open_interest", "long_short", "fear_greed", "closes")
        } | {
            "liq_totals": [None if v != v else v for v in self.liq_totals],
            "events": [list(e) for e in self.events],
            "last_close": self.last_close,
            "late_events": self.late_events,
        }

    def load_state(self, state: dict) -> None:
        for name in ("funding", "open_interest", "long_short", "fear_greed", "closes"):
            getattr(self, name).load(state[name])
        self.liq_totals.extend(float("nan") if v is None else v for v in state["liq_totals"])
        self.events = sorted(((int(t), int(k), float(a), float(b))
                              for t, k, a, b in state["events"]), key=lambda e: e[0])
        self._unsorted = False
        self.last_close = int(state["last_close"])
        self.late_events = int(state["late_events"])


def _pct(now: float, before: float) -> float:
    if before > 0 and now == now:
        return (now / before - 1.0) * 100.0
    return float("nan")
