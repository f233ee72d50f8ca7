"""Market structure (sentiment/core/structures.py): pivots without repaint, trend, BOS / CHoCH.

The expectations come from the module docstring: a swing pivot at bar ``c`` is known at
the close of bar ``c + n``, trend direction from the last two swing highs and lows, and a
close beyond the latest unbroken swing level is a BOS (with the bias) or a CHoCH (against).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

from sentiment.core import structures as stc

SWING = 5
# Columns of structure_step's result.
DIR, STRENGTH, WAVES, BARS, BIAS, BOS, CHOCH, SWING_HIGH, SWING_LOW = range(9)


def run(highs, lows, closes=None, swing=SWING) -> np.ndarray:
    """Feed the bars one at a time; row t is what structure_step returned after bar t."""
    highs = np.asarray(highs, dtype=np.float64)
    lows = np.asarray(lows, dtype=np.float64)
    closes = (highs + lows) / 2.0 if closes is None else np.asarray(closes, dtype=np.float64)
    state = stc.new_state()
    out = np.empty((len(highs), 9))
    for t in range(len(highs)):
        out[t] = stc.structure_step(state, highs[t], lows[t], closes[t], swing)
    return out


@njit(cache=False)
def _run_compiled(state, highs, lows, closes, swing):
    out = np.empty((len(highs), 9))
    for t in range(len(highs)):
        r = stc.structure_step(state, highs[t], lows[t], closes[t], swing)
        for k in range(9):
            out[t, k] = r[k]
    return out


def random_walk(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.r_[100.0, close[:-1]]
    wick = np.abs(rng.normal(0.0, 0.004, (2, n))) * close
    high = np.maximum(open_, close) + wick[0]
    low = np.minimum(open_, close) - wick[1]
    # Round to a tick so that equal highs / lows happen too.
    return np.round(high, 1), np.round(low, 1), np.round(close, 1)


def zigzag(turns: list[float], seg: int = 8, start: float | None = None):
    """Piecewise-linear mid path through ``turns`` (one every ``seg`` bars), high/low = mid
    +- 1; returns (highs, lows, bar index of each turn)."""
    points = [turns[1] if start is None else start, *turns]
    mid = []
    for a, b in zip(points[:-1], points[1:], strict=True):
        mid.extend(np.linspace(a, b, seg + 1)[1:])
    mid = np.array([points[0], *mid])
    turn_bars = [seg * (i + 1) for i in range(len(turns))]
    return mid + 1.0, mid - 1.0, turn_bars


def _nan_equal(a, b) -> bool:
    return (a == b) or (math.isnan(a) and math.isnan(b))


# ------------------------------------------------------------------ reference (docstring)


def reference(highs, lows, closes, n=SWING) -> list[tuple]:
    """The docstring's rules written out directly, bar by bar, looking only backwards."""
    nan = math.nan
    last_high = prev_high = last_low = prev_low = nan
    direction, waves, bars, bias = 0.0, 0.0, 0.0, 0.0
    ms_high, high_broken, ms_low, low_broken = nan, False, nan, False
    rows = []
    for t in range(len(highs)):
        c = t - n
        pivot = False
        if c - n >= 0:
            before = range(c - n, c)
            after = range(c + 1, t + 1)
            if all(highs[c] > highs[j] for j in before) and all(
                highs[c] >= highs[j] for j in after
            ):
                prev_high, last_high = last_high, highs[c]
                ms_high, high_broken, pivot = highs[c], False, True
            if all(lows[c] < lows[j] for j in before) and all(lows[c] <= lows[j] for j in after):
                prev_low, last_low = last_low, lows[c]
                ms_low, low_broken, pivot = lows[c], False, True
        if pivot and not math.isnan(prev_high) and not math.isnan(prev_low):
            if last_high > prev_high and last_low > prev_low:
                new_dir = 1.0
            elif last_high < prev_high and last_low < prev_low:
                new_dir = -1.0
            else:
                new_dir = 0.0
            if new_dir != direction:
                direction, waves, bars = new_dir, (1.0 if new_dir else 0.0), 0.0
            elif new_dir:
                waves += 1.0
        bars += 1.0
        strength = 0.0 if direction == 0 else (2.0 if waves >= 3 else 1.0)
        bos = choch = 0.0
        if not math.isnan(ms_high) and not high_broken and closes[t] > ms_high:
            if bias < 0:
                choch = 1.0
            else:
                bos = 1.0
            bias, high_broken = 1.0, True
        if not math.isnan(ms_low) and not low_broken and closes[t] < ms_low:
            if bias > 0:
                choch = -1.0
            else:
                bos = -1.0
            bias, low_broken = -1.0, True
        rows.append((direction, strength, waves, bars, bias, bos, choch, last_high, last_low))
    return rows


# ------------------------------------------------------------------ no repaint


def test_no_repaint_prefix_equals_full_run_at_every_bar():
    highs, lows, closes = random_walk(seed=20240501, n=2000)
    full = _run_compiled(stc.new_state(), highs, lows, closes, SWING)
    assert np.isfinite(full[:, SWING_HIGH]).sum() > 1000  # levels do appear
    for t in range(len(highs)):
        prefix = _run_compiled(
            stc.new_state(), highs[: t + 1], lows[: t + 1], closes[: t + 1], SWING
        )
        np.testing.assert_array_equal(prefix[-1], full[t], err_msg=f"bar {t}")


def test_no_repaint_future_bars_do_not_change_the_past():
    highs, lows, closes = random_walk(seed=7, n=2000)
    full = _run_compiled(stc.new_state(), highs, lows, closes, SWING)
    other_h, other_l, other_c = random_walk(seed=8, n=2000)
    for t in range(0, 2000, 97):
        # Same bars up to t, a completely different future after it.
        h = np.r_[highs[: t + 1], other_h[t + 1 :]]
        lo = np.r_[lows[: t + 1], other_l[t + 1 :]]
        c = np.r_[closes[: t + 1], other_c[t + 1 :]]
        mixed = _run_compiled(stc.new_state(), h, lo, c, SWING)
        np.testing.assert_array_equal(mixed[: t + 1], full[: t + 1])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_walk_matches_the_docstring_rules(seed):
    highs, lows, closes = random_walk(seed=seed, n=2000)
    got = run(highs, lows, closes)
    want = reference(highs, lows, closes)
    for t, (g, w) in enumerate(zip(got, want, strict=True)):
        assert all(_nan_equal(a, b) for a, b in zip(g, w, strict=True)), (t, tuple(g), w)
    # The walk exercises every output.
    assert {-1.0, 0.0, 1.0} <= set(got[:, DIR])
    assert (got[:, BOS] != 0).any() and (got[:, CHOCH] != 0).any()
    assert (got[:, STRENGTH] == 2.0).any()


def test_swing_levels_are_past_bars_confirmed_n_bars_later():
    highs, lows, closes = random_walk(seed=11, n=2000)
    got = run(highs, lows, closes)
    for t in range(len(highs)):
        level = got[t, SWING_HIGH]
        if math.isnan(level):
            continue
        # The level is the high of some bar at least SWING bars back.
        assert level in set(highs[: t - SWING + 1].tolist())
        level = got[t, SWING_LOW]
        if not math.isnan(level):
            assert level in set(lows[: t - SWING + 1].tolist())


# ------------------------------------------------------------------ pivots


def _peak_series(n=30, c=10, peak=110.0):
    highs = np.full(n, 100.0)
    lows = np.full(n, 90.0)
    highs[c] = peak
    return highs, lows


def test_peak_is_reported_exactly_swing_bars_later():
    c = 10
    highs, lows = _peak_series(c=c)
    got = run(highs, lows)
    assert np.isnan(got[: c + SWING, SWING_HIGH]).all()
    assert got[c + SWING, SWING_HIGH] == 110.0
    assert (got[c + SWING :, SWING_HIGH] == 110.0).all()


@pytest.mark.parametrize("swing", [2, 3, 8])
def test_pivot_delay_follows_the_swing_length(swing):
    c = 12
    highs, lows = _peak_series(n=40, c=c)
    lows[c + 3] = 80.0  # a trough as well
    got = run(highs, lows, swing=swing)
    assert np.isnan(got[: c + swing, SWING_HIGH]).all()
    assert got[c + swing, SWING_HIGH] == 110.0
    assert np.isnan(got[: c + 3 + swing, SWING_LOW]).all()
    assert got[c + 3 + swing, SWING_LOW] == 80.0


def test_trough_is_reported_exactly_swing_bars_later():
    c = 9
    highs = np.full(30, 100.0)
    lows = np.full(30, 90.0)
    lows[c] = 80.0
    got = run(highs, lows)
    assert np.isnan(got[: c + SWING, SWING_LOW]).all()
    assert (got[c + SWING :, SWING_LOW] == 80.0).all()
    assert np.isnan(got[:, SWING_HIGH]).all()  # a flat high is never a pivot


def test_equal_highs_only_the_first_is_a_pivot():
    # An earlier, lower swing high at bar 8 (105), then equal highs (110) at bars 20 and 22.
    highs = np.full(40, 100.0)
    lows = np.full(40, 90.0)
    highs[8] = 105.0
    highs[20] = 110.0
    highs[22] = 110.0
    state = stc.new_state()
    rows = []
    for t in range(40):
        rows.append(stc.structure_step(state, highs[t], lows[t], 95.0, SWING))
        if t == 25:
            # Bar 20 confirmed at 25: last = 110, previous = the 105 of bar 8.
            assert state[stc.S_LAST_HIGH] == 110.0
            assert state[stc.S_PREV_HIGH] == 105.0
    # Bar 22 would be confirmed at 27; it is not a pivot, so the previous high stays 105.
    assert state[stc.S_LAST_HIGH] == 110.0
    assert state[stc.S_PREV_HIGH] == 105.0
    assert rows[24][SWING_HIGH] == 105.0
    assert rows[25][SWING_HIGH] == 110.0


def test_a_higher_bar_within_the_following_bars_cancels_the_pivot():
    c = 10
    for k in range(1, SWING + 1):
        highs, lows = _peak_series(n=40, c=c)
        highs[c + k] = 111.0  # higher, k bars after the candidate
        got = run(highs, lows)
        # Bar c never becomes a level; bar c + k does, SWING bars after itself.
        assert 110.0 not in got[:, SWING_HIGH]
        assert np.isnan(got[: c + k + SWING, SWING_HIGH]).all()
        assert got[c + k + SWING, SWING_HIGH] == 111.0


def test_a_higher_bar_after_the_window_does_not_cancel_the_pivot():
    c = 10
    highs, lows = _peak_series(n=40, c=c)
    highs[c + SWING + 1] = 111.0
    got = run(highs, lows)
    assert got[c + SWING, SWING_HIGH] == 110.0


def test_a_lower_low_within_the_following_bars_cancels_the_trough():
    c = 10
    lows = np.full(40, 90.0)
    highs = np.full(40, 100.0)
    lows[c] = 80.0
    lows[c + 3] = 79.0
    got = run(highs, lows)
    assert 80.0 not in got[:, SWING_LOW]
    assert got[c + 3 + SWING, SWING_LOW] == 79.0


def test_candidate_must_be_strictly_above_the_bars_before():
    # Equal highs SWING bars apart (bars 5 and 10): bar 5 is the pivot, bar 10 is not.
    highs, lows = _peak_series(n=40, c=10)
    highs[10 - SWING] = 110.0
    state = stc.new_state()
    got = []
    for t in range(40):
        got.append(stc.structure_step(state, highs[t], lows[t], 95.0, SWING)[SWING_HIGH])
    assert np.isnan(got[:10]).all()
    assert got[10] == 110.0
    assert np.isnan(state[stc.S_PREV_HIGH])  # bar 10 never became a second swing high


# ------------------------------------------------------------------ trend


def _trend_events(turns, seg=8):
    highs, lows, turn_bars = zigzag(turns, seg=seg)
    return highs, lows, [b + SWING for b in turn_bars]


def test_higher_highs_and_lows_give_an_uptrend_growing_in_strength():
    # Troughs 100, 110, 120, 130 and peaks 115, 125, 135, 145: an up-staircase.
    turns = [100, 115, 110, 125, 120, 135, 130, 145, 140]
    highs, lows, confirm = _trend_events(turns)
    got = run(highs, lows)
    # Pivot levels appear on their confirmation bars.
    for i, bar in enumerate(confirm[:-1]):
        col = SWING_LOW if i % 2 == 0 else SWING_HIGH
        expected = turns[i] + (-1.0 if col == SWING_LOW else 1.0)
        assert got[bar, col] == pytest.approx(expected)
        assert got[bar - 1, col] != pytest.approx(expected)
    # Two highs and two lows exist at the 4th pivot (peak 125): the trend starts there.
    start = confirm[3]
    assert (got[:start, DIR] == 0).all()
    assert (got[:start, STRENGTH] == 0).all()
    assert got[start, DIR] == 1.0
    assert got[start, WAVES] == 1.0
    assert got[start, STRENGTH] == 1.0
    # Every further confirming pivot adds a wave; strength 2 from the third wave on.
    for waves, bar in enumerate(confirm[4:-1], start=2):
        assert got[bar, DIR] == 1.0
        assert got[bar, WAVES] == waves
        assert got[bar, STRENGTH] == (2.0 if waves >= 3 else 1.0)
        assert got[bar - 1, WAVES] == waves - 1  # only on the pivot's bar
    assert got[-1, STRENGTH] == 2.0
    # bars_in_trend counts from 1 on the bar the direction changed.
    for t in range(start, len(highs)):
        assert got[t, BARS] == t - start + 1


def test_lower_highs_and_lows_give_a_downtrend():
    turns = [150, 135, 140, 125, 130, 115, 120, 105, 110]
    highs, lows, confirm = _trend_events(turns)
    got = run(highs, lows)
    start = confirm[3]
    assert (got[:start, DIR] == 0).all()
    assert got[start, DIR] == -1.0
    assert got[start, BARS] == 1.0
    assert got[-1, DIR] == -1.0
    assert got[-1, STRENGTH] == 2.0
    assert got[-1, WAVES] == len(confirm) - 1 - 3


@pytest.mark.parametrize(
    "turns",
    [
        [100, 120, 95, 125, 90, 130, 85],  # expanding: higher highs, lower lows
        [80, 140, 85, 135, 90, 130, 95],  # contracting: lower highs, higher lows
    ],
)
def test_mixed_highs_and_lows_give_no_trend(turns):
    highs, lows, _ = _trend_events(turns)
    got = run(highs, lows)
    assert np.isfinite(got[-1, SWING_HIGH]) and np.isfinite(got[-1, SWING_LOW])
    assert (got[:, DIR] == 0).all()
    assert (got[:, STRENGTH] == 0).all()
    assert (got[:, WAVES] == 0).all()


def test_trend_change_resets_bars_and_waves():
    # Up-staircase; then a lower high with a higher low (mixed -> 0); then lower highs and
    # lower lows (-> -1).
    turns = [100, 115, 110, 125, 120, 135, 130, 132, 125, 128, 115, 120, 105]
    highs, lows, confirm = _trend_events(turns)
    got = run(highs, lows)
    dirs = got[:, DIR]
    changes = (np.flatnonzero(np.diff(dirs) != 0) + 1).tolist()
    assert changes == [confirm[3], confirm[7], confirm[8]]
    assert [dirs[c] for c in changes] == [1.0, 0.0, -1.0]
    assert got[confirm[6], WAVES] == 4.0  # up: pivots 3..6 confirmed it
    assert got[confirm[7], WAVES] == 0.0 and got[confirm[7], STRENGTH] == 0.0
    assert got[confirm[8], WAVES] == 1.0 and got[confirm[8], STRENGTH] == 1.0
    for a, b in zip(changes, [*changes[1:], len(dirs)], strict=True):
        np.testing.assert_array_equal(got[a:b, BARS], np.arange(1, b - a + 1))
    assert dirs[-1] == -1.0
    assert got[-1, WAVES] == 4.0  # pivots 8..11 (the last turn is never confirmed)
    assert got[-1, STRENGTH] == 2.0


def test_bars_in_trend_counts_from_the_first_bar_without_a_change():
    highs, lows = _peak_series(n=25)
    got = run(highs, lows)
    np.testing.assert_array_equal(got[:, BARS], np.arange(1, 26))


# ------------------------------------------------------------------ BOS / CHoCH


def _levels_scenario():
    """Swing high 110 at bar 10 and swing low 90 at bar 20 (confirmed at 15 and 25) over a
    flat 100/95 base; the closes after bar 25 are set by each test."""
    n = 60
    highs = np.full(n, 100.0)
    lows = np.full(n, 95.0)
    closes = np.full(n, 97.0)
    highs[10] = 110.0
    lows[20] = 90.0
    return highs, lows, closes


def _set_bar(highs, lows, closes, t, close):
    closes[t] = close
    highs[t] = max(highs[t], close)
    lows[t] = min(lows[t], close)


def test_close_above_swing_high_without_bias_is_a_bos():
    highs, lows, closes = _levels_scenario()
    _set_bar(highs, lows, closes, 30, 111.0)
    got = run(highs, lows, closes)
    assert (got[:30, BOS] == 0).all() and (got[:30, CHOCH] == 0).all()
    assert (got[:30, BIAS] == 0).all()
    assert got[30, BOS] == 1.0
    assert got[30, CHOCH] == 0.0
    assert (got[30:, BIAS] == 1.0).all()


def test_close_equal_to_the_level_does_not_break_it():
    highs, lows, closes = _levels_scenario()
    _set_bar(highs, lows, closes, 30, 110.0)
    _set_bar(highs, lows, closes, 32, 90.0)
    got = run(highs, lows, closes)
    assert (got[:, BOS] == 0).all() and (got[:, CHOCH] == 0).all()


def test_a_level_breaks_only_once():
    highs, lows, closes = _levels_scenario()
    for t in (30, 31, 32, 33):  # four closes above 110 before any new level appears
        _set_bar(highs, lows, closes, t, 111.0)
    got = run(highs, lows, closes)
    assert (got[30:34, SWING_HIGH] == 110.0).all()
    assert np.flatnonzero(got[:, BOS]).tolist() == [30]
    assert (got[:, CHOCH] == 0).all()


def test_break_down_against_up_bias_is_a_choch_then_bos_continues():
    highs, lows, closes = _levels_scenario()
    _set_bar(highs, lows, closes, 30, 111.0)  # BOS up (no bias yet)
    _set_bar(highs, lows, closes, 32, 89.0)  # below the 90 swing low with bias up: CHoCH
    got = run(highs, lows, closes)
    assert got[30, BOS] == 1.0
    assert got[32, CHOCH] == -1.0
    assert got[32, BOS] == 0.0
    assert got[32, BIAS] == -1.0
    assert got[31, BIAS] == 1.0


def test_break_down_without_bias_is_a_bos_and_symmetric_choch_up():
    highs, lows, closes = _levels_scenario()
    _set_bar(highs, lows, closes, 30, 89.0)  # below the swing low, no bias: BOS down
    _set_bar(highs, lows, closes, 35, 111.0)  # above the swing high against bias: CHoCH up
    got = run(highs, lows, closes)
    assert got[30, BOS] == -1.0 and got[30, CHOCH] == 0.0
    assert (got[30:35, BIAS] == -1.0).all()
    assert got[35, CHOCH] == 1.0 and got[35, BOS] == 0.0
    assert got[35, BIAS] == 1.0


def test_break_in_the_direction_of_the_bias_is_a_bos():
    # Down bias from a first break, then a new lower swing low broken: BOS again.
    highs, lows, closes = _levels_scenario()
    _set_bar(highs, lows, closes, 30, 89.0)  # BOS down
    lows[36] = 80.0  # a new swing low at 36, confirmed at 41
    closes[36] = 95.0
    _set_bar(highs, lows, closes, 45, 79.0)
    got = run(highs, lows, closes)
    assert got[41, SWING_LOW] == 80.0
    assert np.flatnonzero(got[:, BOS]).tolist() == [30, 45]
    assert got[45, BOS] == -1.0 and got[45, BIAS] == -1.0
    assert (got[:, CHOCH] == 0).all()


def test_a_new_swing_level_can_break_again():
    highs, lows, closes = _levels_scenario()
    _set_bar(highs, lows, closes, 30, 111.0)  # breaks 110
    highs[36] = 120.0  # new swing high confirmed at 41
    closes[36] = 100.0
    _set_bar(highs, lows, closes, 44, 121.0)
    got = run(highs, lows, closes)
    assert np.flatnonzero(got[:, BOS] == 1.0).tolist() == [30, 44]
