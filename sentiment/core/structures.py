"""Market structure, bar by bar: swing pivots, trend and break of structure.

All three are incremental and never repaint: a swing pivot at bar ``c`` is only known at
the close of bar ``c + n`` (``n`` = swing length, 5 by default), once the bars after it
confirm it, and from then on it never changes.

- **Swing pivots.** Bar ``c`` is a swing high when its high is strictly above the ``n``
  highs before it and at least as high as the ``n`` highs after it (so of two equal
  highs the first is the pivot); swing lows mirror this.
- **Trend** (re-evaluated when a pivot is confirmed, once both two highs and two lows
  exist): higher high and higher low -> direction 1; lower high and lower low -> -1;
  anything else -> 0. ``wave_count`` counts the pivots in a row that confirm the current
  direction (1 when it starts); ``strength`` is 0 without a trend, 1 for one or two
  confirming pivots and 2 from three on. ``bars_in_trend`` counts bars since the direction
  last changed (1 on the bar it changes).
- **Market structure.** The latest swing high and swing low are levels; a close above an
  unbroken swing-high level breaks it upwards, a close below the swing-low level
  downwards. A break in the direction of the current bias (or with no bias yet) is a
  break of structure (BOS, continuation); against it, a change of character (CHoCH,
  reversal). The bias takes the direction of the break; each level breaks once.
"""

from __future__ import annotations

import numpy as np
from numba import njit

MAX_SWING = 20
_W = 2 * MAX_SWING + 1
(S_COUNT, S_LAST_HIGH, S_PREV_HIGH, S_LAST_LOW, S_PREV_LOW,
 S_DIR, S_WAVES, S_BARS, S_BIAS, S_MS_HIGH, S_MS_HIGH_BROKEN, S_MS_LOW,
 S_MS_LOW_BROKEN) = range(13)
S_HI_BUF = 13
S_LO_BUF = S_HI_BUF + _W
STATE_SIZE = S_LO_BUF + _W


def new_state() -> np.ndarray:
    s = np.full(STATE_SIZE, np.nan)
    s[S_COUNT] = 0.0
    s[S_DIR] = 0.0
    s[S_WAVES] = 0.0
    s[S_BARS] = 0.0
    s[S_BIAS] = 0.0
    s[S_MS_HIGH_BROKEN] = 0.0
    s[S_MS_LOW_BROKEN] = 0.0
    return s


@njit(cache=True)
def _pivot(s, offset, count, width, swing, sign):
    """Return the pivot value confirmed at this bar (NaN if none); sign 1 highs, -1 lows."""
    if count < width:
        return np.nan
    center = count - 1 - swing
    value = sign * s[offset + center % width]
    for k in range(1, swing + 1):
        if sign * s[offset + (center - k) % width] >= value:
            return np.nan
        if sign * s[offset + (center + k) % width] > value:
            return np.nan
    return sign * value


@njit(cache=True)
def structure_step(s, high, low, close, swing):
    """Advance one bar; returns (direction, strength, waves, bars_in_trend, bias, bos,
    choch, swing_high_level, swing_low_level)."""
    width = 2 * swing + 1
    idx = int(s[S_COUNT]) % width
    s[S_HI_BUF + idx] = high
    s[S_LO_BUF + idx] = low
    count = int(s[S_COUNT]) + 1
    s[S_COUNT] = count

    new_high = _pivot(s, S_HI_BUF, count, width, swing, 1.0)
    new_low = _pivot(s, S_LO_BUF, count, width, swing, -1.0)
    pivot = False
    if new_high == new_high:
        s[S_PREV_HIGH] = s[S_LAST_HIGH]
        s[S_LAST_HIGH] = new_high
        s[S_MS_HIGH] = new_high
        s[S_MS_HIGH_BROKEN] = 0.0
        pivot = True
    if new_low == new_low:
        s[S_PREV_LOW] = s[S_LAST_LOW]
        s[S_LAST_LOW] = new_low
        s[S_MS_LOW] = new_low
        s[S_MS_LOW_BROKEN] = 0.0
        pivot = True

    direction = s[S_DIR]
    if pivot and s[S_PREV_HIGH] == s[S_PREV_HIGH] and s[S_PREV_LOW] == s[S_PREV_LOW]:
        up = s[S_LAST_HIGH] > s[S_PREV_HIGH] and s[S_LAST_LOW] > s[S_PREV_LOW]
        down = s[S_LAST_HIGH] < s[S_PREV_HIGH] and s[S_LAST_LOW] < s[S_PREV_LOW]
        new_dir = 1.0 if up else (-1.0 if down else 0.0)
        if new_dir != direction:
            direction = new_dir
            s[S_DIR] = new_dir
            s[S_WAVES] = 1.0 if new_dir != 0.0 else 0.0
            s[S_BARS] = 0.0
        elif new_dir != 0.0:
            s[S_WAVES] += 1.0
    s[S_BARS] += 1.0
    waves = s[S_WAVES]
    strength = 0.0 if direction == 0.0 else (2.0 if waves >= 3.0 else 1.0)

    bos = 0.0
    choch = 0.0
    bias = s[S_BIAS]
    if s[S_MS_HIGH] == s[S_MS_HIGH] and s[S_MS_HIGH_BROKEN] == 0.0 and close > s[S_MS_HIGH]:
        if bias < 0.0:
            choch = 1.0
        else:
            bos = 1.0
        bias = 1.0
        s[S_MS_HIGH_BROKEN] = 1.0
    if s[S_MS_LOW] == s[S_MS_LOW] and s[S_MS_LOW_BROKEN] == 0.0 and close < s[S_MS_LOW]:
        if bias > 0.0:
            choch = -1.0
        else:
            bos = -1.0
        bias = -1.0
        s[S_MS_LOW_BROKEN] = 1.0
    s[S_BIAS] = bias
    return (direction, strength, waves, s[S_BARS], bias, bos, choch,
            s[S_LAST_HIGH], s[S_LAST_LOW])
