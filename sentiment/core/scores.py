"""The six sub-scores and the composite (brief section 4, DESIGN 8.6 and 8.7).

Every formula, window and clip is tabulated in ``docs/scores.md``. Each function reads one
engine input row ``x`` (see ``sentiment/core/layout.py``) and the parameter vector ``p``; the
compiled engine calls them for every bar, in batch and live alike.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sentiment.core.layout import (
    NO_MOVEMENT,
    P_FUNDING_HIGH,
    P_FUNDING_LOW,
    P_LS_HIGH,
    P_LS_LOW,
    P_OI_SCALE,
    P_ROC_PERIOD,
    P_SCORE_SCALE,
    P_USE_FNG,
    P_USE_FUNDING,
    P_USE_LIQ,
    P_USE_LS,
    P_USE_OBI,
    P_USE_OI,
    P_W_EXCHANGE,
    P_W_FLOW,
    P_W_MACRO,
    P_W_MOMENTUM,
    P_W_TREND,
    P_W_VOLATILITY,
    X_ADX,
    X_ATR,
    X_ATR_RANK,
    X_CLOSE,
    X_CMF,
    X_EMA9,
    X_EMA21,
    X_EMA50,
    X_FNG,
    X_FUNDING,
    X_LIQ_NET,
    X_LS,
    X_MACD_HIST,
    X_MDI,
    X_MFI,
    X_NATR,
    X_OBI,
    X_OI_DELTA,
    X_OPEN,
    X_PDI,
    X_PRICE_OI,
    X_ROC,
    X_RSI,
    X_ST_DIR,
    X_VOL_SMA,
    X_VOLUME,
)

#: The composite's weighted mean is multiplied by this before its clip to [-1, 1]: measured
#: on BTCUSDT 1h 2020-2025, the plain mean spans p1 -0.49 .. p99 +0.44, so "Very Bullish"
#: (>= 0.7) never showed; scaled, each outer band holds 2-4 % of bars.
SCORE_SCALE = 1.8


@njit(cache=True)
def clip(v, lo, hi):
    return lo if v < lo else (hi if v > hi else v)


@njit(cache=True)
def sign(v):
    return 1.0 if v > 0.0 else (-1.0 if v < 0.0 else 0.0)


@njit(cache=True)
def moving(x):
    """False when the ATR says prices have not moved (see layout.NO_MOVEMENT)."""
    return x[X_ATR] > NO_MOVEMENT * x[X_CLOSE]


@njit(cache=True)
def trend_score(x, p, direction, strength):
    """A: mean of structure trend, ADX strength signed by the directional indicators
    (+DI vs -DI: ADX's own direction, known on every bar, where the swing structure waits
    for pivots), SuperTrend and EMA alignment."""
    structure = direction * strength / 2.0
    mv = moving(x)
    # Without price movement the smoothed DIs and SuperTrend only hold old values.
    adx = sign(x[X_PDI] - x[X_MDI]) * clip((x[X_ADX] - 20.0) / 30.0, 0.0, 1.0) if mv else 0.0
    supertrend = x[X_ST_DIR] if mv else 0.0
    e9, e21, e50 = x[X_EMA9], x[X_EMA21], x[X_EMA50]
    alignment = (sign(e9 - e21) + sign(e21 - e50) + sign(e9 - e50)) / 3.0
    return clip((structure + adx + supertrend + alignment) / 4.0, -1.0, 1.0)


@njit(cache=True)
def momentum_score(x, p):
    """B: mean of RSI, MACD histogram in ATRs, and ROC against its expected move."""
    atr = x[X_ATR]
    if moving(x):
        rsi = (x[X_RSI] - 50.0) / 50.0
        hist = x[X_MACD_HIST]
        macd = sign(hist) * min(1.0, abs(hist) / atr)
    else:  # no price movement in the window: RSI is undefined, MACD is 0
        rsi = 0.0
        macd = 0.0
    threshold = x[X_NATR] * math.sqrt(p[P_ROC_PERIOD])
    roc = x[X_ROC]
    roc_term = sign(roc) * min(1.0, abs(roc) / threshold) if threshold > 0.0 else 0.0
    return clip((rsi + macd + roc_term) / 3.0, -1.0, 1.0)


@njit(cache=True)
def volatility_score(x):
    """C: ATR percentile rank in [0, 1] (direction-neutral)."""
    return clip(x[X_ATR_RANK], 0.0, 1.0)


@njit(cache=True)
def volatility_modifier(volatility):
    """How volatility enters the composite: neutral when calm, down to -0.5 at the top."""
    return -max(0.0, volatility - 0.5)


@njit(cache=True)
def volume_flow_score(x):
    """D: mean of CMF, MFI and volume momentum signed by the bar's direction."""
    cmf = clip(x[X_CMF], -1.0, 1.0)
    avg = x[X_VOL_SMA]
    mfi = 0.0
    momentum = 0.0
    if avg > 0.0:  # else no volume in the last 20 bars: no flow to read
        bar_dir = sign(x[X_CLOSE] - x[X_OPEN])
        momentum = bar_dir * clip(x[X_VOLUME] / avg - 1.0, -1.0, 1.0)
        if moving(x):  # MFI reads 0 when the typical price never moved
            mfi = (x[X_MFI] - 50.0) / 50.0
    return clip((cmf + mfi + momentum) / 3.0, -1.0, 1.0)


@njit(cache=True)
def funding_term(rate, high, low):
    """Trend-following inside [low, high], contrarian beyond (brief 6.1)."""
    if rate > high:
        return -1.0
    if rate < low:
        return 1.0
    if rate >= 0.0:
        return rate / high
    return -rate / low


@njit(cache=True)
def long_short_term(ratio, high, low):
    """(ratio - 0.5) * 2 inside [low, high]; beyond, the same magnitude reversed (6.3)."""
    deviation = (ratio - 0.5) * 2.0
    if ratio > high or ratio < low:
        return -deviation
    return deviation


@njit(cache=True)
def open_interest_term(oi_delta_pct, price_change_pct, scale_pct):
    """OI change read with the price over the same window (brief 6.2).

    Rising OI confirms the price move (full weight); falling OI means covering or
    liquidation, a weaker move in the same direction (half weight).
    """
    magnitude = min(1.0, abs(oi_delta_pct) / scale_pct)
    direction = sign(price_change_pct)
    if oi_delta_pct > 0.0:
        return direction * magnitude
    return 0.5 * direction * magnitude


@njit(cache=True)
def exchange_score(x, p):
    """E: mean of the exchange terms that have data; NaN when none has."""
    total = 0.0
    n = 0
    if p[P_USE_FUNDING] > 0.0 and x[X_FUNDING] == x[X_FUNDING]:
        total += funding_term(x[X_FUNDING], p[P_FUNDING_HIGH], p[P_FUNDING_LOW])
        n += 1
    if p[P_USE_OI] > 0.0 and x[X_OI_DELTA] == x[X_OI_DELTA] and x[X_PRICE_OI] == x[X_PRICE_OI]:
        total += open_interest_term(x[X_OI_DELTA], x[X_PRICE_OI], p[P_OI_SCALE])
        n += 1
    if p[P_USE_LS] > 0.0 and x[X_LS] == x[X_LS]:
        total += long_short_term(x[X_LS], p[P_LS_HIGH], p[P_LS_LOW])
        n += 1
    if p[P_USE_LIQ] > 0.0 and x[X_LIQ_NET] == x[X_LIQ_NET]:
        total += clip(x[X_LIQ_NET], -1.0, 1.0)
        n += 1
    if p[P_USE_OBI] > 0.0 and x[X_OBI] == x[X_OBI]:
        total += clip(x[X_OBI], -1.0, 1.0)
        n += 1
    if n == 0:
        return math.nan
    return clip(total / n, -1.0, 1.0)


@njit(cache=True)
def macro_score(x, p):
    """F: Fear & Greed mapped to [-1, 1]; NaN without a value."""
    fng = x[X_FNG]
    if p[P_USE_FNG] > 0.0 and fng == fng:
        return clip((fng - 50.0) / 50.0, -1.0, 1.0)
    return math.nan


@njit(cache=True)
def composite(p, trend, momentum, volatility, flow, exchange, macro):
    """Weighted sum over the tiers that have data, renormalised and scaled by
    ``score_scale`` (the sub-scores rarely agree fully, so their plain mean never reached
    the outer bands); and the confidence.

    Confidence = (1 - volatility penalty) * share of the total weight that had data.
    """
    modifier = volatility_modifier(volatility)
    num = (p[P_W_TREND] * trend + p[P_W_MOMENTUM] * momentum
           + p[P_W_VOLATILITY] * modifier + p[P_W_FLOW] * flow)
    den = p[P_W_TREND] + p[P_W_MOMENTUM] + p[P_W_VOLATILITY] + p[P_W_FLOW]
    total = den + p[P_W_EXCHANGE] + p[P_W_MACRO]
    if exchange == exchange:
        num += p[P_W_EXCHANGE] * exchange
        den += p[P_W_EXCHANGE]
    if macro == macro:
        num += p[P_W_MACRO] * macro
        den += p[P_W_MACRO]
    if den <= 0.0 or total <= 0.0:
        return 0.0, 0.0
    score = clip(p[P_SCORE_SCALE] * num / den, -1.0, 1.0)
    confidence = clip((1.0 + modifier) * den / total, 0.0, 1.0)
    return score, confidence


#: ``sentiment_history`` sub-score columns, in the composite's order, by weight name.
SUBSCORE_COLUMNS: dict[str, str] = {
    "trend": "trend_score",
    "momentum": "momentum_score",
    "volatility": "volatility_score",
    "volume_flow": "volume_flow_score",
    "exchange": "exchange_sentiment",
    "macro": "macro_sentiment",
}


def contributions(subscores: dict[str, np.ndarray], weights: dict[str, float]
                  ) -> dict[str, np.ndarray]:
    """Each tier's share of the composite per row, as :func:`composite` forms it: weight x
    sub-score (the volatility tier through :func:`volatility_modifier`) over the weights of
    the tiers that had data, times :data:`SCORE_SCALE`. Stacked, they add up to the
    composite (before its clip to [-1, 1]); a tier without data contributes 0. Keys and
    arrays as in ``subscores``.
    """
    values = {name: np.asarray(subscores[name], dtype=np.float64) for name in SUBSCORE_COLUMNS}
    terms = dict(values)
    known = ~np.isnan(values["volatility"])
    terms["volatility"] = np.where(known, np.vectorize(volatility_modifier, otypes=[float])(
        np.where(known, values["volatility"], 0.0)), np.nan)
    present = {name: ~np.isnan(v) for name, v in values.items()}
    for core in ("trend", "momentum", "volatility", "volume_flow"):
        present[core] = np.ones_like(values[core], dtype=bool)  # always in the denominator
    den = sum(weights[name] * present[name] for name in SUBSCORE_COLUMNS)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {name: np.where(present[name] & ~np.isnan(terms[name]),
                               SCORE_SCALE * weights[name] * np.nan_to_num(terms[name])
                               / den, 0.0)
                for name in SUBSCORE_COLUMNS}
