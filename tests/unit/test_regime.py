"""Regime classifier, evidence and the hysteresis state machine (sentiment/regime.py).

Rules, their order and the state machine follow the module docstring: first matching rule
wins; a change needs ``confirmation_bars`` consecutive bars of a raw regime with enough
confidence (event regimes at once) and ``cooldown_bars`` since the last change.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from sentiment import engine
from sentiment import regime as rg
from sentiment.config import load_config
from sentiment.history import compute_history, compute_history_and_transitions
from sentiment.layout import (
    N_INPUTS,
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
    X_MACD_HIST,
    X_OI_1H,
    X_SQUEEZE,
    X_SQUEEZE_FIRED,
    X_ST_DIR,
    X_VOL_SMA,
    X_VOLUME,
    X,
)
from sentiment.models import EVENT_REGIMES, REGIME_CODE, REGIMES

CONFIG = load_config()
EVENTS = {REGIME_CODE[name] for name in EVENT_REGIMES}
ALL_CODES = list(range(len(REGIMES)))


@pytest.fixture
def p() -> np.ndarray:
    return engine.params(CONFIG)


_ALIAS = {"oi_1h": "open_interest_change_1h_pct", "liq": "liquidation_intensity"}


def row(value: float = math.nan, **slots: float) -> np.ndarray:
    """An input row filled with ``value``; keywords name input slots (sentiment.layout).

    Prices move (ATR 1 at a close of 100) unless the caller says otherwise: without
    movement the oscillators read neutral.
    """
    slots.setdefault("atr", 1.0)
    slots.setdefault("close", 100.0)
    x = np.full(N_INPUTS, value)
    for name, v in slots.items():
        x[X[_ALIAS.get(name, name)]] = v
    return x


def state(prev_close=math.nan, prev_bw=math.nan, prev_atr=math.nan) -> np.ndarray:
    s = rg.new_state()
    s[rg.R_PREV_CLOSE] = prev_close
    s[rg.R_PREV_BW] = prev_bw
    s[rg.R_PREV_ATR] = prev_atr
    return s


# Inputs on which each rule fires (the thresholds are read from ``p``).


def capitulation_liq(p):
    return row(oi_1h=-(p[P_CAPITULATION_OI] + 1.0), liq=p[P_SPIKE] + 1.0)


def capitulation_spike(p):
    # Previous close 100, a down close at 90 with true range 101 - 89 = 12 > 3 x ATR 3.
    x = row(oi_1h=-(p[P_CAPITULATION_OI] + 1.0), high=101.0, low=89.0, close=90.0, atr=3.0)
    return x, state(prev_close=100.0)


def squeeze_row():
    return row(squeeze=1.0, squeeze_fired=0.0)


def breakout_row(p):
    return row(squeeze=0.0, squeeze_fired=1.0, volume=(p[P_BREAKOUT_VOLUME] + 0.5) * 100.0,
               volume_sma_20=100.0)


def high_vol_row(p):
    return row(atr_rank=min(1.0, p[P_ATR_HV] + 0.05))


def trend_row(p):
    return row(adx=p[P_ADX_TREND] + 5.0)


# ------------------------------------------------------------------ classify


def test_neutral_row_is_ranging(p):
    assert rg.classify(row(), p, state(), 0.0) == rg.RANGING
    assert rg.classify(row(0.0), p, state(), 0.0) == rg.RANGING


def test_capitulation_by_liquidation_intensity(p):
    assert p[P_USE_LIQ] > 0
    assert rg.classify(capitulation_liq(p), p, state(), 0.0) == rg.CAPITULATION


def test_capitulation_needs_both_oi_drop_and_liquidation_spike(p):
    x = capitulation_liq(p)
    x[X_LIQ_INTENSITY] = p[P_SPIKE] - 0.5
    assert rg.classify(x, p, state(), 0.0) != rg.CAPITULATION
    x = capitulation_liq(p)
    x[X_OI_1H] = -(p[P_CAPITULATION_OI] - 1.0)  # fell, but less than the threshold
    assert rg.classify(x, p, state(), 0.0) != rg.CAPITULATION
    x = capitulation_liq(p)
    x[X_OI_1H] = math.nan  # no open interest: no capitulation
    assert rg.classify(x, p, state(), 0.0) != rg.CAPITULATION


def test_capitulation_by_price_spike_when_liquidations_are_missing(p):
    x, s = capitulation_spike(p)
    assert math.isnan(x[X_LIQ_INTENSITY])
    assert rg.classify(x, p, s, 0.0) == rg.CAPITULATION


def test_price_spike_proxy_also_used_when_liquidations_are_disabled(p):
    x, s = capitulation_spike(p)
    x[X_LIQ_INTENSITY] = 0.0  # would veto, but the input is switched off
    q = p.copy()
    q[P_USE_LIQ] = 0.0
    assert rg.classify(x, q, s, 0.0) == rg.CAPITULATION
    assert rg.classify(x, p, s, 0.0) != rg.CAPITULATION


def test_price_spike_proxy_conditions(p):
    x, s = capitulation_spike(p)
    up = x.copy()
    up[X_HIGH], up[X_CLOSE] = 112.0, 111.0  # an up close
    assert rg.classify(up, p, s, 0.0) != rg.CAPITULATION
    calm = x.copy()
    calm[X_ATR] = 12.0 / p[P_SPIKE] + 0.5  # true range no longer above 3 x ATR
    assert rg.classify(calm, p, s, 0.0) != rg.CAPITULATION
    # The true range counts the gap from the previous close: a narrow bar far below it.
    gap = row(oi_1h=-(p[P_CAPITULATION_OI] + 1.0), high=80.0, low=79.0, close=79.5, atr=3.0)
    assert rg.classify(gap, p, s, 0.0) == rg.CAPITULATION
    # Without a previous close there is no spike.
    assert rg.classify(x, p, state(), 0.0) != rg.CAPITULATION


def test_squeeze(p):
    assert rg.classify(squeeze_row(), p, state(), 0.0) == rg.SQUEEZE
    for other in (0.0, -1.0):
        assert rg.classify(row(squeeze=other), p, state(), 0.0) != rg.SQUEEZE


def test_breakout_needs_fired_squeeze_and_volume(p):
    assert rg.classify(breakout_row(p), p, state(), 0.0) == rg.BREAKOUT
    x = breakout_row(p)
    x[X_VOLUME] = (p[P_BREAKOUT_VOLUME] - 0.5) * x[X_VOL_SMA]
    assert rg.classify(x, p, state(), 0.0) != rg.BREAKOUT
    x = breakout_row(p)
    x[X_SQUEEZE_FIRED] = 0.0
    assert rg.classify(x, p, state(), 0.0) != rg.BREAKOUT


def test_high_volatility(p):
    assert rg.classify(high_vol_row(p), p, state(), 0.0) == rg.HIGH_VOLATILITY
    x = row(atr_rank=p[P_ATR_HV] - 0.05)
    assert rg.classify(x, p, state(), 0.0) == rg.RANGING


def test_trending_needs_adx_and_structure_direction(p):
    assert rg.classify(trend_row(p), p, state(), 1.0) == rg.TRENDING_UP
    assert rg.classify(trend_row(p), p, state(), -1.0) == rg.TRENDING_DOWN
    assert rg.classify(trend_row(p), p, state(), 0.0) == rg.RANGING
    weak = row(adx=p[P_ADX_TREND] - 1.0)
    assert rg.classify(weak, p, state(), 1.0) == rg.RANGING
    assert rg.classify(weak, p, state(), -1.0) == rg.RANGING


def test_rule_order_first_match_wins(p):
    s = state()
    # capitulation beats squeeze, breakout, high volatility and trend
    x = capitulation_liq(p)
    x[X_SQUEEZE] = 1.0
    x[X_ATR_RANK] = 0.99
    x[X_ADX] = 60.0
    assert rg.classify(x, p, s, 1.0) == rg.CAPITULATION
    x[X_SQUEEZE], x[X_SQUEEZE_FIRED], x[X_VOLUME], x[X_VOL_SMA] = 0.0, 1.0, 500.0, 100.0
    assert rg.classify(x, p, s, 1.0) == rg.CAPITULATION
    # squeeze beats breakout, high volatility and trend
    x = squeeze_row()
    x[X_SQUEEZE_FIRED], x[X_VOLUME], x[X_VOL_SMA] = 1.0, 500.0, 100.0
    x[X_ATR_RANK] = 0.99
    x[X_ADX] = 60.0
    assert rg.classify(x, p, s, -1.0) == rg.SQUEEZE
    # breakout beats high volatility and trend
    x = breakout_row(p)
    x[X_ATR_RANK] = 0.99
    x[X_ADX] = 60.0
    assert rg.classify(x, p, s, 1.0) == rg.BREAKOUT
    # high volatility beats trend
    x = high_vol_row(p)
    x[X_ADX] = 60.0
    assert rg.classify(x, p, s, 1.0) == rg.HIGH_VOLATILITY
    assert rg.classify(x, p, s, -1.0) == rg.HIGH_VOLATILITY


def test_every_regime_is_reachable(p):
    cap_x, cap_s = capitulation_spike(p)
    cases = [
        (capitulation_liq(p), state(), 0.0),
        (cap_x, cap_s, 0.0),
        (squeeze_row(), state(), 0.0),
        (breakout_row(p), state(), 0.0),
        (high_vol_row(p), state(), 0.0),
        (trend_row(p), state(), 1.0),
        (trend_row(p), state(), -1.0),
        (row(), state(), 0.0),
    ]
    got = {int(rg.classify(x, p, s, d)) for x, s, d in cases}
    assert got == set(ALL_CODES)


# ------------------------------------------------------------------ evidence


def supported_inputs(p):
    """For each regime: (x, s, direction, bos, choch) where its rule fires with its
    supporting signals."""
    cap_liq = capitulation_liq(p)
    cap_liq[X_FNG] = 10.0
    cap_spike, spike_s = capitulation_spike(p)
    cap_spike[X_FNG] = 10.0
    squeeze = squeeze_row()
    squeeze[X_ATR] = 1.0
    breakout = breakout_row(p)
    high_vol = high_vol_row(p)
    high_vol[X_BB_UP], high_vol[X_BB_MID], high_vol[X_BB_LO] = 110.0, 100.0, 90.0
    high_vol[X_LIQ_INTENSITY] = p[P_SPIKE] + 1.0
    up = trend_row(p)
    up[X_ST_DIR], up[X_MACD_HIST] = 1.0, 2.0
    down = trend_row(p)
    down[X_ST_DIR], down[X_MACD_HIST] = -1.0, -2.0
    ranging = row(adx=p[P_ADX_RANGE] - 5.0, rsi=50.0, atr_rank=0.2)
    return {
        "capitulation (liq)": (rg.CAPITULATION, cap_liq, state(), 0.0, 0.0, 0.0),
        "capitulation (spike)": (rg.CAPITULATION, cap_spike, spike_s, 0.0, 0.0, 0.0),
        "squeeze": (rg.SQUEEZE, squeeze, state(prev_atr=2.0), 0.0, 0.0, 0.0),
        "breakout": (rg.BREAKOUT, breakout, state(), 0.0, 1.0, 0.0),
        "high_volatility": (rg.HIGH_VOLATILITY, high_vol, state(prev_bw=0.1), 0.0, 0.0, 0.0),
        "trending_up": (rg.TRENDING_UP, up, state(), 1.0, 0.0, 0.0),
        "trending_down": (rg.TRENDING_DOWN, down, state(), -1.0, 0.0, 0.0),
        "ranging": (rg.RANGING, ranging, state(), 0.0, 0.0, 0.0),
    }


@pytest.mark.parametrize("case", list(supported_inputs(engine.params(CONFIG))))
def test_evidence_is_high_where_the_rule_fires_with_support(p, case):
    code, x, s, direction, bos, choch = supported_inputs(p)[case]
    assert rg.classify(x, p, s, direction) == code
    e = rg.evidence(code, x, p, s, direction, bos, choch)
    assert 0.5 <= e <= 1.0
    assert e >= p[P_CONF_THRESHOLD]  # such a bar can confirm the regime


@pytest.mark.parametrize("case", ["trending_up", "trending_down"])
def test_evidence_of_the_opposite_trend_is_low(p, case):
    code, x, s, direction, bos, choch = supported_inputs(p)[case]
    other = rg.TRENDING_DOWN if code == rg.TRENDING_UP else rg.TRENDING_UP
    assert rg.evidence(code, x, p, s, direction, bos, choch) == 1.0
    assert rg.evidence(other, x, p, s, direction, bos, choch) < 0.5


def test_evidence_when_the_rule_fires_alone(p):
    """The rule's own condition already makes half of the signals for these regimes."""
    s = state()
    assert rg.evidence(rg.SQUEEZE, squeeze_row(), p, s, 0.0, 0.0, 0.0) == 0.5
    assert rg.evidence(rg.BREAKOUT, breakout_row(p), p, s, 0.0, 0.0, 0.0) == pytest.approx(2 / 3)
    assert rg.evidence(rg.TRENDING_UP, trend_row(p), p, s, 1.0, 0.0, 0.0) == 0.5
    assert rg.evidence(rg.CAPITULATION, capitulation_liq(p), p, s, 0.0, 0.0, 0.0) == 1.0
    x, s2 = capitulation_spike(p)
    # The price proxy counts half a signal.
    assert rg.evidence(rg.CAPITULATION, x, p, s2, 0.0, 0.0, 0.0) == pytest.approx(0.75)


def test_fear_greed_only_counts_when_enabled(p):
    x = capitulation_liq(p)
    x[X_FNG] = 50.0  # no fear: one of three signals missing
    assert rg.evidence(rg.CAPITULATION, x, p, state(), 0.0, 0.0, 0.0) == pytest.approx(2 / 3)
    q = p.copy()
    q[P_USE_FNG] = 0.0
    assert rg.evidence(rg.CAPITULATION, x, q, state(), 0.0, 0.0, 0.0) == 1.0


def test_evidence_is_in_unit_interval_on_random_rows(p):
    rng = np.random.default_rng(123)
    for _ in range(3000):
        x = rng.normal(0.0, 30.0, N_INPUTS)
        x[X_ATR_RANK] = rng.uniform(0, 1)
        x[X_SQUEEZE] = rng.choice([-1.0, 0.0, 1.0])
        x[X_SQUEEZE_FIRED] = rng.choice([0.0, 1.0])
        x[X_ST_DIR] = rng.choice([-1.0, 1.0])
        x[X_FNG] = rng.uniform(0, 100)
        x[rng.random(N_INPUTS) < 0.2] = math.nan
        s = state(*rng.normal(50.0, 30.0, 3))
        direction = float(rng.choice([-1.0, 0.0, 1.0]))
        bos, choch = float(rng.choice([-1.0, 0.0, 1.0])), float(rng.choice([-1.0, 0.0, 1.0]))
        q = p.copy()
        q[P_USE_LIQ], q[P_USE_FNG] = rng.choice([0.0, 1.0], 2)
        raw = rg.classify(x, q, s, direction)
        assert raw in ALL_CODES
        for code in ALL_CODES:
            e = rg.evidence(code, x, q, s, direction, bos, choch)
            assert 0.0 <= e <= 1.0, (code, e)


# ------------------------------------------------------------------ state machine


def make_p(confirmation_bars=3, cooldown_bars=5, confidence_threshold=0.5) -> np.ndarray:
    cfg = dataclasses.replace(CONFIG, regime=dataclasses.replace(
        CONFIG.regime, confirmation_bars=confirmation_bars, cooldown_bars=cooldown_bars,
        confidence_threshold=confidence_threshold))
    p = engine.params(cfg)
    assert p[P_CONFIRM] == confirmation_bars and p[P_COOLDOWN] == cooldown_bars
    return p


def drive(p, steps):
    """Run hysteresis_step over (raw, confidence) pairs; per bar: (returned, current,
    duration)."""
    s = rg.new_state()
    out = []
    for raw, conf in steps:
        ret = rg.hysteresis_step(s, p, float(raw), float(conf))
        out.append((ret, int(s[rg.R_CURRENT]), int(s[rg.R_DURATION])))
    return out


def changes(out) -> list[int]:
    """Bars on which a change (not the first assignment) was confirmed."""
    return [t for t, (ret, _, _) in enumerate(out) if not math.isnan(ret) and ret >= 0]


R, U, D, H, Q = rg.RANGING, rg.TRENDING_UP, rg.TRENDING_DOWN, rg.HIGH_VOLATILITY, rg.SQUEEZE


def test_first_bar_assigns_the_regime_directly():
    p = make_p()
    out = drive(p, [(U, 0.0)])
    assert out[0][0] == -1.0
    assert out[0][1] == U and out[0][2] == 1


def test_change_needs_confirmation_bars_in_a_row():
    for confirm in (1, 2, 3, 5):
        p = make_p(confirmation_bars=confirm, cooldown_bars=0)
        seq = [(R, 1.0)] * 3 + [(U, 1.0)] * 8
        out = drive(p, seq)
        currents = [c for _, c, _ in out]
        first_up = currents.index(U)
        assert first_up == 3 + confirm - 1, confirm
        assert changes(out) == [first_up]
        assert out[first_up][0] == R  # returns the previous regime


def test_interrupted_candidate_is_dropped():
    p = make_p(confirmation_bars=3, cooldown_bars=0)
    seq = [(R, 1.0)] * 2 + [(U, 1.0)] * 2 + [(R, 1.0)] + [(U, 1.0)] * 2 + [(D, 1.0)]
    seq += [(U, 1.0)] * 2 + [(U, 0.1)] + [(U, 1.0)] * 2
    out = drive(p, seq)
    assert changes(out) == []
    assert all(c == R for _, c, _ in out)
    # Once not interrupted, the third bar in a row confirms it.
    out = drive(p, seq + [(U, 1.0)])
    assert changes(out) == [len(seq)]


def test_low_confidence_never_confirms():
    p = make_p(confirmation_bars=2, cooldown_bars=0, confidence_threshold=0.6)
    rng = np.random.default_rng(5)
    seq = [(R, 1.0)] + [(int(rng.choice([U, D, H, Q, rg.BREAKOUT, rg.CAPITULATION])),
                         float(rng.uniform(0.0, 0.5999))) for _ in range(500)]
    out = drive(p, seq)
    assert changes(out) == []
    assert out[-1][1] == R
    assert out[-1][2] == len(seq)


def test_confidence_equal_to_threshold_is_enough():
    p = make_p(confirmation_bars=2, cooldown_bars=0, confidence_threshold=0.75)
    out = drive(p, [(R, 1.0), (U, 0.75), (U, 0.75)])
    assert changes(out) == [2]


@pytest.mark.parametrize("event", [rg.BREAKOUT, rg.CAPITULATION])
def test_event_regime_switches_on_its_first_bar(event):
    p = make_p(confirmation_bars=4, cooldown_bars=3)
    out = drive(p, [(R, 1.0), (R, 1.0), (event, 0.9)])
    assert changes(out) == [2]
    assert out[2][1] == event and out[2][2] == 1


@pytest.mark.parametrize("event", [rg.BREAKOUT, rg.CAPITULATION])
def test_event_regime_waits_for_the_cooldown(event):
    cooldown = 4
    p = make_p(confirmation_bars=1, cooldown_bars=cooldown)
    seq = [(R, 1.0), (U, 1.0)] + [(event, 1.0)] * (cooldown + 2)
    out = drive(p, seq)
    # Change to U on bar 1; the event may switch no earlier than bar 1 + cooldown.
    assert changes(out) == [1, 1 + cooldown]
    assert out[1 + cooldown][1] == event
    # An event bar inside the cooldown is simply dropped.
    seq = [(R, 1.0), (U, 1.0), (event, 1.0)] + [(U, 1.0)] * (cooldown + 2)
    out = drive(p, seq)
    assert changes(out) == [1]


@pytest.mark.parametrize("event", [rg.BREAKOUT, rg.CAPITULATION])
def test_event_regime_with_low_confidence_does_not_switch(event):
    p = make_p(confirmation_bars=3, cooldown_bars=0, confidence_threshold=0.5)
    out = drive(p, [(R, 1.0), (event, 0.4), (event, 0.49)])
    assert changes(out) == []


def test_duration_counts_bars_in_the_regime_from_one():
    p = make_p(confirmation_bars=2, cooldown_bars=0)
    seq = [(R, 1.0)] * 4 + [(U, 1.0)] * 6 + [(R, 1.0)] * 3
    out = drive(p, seq)
    durations = [d for _, _, d in out]
    assert durations == [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 6, 1, 2]
    # A pending candidate does not reset the duration.
    assert out[4][1] == R and out[4][2] == 5


def reference_machine(steps, confirm, cooldown, threshold):
    """The docstring's state machine, written out: current regime and duration per bar."""
    current = None
    duration = 0
    last_change = -10**9
    cand, run = None, 0
    out = []
    for t, (raw, conf) in enumerate(steps):
        if current is None:
            current, duration = raw, 1
            out.append((current, duration))
            continue
        duration += 1
        switch = False
        if raw == current or conf < threshold:
            cand, run = None, 0
        elif raw in EVENTS:
            cand, run = None, 0
            switch = t - last_change >= cooldown
        else:
            run = run + 1 if raw == cand else 1
            cand = raw
            switch = run >= confirm and t - last_change >= cooldown
        if switch:
            current, duration, last_change = raw, 1, t
            cand, run = None, 0
        out.append((current, duration))
    return out


def random_steps(rng, n, stay=0.75):
    raw = int(rng.integers(7))
    steps = []
    for _ in range(n):
        if rng.random() > stay:
            raw = int(rng.integers(7))
        steps.append((raw, float(rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], p=[.1, .1, .2, .3, .3]))))
    return steps


@pytest.mark.parametrize(
    ("confirm", "cooldown", "threshold"),
    [(3, 5, 0.5), (1, 0, 0.5), (1, 7, 0.5), (2, 2, 0.75), (4, 10, 0.25), (5, 1, 0.5)],
)
def test_long_random_sequences(confirm, cooldown, threshold):
    p = make_p(confirm, cooldown, threshold)
    rng = np.random.default_rng(1000 * confirm + cooldown)
    steps = random_steps(rng, 5000)
    out = drive(p, steps)
    ch = changes(out)
    assert len(ch) > 50  # the sequence does exercise the machine
    # No two changes closer than the cooldown.
    assert all(b - a >= cooldown for a, b in zip(ch[:-1], ch[1:], strict=True))
    for t in ch:
        new = out[t][1]
        prev = out[t - 1][1]
        assert out[t][0] == prev != new
        assert steps[t][0] == new and steps[t][1] >= threshold
        if new not in EVENTS:
            # confirm consecutive confident bars of the new regime end on this bar
            window = steps[t - confirm + 1 : t + 1]
            assert len(window) == confirm
            assert all(r == new and c >= threshold for r, c in window), (t, window)
    # Regime only changes on change bars; durations count from 1.
    change_set = set(ch)
    for t in range(1, len(out)):
        if t in change_set:
            assert out[t][2] == 1
        else:
            assert out[t][1] == out[t - 1][1]
            assert out[t][2] == out[t - 1][2] + 1
    # And the whole trajectory is the docstring's machine.
    want = reference_machine(steps, confirm, cooldown, threshold)
    assert [(c, d) for _, c, d in out] == want


# ------------------------------------------------------------------ through compute_history


@pytest.fixture(scope="module")
def btc_candles() -> pd.DataFrame:
    from sentiment.sources.replay import load_bundle

    candles = load_bundle()["candles"]
    return candles[candles["symbol"] == "BTCUSDT"].iloc[:3000].reset_index(drop=True)


def _config(confirm, cooldown):
    return dataclasses.replace(CONFIG, regime=dataclasses.replace(
        CONFIG.regime, confirmation_bars=confirm, cooldown_bars=cooldown))


@pytest.mark.parametrize(("confirm", "cooldown"), [(3, 5), (1, 12), (4, 2)])
def test_history_regimes_respect_the_state_machine(btc_candles, confirm, cooldown):
    cfg = _config(confirm, cooldown)
    hist, transitions = compute_history_and_transitions(
        btc_candles, config=cfg, symbol="BTCUSDT", interval="60")
    assert len(hist) == len(btc_candles)
    regime = hist["regime"]
    na = regime.isna().to_numpy()
    # NA only during warm-up: a prefix, then always one of the seven names.
    warm = int(np.argmin(na))
    assert 0 < warm < 300
    assert na[:warm].all() and not na[warm:].any()
    assert set(regime[warm:]) <= set(REGIMES)
    assert hist["regime_duration_bars"].isna().to_numpy().tolist() == na.tolist()

    values = regime[warm:].to_numpy(dtype=object)
    idx = np.flatnonzero(values[1:] != values[:-1]) + 1 + warm
    assert len(idx) > 20
    assert (np.diff(idx) >= cooldown).all()
    # Durations restart at 1 on every change and grow by one otherwise.
    dur = hist["regime_duration_bars"].to_numpy(dtype=np.float64, na_value=np.nan)
    assert dur[warm] == 1
    change_set = set(idx.tolist())
    for t in range(warm + 1, len(hist)):
        assert dur[t] == (1 if t in change_set else dur[t - 1] + 1)
    # Every change is one row of the transitions frame, and nothing else is.
    assert len(transitions) == len(idx)
    got = {(ts, a, b) for ts, a, b in zip(
        transitions["timestamp"], transitions["from_regime"], transitions["to_regime"],
        strict=True)}
    want = {(hist["timestamp"].iloc[t], regime.iloc[t - 1], regime.iloc[t]) for t in idx}
    assert got == want


def test_history_with_exchange_inputs_keeps_the_cooldown(btc_candles):
    from sentiment.sources.replay import load_bundle

    b = load_bundle()
    hist = compute_history(btc_candles, b["funding"], b["open_interest"], b["long_short"],
                           b["fear_greed"], symbol="BTCUSDT", interval="60")
    values = hist["regime"].dropna().to_numpy(dtype=object)
    assert set(values) <= set(REGIMES)
    idx = np.flatnonzero(values[1:] != values[:-1])
    assert len(idx) > 20
    assert (np.diff(idx) >= CONFIG.regime.cooldown_bars).all()
    conf = hist["regime_confidence"].dropna().to_numpy(dtype=np.float64)
    assert ((conf >= 0) & (conf <= 1)).all()


def test_without_movement_the_oscillators_read_neutral(p):
    """Wilder-smoothed ADX and DI freeze when prices stop; a dead market is not trending."""
    frozen = dict(adx=p[P_ADX_TREND] + 10.0, rsi=80.0, macd_hist=5.0, supertrend_dir=1.0,
                  atr_rank=0.5, squeeze=0.0, squeeze_fired=0.0, close=100.0)
    still = row(atr=1e-12, **frozen)
    moving_row = row(atr=1.0, **frozen)
    s = state(prev_atr=0.0)
    assert rg.classify(moving_row, p, s, 1.0) == rg.TRENDING_UP
    assert rg.classify(still, p, s, 1.0) == rg.RANGING
    assert rg.evidence(rg.TRENDING_UP, still, p, s, 1.0, 0.0, 0.0) == 0.25  # direction only
    assert rg.evidence(rg.TRENDING_UP, moving_row, p, s, 1.0, 0.0, 0.0) == 1.0
