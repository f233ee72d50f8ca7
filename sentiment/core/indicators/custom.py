"""Indicators written here (no maintained library has them with a streaming form).

Each comes twice, and the two agree bit for bit: a vectorised function over whole arrays
(the batch path) and a small class whose ``update`` is O(1) per bar (the live path). Both
do the same floating-point operations in the same order; tests hold them to it after every
bar. Warm-up values are NaN.

- ATR percentile rank: mid-rank of the current ATR among the previous ``lookback`` values,
  ``(count below + count equal / 2) / lookback``, in [0, 1]. Without ties it is
  TradingView's ``ta.percentrank``; with ties (flat prices: every ATR is 0) it reads 0.5,
  not "the most volatile ever".
- Keltner channel: ``basis +- mult * ATR`` with basis EMA 20 and ATR 20 (DESIGN 8.17).
- Squeeze (Carter's TTM Squeeze, states as in LazyBear's TradingView script): ``on`` when
  both Bollinger bands are inside the Keltner channel, ``off`` when both are outside,
  ``none`` otherwise; ``fired`` on the first bar that is no longer ``on``.
- SuperTrend (TradingView's ``ta.supertrend``): ratcheting bands at ``hl2 +- factor * ATR``;
  direction +1 (bullish) / -1 (bearish); ``flip`` on the bar the direction changes.
- Chaikin Money Flow: ``sum(MFV, n) / sum(volume, n)``, MFV = volume *
  ((close - low) - (high - close)) / (high - low); a bar with high == low has MFV 0 and a
  window without volume has CMF 0.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import deque

import numpy as np
from numba import njit
from numpy.lib.stride_tricks import sliding_window_view

from sentiment.core.layout import NO_MOVEMENT

SQUEEZE_ON, SQUEEZE_NONE, SQUEEZE_OFF = 1.0, 0.0, -1.0

# ------------------------------------------------------------------ ATR percentile rank


def atr_percent_rank(atr: np.ndarray, lookback: int) -> np.ndarray:
    """Mid-rank of each value among the previous ``lookback`` values, in [0, 1]."""
    atr = np.asarray(atr, dtype=np.float64)
    out = np.full(len(atr), np.nan)
    if len(atr) <= lookback:
        return out
    windows = sliding_window_view(atr, lookback + 1)
    previous, current = windows[:, :-1], windows[:, -1:]
    counts = (previous < current).sum(axis=1) + 0.5 * (previous == current).sum(axis=1)
    valid = np.isfinite(windows).all(axis=1)
    out[lookback:] = np.where(valid, counts / lookback, np.nan)
    return out


class AtrPercentRank:
    """Incremental :func:`atr_percent_rank`: a window plus the same values kept sorted."""

    def __init__(self, lookback: int):
        self.lookback = lookback
        self.window: deque[float] = deque()
        self.sorted: list[float] = []

    def update(self, value: float) -> float:
        if value != value:  # NaN: still warming up, as in the batch form
            return float("nan")
        out = float("nan")
        if len(self.window) == self.lookback:
            below = bisect_left(self.sorted, value)
            equal = bisect_right(self.sorted, value) - below
            out = (below + 0.5 * equal) / self.lookback
            oldest = self.window.popleft()
            del self.sorted[bisect_right(self.sorted, oldest) - 1]
        self.window.append(value)
        insort(self.sorted, value)
        return out

    def state(self) -> dict:
        return {"lookback": self.lookback, "window": list(self.window)}

    @classmethod
    def from_state(cls, state: dict) -> AtrPercentRank:
        obj = cls(state["lookback"])
        obj.window = deque(state["window"])
        obj.sorted = sorted(obj.window)
        return obj


def settled_atr(atr, close):
    """ATR with "no movement" (at or below ``NO_MOVEMENT`` x close) read as exactly 0, so
    a flat stretch ranks as ties whatever tiny remainder Wilder smoothing left."""
    return np.where(atr <= NO_MOVEMENT * close, 0.0, atr)


def settled_atr_value(atr: float, close: float) -> float:
    return 0.0 if atr <= NO_MOVEMENT * close else atr


# ------------------------------------------------------------------ Keltner and squeeze


def keltner(basis, atr, mult: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower Keltner band (works on arrays and on floats alike)."""
    width = mult * atr
    return basis + width, basis - width


def squeeze(bb_upper, bb_lower, kc_upper, kc_lower) -> tuple[np.ndarray, np.ndarray]:
    """Squeeze state (1 on, -1 off, 0 none, NaN in warm-up) and ``fired`` (1.0 or 0.0)."""
    on = (bb_lower > kc_lower) & (bb_upper < kc_upper)
    off = (bb_lower < kc_lower) & (bb_upper > kc_upper)
    state = np.where(on, SQUEEZE_ON, np.where(off, SQUEEZE_OFF, SQUEEZE_NONE))
    warm = np.isfinite(bb_upper) & np.isfinite(bb_lower) & np.isfinite(kc_upper)
    warm &= np.isfinite(kc_lower)
    state = np.where(warm, state, np.nan)
    fired = np.zeros(len(state))
    fired[1:] = (state[:-1] == SQUEEZE_ON) & (state[1:] != SQUEEZE_ON)
    return state, fired


class Squeeze:
    """Incremental :func:`squeeze` (Keltner bands are computed by :func:`keltner`)."""

    def __init__(self) -> None:
        self.previous = float("nan")

    def update(self, bb_upper, bb_lower, kc_upper, kc_lower) -> tuple[float, float]:
        if bb_upper != bb_upper or bb_lower != bb_lower or kc_upper != kc_upper or (
            kc_lower != kc_lower
        ):
            state = float("nan")
        elif bb_lower > kc_lower and bb_upper < kc_upper:
            state = SQUEEZE_ON
        elif bb_lower < kc_lower and bb_upper > kc_upper:
            state = SQUEEZE_OFF
        else:
            state = SQUEEZE_NONE
        fired = 1.0 if self.previous == SQUEEZE_ON and state != SQUEEZE_ON else 0.0
        self.previous = state
        return state, fired

    def state(self) -> dict:
        return {"previous": _nan_to_none(self.previous)}

    @classmethod
    def from_state(cls, state: dict) -> Squeeze:
        obj = cls()
        obj.previous = _none_to_nan(state["previous"])
        return obj


# ------------------------------------------------------------------ SuperTrend

# SuperTrend state: upper band, lower band, previous close, direction, line.
_ST_UPPER, _ST_LOWER, _ST_CLOSE, _ST_DIR, _ST_LINE = range(5)
SUPERTREND_STATE_SIZE = 5


@njit(cache=True)
def supertrend_step(st, high, low, close, atr, factor):
    """One bar of TradingView's ``ta.supertrend``; returns (line, direction, flip).

    ``st`` starts as NaN everywhere. Direction is +1 bullish / -1 bearish (TradingView
    reports the opposite sign); the first bar with an ATR is bearish, as in TradingView.
    """
    if atr != atr:
        return np.nan, np.nan, 0.0
    mid = (high + low) / 2.0
    upper = mid + factor * atr
    lower = mid - factor * atr
    prev_dir = st[_ST_DIR]
    if prev_dir != prev_dir:
        direction = -1.0
    else:
        prev_upper = st[_ST_UPPER]
        prev_lower = st[_ST_LOWER]
        prev_close = st[_ST_CLOSE]
        if not (lower > prev_lower or prev_close < prev_lower):
            lower = prev_lower
        if not (upper < prev_upper or prev_close > prev_upper):
            upper = prev_upper
        if prev_dir < 0:
            direction = 1.0 if close > upper else -1.0
        else:
            direction = -1.0 if close < lower else 1.0
    line = lower if direction > 0 else upper
    flip = 1.0 if prev_dir == prev_dir and direction != prev_dir else 0.0
    st[_ST_UPPER] = upper
    st[_ST_LOWER] = lower
    st[_ST_CLOSE] = close
    st[_ST_DIR] = direction
    st[_ST_LINE] = line
    return line, direction, flip


@njit(cache=True, nogil=True)
def _supertrend_loop(high, low, close, atr, factor):
    n = len(close)
    line = np.full(n, np.nan)
    direction = np.full(n, np.nan)
    flip = np.zeros(n)
    st = np.full(SUPERTREND_STATE_SIZE, np.nan)
    for i in range(n):
        line[i], direction[i], flip[i] = supertrend_step(
            st, high[i], low[i], close[i], atr[i], factor
        )
    return line, direction, flip


def supertrend(high, low, close, atr, factor: float = 3.0):
    """SuperTrend line, direction and flip over whole arrays (``atr``: TA-Lib ATR 10).

    The recursion cannot be vectorised; this runs the streaming step in a compiled loop.
    """
    h, lo, c, a = (np.ascontiguousarray(x, dtype=np.float64) for x in (high, low, close, atr))
    return _supertrend_loop(h, lo, c, a, float(factor))


class SuperTrend:
    """Incremental :func:`supertrend`."""

    def __init__(self, factor: float = 3.0):
        self.factor = float(factor)
        self.st = np.full(SUPERTREND_STATE_SIZE, np.nan)

    def update(self, high, low, close, atr) -> tuple[float, float, float]:
        return supertrend_step(self.st, high, low, close, atr, self.factor)

    def state(self) -> dict:
        return {"factor": self.factor, "st": [_nan_to_none(x) for x in self.st]}

    @classmethod
    def from_state(cls, state: dict) -> SuperTrend:
        obj = cls(state["factor"])
        obj.st = np.array([_none_to_nan(x) for x in state["st"]], dtype=np.float64)
        return obj


# ------------------------------------------------------------------ Chaikin Money Flow


def money_flow_volume(high, low, close, volume):
    """Chaikin's money-flow volume per bar (0 where high == low)."""
    rng = high - low
    with np.errstate(invalid="ignore", divide="ignore"):
        mult = ((close - low) - (high - close)) / rng
    return np.where(rng > 0, mult, 0.0) * volume


def cmf(high, low, close, volume, period: int = 20) -> np.ndarray:
    """Chaikin Money Flow over ``period`` bars; sums run oldest to newest."""
    high, low, close, volume = (np.asarray(a, dtype=np.float64) for a in (high, low, close, volume))
    mfv = money_flow_volume(high, low, close, volume)
    out = np.full(len(close), np.nan)
    if len(close) < period:
        return out
    wm = sliding_window_view(mfv, period)
    wv = sliding_window_view(volume, period)
    smfv = 0.0 + wm[:, 0]
    svol = 0.0 + wv[:, 0]
    for k in range(1, period):
        smfv += wm[:, k]
        svol += wv[:, k]
    with np.errstate(invalid="ignore", divide="ignore"):
        out[period - 1 :] = np.where(svol > 0, smfv / svol, 0.0)
    return out


class ChaikinMoneyFlow:
    """Incremental :func:`cmf`: the last ``period`` MFVs and volumes, summed in order."""

    def __init__(self, period: int = 20):
        self.period = period
        self.mfv: deque[float] = deque(maxlen=period)
        self.volume: deque[float] = deque(maxlen=period)

    def update(self, high, low, close, volume) -> float:
        rng = high - low
        mult = ((close - low) - (high - close)) / rng if rng > 0 else 0.0
        self.mfv.append(mult * volume)
        self.volume.append(volume)
        if len(self.volume) < self.period:
            return float("nan")
        smfv = 0.0
        for x in self.mfv:
            smfv += x
        svol = 0.0
        for x in self.volume:
            svol += x
        return smfv / svol if svol > 0 else 0.0

    def state(self) -> dict:
        return {"period": self.period, "mfv": list(self.mfv), "volume": list(self.volume)}

    @classmethod
    def from_state(cls, state: dict) -> ChaikinMoneyFlow:
        obj = cls(state["period"])
        obj.mfv.extend(state["mfv"])
        obj.volume.extend(state["volume"])
        return obj


def _nan_to_none(x: float) -> float | None:
    return None if x != x else float(x)


def _none_to_nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)
