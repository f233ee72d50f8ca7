"""Rule-based regime classifier and the regime state machine.

Every bar has two readings, both from data at or before its close:

* the **raw regime**: the brief's ordered rules, first match wins (capitulation, squeeze,
  breakout, high volatility, trending up / down, ranging), with the rules of
  ``docs/scores.md`` section 6;
* the **evidence** of each of the seven regimes, in [0, 1], and two smoothings of it: an
  envelope that rises fast (half the gap per bar) and decays slowly (an EMA of
  ``regime.smoothing_bars``), so stress is recognised at once and forgotten slowly, and a
  plain EMA of the same span (the slow evidence).

The confirmed regime changes when

1. an **event** fires: capitulation as the raw regime, or a breakout out of a confirmed
   squeeze; at once, never held back by a cooldown; an event regime lasts
   ``regime.event_bars`` bars after its trigger last fired, then hands over;
2. a **shock**: the move over the last 24 hours contradicts the current regime (beyond
   ``regime.shock_move_pct`` through a range or a squeeze, 5 % against a trend): at once,
   to the non-event regime with the highest envelope that the move allows;
3. the current regime's envelope falls below ``regime.expire_below`` (its evidence is
   gone): at once, to that best-supported regime when its envelope is higher;
4. otherwise a challenger (the raw regime) leads the current regime's slow evidence by
   ``regime.switch_margin`` (half of it to enter high volatility) with raw evidence of at
   least ``regime.confidence_threshold``, on ``regime.confirmation_bars`` bars in a row,
   and ``regime.cooldown_bars`` bars passed since the last such change.

``regime_confidence`` is the envelope of the confirmed regime. The first regime
after warm-up is assigned directly.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sentiment.core.layout import (
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
    X_ADX,
    X_ATR,
    X_ATR_RANK,
    X_BB_LO,
    X_BB_MID,
    X_BB_UP,
    X_CLOSE,
    X_EMA9,
    X_EMA21,
    X_EMA50,
    X_FNG,
    X_HIGH,
    X_LIQ_INTENSITY,
    X_LOW,
    X_MACD_HIST,
    X_MDI,
    X_MOVE,
    X_NATR,
    X_OI_1H,
    X_PDI,
    X_RSI,
    X_SQUEEZE,
    X_SQUEEZE_FIRED,
    X_ST_DIR,
    X_VOL_SMA,
    X_VOLUME,
)
from sentiment.core.scores import clip, moving, sign
from sentiment.models import REGIME_CODE

TRENDING_UP = REGIME_CODE["trending_up"]
TRENDING_DOWN = REGIME_CODE["trending_down"]
RANGING = REGIME_CODE["ranging"]
HIGH_VOLATILITY = REGIME_CODE["high_volatility"]
SQUEEZE = REGIME_CODE["squeeze"]
BREAKOUT = REGIME_CODE["breakout"]
CAPITULATION = REGIME_CODE["capitulation"]
N_REGIMES = 7
#: How fast the smoothed evidence rises towards a higher reading (share of the gap per bar).
ATTACK = 0.5
#: The switch margin's factor to enter high volatility: stress is recognised early.
STRESS_ENTRY = 0.5

# Regime machine state: current regime, bars in it, pending regime, its bars, cooldown,
# the previous bar's Bollinger bandwidth, ATR and close, the slow NATR baseline, the bars
# an event regime still lasts, then the smoothed evidence per regime (envelope, slow EMA).
(R_CURRENT, R_DURATION, R_PENDING, R_PENDING_BARS, R_COOLDOWN,
 R_PREV_BW, R_PREV_ATR, R_PREV_CLOSE, R_VOL_BASE, R_HOLD) = range(10)
R_EVIDENCE = 10
R_SLOW = R_EVIDENCE + N_REGIMES
STATE_SIZE = R_SLOW + N_REGIMES


def new_state() -> np.ndarray:
    s = np.full(STATE_SIZE, np.nan)
    s[R_DURATION] = 0.0
    s[R_PENDING_BARS] = 0.0
    s[R_COOLDOWN] = 0.0
    s[R_HOLD] = 0.0
    return s


def move_bars(interval_minutes: int) -> int:
    """Bars in the 24-hour move window at an interval (at least 1)."""
    return max(1, int(round(24 * 60 / interval_minutes)))


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
def _move(x):
    """The 24-hour move as a fraction (0 while fewer bars exist)."""
    m = x[X_MOVE]
    return m if m == m else 0.0


@njit(cache=True)
def direction_vote(x, structure_direction):
    """Trend direction in [-1, 1]: the mean of seven votes that need no confirmed pivot
    (+DI vs -DI, EMA 9 vs 21, EMA 21 vs 50, close vs EMA 50, SuperTrend, MACD histogram)
    and the swing structure's direction as the seventh."""
    mv = moving(x)
    total = sign(x[X_EMA9] - x[X_EMA21]) + sign(x[X_EMA21] - x[X_EMA50])
    total += sign(x[X_CLOSE] - x[X_EMA50]) + structure_direction
    if mv:
        total += sign(x[X_PDI] - x[X_MDI]) + x[X_ST_DIR] + sign(x[X_MACD_HIST])
    return total / 7.0


@njit(cache=True)
def vol_level(x, s):
    """NATR over its slow baseline (1 = usual volatility)."""
    base = s[R_VOL_BASE]
    if base != base or base <= 0.0 or not moving(x):
        return 1.0
    return x[X_NATR] / base


@njit(cache=True)
def _price_spike(x, prev_close, p):
    """A down close with a true range above 3 x ATR (the OI rule's price proxy)."""
    if prev_close != prev_close:
        return False
    tr = max(x[X_HIGH] - x[X_LOW], abs(x[X_HIGH] - prev_close), abs(x[X_LOW] - prev_close))
    return x[X_CLOSE] < prev_close and tr > p[P_SPIKE] * x[X_ATR]


@njit(cache=True)
def _climax(x, s, p):
    """Capitulation without open interest: a down close after a 24-hour fall beyond
    ``capitulation_move`` on volume above ``capitulation_volume`` x its average."""
    prev = s[R_PREV_CLOSE]
    down = prev == prev and x[X_CLOSE] < prev
    return (down and _move(x) < -capitulation_fall(s, p)
            and x[X_VOLUME] > p[P_CAP_VOLUME] * x[X_VOL_SMA])


@njit(cache=True)
def capitulation_fall(s, p):
    """The 24-hour fall a capitulation needs: ``capitulation_move``, or
    ``capitulation_sigmas`` usual daily ranges (NATR baseline x sqrt(bars a day)) when that
    is more, so a more volatile market needs a deeper fall."""
    base = s[R_VOL_BASE]
    fall = p[P_CAP_MOVE]
    if base == base:
        fall = max(fall, p[P_CAP_SIGMAS] * base / 100.0 * math.sqrt(p[P_MOVE_BARS]))
    return fall


@njit(cache=True)
def _breakout(x, p):
    """The squeeze fired on this bar, on volume above 2 x its average, with the close
    outside a Bollinger band: price left the range, not only the bands widened."""
    return (x[X_SQUEEZE_FIRED] > 0.0 and x[X_VOLUME] > p[P_BREAKOUT_VOLUME] * x[X_VOL_SMA]
            and (x[X_CLOSE] > x[X_BB_UP] or x[X_CLOSE] < x[X_BB_LO]))


@njit(cache=True)
def evidence(regime, x, p, s, d, bos, choch):
    """Evidence for ``regime`` on this bar, in [0, 1] (docs/scores.md section 6).

    ``d`` is the direction vote. Without price movement (ATR ~ 0) the smoothed oscillators
    only hold their last values, so they read neutral: ADX 0, RSI 50.
    """
    mv = moving(x)
    adx = x[X_ADX] if mv else 0.0
    move = _move(x)
    shock = p[P_SHOCK_MOVE]
    if regime == TRENDING_UP or regime == TRENDING_DOWN:
        k = 1.0 if regime == TRENDING_UP else -1.0
        return (0.5 * clip(k * d, 0.0, 1.0)
                + 0.25 * clip((adx - p[P_ADX_RANGE] + 5.0) / 15.0, 0.0, 1.0)
                + 0.25 * clip(k * move / (0.5 * shock), 0.0, 1.0))
    if regime == RANGING:
        rsi = x[X_RSI] if mv else 50.0
        return (_flag(adx < p[P_ADX_RANGE]) + _flag(abs(d) < p[P_DIR_VOTE])
                + _flag(40.0 <= rsi <= 60.0) + _flag(vol_level(x, s) < 1.0)
                + _flag(abs(move) < p[P_QUIET_MOVE])) / 5.0
    if regime == HIGH_VOLATILITY:
        level = vol_level(x, s)
        total = (0.4 * clip((level - 1.0) / (p[P_HV_LEVEL] - 1.0), 0.0, 1.0)
                 + 0.3 * _flag(x[X_ATR_RANK] > p[P_ATR_HV])
                 + 0.3 * clip(abs(move) / shock, 0.0, 1.0))
        liq = x[X_LIQ_INTENSITY]
        if p[P_USE_LIQ] > 0.0 and liq == liq:
            return 0.75 * total + 0.25 * _flag(liq > p[P_SPIKE])
        return total
    if regime == SQUEEZE:
        return (_flag(x[X_SQUEEZE] == 1.0) + _flag(_settled_atr(x) < s[R_PREV_ATR])
                + _flag(vol_level(x, s) < 1.0) + _flag(abs(move) < p[P_QUIET_MOVE])) / 4.0
    if regime == BREAKOUT:
        return (_flag(x[X_SQUEEZE_FIRED] > 0.0)
                + _flag(x[X_VOLUME] > p[P_BREAKOUT_VOLUME] * x[X_VOL_SMA])
                + _flag(bos != 0.0 or choch != 0.0)) / 3.0
    # capitulation: a 24-hour fall, a volume climax, an OI collapse and a liquidation
    # spike where those series exist, extreme fear where the index is known
    total = (_flag(move < -capitulation_fall(s, p))
             + _flag(x[X_VOLUME] > p[P_CAP_VOLUME] * x[X_VOL_SMA]))
    n = 2.0
    oi = x[X_OI_1H]
    if oi == oi:
        total += _flag(oi < -p[P_CAPITULATION_OI])
        n += 1.0
    liq = x[X_LIQ_INTENSITY]
    if p[P_USE_LIQ] > 0.0 and liq == liq:
        total += _flag(liq > p[P_SPIKE])
        n += 1.0
    fng = x[X_FNG]
    if p[P_USE_FNG] > 0.0 and fng == fng:
        total += _flag(fng <= p[P_FNG_FEAR])
        n += 1.0
    return total / n


@njit(cache=True)
def classify(x, p, s, d):
    """The brief's ordered rules; returns the raw regime code. ``d``: direction vote."""
    move = _move(x)
    oi_1h = x[X_OI_1H]
    if oi_1h == oi_1h and oi_1h < -p[P_CAPITULATION_OI]:
        liq = x[X_LIQ_INTENSITY]
        if p[P_USE_LIQ] > 0.0 and liq == liq:
            spike = liq > p[P_SPIKE]
        else:
            spike = _price_spike(x, s[R_PREV_CLOSE], p)
        if spike:
            return CAPITULATION
    if _climax(x, s, p):
        return CAPITULATION
    level = vol_level(x, s)
    if x[X_SQUEEZE] == 1.0 and abs(move) < p[P_QUIET_MOVE] and level < p[P_HV_LEVEL]:
        return SQUEEZE
    if _breakout(x, p):
        return BREAKOUT
    if x[X_ATR_RANK] > p[P_ATR_HV] or level > p[P_HV_LEVEL] or abs(move) > p[P_SHOCK_MOVE]:
        return HIGH_VOLATILITY
    adx = x[X_ADX] if moving(x) else 0.0
    if abs(d) >= p[P_DIR_VOTE] and (
            adx > p[P_ADX_TREND]
            or (adx > p[P_ADX_RANGE] and move * d > 0.0 and abs(move) > p[P_QUIET_MOVE])):
        return TRENDING_UP if d > 0.0 else TRENDING_DOWN
    return RANGING


@njit(cache=True)
def allowed(regime, move, p):
    """False when the 24-hour move contradicts ``regime`` (a shock through a range or
    squeeze, or a trend against the move)."""
    shock = p[P_SHOCK_MOVE]
    guard = p[P_TREND_GUARD]
    if regime == TRENDING_UP:
        return move > -guard
    if regime == TRENDING_DOWN:
        return move < guard
    if regime == RANGING or regime == SQUEEZE:
        return abs(move) <= shock
    if regime == BREAKOUT:
        return move > -shock
    if regime == CAPITULATION:
        return move < shock
    return True


@njit(cache=True)
def _best(s, move, p, exclude):
    """The non-event regime with the most smoothed evidence that the move allows."""
    best = -1
    value = -1.0
    for k in range(N_REGIMES):
        if k == BREAKOUT or k == CAPITULATION or k == exclude:
            continue
        if not allowed(k, move, p):
            continue
        m = s[R_EVIDENCE + k]
        if m > value:
            best = k
            value = m
    return best


@njit(cache=True)
def _smooth(s, p, values):
    for k in range(N_REGIMES):
        m = s[R_EVIDENCE + k]
        e = values[k]
        if m != m:
            s[R_EVIDENCE + k] = e
            s[R_SLOW + k] = e
        else:
            rate = ATTACK if e > m else p[P_RELEASE]
            s[R_EVIDENCE + k] = m + rate * (e - m)
            s[R_SLOW + k] += p[P_RELEASE] * (e - s[R_SLOW + k])


@njit(cache=True)
def regime_step(s, x, p, structure_direction, bos, choch, out):
    """One bar of the classifier and the state machine.

    Writes ``out``: (raw regime, its evidence, the previous regime when this bar confirmed
    a change / -1 for the first regime / NaN, confirmed regime, its smoothed evidence).
    """
    d = direction_vote(x, structure_direction)
    values = np.empty(N_REGIMES)
    for k in range(N_REGIMES):
        values[k] = evidence(k, x, p, s, d, bos, choch)
    _smooth(s, p, values)
    raw = classify(x, p, s, d)
    move = _move(x)
    out[0] = raw
    out[1] = values[raw]
    if s[R_COOLDOWN] > 0.0:
        s[R_COOLDOWN] -= 1.0
    if s[R_HOLD] > 0.0:
        s[R_HOLD] -= 1.0
    current = s[R_CURRENT]
    if current != current:
        _enter(s, p, raw, False)
        out[2] = -1.0
        out[3] = raw
        out[4] = s[R_EVIDENCE + raw]
        return
    c = int(current)
    s[R_DURATION] += 1.0
    target = -1
    regular = False
    # A breakout leaves a confirmed squeeze; the squeeze firing in any other regime is
    # no range to break out of.
    event = raw == CAPITULATION or (raw == BREAKOUT and (c == SQUEEZE or c == BREAKOUT))
    # An ending event hands over to the raw regime when it is no breakout reading and the
    # move allows it.
    fits = raw != BREAKOUT and allowed(raw, move, p)
    if event:
        if raw != c:
            target = raw
        else:
            s[R_HOLD] = p[P_EVENT_BARS]
    elif c == BREAKOUT or c == CAPITULATION:
        if s[R_HOLD] <= 0.0 or not allowed(c, move, p):
            target = raw if fits else _best(s, move, p, -1)
    elif not allowed(c, move, p):
        target = _best(s, move, p, c)
    elif s[R_EVIDENCE + c] < p[P_EXPIRE]:
        best = _best(s, move, p, c)
        if best >= 0 and s[R_EVIDENCE + best] > s[R_EVIDENCE + c]:
            target = best
    # An event regime is held for its bars: no regular challenge cuts it short.
    held = c == BREAKOUT or c == CAPITULATION
    if target < 0 and raw != c and raw != BREAKOUT and raw != CAPITULATION and not held:
        margin = p[P_MARGIN]
        if raw == HIGH_VOLATILITY:
            margin *= STRESS_ENTRY
        lead = s[R_SLOW + raw] - s[R_SLOW + c]
        if values[raw] >= p[P_CONF_THRESHOLD] and lead >= margin:
            if raw == s[R_PENDING]:
                s[R_PENDING_BARS] += 1.0
            else:
                s[R_PENDING] = raw
                s[R_PENDING_BARS] = 1.0
            if s[R_PENDING_BARS] >= p[P_CONFIRM] and s[R_COOLDOWN] == 0.0:
                target = raw
                regular = True
        else:
            s[R_PENDING] = math.nan
            s[R_PENDING_BARS] = 0.0
    elif target < 0:
        s[R_PENDING] = math.nan
        s[R_PENDING_BARS] = 0.0
    out[2] = math.nan
    if target >= 0 and target != c:
        _enter(s, p, target, regular)
        out[2] = c
    out[3] = s[R_CURRENT]
    out[4] = s[R_EVIDENCE + int(s[R_CURRENT])]


@njit(cache=True)
def _enter(s, p, regime, regular):
    s[R_CURRENT] = regime
    s[R_DURATION] = 1.0
    s[R_PENDING] = math.nan
    s[R_PENDING_BARS] = 0.0
    if regular:
        s[R_COOLDOWN] = p[P_COOLDOWN]
    if regime == BREAKOUT or regime == CAPITULATION:
        s[R_HOLD] = p[P_EVENT_BARS]


@njit(cache=True)
def remember_bar(s, x, p):
    """Keep what the next bar's rules compare with, and move the NATR baseline."""
    s[R_PREV_BW] = _bandwidth(x)
    s[R_PREV_ATR] = _settled_atr(x)
    s[R_PREV_CLOSE] = x[X_CLOSE]
    natr = x[X_NATR]
    if natr == natr and moving(x):
        base = s[R_VOL_BASE]
        s[R_VOL_BASE] = natr if base != base else base + p[P_VOL_BASE_ALPHA] * (natr - base)
