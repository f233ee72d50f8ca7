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

:func:`asof_inputs` does this for whole arrays (batch); :class:`LiveInputs` keeps the same
rules for one value at a time (live). Times are int64 milliseconds since the epoch.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque

import numpy as np
import pandas as pd

from sentiment.config import PERIOD_MINUTES

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
FUNDING_MAX_AGE_MS = 24 * HOUR_MS
FEAR_GREED_MAX_AGE_MS = 48 * HOUR_MS
PERIODS_OF_AGE = 3
OI_WINDOW_MS = 4 * HOUR_MS  # open_interest_delta_pct: change over 4 h (status: "%/4h")
OI_SHORT_WINDOW_MS = HOUR_MS  # capitulation: change over 1 h
LIQUIDATION_MIN_BARS = 24
#: Bybit ``allLiquidation`` side: "Buy" means a long position was liquidated.
LONG_LIQUIDATION_SIDE = "Buy"

#: Names of the slower inputs, in the engine's input order.
SLOW_INPUTS: tuple[str, ...] = (
    "funding_rate", "open_interest", "open_interest_delta_pct", "open_interest_change_1h_pct",
    "price_change_oi_window_pct", "long_short_ratio", "fear_greed_index",
    "liquidation_intensity", "liquidation_net", "order_book_imbalance",
)


def to_ms(values) -> np.ndarray:
    """Timestamps (datetime64 of any unit, pandas, naive = UTC) as int64 epoch milliseconds."""
    ts = pd.to_datetime(pd.Series(values), utc=True).dt.tz_convert(None)
    return ts.to_numpy().astype("datetime64[ms]").astype(np.int64)


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


def _series(frame, time_col, value_col, lag_ms, symbol=None):
    """(usable times, values, lag-independent max age) sorted, NaN values dropped."""
    if frame is None or len(frame) == 0:
        return None
    df = frame
    if symbol is not None and "symbol" in df.columns:
        df = df[df["symbol"] == symbol]
    df = df[[time_col, value_col]].dropna()
    if df.empty:
        return None
    usable = to_ms(df[time_col]) + lag_ms
    values = df[value_col].to_numpy(dtype=np.float64)
    order = np.argsort(usable, kind="stable")
    return usable[order], values[order]


def _pick_period(frame, column: str, preferred: str) -> tuple[pd.DataFrame | None, str]:
    """Rows of one period: the configured one if present, else the shortest there is."""
    if frame is None or len(frame) == 0 or column not in frame.columns:
        return frame, preferred
    codes = set(frame[column].dropna().astype(str))
    if preferred in codes:
        code = preferred
    else:
        code = min(codes, key=lambda c: PERIOD_MINUTES.get(c, 10**9))
    return frame[frame[column].astype(str) == code], code


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

    s = _series(funding, "funding_time", "funding_rate", 0, symbol)
    if s:
        out["funding_rate"] = _asof(close_ms, *s, FUNDING_MAX_AGE_MS)

    oi, code = _pick_period(open_interest, "interval", open_interest_interval)
    lag = period_ms(code)
    s = _series(oi, "ts", "open_interest", lag, symbol)
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

    ls, code = _pick_period(long_short, "period", long_short_period)
    lag = period_ms(code)
    s = _series(ls, "ts", "buy_ratio", lag, symbol)
    if s:
        out["long_short_ratio"] = _asof(close_ms, *s, PERIODS_OF_AGE * lag)

    s = _series(fear_greed, "ts", "value", 0)
    if s:
        out["fear_greed_index"] = _asof(close_ms, *s, FEAR_GREED_MAX_AGE_MS)

    if liquidations is not None and len(liquidations):
        intensity, net = _liquidation_bars(symbol, open_ms, close_ms, liquidations,
                                           liquidation_window_bars(interval_minutes))
        out["liquidation_intensity"], out["liquidation_net"] = intensity, net

    if orderbook_imbalance is not None and len(orderbook_imbalance):
        out["order_book_imbalance"] = _obi_bars(symbol, open_ms, close_ms, orderbook_imbalance)
    return out


def _bucket(open_ms, close_ms, ts_ms):
    """Index of the bar whose [open, close) holds each time, -1 if none."""
    idx = np.searchsorted(open_ms, ts_ms, side="right") - 1
    ok = (idx >= 0) & (ts_ms < close_ms[np.clip(idx, 0, None)])
    return np.where(ok, idx, -1)


def _liquidation_bars(symbol, open_ms, close_ms, frame, window):
    df = frame[frame["symbol"] == symbol] if "symbol" in frame.columns else frame
    n = len(close_ms)
    intensity = np.full(n, np.nan)
    net = np.full(n, np.nan)
    if df.empty or n == 0:
        return intensity, net
    ts = to_ms(df["ts"])
    notional = df["size"].to_numpy(np.float64) * df["price"].to_numpy(np.float64)
    is_long = (df["side"].astype(str) == LONG_LIQUIDATION_SIDE).to_numpy()
    bar = _bucket(open_ms, close_ms, ts)
    keep = bar >= 0
    long_vol = np.bincount(bar[keep], weights=np.where(is_long, notional, 0.0)[keep],
                           minlength=n)
    short_vol = np.bincount(bar[keep], weights=np.where(is_long, 0.0, notional)[keep],
                            minlength=n)
    # Bars between the first and the last event count as observed (zero when quiet).
    first = np.searchsorted(close_ms, ts.min(), side="right")
    last = np.searchsorted(open_ms, ts.max(), side="right")
    for i in range(first, last):
        total = long_vol[i] + short_vol[i]
        lo = max(first, i - window + 1)
        avg = liquidation_average(long_vol[lo : i + 1] + short_vol[lo : i + 1])
        intensity[i] = total / avg if avg > 0 else 0.0
        net[i] = (short_vol[i] - long_vol[i]) / total if total > 0 else 0.0
    return intensity, net


def liquidation_average(totals) -> float:
    s = 0.0
    for v in totals:
        s += float(v)
    return s / len(totals)


def _obi_bars(symbol, open_ms, close_ms, frame):
    df = frame[frame["symbol"] == symbol] if "symbol" in frame.columns else frame
    n = len(close_ms)
    out = np.full(n, np.nan)
    if df.empty or n == 0:
        return out
    bar = _bucket(open_ms, close_ms, to_ms(df["ts"]))
    keep = bar >= 0
    values = df["obi"].to_numpy(np.float64)[keep]
    counts = np.bincount(bar[keep], minlength=n)
    sums = np.bincount(bar[keep], weights=values, minlength=n)
    has = counts > 0
    out[has] = sums[has] / counts[has]
    return out


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
    """The slower inputs of one symbol, fed as they arrive, read as of each bar close."""

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
        self.window = liquidation_window_bars(interval_minutes)
        self.liq_totals: deque[float] = deque(maxlen=self.window)
        self.liq_long = 0.0
        self.liq_short = 0.0
        self.liq_seen = False
        self.obi_sum = 0.0
        self.obi_count = 0

    def add_liquidation(self, side: str, size: float, price: float) -> None:
        notional = size * price
        if side == LONG_LIQUIDATION_SIDE:
            self.liq_long += notional
        else:
            self.liq_short += notional
        self.liq_seen = True

    def add_obi(self, obi: float) -> None:
        self.obi_sum += obi
        self.obi_count += 1

    def at_close(self, close_ms: int, close: float) -> tuple[float, ...]:
        """The slower inputs for the bar closing at ``close_ms``; starts the next bar."""
        self.closes.add(close_ms, close)
        oi = self.open_interest.at(close_ms)
        oi_4h = self.open_interest.at(close_ms - OI_WINDOW_MS)
        oi_1h = self.open_interest.at(close_ms - OI_SHORT_WINDOW_MS)
        price_before = self.closes.at(close_ms - OI_WINDOW_MS)
        intensity = net = float("nan")
        if self.liq_seen:
            total = self.liq_long + self.liq_short
            self.liq_totals.append(total)
            avg = liquidation_average(self.liq_totals)
            intensity = total / avg if avg > 0 else 0.0
            net = (self.liq_short - self.liq_long) / total if total > 0 else 0.0
        obi = self.obi_sum / self.obi_count if self.obi_count else float("nan")
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
        self.liq_long = self.liq_short = 0.0
        self.obi_sum = 0.0
        self.obi_count = 0
        for series in (self.funding, self.open_interest, self.long_short, self.fear_greed,
                       self.closes):
            series.trim(close_ms)
        return values

    def state(self) -> dict:
        return {
            name: getattr(self, name).items
            for name in ("funding", "open_interest", "long_short", "fear_greed", "closes")
        } | {
            "liq_totals": list(self.liq_totals), "liq_long": self.liq_long,
            "liq_short": self.liq_short, "liq_seen": self.liq_seen,
            "obi_sum": self.obi_sum, "obi_count": self.obi_count,
        }

    def load_state(self, state: dict) -> None:
        for name in ("funding", "open_interest", "long_short", "fear_greed", "closes"):
            getattr(self, name).load(state[name])
        self.liq_totals.extend(state["liq_totals"])
        self.liq_long, self.liq_short = state["liq_long"], state["liq_short"]
        self.liq_seen = state["liq_seen"]
        self.obi_sum, self.obi_count = state["obi_sum"], state["obi_count"]


def _pct(now: float, before: float) -> float:
    if before > 0 and now == now:
        return (now / before - 1.0) * 100.0
    return float("nan")
