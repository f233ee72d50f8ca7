"""Rule-based regime classifier, evidence and the regime state machine (sentiment/core/regime.py).

What is tested is the module docstring: the raw regime by the ordered rules (first match
wins), the evidence of each regime and its smoothed value, and the machine that confirms a
regime (events at once, shocks and expiry at once, otherwise a challenger leading on the
slow evidence for ``confirmation_bars`` bars with no cooldown), and how compute_history
reports it. Inputs are constructed so that every expected value follows from the rules by
hand, at the regime settings of :data:`MACHINE` (set explicitly, so retuning
``sentiment.yaml`` does not move them) and the engine's fixed thresholds, both pinned by
``test_thresholds_the_tables_assume``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from sentiment.config import load_config
from sentiment.core import engine
from sentiment.core import regime as rg
from sentiment.core.layout import (
    N_INPUTS,
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
    P_HV_LEVEL,
    P_MARGIN,
    P_MOVE_BARS,
    P_QUIET_MOVE,
    P_RELEASE,
    P_SHOCK_MOVE,
    P_SPIKE,
    P_TREND_GUARD,
    P_USE_FNG,
    P_USE_LIQ,
    P_VOL_BASE_ALPHA,
    X_FNG,
    X_LIQ_INTENSITY,
    X_OI_1H,
    X_SQUEEZE,
    X_SQUEEZE_FIRED,
    X_ST_DIR,
    X,
)
from sentiment.history import compute_history_and_transitions
from sentiment.models import REGIMES

CONFIG = load_config()
#: The regime settings every hand-worked answer below assumes, whatever sentiment.yaml is
#: tuned to (the tests override them explicitly).
MACHINE = dict(
    confirmation_bars=6, cooldown_bars=24, confidence_threshold=0.5,
    adx_trend_threshold=25.0, adx_range_threshold=20.0, atr_high_vol_percentile=90.0,
    smoothing_bars=72, switch_margin=0.3, expire_below=0.35, shock_move_pct=6.0,
    event_bars=4,
)
ALL_CODES = list(range(len(REGIMES)))
U, D, R = rg.TRENDING_UP, rg.TRENDING_DOWN, rg.RANGING
H, Q, B, C = rg.HIGH_VOLATILITY, rg.SQUEEZE, rg.BREAKOUT, rg.CAPITULATION
#: The decay of the smoothed evidence at the default smoothing_bars (72).
RELEASE_72 = 2.0 / 73.0


def make_p(interval: str = "60", **regime) -> np.ndarray:
    """The parameter vector of :data:`MACHINE` with ``regime:`` overrides (1h bars)."""
    cfg = dataclasses.replace(CONFIG, regime=dataclasses.replace(CONFIG.regime,
                                                                 **(MACHINE | regime)))
    return engine.params(cfg, interval)


@pytest.fixture
def p() -> np.ndarray:
    return make_p()


_ALIAS = {
    "oi_1h": "open_interest_change_1h_pct",
    "liq": "liquidation_intensity",
    "fng": "fear_greed_index",
    "move": "move_24h",
    "vol_sma": "volume_sma_20",
    "st": "supertrend_dir",
}


def row(value: float = math.nan, **slots: float) -> np.ndarray:
    """An input row filled with ``value``; keywords name input slots (sentiment.core.layout).

    Prices move (ATR 1 at a close of 100) unless the caller says otherwise: without
    movement the oscillators read neutral.
    """
    slots.setdefault("atr", 1.0)
    slots.setdefault("close", 100.0)
    x = np.full(N_INPUTS, value)
    for name, v in slots.items():
        x[X[_ALIAS.get(name, name)]] = v
    return x


#: A quiet bar: every vote neutral (direction 0), ADX 10, RSI 50, no squeeze, average
#: volume, ATR rank 0.5, no 24-hour move; NATR, OI, liquidations and Fear & Greed unknown
#: (so the volatility level is 1). Evidence: ranging 0.8 (all but "level < 1"), squeeze
#: 0.25 (quiet), every other regime 0. Raw regime: ranging.
CALM = dict(
    open=100.0, high=100.5, low=99.5, close=100.0, volume=100.0,
    ema_9=100.0, ema_21=100.0, ema_50=100.0, adx=10.0, plus_di=20.0, minus_di=20.0,
    rsi=50.0, macd_hist=0.0, atr=1.0, bb_upper=102.0, bb_middle=100.0, bb_lower=98.0,
    vol_sma=100.0, atr_rank=0.5, squeeze=0.0, squeeze_fired=0.0, st=0.0, move=0.0,
)


def calm(**slots: float) -> np.ndarray:
    return row(**(CALM | slots))


def trend(k: float = 1.0, **slots: float) -> tuple[np.ndarray, float]:
    """A bar (row, structure direction) on which all seven votes say ``k``: direction k.

    With the defaults (ADX 35, move +-2 %): its trend evidence 0.5 + 0.25 + 0.25 * 2/3 =
    11/12, ranging 0.4 (RSI and quiet move), raw regime trending up / down.
    """
    base = dict(ema_9=100 + 2 * k, ema_21=100 + k, ema_50=100.0, close=100 + 3 * k,
                plus_di=20 + 10 * k, minus_di=20 - 10 * k, st=k, macd_hist=0.5 * k,
                adx=35.0, move=0.02 * k)
    return calm(**(base | slots)), k


def squeeze_bar(**slots: float) -> np.ndarray:
    """Squeeze on in a quiet market: raw squeeze, evidence 0.5 (on, quiet)."""
    return calm(squeeze=1.0, **slots)


def breakout_bar(**slots: float) -> np.ndarray:
    """The squeeze fired on 3 x average volume with the close above the upper band."""
    return calm(**(dict(squeeze_fired=1.0, volume=300.0, close=103.0, high=103.5) | slots))


def capitulation_bar(**slots: float) -> np.ndarray:
    """Open interest -6 % in an hour with liquidation intensity 4 (OI rule)."""
    return calm(oi_1h=-6.0, liq=4.0, **slots)


#: ATR rank 0.95 with a +5 % move, ADX 22, RSI 70: raw high volatility; evidence high
#: volatility 0.3 + 0.3 * 5/6 = 0.55, ranging 0.2 (only |direction| < 3/7).
HV_BAR = dict(atr_rank=0.95, adx=22.0, rsi=70.0, move=0.05)


def drive(p, bars, s=None):
    """Feed bars through regime_step and remember_bar, as engine_step does.

    ``bars``: rows, or (row, structure direction) pairs. Returns the out rows (raw regime,
    its evidence, transition from, confirmed regime, its smoothed evidence) and the state.
    """
    s = rg.new_state() if s is None else s
    outs = []
    for bar in bars:
        x, direction = bar if isinstance(bar, tuple) else (bar, 0.0)
        out = np.full(5, -99.0)
        rg.regime_step(s, x, p, float(direction), 0.0, 0.0, out)
        rg.remember_bar(s, x, p)
        outs.append(out)
    return np.array(outs), s


def regimes(outs) -> list[int]:
    return [int(c) for c in outs[:, 3]]


def changes(outs) -> list[int]:
    """Bars on which a change (not the first assignment) was confirmed."""
    frm = outs[:, 2]
    return [int(t) for t in np.flatnonzero(np.isfinite(frm) & (frm >= 0))]


# ------------------------------------------------------------------ parameters


def test_thresholds_the_tables_assume(p):
    # from MACHINE
    assert p[P_ADX_TREND] == 25.0 and p[P_ADX_RANGE] == 20.0
    assert p[P_ATR_HV] == 0.9 and p[P_SHOCK_MOVE] == 0.06
    assert p[P_CONF_THRESHOLD] == 0.5 and p[P_MARGIN] == 0.3 and p[P_EXPIRE] == 0.35
    assert p[P_EVENT_BARS] == 4 and p[P_CONFIRM] == 6 and p[P_COOLDOWN] == 24
    assert p[P_RELEASE] == RELEASE_72
    # the brief's and the engine's fixed thresholds
    assert p[P_CAPITULATION_OI] == 5.0 and p[P_SPIKE] == 3.0
    assert p[P_BREAKOUT_VOLUME] == 2.0
    assert p[P_DIR_VOTE] == 3.0 / 7.0
    assert p[P_QUIET_MOVE] == 0.03 and p[P_TREND_GUARD] == 0.05
    assert p[P_CAP_MOVE] == 0.07 and p[P_CAP_VOLUME] == 3.0 and p[P_CAP_SIGMAS] == 2.0
    assert p[P_FNG_FEAR] == 25.0 and p[P_HV_LEVEL] == 1.5
    assert p[P_MOVE_BARS] == 24
    # the inputs of the shipped configuration
    assert p[P_USE_LIQ] == 1.0 and p[P_USE_FNG] == 1.0


def test_regime_parameters_follow_the_config():
    p = make_p(shock_move_pct=5.0, smoothing_bars=9, switch_margin=0.2, expire_below=0.25,
               event_bars=2, confirmation_bars=3, cooldown_bars=7, confidence_threshold=0.6,
               adx_trend_threshold=30.0, adx_range_threshold=15.0,
               atr_high_vol_percentile=80.0)
    assert p[P_SHOCK_MOVE] == 0.05
    assert p[P_RELEASE] == pytest.approx(0.2)  # 2 / (9 + 1)
    assert (p[P_MARGIN], p[P_EXPIRE], p[P_EVENT_BARS]) == (0.2, 0.25, 2)
    assert (p[P_CONFIRM], p[P_COOLDOWN], p[P_CONF_THRESHOLD]) == (3, 7, 0.6)
    assert (p[P_ADX_TREND], p[P_ADX_RANGE], p[P_ATR_HV]) == (30.0, 15.0, 0.8)
    # The NATR baseline is an EMA of 1440 bars whatever the configuration.
    assert p[P_VOL_BASE_ALPHA] == pytest.approx(2.0 / 1441.0)


@pytest.mark.parametrize(("interval", "bars"), [("60", 24), ("240", 6), ("15", 96),
                                                 ("D", 1), ("W", 1)])
def test_bars_in_the_24_hour_move_follow_the_interval(interval, bars):
    assert rg.move_bars(CONFIG.interval_minutes(interval)) == bars
    assert make_p(interval)[P_MOVE_BARS] == bars


# ------------------------------------------------------------------ direction vote

#: Every vote neutral: EMAs and close equal, +DI = -DI, no SuperTrend, MACD histogram 0.
NEUTRAL = dict(ema_9=100.0, ema_21=100.0, ema_50=100.0, close=100.0, plus_di=20.0,
               minus_di=20.0, st=0.0, macd_hist=0.0)
ALL_UP = dict(ema_9=103.0, ema_21=102.0, ema_50=101.0, close=104.0, plus_di=30.0,
              minus_di=20.0, st=1.0, macd_hist=0.5)
ALL_DOWN = dict(ema_9=97.0, ema_21=98.0, ema_50=99.0, close=96.0, plus_di=20.0,
                minus_di=30.0, st=-1.0, macd_hist=-0.5)


@pytest.mark.parametrize(
    ("slots", "structure", "want"),
    [
        pytest.param({}, 0.0, 0.0, id="all-neutral"),
        pytest.param({"ema_9": 101.0}, 0.0, 1 / 7, id="ema9>ema21"),
        pytest.param({"ema_9": 99.0}, 0.0, -1 / 7, id="ema9<ema21"),
        pytest.param({"ema_9": 101.0, "ema_21": 101.0}, 0.0, 1 / 7, id="ema21>ema50"),
        pytest.param({"ema_9": 99.0, "ema_21": 99.0}, 0.0, -1 / 7, id="ema21<ema50"),
        pytest.param({"close": 101.0}, 0.0, 1 / 7, id="close>ema50"),
        pytest.param({"close": 99.0}, 0.0, -1 / 7, id="close<ema50"),
        pytest.param({}, 1.0, 1 / 7, id="structure-up"),
        pytest.param({}, -1.0, -1 / 7, id="structure-down"),
        pytest.param({"plus_di": 30.0}, 0.0, 1 / 7, id="+DI>-DI"),
        pytest.param({"minus_di": 30.0}, 0.0, -1 / 7, id="+DI<-DI"),
        pytest.param({"st": 1.0}, 0.0, 1 / 7, id="supertrend-up"),
        pytest.param({"st": -1.0}, 0.0, -1 / 7, id="supertrend-down"),
        pytest.param({"macd_hist": 0.5}, 0.0, 1 / 7, id="macd>0"),
        pytest.param({"macd_hist": -0.5}, 0.0, -1 / 7, id="macd<0"),
        pytest.param(ALL_UP, 1.0, 1.0, id="all-seven-up"),
        pytest.param(ALL_DOWN, -1.0, -1.0, id="all-seven-down"),
        # EMA 9/21, EMA 21/50, close/EMA 50 and structure up; DI, SuperTrend, MACD down.
        pytest.param(ALL_UP | {"plus_di": 10.0, "st": -1.0, "macd_hist": -0.5}, 1.0, 1 / 7,
                     id="four-up-three-down"),
        pytest.param(ALL_UP, -1.0, 5 / 7, id="six-up-structure-down"),
    ],
)
def test_direction_vote_is_the_mean_of_seven_votes(slots, structure, want):
    x = row(**(NEUTRAL | slots))
    assert rg.direction_vote(x, structure) == pytest.approx(want, abs=1e-15)


@pytest.mark.parametrize(
    ("slots", "structure", "want"),
    [
        # Only EMA 9/21, EMA 21/50, close/EMA 50 and structure count, still over seven.
        pytest.param(ALL_UP, 1.0, 4 / 7, id="all-up"),
        pytest.param(ALL_DOWN, -1.0, -4 / 7, id="all-down"),
        pytest.param(NEUTRAL | {"plus_di": 30.0, "st": 1.0, "macd_hist": 0.5}, 0.0, 0.0,
                     id="oscillators-only"),
        pytest.param(ALL_UP | {"plus_di": 10.0, "st": -1.0, "macd_hist": -0.5}, 1.0, 4 / 7,
                     id="oscillators-against"),
    ],
)
def test_without_movement_the_oscillator_votes_are_dropped(slots, structure, want):
    still = row(**(slots | {"atr": 1e-12}))  # ATR <= 1e-9 x close: no movement
    assert rg.direction_vote(still, structure) == pytest.approx(want, abs=1e-15)


# ------------------------------------------------------------------ volatility level


def state(prev_close=math.nan, prev_atr=math.nan, vol_base=math.nan) -> np.ndarray:
    s = rg.new_state()
    s[rg.R_PREV_CLOSE] = prev_close
    s[rg.R_PREV_ATR] = prev_atr
    s[rg.R_VOL_BASE] = vol_base
    return s


@pytest.mark.parametrize(
    ("natr", "base", "atr", "want"),
    [
        (3.0, 2.0, 1.0, 1.5),
        (1.0, 2.0, 1.0, 0.5),
        (2.0, 2.0, 1.0, 1.0),
        (5.0, math.nan, 1.0, 1.0),  # no baseline yet
        (5.0, 0.0, 1.0, 1.0),  # no usable baseline
        (5.0, 2.0, 1e-12, 1.0),  # no movement
    ],
)
def test_vol_level_is_natr_over_its_baseline(natr, base, atr, want):
    assert rg.vol_level(row(natr=natr, atr=atr), state(vol_base=base)) == want


def test_remember_bar_keeps_the_previous_bar_and_moves_the_baseline(p):
    alpha = p[P_VOL_BASE_ALPHA]
    s = rg.new_state()
    rg.remember_bar(s, row(natr=2.0, close=101.0, atr=1.5, bb_upper=110.0, bb_middle=100.0,
                           bb_lower=90.0), p)
    assert s[rg.R_VOL_BASE] == 2.0  # the first NATR is the baseline
    assert s[rg.R_PREV_CLOSE] == 101.0 and s[rg.R_PREV_ATR] == 1.5
    assert s[rg.R_PREV_BW] == pytest.approx(0.2)
    rg.remember_bar(s, row(natr=4.0), p)
    assert s[rg.R_VOL_BASE] == pytest.approx(2.0 + alpha * 2.0, rel=1e-14)
    base = s[rg.R_VOL_BASE]
    # A bar without movement or without NATR leaves the baseline alone; a still bar's ATR
    # is remembered as 0.
    rg.remember_bar(s, row(natr=100.0, atr=1e-12, close=99.0), p)
    assert s[rg.R_VOL_BASE] == base
    assert s[rg.R_PREV_ATR] == 0.0 and s[rg.R_PREV_CLOSE] == 99.0
    rg.remember_bar(s, row(), p)
    assert s[rg.R_VOL_BASE] == base


def test_baseline_is_an_ema_at_the_configured_rate(p):
    """From a baseline of 2, n bars at NATR 4 leave 4 - 2 (1 - alpha)^n."""
    alpha = p[P_VOL_BASE_ALPHA]
    s = state(vol_base=2.0)
    n = 1440
    for _ in range(n):
        rg.remember_bar(s, row(natr=4.0), p)
    assert s[rg.R_VOL_BASE] == pytest.approx(4.0 - 2.0 * (1.0 - alpha) ** n, rel=1e-12)
    # ... about e^-2 of the gap is left after 1440 bars
    assert 4.0 - s[rg.R_VOL_BASE] == pytest.approx(2.0 * math.exp(-2.0), rel=2e-3)


# ------------------------------------------------------------------ classify


def test_calm_bar_is_ranging(p):
    assert rg.classify(calm(), p, state(), 0.0) == R
    assert rg.classify(row(), p, state(), 0.0) == R  # nothing known at all


@pytest.mark.parametrize(
    ("oi", "liq", "want"),
    [
        (-5.1, 3.1, C),
        (-20.0, 10.0, C),
        (-4.9, 10.0, R),  # OI fell less than 5 %
        (-5.0, 10.0, R),  # not below -5 %
        (3.0, 10.0, R),
        (-20.0, 3.0, R),  # liquidation intensity not above 3
        (-20.0, 0.0, R),
        (math.nan, 10.0, R),  # no open interest, no OI rule
    ],
)
def test_capitulation_oi_rule_with_liquidations(p, oi, liq, want):
    # A down close after 100 with a true range of 12 > 3 x ATR: the price proxy would fire,
    # but with liquidation data the spike must come from the liquidations.
    x = calm(oi_1h=oi, liq=liq, high=101.0, low=89.0, close=90.0, atr=3.0)
    assert rg.classify(x, p, state(prev_close=100.0), 0.0) == want


@pytest.mark.parametrize(
    ("high", "low", "close", "prev_close", "atr", "want"),
    [
        (101.0, 89.0, 90.0, 100.0, 3.0, C),  # down close, true range 12 > 9
        (101.0, 89.0, 90.0, 100.0, 4.1, R),  # true range 12 < 3 x 4.1
        (101.0, 89.0, 90.0, 100.0, 4.0, R),  # 12 is not above 3 x 4
        (112.0, 100.0, 111.0, 100.0, 3.0, R),  # an up close
        (101.0, 89.0, 100.0, 100.0, 3.0, R),  # unchanged close
        (80.0, 79.0, 79.5, 100.0, 3.0, C),  # narrow bar gapping down: true range 21
        (101.0, 89.0, 90.0, math.nan, 3.0, R),  # no previous close
    ],
)
def test_capitulation_oi_rule_with_the_price_spike_proxy(p, high, low, close, prev_close,
                                                         atr, want):
    x = calm(oi_1h=-6.0, high=high, low=low, close=close, atr=atr)
    assert math.isnan(x[X_LIQ_INTENSITY])
    assert rg.classify(x, p, state(prev_close=prev_close), 0.0) == want
    # Without the OI drop the proxy alone is nothing.
    x[X_OI_1H] = -4.0
    assert rg.classify(x, p, state(prev_close=prev_close), 0.0) == R


def test_price_spike_proxy_replaces_liquidations_when_they_are_switched_off(p):
    x = calm(oi_1h=-6.0, liq=0.0, high=101.0, low=89.0, close=90.0, atr=3.0)
    s = state(prev_close=100.0)
    assert rg.classify(x, p, s, 0.0) == R  # liquidations on: intensity 0 is no spike
    q = p.copy()
    q[P_USE_LIQ] = 0.0
    assert rg.classify(x, q, s, 0.0) == C
    x[X_LIQ_INTENSITY] = 10.0
    x[X_OI_1H] = -6.0
    calm_close = x.copy()
    calm_close[X["close"]] = 100.5  # no down close: no proxy spike, liquidations ignored
    assert rg.classify(calm_close, q, s, 0.0) == R
    assert rg.classify(calm_close, p, s, 0.0) == C


@pytest.mark.parametrize(
    ("close", "prev_close", "move", "volume", "want"),
    [
        (99.0, 100.0, -0.071, 301.0, C),
        (90.0, 100.0, -0.20, 1000.0, C),
        (100.0, 100.0, -0.071, 301.0, H),  # not a down close
        (101.0, 100.0, -0.071, 301.0, H),
        (99.0, math.nan, -0.071, 301.0, H),  # no previous close
        (99.0, 100.0, -0.069, 301.0, H),  # fell less than 7 %
        (99.0, 100.0, -0.070, 301.0, H),  # not beyond 7 %
        (99.0, 100.0, -0.071, 300.0, H),  # volume not above 3 x average
        (99.0, 100.0, -0.071, 200.0, H),
    ],
)
def test_capitulation_climax_rule_without_open_interest(p, close, prev_close, move, volume,
                                                        want):
    # Each non-climax variant still moved beyond the 6 % shock: high volatility.
    x = calm(close=close, move=move, volume=volume)
    assert math.isnan(x[X_OI_1H])
    assert rg.classify(x, p, state(prev_close=prev_close), 0.0) == want


@pytest.mark.parametrize(
    ("base", "interval", "fall"),
    [
        # max(7 %, 2 x NATR baseline (%) / 100 x sqrt(bars in 24 h))
        (math.nan, "60", 0.07),  # no baseline yet
        (0.5, "60", 0.07),  # 2 x 0.5 % x sqrt 24 = 4.9 %
        (1.0, "60", 2 * 0.01 * math.sqrt(24)),  # 9.8 %
        (2.0, "60", 2 * 0.02 * math.sqrt(24)),  # 19.6 %
        (2.0, "240", 2 * 0.02 * math.sqrt(6)),  # 9.8 %
        (2.0, "D", 0.07),  # 4 %
    ],
)
def test_capitulation_fall_scales_with_the_usual_daily_range(base, interval, fall):
    assert rg.capitulation_fall(state(vol_base=base), make_p(interval)) == pytest.approx(
        fall, rel=1e-12)


@pytest.mark.parametrize(("move", "want"), [(-0.09, H), (-0.097, H), (-0.099, C), (-0.2, C)])
def test_climax_needs_the_deeper_fall_in_a_volatile_market(p, move, want):
    # NATR baseline 1 %: the fall must be beyond 9.8 %, not 7 %.
    x = calm(close=99.0, move=move, volume=400.0, natr=1.0)
    assert rg.classify(x, p, state(prev_close=100.0, vol_base=1.0), 0.0) == want


def test_climax_rule_also_applies_when_open_interest_did_not_fall(p):
    x = calm(close=99.0, move=-0.08, volume=400.0, oi_1h=2.0, liq=0.0)
    assert rg.classify(x, p, state(prev_close=100.0), 0.0) == C


@pytest.mark.parametrize(
    ("squeeze", "move", "natr", "want"),
    [
        (1.0, 0.0, 2.0, Q),  # volatility level 1
        (1.0, 0.029, 2.0, Q),
        (1.0, -0.029, 2.0, Q),
        (1.0, 0.03, 2.0, R),  # not quiet
        (1.0, -0.05, 2.0, R),
        (1.0, 0.0, 2.8, Q),  # volatility level 1.4
        (1.0, 0.0, 3.0, R),  # level 1.5: not below 1.5, not above it
        (1.0, 0.0, 3.2, H),  # level 1.6: high volatility
        (0.0, 0.0, 2.0, R),
        (-1.0, 0.0, 2.0, R),
    ],
)
def test_squeeze_only_when_quiet(p, squeeze, move, natr, want):
    x = calm(squeeze=squeeze, move=move, natr=natr)
    assert rg.classify(x, p, state(vol_base=2.0), 0.0) == want


@pytest.mark.parametrize(
    ("fired", "volume", "close", "want"),
    [
        (1.0, 201.0, 103.0, B),  # above the upper band (102)
        (1.0, 201.0, 97.0, B),  # below the lower band (98)
        (1.0, 500.0, 101.9, R),  # inside the bands: only the bands widened
        (1.0, 500.0, 98.1, R),
        (1.0, 500.0, 102.0, R),  # on the band is not outside it
        (1.0, 200.0, 103.0, R),  # volume not above 2 x average
        (1.0, 150.0, 103.0, R),
        (0.0, 500.0, 103.0, R),  # the squeeze did not fire
    ],
)
def test_breakout(p, fired, volume, close, want):
    x = calm(squeeze_fired=fired, volume=volume, close=close)
    assert rg.classify(x, p, state(), 0.0) == want


@pytest.mark.parametrize(
    ("slots", "want"),
    [
        ({"atr_rank": 0.91}, H),
        ({"atr_rank": 0.9}, R),  # not above the 90th percentile
        ({"natr": 3.2}, H),  # level 1.6
        ({"natr": 3.0}, R),  # level 1.5
        ({"move": 0.061}, H),
        ({"move": -0.061}, H),
        ({"move": 0.059}, R),
        ({"move": 0.06}, R),  # not beyond the shock
    ],
)
def test_high_volatility(p, slots, want):
    x = calm(**({"natr": 2.0} | slots))  # level 1 unless the case says otherwise
    assert rg.classify(x, p, state(vol_base=2.0), 0.0) == want


@pytest.mark.parametrize(
    ("adx", "d", "move", "want"),
    [
        (26.0, 3 / 7, 0.0, U),
        (26.0, -3 / 7, 0.0, D),
        (26.0, 1.0, -0.02, U),  # strong ADX: the move need not agree
        (26.0, 2 / 7, 0.0, R),  # the vote is not decisive
        (25.0, 1.0, 0.0, R),  # ADX not above 25 and no move
        # 20 < ADX <= 25: a move beyond the quiet 3 % in the vote's direction
        (21.0, 3 / 7, 0.031, U),
        (21.0, -3 / 7, -0.031, D),
        (21.0, 3 / 7, 0.029, R),
        (21.0, 3 / 7, -0.031, R),  # the move is against the vote
        (21.0, -3 / 7, 0.05, R),
        (21.0, 2 / 7, 0.05, R),
        (20.0, 1.0, 0.05, R),  # ADX not above 20
    ],
)
def test_trending(p, adx, d, move, want):
    assert rg.classify(calm(adx=adx, move=move), p, state(), d) == want


def test_without_movement_adx_does_not_make_a_trend(p):
    x = calm(adx=40.0, atr=1e-12)
    assert rg.classify(x, p, state(), 1.0) == R
    x = calm(adx=40.0)
    assert rg.classify(x, p, state(), 1.0) == U


def test_rule_order_first_match_wins(p):
    s = state(prev_close=100.0)
    # capitulation beats squeeze, breakout, high volatility and trend
    assert rg.classify(capitulation_bar(squeeze=1.0), p, s, 1.0) == C
    assert rg.classify(capitulation_bar(atr_rank=0.99, adx=60.0), p, s, 1.0) == C
    assert rg.classify(breakout_bar(oi_1h=-6.0, liq=4.0), p, s, 1.0) == C
    climax = calm(close=99.0, move=-0.08, volume=400.0, squeeze_fired=1.0)  # also a breakout
    assert rg.classify(climax, p, s, -1.0) == C
    # squeeze beats breakout, high volatility and trend
    assert rg.classify(breakout_bar(squeeze=1.0), p, s, 0.0) == Q
    assert rg.classify(squeeze_bar(atr_rank=0.99, adx=60.0), p, s, 1.0) == Q
    # breakout beats high volatility and trend
    assert rg.classify(breakout_bar(atr_rank=0.99, adx=60.0), p, s, 1.0) == B
    assert rg.classify(breakout_bar(move=0.07, natr=4.0), p, s, 1.0) == B
    # high volatility beats trend
    assert rg.classify(calm(atr_rank=0.95, adx=60.0), p, s, 1.0) == H
    assert rg.classify(calm(move=-0.065, adx=60.0), p, s, -1.0) == H


def test_every_regime_is_reachable(p):
    s = state(prev_close=100.0)
    cases = [
        (capitulation_bar(), 0.0), (squeeze_bar(), 0.0), (breakout_bar(), 0.0),
        (calm(atr_rank=0.95), 0.0), (calm(adx=30.0), 1.0), (calm(adx=30.0), -1.0),
        (calm(), 0.0),
    ]
    assert [int(rg.classify(x, p, s, d)) for x, d in cases] == [C, Q, B, H, U, D, R]


# ------------------------------------------------------------------ allowed


@pytest.mark.parametrize(
    ("regime", "move", "want"),
    [
        # a trend ends when the move goes 5 % against it
        (U, -0.049, True), (U, -0.051, False), (U, 0.5, True),
        (D, 0.049, True), (D, 0.051, False), (D, -0.5, True),
        # ranging and squeeze end beyond a 6 % move either way
        (R, 0.059, True), (R, 0.06, True), (R, 0.061, False),
        (R, -0.059, True), (R, -0.061, False),
        (Q, 0.059, True), (Q, 0.061, False), (Q, -0.061, False),
        # a breakout does not survive a 6 % fall, a capitulation not a 6 % rise
        (B, -0.059, True), (B, -0.061, False), (B, 0.5, True),
        (C, 0.059, True), (C, 0.061, False), (C, -0.5, True),
        # high volatility fits any move
        (H, 0.5, True), (H, -0.5, True), (H, 0.0, True),
    ],
)
def test_allowed(p, regime, move, want):
    assert rg.allowed(regime, move, p) is want


# ------------------------------------------------------------------ evidence


def ev(regime, x, p, s=None, d=0.0, bos=0.0, choch=0.0) -> float:
    return rg.evidence(regime, x, p, rg.new_state() if s is None else s, d, bos, choch)


@pytest.mark.parametrize(
    ("d", "adx", "move", "up", "down"),
    [
        # 0.5 clip(k d) + 0.25 clip((ADX - 20 + 5) / 15) + 0.25 clip(k move / 3 %)
        (5 / 7, 27.0, 0.015, 0.5 * 5 / 7 + 0.25 * 0.8 + 0.25 * 0.5, 0.25 * 0.8),
        (-1.0, 50.0, -0.04, 0.25, 1.0),
        (3 / 7, 10.0, 0.0, 0.5 * 3 / 7, 0.0),
        (1.0, 17.5, 0.006, 0.5 + 0.25 / 6 + 0.05, 0.25 / 6),
        (-2 / 7, 35.0, 0.09, 0.5, 0.5 * 2 / 7 + 0.25),
        (0.0, 15.0, 0.0, 0.0, 0.0),
    ],
)
def test_trend_evidence_formula(p, d, adx, move, up, down):
    x = calm(adx=adx, move=move)
    assert ev(U, x, p, d=d) == pytest.approx(up, abs=1e-12)
    assert ev(D, x, p, d=d) == pytest.approx(down, abs=1e-12)


def test_trend_evidence_without_movement_reads_adx_as_zero(p):
    still = calm(adx=50.0, atr=1e-12)
    assert ev(U, still, p, d=1.0) == 0.5
    assert ev(U, calm(adx=50.0), p, d=1.0) == 0.75


@pytest.mark.parametrize(
    ("slots", "d", "base", "want"),
    [
        # flags: ADX < 20, |d| < 3/7, 40 <= RSI <= 60, level < 1, |move| < 3 %
        ({}, 0.0, math.nan, 0.8),
        ({"natr": 1.0}, 0.0, 2.0, 1.0),
        ({"natr": 2.0}, 0.0, 2.0, 0.8),  # level 1 is not below 1
        ({"adx": 20.0}, 0.0, math.nan, 0.6),
        ({"adx": 19.9}, 0.0, math.nan, 0.8),
        ({}, 3 / 7, math.nan, 0.6),
        ({}, -2 / 7, math.nan, 0.8),
        ({"rsi": 40.0}, 0.0, math.nan, 0.8),
        ({"rsi": 60.0}, 0.0, math.nan, 0.8),
        ({"rsi": 39.9}, 0.0, math.nan, 0.6),
        ({"rsi": 60.1}, 0.0, math.nan, 0.6),
        ({"move": 0.03}, 0.0, math.nan, 0.6),
        ({"move": -0.029}, 0.0, math.nan, 0.8),
        ({"adx": 40.0, "rsi": 80.0, "move": 0.05}, 1.0, math.nan, 0.0),
        # without movement ADX reads 0 and RSI 50
        ({"adx": 40.0, "rsi": 80.0, "atr": 1e-12}, 0.0, math.nan, 0.8),
        ({"adx": 40.0, "rsi": 80.0}, 0.0, math.nan, 0.4),
    ],
)
def test_ranging_evidence_is_the_share_of_five_flags(p, slots, d, base, want):
    assert ev(R, calm(**slots), p, state(vol_base=base), d=d) == pytest.approx(want)


@pytest.mark.parametrize(
    ("slots", "prev_atr", "base", "want"),
    [
        # flags: squeeze on, ATR below the previous bar's, level < 1, |move| < 3 %
        ({"squeeze": 1.0}, math.nan, math.nan, 0.5),
        ({"squeeze": 1.0}, 1.2, math.nan, 0.75),
        ({"squeeze": 1.0, "natr": 1.0}, 1.2, 2.0, 1.0),
        ({"squeeze": 1.0}, 1.0, math.nan, 0.5),  # ATR unchanged
        ({"squeeze": 1.0, "move": 0.04}, 0.8, math.nan, 0.25),
        ({"squeeze": 0.0, "move": 0.04}, 1.2, math.nan, 0.25),
        ({"squeeze": -1.0, "move": 0.04}, 0.8, math.nan, 0.0),
    ],
)
def test_squeeze_evidence_is_the_share_of_four_flags(p, slots, prev_atr, base, want):
    s = state(prev_atr=prev_atr, vol_base=base)
    assert ev(Q, calm(**slots), p, s) == pytest.approx(want)


@pytest.mark.parametrize(
    ("slots", "use_liq", "want"),
    [
        # 0.4 clip((level - 1) / 0.5) + 0.3 [rank > 0.9] + 0.3 clip(|move| / 6 %)
        ({"natr": 2.5, "atr_rank": 0.95, "move": 0.03}, 1.0, 0.2 + 0.3 + 0.15),
        ({"natr": 4.0, "atr_rank": 0.9, "move": -0.09}, 1.0, 0.4 + 0.0 + 0.3),
        ({"natr": 1.6, "atr_rank": 0.5, "move": 0.0}, 1.0, 0.0),
        ({"natr": 2.0, "atr_rank": 0.95, "move": 0.015}, 1.0, 0.3 + 0.075),
        # with liquidation data: 0.75 of that + 0.25 [intensity > 3]
        ({"natr": 2.5, "atr_rank": 0.95, "move": 0.03, "liq": 4.0}, 1.0, 0.75 * 0.65 + 0.25),
        ({"natr": 2.5, "atr_rank": 0.95, "move": 0.03, "liq": 3.0}, 1.0, 0.75 * 0.65),
        ({"natr": 1.0, "atr_rank": 0.5, "move": 0.0, "liq": 8.0}, 1.0, 0.25),
        # liquidations switched off: not counted at all
        ({"natr": 2.5, "atr_rank": 0.95, "move": 0.03, "liq": 4.0}, 0.0, 0.65),
        ({"natr": 2.5, "atr_rank": 0.95, "move": 0.03, "liq": 3.0}, 0.0, 0.65),
    ],
)
def test_high_volatility_evidence(p, slots, use_liq, want):
    q = p.copy()
    q[P_USE_LIQ] = use_liq
    assert ev(H, calm(**slots), q, state(vol_base=2.0)) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize(
    ("fired", "volume", "bos", "choch", "want"),
    [
        (1.0, 201.0, 1.0, 0.0, 1.0),
        (1.0, 201.0, 0.0, -1.0, 1.0),
        (1.0, 200.0, 0.0, -1.0, 2 / 3),  # volume not above 2 x average
        (1.0, 201.0, 0.0, 0.0, 2 / 3),
        (0.0, 300.0, 0.0, 0.0, 1 / 3),
        (0.0, 100.0, -1.0, 0.0, 1 / 3),
        (0.0, 100.0, 0.0, 0.0, 0.0),
    ],
)
def test_breakout_evidence(p, fired, volume, bos, choch, want):
    x = calm(squeeze_fired=fired, volume=volume)
    assert ev(B, x, p, bos=bos, choch=choch) == pytest.approx(want)


@pytest.mark.parametrize(
    ("slots", "use_liq", "use_fng", "want"),
    [
        # 24 h fall beyond 7 %, volume above 3 x average; OI below -5 %, liquidations
        # above 3 and Fear & Greed <= 25 only where known (and switched on)
        ({"move": -0.08, "volume": 400.0}, 1, 1, 1.0),
        ({"move": -0.06, "volume": 400.0}, 1, 1, 0.5),
        ({"move": -0.08, "volume": 300.0}, 1, 1, 0.5),
        ({"move": -0.08, "volume": 400.0, "oi_1h": -6.0}, 1, 1, 1.0),
        ({"move": -0.08, "volume": 400.0, "oi_1h": -4.0}, 1, 1, 2 / 3),
        ({"move": -0.08, "volume": 400.0, "oi_1h": -6.0, "liq": 4.0, "fng": 25.0}, 1, 1, 1.0),
        ({"move": -0.08, "volume": 400.0, "oi_1h": -6.0, "liq": 4.0, "fng": 26.0}, 1, 1, 0.8),
        ({"move": -0.08, "volume": 100.0, "liq": 2.0, "fng": 20.0}, 1, 1, 0.5),
        ({"move": -0.08, "volume": 400.0, "fng": 26.0}, 1, 1, 2 / 3),
        ({"move": -0.08, "volume": 400.0, "fng": 0.0}, 1, 1, 1.0),
        ({"move": 0.0, "volume": 100.0, "oi_1h": -6.0, "liq": 4.0, "fng": 10.0}, 1, 1, 0.6),
        # switched off: not counted, whatever the value
        ({"move": -0.08, "volume": 400.0, "liq": 1.0}, 0, 1, 1.0),
        ({"move": -0.08, "volume": 400.0, "liq": 4.0}, 0, 1, 1.0),
        ({"move": -0.08, "volume": 400.0, "oi_1h": -4.0, "fng": 90.0}, 1, 0, 2 / 3),
        ({"move": 0.0, "volume": 100.0, "fng": 10.0}, 1, 0, 0.0),
    ],
)
def test_capitulation_evidence(p, slots, use_liq, use_fng, want):
    q = p.copy()
    q[P_USE_LIQ], q[P_USE_FNG] = use_liq, use_fng
    assert ev(C, calm(**slots), q) == pytest.approx(want)


@pytest.mark.parametrize(("move", "want"), [(-0.08, 0.5), (-0.099, 1.0)])
def test_capitulation_evidence_counts_the_fall_the_market_needs(p, move, want):
    # NATR baseline 1 %: a fall needs to be beyond 9.8 %.
    x = calm(move=move, volume=400.0, natr=1.0)
    assert ev(C, x, p, state(vol_base=1.0)) == want


def test_evidence_is_in_unit_interval_on_random_rows(p):
    rng = np.random.default_rng(123)
    for _ in range(3000):
        x = rng.normal(0.0, 30.0, N_INPUTS)
        x[X["atr_rank"]] = rng.uniform(0, 1)
        x[X_SQUEEZE] = rng.choice([-1.0, 0.0, 1.0])
        x[X_SQUEEZE_FIRED] = rng.choice([0.0, 1.0])
        x[X_ST_DIR] = rng.choice([-1.0, 1.0])
        x[X_FNG] = rng.uniform(0, 100)
        x[X["move_24h"]] = rng.normal(0.0, 0.08)
        # Candle and indicator slots are known once the engine is warm; the slower inputs
        # and the 24-hour move may be missing.
        missing = rng.random(N_INPUTS) < 0.2
        missing[: X["cmf"] + 1] = False
        x[missing] = math.nan
        s = state(*rng.normal(50.0, 30.0, 3))
        d = rg.direction_vote(x, float(rng.choice([-1.0, 0.0, 1.0])))
        assert -1.0 <= d <= 1.0
        bos, choch = float(rng.choice([-1.0, 0.0, 1.0])), float(rng.choice([-1.0, 0.0, 1.0]))
        q = p.copy()
        q[P_USE_LIQ], q[P_USE_FNG] = rng.choice([0.0, 1.0], 2)
        assert rg.classify(x, q, s, d) in ALL_CODES
        for code in ALL_CODES:
            e = rg.evidence(code, x, q, s, d, bos, choch)
            assert 0.0 <= e <= 1.0, (code, e)


# ------------------------------------------------------------------ state machine

#: Small machines: slow evidence equal to the bar's evidence (smoothing_bars 1: release 1),
#: no expiry, so a regular change is decided by the bar's values alone.
FAST = dict(confirmation_bars=2, cooldown_bars=3, smoothing_bars=1, expire_below=0.0)


def test_first_bar_assigns_the_raw_regime():
    p = make_p()
    outs, s = drive(p, [calm()])
    assert outs[0].tolist() == pytest.approx([R, 0.8, -1.0, R, 0.8])
    assert s[rg.R_CURRENT] == R and s[rg.R_DURATION] == 1 and s[rg.R_COOLDOWN] == 0
    # The smoothed and slow evidence start at the first bar's values.
    assert s[rg.R_EVIDENCE + Q] == 0.25 and s[rg.R_SLOW + R] == 0.8

    outs, s = drive(p, [trend(1.0)])
    assert outs[0].tolist() == pytest.approx([U, 11 / 12, -1.0, U, 11 / 12])

    # An event as the first regime is held like any event.
    outs, s = drive(p, [capitulation_bar()])
    assert outs[0, 2] == -1.0 and outs[0, 3] == C
    assert s[rg.R_HOLD] == p[P_EVENT_BARS] and s[rg.R_COOLDOWN] == 0


@pytest.mark.parametrize("confirm", [1, 2, 3, 5])
def test_regular_change_after_confirmation_bars_in_a_row(confirm):
    p = make_p(**FAST | {"confirmation_bars": confirm})
    outs, s = drive(p, [calm()] + [trend(1.0)] * 8)
    # Each trend bar: raw trending up with evidence 11/12 >= 0.5, ranging 0.4: a lead of
    # 0.517 >= 0.3.
    assert (outs[1:, 0] == U).all() and outs[1:, 1] == pytest.approx(11 / 12)
    assert regimes(outs) == [R] * confirm + [U] * (9 - confirm)
    assert changes(outs) == [confirm]
    assert outs[confirm, 2] == R
    assert np.isnan(outs[1:confirm, 2]).all() and np.isnan(outs[confirm + 1 :, 2]).all()
    assert s[rg.R_DURATION] == 9 - confirm
    assert s[rg.R_COOLDOWN] == 0  # set to 3 by the change, counted down since
    assert np.isnan(s[rg.R_PENDING]) and s[rg.R_PENDING_BARS] == 0


def test_pending_bars_and_cooldown_while_confirming():
    p = make_p(**FAST | {"confirmation_bars": 3})
    _, s = drive(p, [calm(), trend(1.0), trend(1.0)])
    assert s[rg.R_CURRENT] == R and s[rg.R_PENDING] == U and s[rg.R_PENDING_BARS] == 2
    drive(p, [trend(1.0)], s)
    assert s[rg.R_CURRENT] == U and s[rg.R_COOLDOWN] == 3 and s[rg.R_DURATION] == 1


def test_an_interrupted_challenger_starts_again():
    p = make_p(**FAST)
    up, down = trend(1.0), trend(-1.0)
    # the current regime comes back in between
    outs, _ = drive(p, [calm(), up, calm(), up, up])
    assert changes(outs) == [4] and outs[4, 3] == U
    # another challenger takes over the count
    outs, _ = drive(p, [calm(), up, down, up, up])
    assert outs[2, 0] == D
    assert changes(outs) == [4] and outs[4, 3] == U
    outs, _ = drive(p, [calm(), up, down, down])
    assert changes(outs) == [3] and outs[3, 3] == D


def test_a_challenger_bar_without_the_margin_restarts_the_count():
    """Bar 2 reads trending up, but with five votes and no move (evidence 0.607, lead
    0.207 < 0.3): it clears the pending count, so the change comes on bar 4, not 3."""
    p = make_p(**FAST | {"cooldown_bars": 0})
    weak = trend(1.0, st=0.0, macd_hist=0.0, move=0.0)
    outs, _ = drive(p, [calm(), trend(1.0), weak, trend(1.0), trend(1.0)])
    assert outs[2, 0] == U
    assert changes(outs) == [4]


@pytest.mark.parametrize(("move", "switches"), [(0.0, False), (0.02, True)])
def test_regular_change_needs_the_margin(move, switches):
    """Five of seven votes up (SuperTrend and MACD neutral), ADX 35: trend evidence
    0.5 * 5/7 + 0.25 + 0.25 * move / 3 %, ranging 0.4 (RSI, quiet): the lead is 0.207
    without a move, 0.374 with +2 %."""
    p = make_p(**FAST | {"cooldown_bars": 0})
    x, k = trend(1.0, st=0.0, macd_hist=0.0, move=move)
    outs, _ = drive(p, [calm()] + [(x, k)] * 10)
    assert (outs[1:, 0] == U).all()
    assert outs[1, 1] == pytest.approx(0.5 * 5 / 7 + 0.25 + 0.25 * move / 0.03)
    assert outs[1, 1] >= 0.5  # it is not the confidence threshold that holds it back
    assert changes(outs) == ([2] if switches else [])


@pytest.mark.parametrize(("threshold", "switches"), [(0.9, True), (0.95, False)])
def test_regular_change_needs_raw_evidence_of_the_threshold(threshold, switches):
    p = make_p(**FAST | {"cooldown_bars": 0, "confidence_threshold": threshold})
    outs, _ = drive(p, [calm()] + [trend(1.0)] * 10)  # evidence 11/12 = 0.917
    assert changes(outs) == ([2] if switches else [])


@pytest.mark.parametrize(("threshold", "switches"), [(0.8, True), (0.81, False)])
def test_raw_evidence_equal_to_the_threshold_is_enough(threshold, switches):
    # Trending up, then calm bars: ranging evidence 4/5 (== 0.8 exactly), lead 0.8.
    p = make_p(**FAST | {"cooldown_bars": 0, "confidence_threshold": threshold})
    outs, _ = drive(p, [trend(1.0)] + [calm()] * 5)
    assert (outs[1:, 1] == 0.8).all()
    assert changes(outs) == ([2] if switches else [])


def test_the_lead_is_measured_on_the_slow_evidence():
    """smoothing_bars 7 (release 0.25). After calm, t trend bars: slow trend evidence
    11/12 (1 - 0.75^t), slow ranging 0.4 + 0.4 * 0.75^t: the lead reaches 0.3 at t = 7
    (0.282 at t = 6). The fast envelope would have led by 0.3 at t = 4 already."""
    p = make_p(confirmation_bars=1, cooldown_bars=0, smoothing_bars=7, expire_below=0.0)
    outs, s = drive(p, [calm()] + [trend(1.0)] * 4)
    assert s[rg.R_EVIDENCE + U] - s[rg.R_EVIDENCE + R] >= 0.3
    assert s[rg.R_SLOW + U] == pytest.approx(11 / 12 * (1 - 0.75**4))
    assert s[rg.R_SLOW + R] == pytest.approx(0.4 + 0.4 * 0.75**4)
    assert changes(outs) == []
    more, _ = drive(p, [trend(1.0)] * 4, s)
    outs = np.vstack([outs, more])
    assert changes(outs) == [7] and regimes(outs)[7] == U


def test_entering_high_volatility_needs_half_the_margin():
    """After calm, t high-volatility bars (evidence 0.55, ranging 0.2) at release 0.25:
    slow lead 0.35 - 1.15 * 0.75^t reaches 0.15 at t = 7 (0.145 at t = 6); the full
    margin 0.3 would take until t = 11."""
    p = make_p(confirmation_bars=1, cooldown_bars=0, smoothing_bars=7, expire_below=0.0)
    outs, _ = drive(p, [calm()] + [calm(**HV_BAR)] * 8)
    assert (outs[1:, 0] == H).all() and outs[1, 1] == pytest.approx(0.55)
    assert changes(outs) == [7] and regimes(outs)[7] == H


def test_leaving_high_volatility_needs_the_plain_margin():
    """High volatility first, then t calm bars: slow lead of ranging 0.8 - 1.15 * 0.75^t
    reaches 0.3 at t = 3 (0.153 at t = 2)."""
    p = make_p(confirmation_bars=1, cooldown_bars=0, smoothing_bars=7, expire_below=0.0)
    outs, _ = drive(p, [calm(**HV_BAR)] + [calm()] * 6)
    assert regimes(outs)[0] == H
    assert changes(outs) == [3] and regimes(outs)[3] == R


@pytest.mark.parametrize("cooldown", [1, 3, 5])
def test_cooldown_after_a_regular_change(cooldown):
    p = make_p(**FAST | {"confirmation_bars": 1, "cooldown_bars": cooldown})
    outs, _ = drive(p, [calm(), trend(1.0)] + [calm()] * 7)
    # Back to ranging (lead 0.8, confirmed on every bar) once the cooldown has run out.
    assert changes(outs) == [1, 1 + cooldown]
    assert regimes(outs) == [R] + [U] * cooldown + [R] * (8 - cooldown)


def test_capitulation_switches_at_once_during_a_cooldown():
    p = make_p(**FAST | {"confirmation_bars": 1, "cooldown_bars": 5})
    outs, s = drive(p, [calm(), trend(1.0), capitulation_bar()])
    assert changes(outs) == [1, 2]
    assert outs[2].tolist()[0] == C and outs[2, 2] == U and outs[2, 3] == C
    # The event neither resets nor extends the cooldown (5, counted down once).
    assert s[rg.R_COOLDOWN] == 4 and s[rg.R_HOLD] == p[P_EVENT_BARS]
    # the climax rule too
    climax = calm(close=99.0, move=-0.08, volume=400.0)
    outs, _ = drive(p, [calm(), trend(1.0), climax])
    assert outs[2, 0] == C and changes(outs) == [1, 2]


@pytest.mark.parametrize(
    ("first", "want"),
    [
        (squeeze_bar(), B),
        (calm(), R),
        (trend(1.0), U),
        (calm(**HV_BAR), H),
    ],
    ids=["squeeze", "ranging", "trending_up", "high_volatility"],
)
def test_breakout_switches_only_from_a_confirmed_squeeze(first, want):
    p = make_p()
    outs, _ = drive(p, [first, breakout_bar()])
    assert outs[1, 0] == B  # the raw regime is a breakout either way
    assert regimes(outs)[1] == want


def test_breakout_from_a_squeeze_confirmed_by_the_machine():
    """Ranging, then squeeze bars with a falling ATR, ADX 22, RSI 35 (squeeze evidence
    0.75, ranging 0.4: lead 0.35), then the breakout during the cooldown."""
    p = make_p(**FAST)
    squeezes = [squeeze_bar(atr=1.0 - 0.01 * k, adx=22.0, rsi=35.0) for k in (1, 2)]
    outs, _ = drive(p, [calm()] + squeezes + [breakout_bar()])
    assert outs[1, 1] == pytest.approx(0.75)
    assert regimes(outs) == [R, R, Q, B]
    assert changes(outs) == [2, 3] and outs[3, 2] == Q


@pytest.mark.parametrize("event_bars", [1, 2, 4])
def test_event_regime_ends_event_bars_after_its_last_trigger(event_bars):
    """The event regime is reported on its trigger bar and event_bars - 1 more, then
    hands over to ranging (raw, allowed and best supported)."""
    p = make_p(event_bars=event_bars, confirmation_bars=6)
    outs, _ = drive(p, [calm(), capitulation_bar()] + [calm()] * 6)
    assert regimes(outs) == [R] + [C] * event_bars + [R] * (7 - event_bars)
    assert changes(outs) == [1, 1 + event_bars]
    # A new trigger while the event lasts extends it from that bar.
    bars = [calm(), capitulation_bar(), calm(), capitulation_bar()] + [calm()] * 6
    outs, _ = drive(p, bars)
    if event_bars == 1:  # ended on bar 2; bar 3 is a new capitulation
        assert regimes(outs) == [R, C, R, C, R, R, R, R, R, R]
    else:  # bars 1 .. 3 + event_bars - 1
        assert regimes(outs) == [R] + [C] * (2 + event_bars) + [R] * (7 - event_bars)


def test_breakout_lasts_event_bars_and_is_extended_by_new_triggers():
    p = make_p(event_bars=3)
    outs, _ = drive(p, [squeeze_bar(), breakout_bar(), calm(), breakout_bar()] + [calm()] * 4)
    assert regimes(outs) == [Q, B, B, B, B, B, R, R]
    assert changes(outs) == [1, 6]


def test_event_regime_ends_at_once_when_the_move_contradicts_it():
    """A capitulation does not survive a rise beyond the shock (raw high volatility)."""
    p = make_p()
    outs, _ = drive(p, [calm(), capitulation_bar(), calm(move=0.061)])
    assert regimes(outs) == [R, C, H]
    outs, _ = drive(p, [calm(), capitulation_bar(), calm(move=0.059, atr_rank=0.95)])
    assert regimes(outs) == [R, C, C]


def _capitulation_after_high_volatility():
    """High volatility, a climax capitulation, then four ranging bars with weak support
    (ranging 0.4: |direction| and quiet). At the default smoothing (release 2/73): on the
    hand-over bar ranging's envelope is 0.2 -> 0.2 -> 0.3 -> 0.35 -> 0.375 -> 0.3875,
    high volatility's 0.55 -> 0.575, then decays to 0.575 (71/73)^4 = 0.515."""
    p = make_p()
    climax = calm(close=95.0, move=-0.08, volume=400.0, atr_rank=0.95, adx=22.0, rsi=30.0)
    weak = calm(adx=22.0, rsi=70.0)
    return drive(p, [calm(**HV_BAR), climax] + [weak] * 4)


def test_ending_event_hands_over_to_the_raw_regime_when_the_move_allows_it():
    outs, s = _capitulation_after_high_volatility()
    assert outs[1, 0] == C and outs[1, 1] == 1.0
    assert s[rg.R_EVIDENCE + R] == pytest.approx(0.3875)
    assert s[rg.R_EVIDENCE + H] == pytest.approx(0.575 * (71 / 73) ** 4)
    # capitulation on its trigger bar and three more; then the raw reading, ranging, even
    # though high volatility has the higher envelope
    assert outs[5, 0] == R
    assert regimes(outs) == [H, C, C, C, C, R]
    assert changes(outs) == [1, 5] and outs[5, 2] == C


def test_a_breakout_reading_never_takes_over_from_an_ending_capitulation():
    """Outside a squeeze a breakout reading is no event: the ending capitulation goes to
    the regime with the highest envelope, ranging (0.8 on every bar)."""
    p = make_p()
    outs, s = drive(p, [calm(), capitulation_bar()] + [calm()] * 3 + [breakout_bar()])
    assert outs[5, 0] == B
    assert regimes(outs) == [R, C, C, C, C, R]
    assert s[rg.R_EVIDENCE + R] == pytest.approx(0.8)


def test_a_regular_challenger_does_not_cut_an_event_short():
    p = make_p(confirmation_bars=2, cooldown_bars=0, event_bars=4)
    outs, _ = drive(p, [calm(), capitulation_bar()] + [calm()] * 5)
    assert regimes(outs) == [R, C, C, C, C, R, R]


@pytest.mark.parametrize(
    ("first", "move", "want"),
    [
        (calm(), 0.059, R),
        (calm(), -0.059, R),
        (calm(), 0.06, R),
        (calm(), 0.061, H),
        (calm(), -0.061, H),
        (squeeze_bar(), 0.059, Q),
        (squeeze_bar(), 0.061, H),
        (squeeze_bar(), -0.061, H),
    ],
)
def test_shock_ends_ranging_and_squeeze_at_once(first, move, want):
    """ATR rank 0.95: the raw regime is high volatility inside the shock too. Beyond it
    high volatility has the highest envelope the move allows (0.3 against the trend's
    0.125)."""
    p = make_p()
    outs, s = drive(p, [first, calm(move=move, atr_rank=0.95)])
    assert outs[1, 0] == H
    assert regimes(outs)[1] == want
    assert s[rg.R_COOLDOWN] == 0  # not a regular change


@pytest.mark.parametrize(
    ("k", "move", "want"),
    [
        (1.0, -0.049, U),
        (1.0, -0.051, R),
        (1.0, 0.05, U),
        (1.0, 0.07, U),  # a shock in the trend's direction does not end it
        (-1.0, 0.049, D),
        (-1.0, 0.051, R),
        (-1.0, -0.07, D),
    ],
)
def test_trend_ends_at_once_beyond_the_guard_against_it(k, move, want):
    """On the guard-breaking bar ranging's envelope is 0.4 -> 0.5, ahead of the opposite
    trend (0.25), high volatility (0.1775) and squeeze (0.243)."""
    p = make_p()
    outs, s = drive(p, [trend(k), calm(move=move)])
    assert outs[1, 0] == (H if abs(move) > 0.06 else R)
    assert regimes(outs)[1] == want
    assert s[rg.R_COOLDOWN] == 0


def test_shock_hands_over_to_the_highest_envelope_the_move_allows():
    """Trending up (RSI 70), then a trend-up bar with the 24 h move at -5.5 %: the raw
    reading (trending up) is forbidden by the move. Envelopes then: trending down 0.25 ->
    0.375, ranging 0.2 -> 0.195, high volatility 0.1 -> 0.1875, squeeze 0.25 -> 0.243."""
    p = make_p()
    outs, s = drive(p, [trend(1.0, rsi=70.0), trend(1.0, rsi=70.0, move=-0.055)])
    assert outs[1, 0] == U
    assert s[rg.R_EVIDENCE + D] == pytest.approx(0.375)
    assert regimes(outs) == [U, D] and outs[1, 2] == U


def test_shock_hands_over_to_the_highest_envelope_not_the_raw_reading():
    """All seven votes up but ADX 15: ranging (trend evidence 2/3, ranging 0.6). Then +7 %:
    raw high volatility (envelope 0.1 -> 0.2), but trending up's envelope is 2/3 -> 0.708."""
    p = make_p()
    up = trend(1.0, adx=15.0)
    outs, s = drive(p, [up, trend(1.0, adx=15.0, move=0.07)])
    assert outs[0, 0] == R and outs[1, 0] == H
    assert s[rg.R_EVIDENCE + U] == pytest.approx(2 / 3 + (0.75 - 2 / 3) / 2)
    assert s[rg.R_EVIDENCE + H] == pytest.approx(0.2)
    assert regimes(outs) == [R, U]


def test_expiry_switches_at_once_during_a_cooldown():
    """Ranging, trending up confirmed in one bar (cooldown 24), then calm: at release 1 the
    trend's envelope falls to 0 < 0.35 while ranging's is 0.4 -> 0.6, the highest."""
    p = make_p(confirmation_bars=1, cooldown_bars=24, smoothing_bars=1)
    outs, s = drive(p, [calm(), trend(1.0), calm()])
    assert regimes(outs) == [R, U, R]
    assert changes(outs) == [1, 2] and outs[2, 2] == U
    assert outs[2, 4] == pytest.approx(0.6)
    assert s[rg.R_COOLDOWN] == 23  # counted down, not set again
    # Without expiry the cooldown holds the trend.
    p = make_p(confirmation_bars=1, cooldown_bars=24, smoothing_bars=1, expire_below=0.0)
    outs, _ = drive(p, [calm(), trend(1.0), calm()])
    assert regimes(outs) == [R, U, U]


def test_expiry_waits_for_a_regime_with_a_higher_envelope():
    """Ranging, then bars of ADX 22, RSI 70 and a +3.5 % move (raw still ranging): at
    release 1 ranging's envelope is 0.2 < 0.35 at once; trending up's (evidence 0.117 +
    0.25) rises 0 -> 0.183 -> 0.275, the highest of the others from the second bar."""
    p = make_p(smoothing_bars=1)
    x = calm(adx=22.0, rsi=70.0, move=0.035)
    outs, s = drive(p, [calm(), x, x])
    assert (outs[1:, 0] == R).all() and outs[1, 1] == pytest.approx(0.2)
    assert regimes(outs) == [R, R, U]
    assert outs[1, 4] == pytest.approx(0.2)
    assert outs[2, 4] == pytest.approx(0.275)
    assert s[rg.R_COOLDOWN] == 0


def test_expiry_goes_to_the_best_supported_regime_not_the_raw_reading():
    """Ranging, then ATR rank 0.95 with three EMA votes up (direction 3/7), ADX 22, RSI 70:
    raw high volatility (evidence 0.3, envelope 0 -> 0.15), ranging 0.2 (quiet only),
    squeeze 0.25 (quiet; envelope 0.25 -> 0.25): squeeze takes over."""
    p = make_p(smoothing_bars=1)
    x = calm(atr_rank=0.95, ema_9=102.0, ema_21=101.0, close=100.5, adx=22.0, rsi=70.0)
    outs, _ = drive(p, [calm(), x])
    assert outs[1, 0] == H and outs[1, 1] == pytest.approx(0.3)
    assert regimes(outs) == [R, Q]
    assert outs[1, 4] == pytest.approx(0.25)


def test_smoothed_evidence_rises_by_half_the_gap_and_decays_by_the_release():
    """smoothing_bars 9: release 0.2. Ranging evidence 0.8, 0.4, 0.8; trending up 0,
    7/60, 0 (ADX 22)."""
    p = make_p(smoothing_bars=9)
    assert p[P_RELEASE] == pytest.approx(0.2)
    outs, s = drive(p, [calm(), calm(adx=22.0, rsi=35.0), calm()])
    assert regimes(outs) == [R, R, R]
    assert outs[:, 1] == pytest.approx([0.8, 0.4, 0.8])
    # reported confidence: the confirmed regime's smoothed evidence
    assert outs[:, 4] == pytest.approx([0.8, 0.72, 0.76])
    assert s[rg.R_EVIDENCE + R] == pytest.approx(0.76)
    assert s[rg.R_SLOW + R] == pytest.approx(0.736)  # 0.8 -> 0.72 -> 0.736
    tu = 0.25 * 7 / 15
    assert s[rg.R_EVIDENCE + U] == pytest.approx(0.5 * tu * 0.8)
    assert s[rg.R_SLOW + U] == pytest.approx(0.2 * tu * 0.8)


def test_reported_confidence_follows_the_new_regime_on_a_change():
    # FAST (release 1, confirmation 2): the trend's smoothed evidence rises 0 -> 11/24
    # -> 11/24 + (11/12 - 11/24) / 2 = 0.6875 on the bar it is confirmed.
    p = make_p(**FAST)
    outs, _ = drive(p, [calm(), trend(1.0), trend(1.0)])
    assert regimes(outs) == [R, R, U]
    assert outs[1, 4] == pytest.approx(0.4)  # ranging's, after the release of 1
    assert outs[2, 4] == pytest.approx(0.6875)


def test_durations_count_bars_in_the_regime():
    p = make_p(**FAST | {"cooldown_bars": 0})
    durations = []
    s = rg.new_state()
    for bar in [calm()] * 3 + [trend(1.0)] * 4 + [capitulation_bar(), calm()]:
        drive(p, [bar], s)
        durations.append(int(s[rg.R_DURATION]))
    assert durations == [1, 2, 3, 4, 1, 2, 3, 1, 2]


# ------------------------------------------------------------------ through compute_history


@pytest.fixture(scope="module")
def bundle():
    from replay.server import load_bundle

    return load_bundle()


@pytest.fixture(scope="module")
def btc_candles(bundle) -> pd.DataFrame:
    candles = bundle["candles"]
    return candles[candles["symbol"] == "BTCUSDT"].iloc[:3000].reset_index(drop=True)


def _config(**regime):
    return dataclasses.replace(CONFIG, regime=dataclasses.replace(CONFIG.regime, **regime))


def _history(candles, bundle, cfg, exchange):
    slow = ([bundle[k] for k in ("funding", "open_interest", "long_short", "fear_greed")]
            if exchange else [None] * 4)
    return compute_history_and_transitions(candles, *slow, cfg, symbol="BTCUSDT",
                                           interval="60")


MACHINES = [
    pytest.param({}, False, id="defaults"),
    pytest.param({}, True, id="defaults-exchange-inputs"),
    pytest.param(dict(confirmation_bars=2, cooldown_bars=3, smoothing_bars=3), True,
                 id="fast"),
    pytest.param(dict(confirmation_bars=1, cooldown_bars=0, smoothing_bars=1,
                      event_bars=1), False, id="fastest"),
]


@pytest.mark.parametrize(("overrides", "exchange"), MACHINES)
def test_history_reports_every_change_as_one_transition(btc_candles, bundle, overrides,
                                                        exchange):
    hist, transitions = _history(btc_candles, bundle, _config(**overrides), exchange)
    assert len(hist) == len(btc_candles)
    regime = hist["regime"]
    na = regime.isna().to_numpy()
    # NA only during warm-up: a prefix, then always one of the seven names.
    warm = int(np.argmin(na))
    assert 0 < warm < 300
    assert na[:warm].all() and not na[warm:].any()
    assert set(regime[warm:]) <= set(REGIMES)
    assert hist["regime_duration_bars"].isna().to_numpy().tolist() == na.tolist()
    conf = hist["regime_confidence"].to_numpy(dtype=np.float64, na_value=np.nan)
    assert np.isnan(conf[:warm]).all()
    assert ((conf[warm:] >= 0) & (conf[warm:] <= 1)).all()

    values = regime[warm:].to_numpy(dtype=object)
    idx = np.flatnonzero(values[1:] != values[:-1]) + 1 + warm
    assert len(idx) > 20
    # Durations start at 1 on the first bar and on every change and grow by one otherwise.
    dur = hist["regime_duration_bars"].to_numpy(dtype=np.float64, na_value=np.nan)
    assert dur[warm] == 1
    change_set = set(idx.tolist())
    for t in range(warm + 1, len(hist)):
        assert dur[t] == (1 if t in change_set else dur[t - 1] + 1)
    # Every change is one row of the transitions frame, and nothing else is: the first
    # regime after warm-up is assigned, not recorded.
    assert len(transitions) == len(idx)
    ts = hist["timestamp"]
    assert ts.iloc[warm] not in set(transitions["timestamp"])
    got = [(t, a, b) for t, a, b in zip(
        transitions["timestamp"], transitions["from_regime"], transitions["to_regime"],
        strict=True)]
    want = [(ts.iloc[t], regime.iloc[t - 1], regime.iloc[t]) for t in idx]
    assert got == want


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_history_enters_breakouts_only_from_squeezes(bundle, symbol):
    candles = bundle["candles"][bundle["candles"]["symbol"] == symbol]
    slow = [bundle[k] for k in ("funding", "open_interest", "long_short", "fear_greed")]
    _, transitions = compute_history_and_transitions(candles, *slow, CONFIG, symbol=symbol,
                                                     interval="60")
    into = transitions[transitions["to_regime"] == "breakout"]
    assert len(into) > 5
    assert set(into["from_regime"]) == {"squeeze"}


@pytest.mark.parametrize(("overrides", "exchange"), MACHINES[1:3])
def test_point_in_time_appending_bars_never_changes_earlier_rows(btc_candles, bundle,
                                                                 overrides, exchange):
    cfg = _config(**overrides)
    full, full_trans = _history(btc_candles, bundle, cfg, exchange)
    for n in (120, 777, 2001):
        part, part_trans = _history(btc_candles.iloc[:n], bundle, cfg, exchange)
        head = full.iloc[:n].reset_index(drop=True)
        pd.testing.assert_frame_equal(part, head, check_exact=True)
        last = head["timestamp"].iloc[-1]
        assert _rows(part_trans) == _rows(full_trans[full_trans["timestamp"] <= last])


def _rows(transitions: pd.DataFrame) -> list[tuple]:
    return list(transitions[["timestamp", "from_regime", "to_regime"]].itertuples(
        index=False, name=None))
