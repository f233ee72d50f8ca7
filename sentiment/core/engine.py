"""The compiled per-bar engine shared by the batch path and the live tracker.

``engine_step`` turns one input row (candle, indicators, as-of exchange and macro values;
see ``sentiment/core/layout.py``) into one output row (scores, regime, structure), advancing the
structure and regime state it is given. ``run_batch`` is that same step in a compiled loop
over a whole history, so the two paths cannot drift apart: one truth, by construction.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from numba import njit

from sentiment.config import Config
from sentiment.core import regime as rg
from sentiment.core import structures as stc
from sentiment.core.layout import (
    N_OUTPUTS,
    N_PARAMS,
    P_ADX_RANGE,
    P_ADX_TREND,
    P_ATR_HV,
    P_BREAKOUT_VOLUME,
    P_CAP_MOVE,
    P_CAP_SIGMAS,
    P_CAP_VOLUME,
    P_CAPITULATION_OI,
    P_CONF_THRESHOLD,
    P_CONFIRM,
    P_COOLDOWN,
    P_DIR_VOTE,
    P_EVENT_BARS,
    P_EXPIRE,
    P_FNG_FEAR,
    P_FUNDING_HIGH,
    P_FUNDING_LOW,
    P_HV_LEVEL,
    P_LS_HIGH,
    P_LS_LOW,
    P_MARGIN,
    P_MOVE_BARS,
    P_OI_SCALE,
    P_QUIET_MOVE,
    P_RELEASE,
    P_ROC_PERIOD,
    P_SCORE_SCALE,
    P_SHOCK_MOVE,
    P_SPIKE,
    P_SWING,
    P_TREND_GUARD,
    P_USE_FNG,
    P_USE_FUNDING,
    P_USE_LIQ,
    P_USE_LS,
    P_USE_OBI,
    P_USE_OI,
    P_VOL_BASE_ALPHA,
    P_W_EXCHANGE,
    P_W_FLOW,
    P_W_MACRO,
    P_W_MOMENTUM,
    P_W_TREND,
    P_W_VOLATILITY,
    X_CLOSE,
    X_CMF,
    X_EMA9,
    X_HIGH,
    X_LOW,
    Y_BARS_IN_TREND,
    Y_BIAS,
    Y_BOS,
    Y_CHOCH,
    Y_CONFIDENCE,
    Y_COOLDOWN,
    Y_DURATION,
    Y_EXCHANGE,
    Y_FLOW,
    Y_MACRO,
    Y_MOMENTUM,
    Y_PENDING,
    Y_PENDING_BARS,
    Y_RAW_CONF,
    Y_RAW_REGIME,
    Y_REGIME,
    Y_REGIME_CONF,
    Y_SCORE,
    Y_SWING_HIGH,
    Y_SWING_LOW,
    Y_TRANSITION_FROM,
    Y_TREND,
    Y_TREND_DIR,
    Y_TREND_STRENGTH,
    Y_VOLATILITY,
    Y_WAVES,
)
from sentiment.core.scores import (
    SCORE_SCALE,
    composite,
    exchange_score,
    macro_score,
    momentum_score,
    trend_score,
    volatility_score,
    volume_flow_score,
)
from sentiment.models import INTERVAL_MINUTES

#: Thresholds the brief fixes (section 6 tables, regime rules) and DESIGN 8.5 / 8.12.
SWING_LENGTH = 5
ROC_PERIOD = 10
FUNDING_HIGH = 0.001  # 0.1 % per settlement: crowded longs
FUNDING_LOW = -0.0005  # -0.05 %: crowded shorts
LONG_SHORT_HIGH = 0.60
LONG_SHORT_LOW = 0.40
#: alternative.me's bands: 25 and below is "Extreme Fear", 76 and above "Extreme Greed".
FEAR_GREED_LOW = 25.0
FEAR_GREED_HIGH = 76.0
OI_SCALE_PCT = 5.0  # a 5 % change of open interest over the window reads as full strength
CAPITULATION_OI_DROP_PCT = 5.0
SPIKE_MULTIPLE = 3.0
BREAKOUT_VOLUME_MULTIPLE = 2.0
#: Regime machine constants (docs/scores.md section 6).
DIRECTION_VOTE = 3.0 / 7.0  # a trend direction needs a net 3 of the 7 votes
QUIET_MOVE = 0.03  # a 24-hour move below 3 % is quiet (ranging, squeeze)
TREND_GUARD_MOVE = 0.05  # a trend ends when the 24-hour move goes 5 % against it
CAPITULATION_MOVE = 0.07  # capitulation without OI: a 24-hour fall beyond 7 % ...
CAPITULATION_SIGMAS = 2.0  # ... and beyond this many usual daily ranges (NATR baseline)
CAPITULATION_VOLUME = 3.0  # ... on a down bar with volume above 3 x its 20-bar average
HIGH_VOL_LEVEL = 1.5  # NATR 1.5 x its slow baseline is high volatility
VOL_BASELINE_BARS = 1440  # EMA span of the NATR baseline

_STRUCT = slice(0, stc.STATE_SIZE)
_REGIME = slice(stc.STATE_SIZE, stc.STATE_SIZE + rg.STATE_SIZE)
STATE_SIZE = stc.STATE_SIZE + rg.STATE_SIZE


def params(config: Config, interval: str = "60") -> np.ndarray:
    """The parameter vector for ``config`` at a kline interval."""
    p = np.zeros(N_PARAMS)
    w = config.weights
    p[P_W_TREND], p[P_W_MOMENTUM], p[P_W_VOLATILITY] = w.trend, w.momentum, w.volatility
    p[P_W_FLOW], p[P_W_EXCHANGE], p[P_W_MACRO] = w.volume_flow, w.exchange, w.macro
    ex = config.exchange_data
    p[P_USE_FUNDING] = ex.funding_rate
    p[P_USE_OI] = ex.open_interest
    p[P_USE_LS] = ex.long_short_ratio
    p[P_USE_LIQ] = ex.liquidations
    p[P_USE_OBI] = ex.orderbook_imbalance
    p[P_USE_FNG] = config.external_data.fear_greed
    r = config.regime
    p[P_CONFIRM] = r.confirmation_bars
    p[P_COOLDOWN] = r.cooldown_bars
    p[P_CONF_THRESHOLD] = r.confidence_threshold
    p[P_ADX_TREND] = r.adx_trend_threshold
    p[P_ADX_RANGE] = r.adx_range_threshold
    p[P_ATR_HV] = r.atr_high_vol_percentile / 100.0
    p[P_SWING] = SWING_LENGTH
    p[P_ROC_PERIOD] = ROC_PERIOD
    p[P_FUNDING_HIGH], p[P_FUNDING_LOW] = FUNDING_HIGH, FUNDING_LOW
    p[P_LS_HIGH], p[P_LS_LOW] = LONG_SHORT_HIGH, LONG_SHORT_LOW
    p[P_OI_SCALE] = OI_SCALE_PCT
    p[P_CAPITULATION_OI] = CAPITULATION_OI_DROP_PCT
    p[P_SPIKE] = SPIKE_MULTIPLE
    p[P_BREAKOUT_VOLUME] = BREAKOUT_VOLUME_MULTIPLE
    p[P_DIR_VOTE] = DIRECTION_VOTE
    p[P_QUIET_MOVE] = QUIET_MOVE
    p[P_SHOCK_MOVE] = r.shock_move_pct / 100.0
    p[P_TREND_GUARD] = TREND_GUARD_MOVE
    p[P_CAP_MOVE] = CAPITULATION_MOVE
    p[P_CAP_VOLUME] = CAPITULATION_VOLUME
    p[P_FNG_FEAR] = FEAR_GREED_LOW
    p[P_HV_LEVEL] = HIGH_VOL_LEVEL
    p[P_VOL_BASE_ALPHA] = 2.0 / (VOL_BASELINE_BARS + 1.0)
    p[P_RELEASE] = 2.0 / (r.smoothing_bars + 1.0)
    p[P_MARGIN] = r.switch_margin
    p[P_EXPIRE] = r.expire_below
    p[P_EVENT_BARS] = r.event_bars
    p[P_SCORE_SCALE] = SCORE_SCALE
    p[P_MOVE_BARS] = rg.move_bars(INTERVAL_MINUTES[interval])
    p[P_CAP_SIGMAS] = CAPITULATION_SIGMAS
    return p


def fingerprint(config: Config, interval: str) -> list:
    """Every setting that changes the rows of ``interval``: the engine parameters and the
    input windows. A checkpoint made under another fingerprint is not continued."""
    ex = config.exchange_data
    return [float(v) for v in params(config, interval)] + [
        config.regime.atr_lookback, ex.open_interest_interval, ex.long_short_period]


def new_state() -> np.ndarray:
    state = np.empty(STATE_SIZE)
    state[_STRUCT] = stc.new_state()
    state[_REGIME] = rg.new_state()
    return state


@njit(cache=True)
def _warm(x):
    """True once every input of the price-derived scores has a value."""
    for k in range(X_EMA9, X_CMF + 1):
        if x[k] != x[k]:
            return False
    return True


@njit(cache=True)
def engine_step(state, x, p, y):
    """One closed bar: advance ``state`` and write the output row ``y``."""
    s_struct = state[: stc.STATE_SIZE]
    s_reg = state[stc.STATE_SIZE :]
    (direction, strength, waves, bars_in_trend, bias, bos, choch, swing_high,
     swing_low) = stc.structure_step(s_struct, x[X_HIGH], x[X_LOW], x[X_CLOSE], int(p[P_SWING]))
    y[:] = math.nan
    y[Y_TREND_DIR] = direction
    y[Y_TREND_STRENGTH] = strength
    y[Y_WAVES] = waves
    y[Y_BARS_IN_TREND] = bars_in_trend
    y[Y_BIAS] = bias
    y[Y_BOS] = bos
    y[Y_CHOCH] = choch
    y[Y_SWING_HIGH] = swing_high
    y[Y_SWING_LOW] = swing_low
    if _warm(x):
        trend = trend_score(x, p, direction, strength)
        momentum = momentum_score(x, p)
        volatility = volatility_score(x)
        flow = volume_flow_score(x)
        exchange = exchange_score(x, p)
        macro = macro_score(x, p)
        score, confidence = composite(p, trend, momentum, volatility, flow, exchange, macro)
        out = np.empty(5)
        rg.regime_step(s_reg, x, p, direction, bos, choch, out)
        y[Y_SCORE] = score
        y[Y_CONFIDENCE] = confidence
        y[Y_TREND] = trend
        y[Y_MOMENTUM] = momentum
        y[Y_VOLATILITY] = volatility
        y[Y_FLOW] = flow
        y[Y_EXCHANGE] = exchange
        y[Y_MACRO] = macro
        y[Y_RAW_REGIME] = out[0]
        y[Y_RAW_CONF] = out[1]
        y[Y_TRANSITION_FROM] = out[2]
        y[Y_REGIME] = out[3]
        y[Y_REGIME_CONF] = out[4]
        y[Y_DURATION] = s_reg[rg.R_DURATION]
        y[Y_PENDING] = s_reg[rg.R_PENDING]
        y[Y_PENDING_BARS] = s_reg[rg.R_PENDING_BARS]
        y[Y_COOLDOWN] = s_reg[rg.R_COOLDOWN]
    rg.remember_bar(s_reg, x, p)


@njit(cache=True, nogil=True)  # other threads run while a batch computes
def run_batch(state, xs, p):
    """``engine_step`` over every row of ``xs`` (T, N_INPUTS); returns (T, N_OUTPUTS)."""
    n = xs.shape[0]
    ys = np.empty((n, N_OUTPUTS))
    for i in range(n):
        engine_step(state, xs[i], p, ys[i])
    return ys




def _guard() -> None:
    from sentiment import models
    from sentiment.core import jit, layout, scores

    jit.guard_caches([layout, models, stc, scores, rg, sys.modules[__name__]])


_guard()
