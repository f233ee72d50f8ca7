"""Rule-based regime classifier and the hysteresis state machine.

Classifier (brief 3.2, first match wins; thresholds from ``sentiment.yaml``):

1. capitulation - open interest fell more than 5 % over the last hour and, with stream
   data, the bar's liquidation intensity is above 3; without stream data the proxy is a
   price spike: a down close with a true range above 3 x ATR (DESIGN 8.5)
2. squeeze - Bollinger bands inside the Keltner channel
3. breakout - the squeeze fired on this bar with volume above 2 x its 20-bar average
4. high_volatility - ATR percentile rank above ``atr_high_vol_percentile`` / 100
5. trending_up - ADX above ``adx_trend_threshold`` and structure trend direction 1
6. trending_down - the same with direction -1
7. ranging - otherwise

Confidence of a regime on a bar is the share of its key signals (brief 3.1) that hold; the
table is in ``docs/scores.md``. The raw regime is confirmed by the state machine when its
confidence reaches ``confidence_threshold`` on ``confirmation_bars`` consecutive bars
(event regimes, breakout and capitulation, at once) and at least ``cooldown_bars`` bars
passed since the last change. The first regime after warm-up is assigned directly.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sentiment.layout import (
    P_ADX_RANGE,
    P_ADX_TREND,
    P_ATR_HV,
    P_BREAKOUT_VOLUME,
    P_CAPITULATION_OI,
    P_CONF_THRESHOLD,
    P_CONFIRM,
    P_COOLDOWN,
    P_SPIKE,
    P_USE_FNG,
    P_USE_LIQ,
    X_ADX,
    X_ATR,
    X_ATR_RANK,
    X_BB_LO,
    X_BB_MID,
    X_BB_UP,
    X_CLOSE,
    X_FNG,
    X_HIGH,
    X_LIQ_INTENSITY,
    X_LOW,
    X_MACD_HIST,
    X_OI_1H,
    X_RSI,
    X_SQUEEZE,
    X_SQUEEZE_FIRED,
    X_ST_DIR,
    X_VOL_SMA,
    X_VOLUME,
)
from sentiment.models import REGIME_CODE
from sentiment.scores import moving

TRENDING_UP = REGIME_CODE["trending_up"]
TRENDING_DOWN = REGIME_CODE["trending_down"]
RANGING = REGIME_CODE["ranging"]
HIGH_VOLATILITY = REGIME_CODE["high_volatility"]
SQUEEZE = REGIME_CODE["squeeze"]
BREAKOUT = REGIME_CODE["breakout"]
CAPITULATION = REGIME_CODE["capitulation"]

# Regime machine state: current regime, bars in it, pending regime, its bars, cooldown,
# and the previous bar's Bollinger bandwidth, ATR and close (for "expanding", "declining",
# "down close").
(R_CURRENT, R_DURATION, R_PENDING, R_PENDING_BARS, R_COOLDOWN,
 R_PREV_BW, R_PREV_ATR, R_PREV_CLOSE) = range(8)
STATE_SIZE = 8


def new_state() -> np.ndarray:
    s = np.full(STATE_SIZE, np.nan)
    s[R_DURATION] = 0.0
    s[R_PENDING_BARS] = 0.0
    s[R_COOLDOWN] = 0.0
    return s


@njit(cache=True)
def _bandwidth(x):
    mid = x[X_BB_MID]
    return (x[X_BB_UP] - x[X_BB_LO]) / mid if mid > 0.0 else 0.0


@njit(cache=True)
def _settled_atr(x):
    return x[X_ATR] if moving(x) else 0.0


@njit(cache=True)
def _flag(cond):
    return 1.0 if cond else 0.0


@njit(cache=True)
def _price_spike(x, prev_close, p):
    """Without liquidation data: a down close with a true range above 3 x ATR."""
    if prev_close != prev_close:
        return False
    tr = max(x[X_HIGH] - x[X_LOW], abs(x[X_HIGH] - prev_close), abs(x[X_LOW] - prev_close))
    return x[X_CLOSE] < prev_close and tr > p[P_SPIKE] * x[X_ATR]


@njit(cache=True)
def evidence(regime, x, p, s, direction, bos, choch):
    """Share of the regime's key signals that hold on this bar, in [0, 1].

    Without price movement (ATR ~ 0) the smoothed oscillators only hold their last values,
    so they read neutral: ADX 0, RSI 50, MACD histogram 0, no SuperTrend direction.
    """
    mv = moving(x)
    adx = x[X_ADX] if mv else 0.0
    if regime == TRENDING_UP or regime == TRENDING_DOWN:
        d = 1.0 if regime == TRENDING_UP else -1.0
        st = x[X_ST_DIR] if mv else 0.0
        hist = x[X_MACD_HIST] if mv else 0.0
        return (_flag(adx > p[P_ADX_TREND]) + _flag(direction == d)
                + _flag(st == d) + _flag(hist * d > 0.0)) / 4.0
    if regime == RANGING:
        rsi = x[X_RSI] if mv else 50.0
        return (_flag(adx < p[P_ADX_RANGE]) + _flag(direction == 0.0)
                + _flag(40.0 <= rsi <= 60.0) + _flag(x[X_ATR_RANK] < 0.5)) / 4.0
    if regime == HIGH_VOLATILITY:
        total = _flag(x[X_ATR_RANK] > p[P_ATR_HV]) + _flag(_bandwidth(x) > s[R_PREV_BW])
        n = 2.0
        liq = x[X_LIQ_INTENSITY]
        if p[P_USE_LIQ] > 0.0 and liq == liq:
            total += _flag(liq > p[P_SPIKE])
            n += 1.0
        return total / n
    if regime == SQUEEZE:
        return (_flag(x[X_SQUEEZE] == 1.0) + _flag(_settled_atr(x) < s[R_PREV_ATR])) / 2.0
    if regime == BREAKOUT:
        return (_flag(x[X_SQUEEZE_FIRED] > 0.0)
                + _flag(x[X_VOLUME] > p[P_BREAKOUT_VOLUME] * x[X_VOL_SMA])
                + _flag(bos != 0.0 or choch != 0.0)) / 3.0
    # capitulation: OI collapse, a liquidation spike (the price proxy counts half), fear
    total = _flag(x[X_OI_1H] < -p[P_CAPITULATION_OI])
    n = 2.0
    liq = x[X_LIQ_INTENSITY]
    if p[P_USE_LIQ] > 0.0 and liq == liq:
        total += _flag(liq > p[P_SPIKE])
    else:
        total += 0.5 * _flag(_price_spike(x, s[R_PREV_CLOSE], p))
    fng = x[X_FNG]
    if p[P_USE_FNG] > 0.0 and fng == fng:
        total += _flag(fng < 20.0)
        n += 1.0
    return total / n


@njit(cache=True)
def classify(x, p, s, direction):
    """The brief's ordered rules; returns the raw regime code."""
    oi_1h = x[X_OI_1H]
    if oi_1h == oi_1h and oi_1h < -p[P_CAPITULATION_OI]:
        liq = x[X_LIQ_INTENSITY]
        if p[P_USE_LIQ] > 0.0 and liq == liq:
            spike = liq > p[P_SPIKE]
        else:
            spike = _price_spike(x, s[R_PREV_CLOSE], p)
        if spike:
            return CAPITULATION
    if x[X_SQUEEZE] == 1.0:
        return SQUEEZE
    if x[X_SQUEEZE_FIRED] > 0.0 and x[X_VOLUME] > p[P_BREAKOUT_VOLUME] * x[X_VOL_SMA]:
        return BREAKOUT
    if x[X_ATR_RANK] > p[P_ATR_HV]:
        return HIGH_VOLATILITY
    if moving(x) and x[X_ADX] > p[P_ADX_TREND]:
        if direction == 1.0:
            return TRENDING_UP
        if direction == -1.0:
            return TRENDING_DOWN
    return RANGING


@njit(cache=True)
def hysteresis_step(s, p, raw, confidence):
    """Advance the state machine one bar; returns the previous regime code when this bar
    confirmed a change, -1 when it assigned the first regime, NaN otherwise."""
    if s[R_COOLDOWN] > 0.0:
        s[R_COOLDOWN] -= 1.0
    current = s[R_CURRENT]
    if current != current:
        s[R_CURRENT] = raw
        s[R_DURATION] = 1.0
        s[R_PENDING] = math.nan
        s[R_PENDING_BARS] = 0.0
        return -1.0
    s[R_DURATION] += 1.0
    switch = False
    if raw == current or confidence < p[P_CONF_THRESHOLD]:
        s[R_PENDING] = math.nan
        s[R_PENDING_BARS] = 0.0
    elif raw == BREAKOUT or raw == CAPITULATION:
        s[R_PENDING] = math.nan
        s[R_PENDING_BARS] = 0.0
        switch = s[R_COOLDOWN] == 0.0
    else:
        if raw == s[R_PENDING]:
            s[R_PENDING_BARS] += 1.0
        else:
            s[R_PENDING] = raw
            s[R_PENDING_BARS] = 1.0
        switch = s[R_PENDING_BARS] >= p[P_CONFIRM] and s[R_COOLDOWN] == 0.0
    if not switch:
        return math.nan
    s[R_CURRENT] = raw
    s[R_DURATION] = 1.0
    s[R_COOLDOWN] = p[P_COOLDOWN]
    s[R_PENDING] = math.nan
    s[R_PENDING_BARS] = 0.0
    return current


@njit(cache=True)
def remember_bar(s, x):
    """Keep what the next bar's rules compare with."""
    s[R_PREV_BW] = _bandwidth(x)
    s[R_PREV_ATR] = _settled_atr(x)
    s[R_PREV_CLOSE] = x[X_CLOSE]
