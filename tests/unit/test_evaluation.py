"""Regime and composite quality metrics (sentiment/core/evaluation.py).

Every series here is built by hand: the regime sequence and the price path are placed so
that the answer of each metric follows from its definition in the module docstring (worked
out in the comments), never from running the code.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from sentiment.config import INTERVAL_MINUTES
from sentiment.core.evaluation import (
    METRICS,
    SHARE_TARGETS,
    TARGETS,
    Evaluation,
    Event,
    Windows,
    evaluate,
    format_report,
    read_events,
)
from sentiment.errors import InputError

#: The first bar's close time; bar k closes at T0 + k bars.
T0 = pd.Timestamp("2022-01-01 01:00")
#: The nine metrics of the docstring's table, spelled out so a rename is noticed.
METRIC_NAMES = ("transitions_per_month", "stale_share", "contradiction_share",
                "crash_catch_rate", "pump_catch_rate", "fwd_vol_ratio", "very_bull_share",
                "very_bear_share", "breakout_max_bars")


def history(regime, close=100.0, confidence=0.9, score=0.0, *, interval="60", start=T0,
            hmm=None, symbol="BTCUSDT") -> pd.DataFrame:
    """``sentiment_history`` rows on a regular grid: one row per entry of ``regime``."""
    n = len(regime)
    step = pd.Timedelta(minutes=INTERVAL_MINUTES[interval])
    frame = pd.DataFrame({
        "timestamp": pd.date_range(start, periods=n, freq=step),
        "close": np.broadcast_to(np.asarray(close, dtype=float), (n,)).copy(),
        "regime": pd.Series(list(regime), dtype=object),
        "regime_confidence": np.broadcast_to(np.asarray(confidence, dtype=float), (n,)).copy(),
        "sentiment_score": np.broadcast_to(np.asarray(score, dtype=float), (n,)).copy(),
        "symbol": symbol,
        "interval": interval,
    })
    if hmm is not None:
        frame["hmm_regime"] = pd.Series(list(hmm), dtype=object)
    return frame


def flat(n: int) -> np.ndarray:
    return np.full(n, 100.0)


# -- windows ---------------------------------------------------------------------------------


@pytest.mark.parametrize("interval, expected", [
    # h hours -> max(1, round(h x 60 / minutes)) bars; the forward window at least 2 bars
    ("60", Windows(ret=24, onset_gap=48, catch=2, forward=24, minutes=60)),
    # 4h bars: 24 h = 6 bars, 48 h = 12, 2 h = half a bar -> at least 1
    ("240", Windows(ret=6, onset_gap=12, catch=1, forward=6, minutes=240)),
    # daily bars: 24 h = 1 bar, 48 h = 2, 2 h -> 1; the forward window at least 2 bars
    ("D", Windows(ret=1, onset_gap=2, catch=1, forward=2, minutes=1440)),
    # minute bars: 24 h = 1440 bars, 48 h = 2880, 2 h = 120
    ("1", Windows(ret=1440, onset_gap=2880, catch=120, forward=1440, minutes=1)),
])
def test_windows_are_scaled_by_time(interval, expected):
    assert Windows.of(interval) == expected


@pytest.mark.parametrize("interval", ["7", "1h", ""])
def test_unknown_interval_is_an_input_error(interval):
    with pytest.raises(InputError) as err:
        Windows.of(interval)
    assert err.value.field == "interval"
    with pytest.raises(InputError) as err:
        evaluate(history(["ranging"] * 3), interval=interval)
    assert err.value.field == "interval"


def test_interval_is_taken_from_the_rows_or_must_be_passed():
    rows = history(["ranging"] * 3, interval="240")
    assert evaluate(rows).interval == "240"
    with pytest.raises(InputError) as err:
        evaluate(rows.drop(columns="interval"))
    assert err.value.field == "interval"
    mixed = rows.assign(interval=["240", "240", "60"])
    with pytest.raises(InputError) as err:
        evaluate(mixed)
    assert err.value.field == "interval"


# -- input checks ----------------------------------------------------------------------------


def test_duplicate_timestamps_raise_naming_the_field():
    rows = history(["ranging"] * 4)
    rows.loc[3, "timestamp"] = rows.loc[1, "timestamp"]
    with pytest.raises(InputError) as err:
        evaluate(rows, interval="60")
    assert err.value.field == "timestamp"
    assert "timestamp" in str(err.value)


def test_several_symbols_raise_naming_the_field():
    rows = history(["ranging"] * 4)
    rows.loc[2:, "symbol"] = "ETHUSDT"
    with pytest.raises(InputError) as err:
        evaluate(rows, interval="60")
    assert err.value.field == "symbol"
    assert "symbol" in str(err.value)


@pytest.mark.parametrize("column", ["timestamp", "close", "regime", "regime_confidence",
                                    "sentiment_score"])
def test_a_missing_column_is_named(column):
    with pytest.raises(InputError) as err:
        evaluate(history(["ranging"] * 3).drop(columns=column), interval="60")
    assert err.value.field == column


# -- transitions_per_month -------------------------------------------------------------------


def test_transitions_per_month_over_labelled_span_with_warm_up_and_a_gap():
    # Hourly bars 0..245; bars 121..169 are missing rows (a 49-hour hole).
    # Bars 0..4: warm-up without a regime. Labelled from bar 5 to bar 245 = 240 h = 10 days.
    # Regimes: ranging 5..60, trending_up 61..120 and (after the hole) 170..200, ranging
    # 201..245 -> 3 runs, 2 transitions -> 2 / (10 / 30.44) per month.
    labels = ([None] * 5 + ["ranging"] * 56 + ["trending_up"] * 60 + [None] * 49
              + ["trending_up"] * 31 + ["ranging"] * 45)
    assert len(labels) == 246
    rows = history(labels)
    rows = rows.drop(index=range(121, 170)).reset_index(drop=True)
    ev = evaluate(rows, interval="60")
    assert ev.counts["transitions"] == 2
    assert ev.metrics["transitions_per_month"] == pytest.approx(2 / (10 / 30.44))
    assert ev.start == T0 + pd.Timedelta(hours=5)
    assert ev.end == T0 + pd.Timedelta(hours=245)
    assert ev.bars == 246  # the hole is on the grid
    assert ev.counts["bars"] == 246 - 5 - 49


def test_transitions_per_month_needs_two_labelled_bars():
    ev = evaluate(history([None, None, "ranging"]), interval="60")
    assert math.isnan(ev.metrics["transitions_per_month"])
    assert ev.counts["transitions"] == 0


def test_transitions_per_month_counts_every_change():
    # 4 runs over 2 days of labelled bars (bars 0..48): 3 / (2 / 30.44)
    labels = ["ranging"] * 10 + ["squeeze"] * 10 + ["breakout"] * 5 + ["trending_up"] * 24
    ev = evaluate(history(labels), interval="60")
    assert ev.counts["transitions"] == 3
    assert ev.metrics["transitions_per_month"] == pytest.approx(3 / (2 / 30.44))


# -- stale_share -----------------------------------------------------------------------------


def test_stale_share_boundary_is_inclusive():
    # Labelled bars with confidence 0.25 (stale), 0.2501 (not), 0.9 (not), 0.1 (stale);
    # the warm-up bar's 0.0 does not count (its regime is null): 2 of 4.
    rows = history([None, "ranging", "ranging", "squeeze", "ranging"],
                   confidence=[0.0, 0.25, 0.2501, 0.9, 0.1])
    ev = evaluate(rows, interval="60")
    assert ev.metrics["stale_share"] == pytest.approx(0.5)


def test_stale_share_zero_when_all_confident():
    ev = evaluate(history(["ranging"] * 5, confidence=0.2501), interval="60")
    assert ev.metrics["stale_share"] == 0.0


# -- contradiction_share ---------------------------------------------------------------------


@pytest.mark.parametrize("regime, now, contradiction", [
    ("trending_up", 94.0, True),      # r24 = -6 % < -5 %
    ("trending_up", 95.0, False),     # exactly -5 %
    ("trending_up", 96.0, False),     # -4 %
    ("trending_up", 120.0, False),
    ("trending_down", 106.0, True),   # +6 % > +5 %
    ("trending_down", 105.0, False),  # exactly +5 %
    ("trending_down", 80.0, False),
    ("ranging", 108.0, True),         # |+8 %| > 7 %
    ("ranging", 92.0, True),          # |-8 %| > 7 %
    ("ranging", 107.0, False),        # exactly +7 %
    ("ranging", 93.0, False),         # exactly -7 %
    ("squeeze", 108.0, True),
    ("squeeze", 92.0, True),
    ("squeeze", 107.0, False),
    ("squeeze", 93.0, False),
    ("high_volatility", 80.0, False),
    ("breakout", 80.0, False),
    ("capitulation", 120.0, False),
])
def test_contradiction_cases_and_boundaries(regime, now, contradiction):
    # Bars 0..23 close at 100 without a regime (warm-up); bar 24 is the only labelled bar,
    # so the share is 1 or 0.
    close = np.append(flat(24), now)
    ev = evaluate(history([None] * 24 + [regime], close=close), interval="60")
    assert ev.metrics["contradiction_share"] == (1.0 if contradiction else 0.0)
    assert ev.counts["contradictions"] == int(contradiction)


def test_contradiction_r24_uses_the_close_exactly_24_bars_earlier():
    # Bar 0 closes at 100, bars 1..23 at 90; bars 24 and 25 are trending_up at 94.
    # Bar 24: 94 / close[0] - 1 = -6 % -> contradiction. Bar 25: 94 / close[1] - 1 = +4.4 %
    # -> none (against bar 0, 25 bars earlier, it would be -6 %). 1 of 2 labelled bars.
    close = np.concatenate([[100.0], np.full(23, 90.0), [94.0, 94.0]])
    ev = evaluate(history([None] * 24 + ["trending_up"] * 2, close=close), interval="60")
    assert ev.counts["contradictions"] == 1
    assert ev.metrics["contradiction_share"] == pytest.approx(0.5)


def test_contradiction_share_is_over_labelled_bars():
    # Bars 0..23: ranging at 100 (r24 unknown: no contradiction). Bars 24..27: trending_up at
    # 94 (contradiction each), bars 28..31: ranging at 100 (r24 0). 4 of 32 labelled bars.
    close = np.concatenate([flat(24), np.full(4, 94.0), flat(4)])
    labels = ["ranging"] * 24 + ["trending_up"] * 4 + ["ranging"] * 4
    ev = evaluate(history(labels, close=close), interval="60")
    assert ev.metrics["contradiction_share"] == pytest.approx(4 / 32)


# -- crash and pump catch rates --------------------------------------------------------------


def dips(n: int, at, level: float) -> np.ndarray:
    """Close 100 except one bar at ``level`` at each of ``at``: with a 24-bar r24 the move
    holds on that bar only (and the opposite move 24 bars later)."""
    close = flat(n)
    close[list(at)] = level
    return close


@pytest.mark.parametrize("offset, catcher, caught", [
    (0, "trending_down", True),
    (2, "trending_down", True),
    (3, "trending_down", False),
    (1, "high_volatility", True),
    (1, "capitulation", True),
    (1, "breakout", False),
    (1, "trending_up", False),
    (1, "ranging", False),
])
def test_crash_catch_window_and_regimes(offset, catcher, caught):
    # A single bar at 90 (bar 30) after 100s: r24 = -10 % < -8 % on bar 30 only -> one onset.
    labels = ["ranging"] * 50
    labels[30 + offset] = catcher
    ev = evaluate(history(labels, close=dips(50, [30], 90.0)), interval="60")
    assert ev.counts["crash_onsets"] == 1
    assert ev.counts["crashes_caught"] == int(caught)
    assert ev.metrics["crash_catch_rate"] == (1.0 if caught else 0.0)


@pytest.mark.parametrize("offset, catcher, caught", [
    (0, "trending_up", True),
    (2, "trending_up", True),
    (3, "trending_up", False),
    (1, "high_volatility", True),
    (1, "breakout", True),
    (1, "capitulation", False),
    (1, "trending_down", False),
    (1, "squeeze", False),
])
def test_pump_catch_window_and_regimes(offset, catcher, caught):
    # A single bar at 110 (bar 30): r24 = +10 % > +8 % on bar 30 only -> one pump onset.
    labels = ["ranging"] * 50
    labels[30 + offset] = catcher
    ev = evaluate(history(labels, close=dips(50, [30], 110.0)), interval="60")
    assert ev.counts["pump_onsets"] == 1
    assert ev.counts["pumps_caught"] == int(caught)
    assert ev.metrics["pump_catch_rate"] == (1.0 if caught else 0.0)


@pytest.mark.parametrize("second, onsets", [
    (30, 1),  # the first crash bar is 30 bars before: not a new onset
    (48, 1),  # 48 bars before: still inside the gap
    (49, 2),  # 49 bars before: a new onset
    (60, 2),
])
def test_crash_onset_needs_48_quiet_bars_before(second, onsets):
    first = 30
    close = dips(140, [first, first + second], 90.0)
    ev = evaluate(history(["ranging"] * 140, close=close), interval="60")
    assert ev.counts["crash_onsets"] == onsets


def test_a_crash_bar_that_is_not_an_onset_does_not_count_as_caught():
    # Crash bars 30, 60 (30 after: no onset) and 120 (60 after 60: onset). Only bar 60 and
    # bar 121 are trending_down: 60 is no onset, so 1 of 2 onsets (30, 120) is caught.
    labels = ["ranging"] * 140
    labels[60] = labels[121] = "trending_down"
    ev = evaluate(history(labels, close=dips(140, [30, 60, 120], 90.0)), interval="60")
    assert ev.counts["crash_onsets"] == 2
    assert ev.counts["crashes_caught"] == 1
    assert ev.metrics["crash_catch_rate"] == pytest.approx(0.5)


@pytest.mark.parametrize("level", [92.0, 108.0])
def test_a_move_of_exactly_8_percent_is_no_shock(level):
    # A step from 100 to 92 (or 108) at bar 30: r24 = -8 % (+8 %) on bars 30..53, then 0.
    # The move is not beyond 8 %: no onset either way.
    close = np.concatenate([flat(30), np.full(40, level)])
    ev = evaluate(history(["ranging"] * 70, close=close), interval="60")
    assert ev.counts["crash_onsets"] == 0
    assert ev.counts["pump_onsets"] == 0


def test_catch_rates_are_nan_without_onsets():
    ev = evaluate(history(["ranging"] * 60, close=flat(60)), interval="60")
    assert ev.counts["crash_onsets"] == ev.counts["pump_onsets"] == 0
    assert math.isnan(ev.metrics["crash_catch_rate"])
    assert math.isnan(ev.metrics["pump_catch_rate"])


# -- fwd_vol_ratio ---------------------------------------------------------------------------

A, B = 0.02, 0.005


def vol_path() -> np.ndarray:
    """121 closes whose log returns (bars 1..120) alternate +-A on bars 1..48 and +-B on
    bars 49..120. Any 24 consecutive alternating returns have mean 0 and std (ddof 0)
    exactly the amplitude: bar i's forward window [i+1, i+24] is all A for i <= 24, all B
    for 48 <= i <= 96, and not closed for i >= 97."""
    j = np.arange(1, 121)
    sign = np.where(j % 2 == 1, 1.0, -1.0)
    returns = np.where(j <= 48, A, B) * sign
    return 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))


VOL_LABELS = (["high_volatility"] * 25 + ["trending_up"] * 23 + ["ranging"] * 25
              + ["squeeze"] * 24 + ["high_volatility"] * 24)


def test_fwd_vol_ratio_from_known_forward_std():
    # high_volatility bars 0..24: forward std A; ranging 48..72 and squeeze 73..96: B.
    # The last 24 bars are high_volatility too, but their windows are open: excluded.
    # Ratio A / B = 4.
    assert len(VOL_LABELS) == 121
    ev = evaluate(history(VOL_LABELS, close=vol_path()), interval="60")
    assert ev.metrics["fwd_vol_ratio"] == pytest.approx(A / B, rel=1e-6)
    hv = ev.regimes.loc["high_volatility"]
    assert hv["closed_bars"] == 25
    # std with ddof 0 (ddof 1 would give A x sqrt(24/23))
    assert hv["fwd_vol_median"] == pytest.approx(A, rel=1e-6)
    assert hv["fwd_vol_p10"] == pytest.approx(A, rel=1e-6)
    assert hv["fwd_vol_p90"] == pytest.approx(A, rel=1e-6)
    assert ev.regimes.loc["ranging", "fwd_vol_median"] == pytest.approx(B, rel=1e-6)
    assert ev.regimes.loc["squeeze", "fwd_vol_median"] == pytest.approx(B, rel=1e-6)
    assert ev.regimes.loc["squeeze", "closed_bars"] == 24


def test_fwd_vol_ratio_is_nan_without_closed_calm_windows():
    # Calm bars only among the last 24 (open windows): no denominator.
    labels = ["high_volatility"] * 97 + ["ranging"] * 24
    ev = evaluate(history(labels, close=vol_path()), interval="60")
    assert math.isnan(ev.metrics["fwd_vol_ratio"])
    assert ev.regimes.loc["ranging", "closed_bars"] == 0
    assert math.isnan(ev.regimes.loc["ranging", "fwd_vol_median"])


# -- very bull / bear shares and breakouts ---------------------------------------------------


def test_very_bull_and_bear_shares_are_inclusive():
    # >= 0.7: 0.7 and 1.0; <= -0.7: -0.7 and -1.0. Two of eight each.
    scores = [0.7, 0.6999, 1.0, -0.7, -0.6999, 0.0, -1.0, 0.2]
    ev = evaluate(history(["ranging"] * 8, score=scores), interval="60")
    assert ev.metrics["very_bull_share"] == pytest.approx(2 / 8)
    assert ev.metrics["very_bear_share"] == pytest.approx(2 / 8)


def test_breakout_max_bars_is_the_longest_run():
    labels = (["breakout"] * 3 + ["ranging"] + ["breakout"] * 5 + ["trending_up"]
              + ["breakout"] * 2)
    ev = evaluate(history(labels), interval="60")
    assert ev.metrics["breakout_max_bars"] == 5
    assert ev.regimes.loc["breakout", "runs"] == 3
    ev = evaluate(history(["ranging"] * 5), interval="60")
    assert ev.metrics["breakout_max_bars"] == 0


# -- per-regime table ------------------------------------------------------------------------


def test_per_regime_share_runs_and_mean_duration():
    # 10 labelled bars after 2 warm-up bars: ranging 4 + 2 (2 runs, mean 3), trending_up 2,
    # squeeze 2; the other regimes are absent.
    labels = [None, None] + ["ranging"] * 4 + ["trending_up"] * 2 + ["ranging"] * 2 + \
        ["squeeze"] * 2
    table = evaluate(history(labels), interval="60").regimes
    assert table.loc["ranging", "share"] == pytest.approx(0.6)
    assert table.loc["ranging", "bars"] == 6
    assert table.loc["ranging", "runs"] == 2
    assert table.loc["ranging", "mean_duration"] == pytest.approx(3.0)
    assert table.loc["trending_up", "share"] == pytest.approx(0.2)
    assert table.loc["trending_up", "runs"] == 1
    assert table.loc["trending_up", "mean_duration"] == pytest.approx(2.0)
    assert table.loc["squeeze", "share"] == pytest.approx(0.2)
    for absent in ("trending_down", "high_volatility", "breakout", "capitulation"):
        assert table.loc[absent, "share"] == 0.0
        assert table.loc[absent, "runs"] == 0
        assert math.isnan(table.loc[absent, "mean_duration"])
    assert table["share"].sum() == pytest.approx(1.0)


def test_forward_return_quantiles_only_from_closed_windows():
    # Bars 0..23 close at 100; bar 24 + i closes at 100 x (1 + v[i]) for i = 0..10, so the
    # forward 24-bar return of bar i is v[i]. Bars 11..34 have open windows. v is a shuffle
    # of 0.00 .. 0.10: median 0.05, p10 0.01, p90 0.09 (linear interpolation at 1 and 9).
    v = np.array([0.05, 0.10, 0.00, 0.03, 0.08, 0.01, 0.06, 0.09, 0.02, 0.07, 0.04])
    close = np.concatenate([flat(24), 100.0 * (1 + v)])
    row = evaluate(history(["trending_up"] * 35, close=close), interval="60") \
        .regimes.loc["trending_up"]
    assert row["closed_bars"] == 11
    assert row["bars"] == 35
    assert row["fwd_return_median"] == pytest.approx(0.05)
    assert row["fwd_return_p10"] == pytest.approx(0.01)
    assert row["fwd_return_p90"] == pytest.approx(0.09)


# -- other intervals and missing bars --------------------------------------------------------


def test_four_hour_bars_use_six_bar_windows():
    # 4h bars: r24 is against 6 bars earlier. Bar 0 at 100, bars 1..5 at 90, bars 6 and 7 at
    # 94 and trending_up. Bar 6: 94 / 100 - 1 = -6 % -> contradiction (against bar 5 it
    # would be +4.4 %); bar 7: 94 / 90 - 1 (bar 1) -> none. Bars 0 and 1 are ranging (r24
    # unknown). Forward window 6 bars: only bars 0 and 1 are closed, with forward returns
    # 94 / 100 - 1 and 94 / 90 - 1.
    close = np.array([100.0, 90, 90, 90, 90, 90, 94, 94])
    labels = ["ranging"] * 2 + [None] * 4 + ["trending_up"] * 2
    ev = evaluate(history(labels, close=close, interval="240"))
    assert ev.interval == "240"
    assert ev.counts["contradictions"] == 1
    assert ev.metrics["contradiction_share"] == pytest.approx(1 / 4)
    ranging = ev.regimes.loc["ranging"]
    assert ranging["closed_bars"] == 2
    assert ev.regimes.loc["trending_up", "closed_bars"] == 0
    assert ranging["fwd_return_median"] == pytest.approx((-0.06 + 94 / 90 - 1) / 2)
    # labelled from bar 0 to bar 7 = 28 h; one change
    assert ev.metrics["transitions_per_month"] == pytest.approx(1 / (28 / 24 / 30.44))


def test_four_hour_bars_onset_gap_and_catch_window():
    # Onset gap 48 h = 12 bars; catch 2 h -> 1 bar after the onset.
    close = dips(60, [6, 18, 31], 90.0)  # 18 is 12 bars after 6 (no onset); 31 is 13 after 18
    labels = ["ranging"] * 60
    labels[7] = "trending_down"   # onset 6 + 1: caught
    labels[33] = "trending_down"  # onset 31 + 2: beyond the 1-bar window
    ev = evaluate(history(labels, close=close, interval="240"))
    assert ev.counts["crash_onsets"] == 2
    assert ev.counts["crashes_caught"] == 1


def test_four_hour_transitions_per_month_by_time():
    # 4h bars 0..60 labelled: 240 h = 10 days; 2 runs -> 1 / (10 / 30.44)
    labels = ["ranging"] * 30 + ["squeeze"] * 31
    ev = evaluate(history(labels, interval="240"))
    assert ev.metrics["transitions_per_month"] == pytest.approx(1 / (10 / 30.44))


def test_missing_bars_are_holes_on_the_grid():
    # Hourly bars 0..40 with rows 10..14 missing. Close 90 except bar 6 at 100, bar 30 at 94
    # and bar 36 at 50. Only bars 30 and 36 are trending_up (others high_volatility, which
    # never contradicts). By time, bar 30's r24 is 94 / close[bar 6] - 1 = -6 %: a
    # contradiction; bar 36's is against bar 12, a hole: unknown, no contradiction (by row
    # position it would be 50 / 90 - 1). No crash onset either: -6 % and an unknown r24.
    close = np.full(41, 90.0)
    close[6], close[30], close[36] = 100.0, 94.0, 50.0
    labels = ["high_volatility"] * 41
    labels[30] = labels[36] = "trending_up"
    rows = history(labels, close=close).drop(index=range(10, 15)).reset_index(drop=True)
    assert len(rows) == 36
    ev = evaluate(rows, interval="60")
    assert ev.bars == 41
    assert ev.counts["bars"] == 36
    assert ev.counts["contradictions"] == 1
    assert ev.counts["crash_onsets"] == 0


def test_unsorted_and_timezone_aware_rows_are_placed_in_time_order():
    # The contradiction test above with the rows reversed and stamped in UTC+02:00.
    close = np.concatenate([[100.0], np.full(23, 90.0), [94.0, 94.0]])
    rows = history([None] * 24 + ["trending_up"] * 2, close=close)
    rows["timestamp"] = rows["timestamp"].dt.tz_localize("UTC").dt.tz_convert("Etc/GMT-2")
    ev = evaluate(rows.iloc[::-1].reset_index(drop=True), interval="60")
    assert ev.counts["contradictions"] == 1
    assert ev.start == T0 + pd.Timedelta(hours=24)


# -- HMM layer -------------------------------------------------------------------------------


def test_hmm_quality_label_shares_and_fwd_vol_ratio():
    # HMM labels on the vol path: high_volatility bars 0..24 (forward std A), bull 25..47,
    # calm 48..96 (forward std B), none 97..120. 97 labelled bars; 2 label changes.
    hmm = ["high_volatility"] * 25 + ["bull"] * 23 + ["calm"] * 49 + [None] * 24
    ev = evaluate(history(["ranging"] * 121, close=vol_path(), hmm=hmm), interval="60")
    assert ev.hmm["bars"] == 97
    shares = ev.hmm["label_shares"]
    assert shares["high_volatility"] == pytest.approx(25 / 97)
    assert shares["bull"] == pytest.approx(23 / 97)
    assert shares["calm"] == pytest.approx(49 / 97)
    assert shares["bear"] == 0.0
    assert ev.hmm["fwd_vol_ratio"] == pytest.approx(A / B, rel=1e-6)
    assert ev.hmm["label_changes"] == 2


def test_hmm_quality_is_empty_without_hmm_labels():
    assert evaluate(history(["ranging"] * 5), interval="60").hmm == {}
    ev = evaluate(history(["ranging"] * 5, hmm=[None] * 5), interval="60")
    assert ev.hmm == {}


# -- events ----------------------------------------------------------------------------------


def test_read_events_date_only_end_covers_the_whole_day():
    frame = pd.DataFrame({
        "name": ["day", "hours", "offset"],
        "start": ["2022-01-02", "2022-01-01 00:30", "2022-01-02T02:30:00+02:00"],
        "end": ["2022-01-02", "2022-01-01 05:00", "2022-01-03T02:00:00+02:00"],
    })
    day, hours, offset = read_events(frame)
    assert (day.name, day.start, day.end) == ("day", pd.Timestamp("2022-01-02"),
                                              pd.Timestamp("2022-01-03"))
    assert hours.end == pd.Timestamp("2022-01-01 05:00")  # a time is kept as it is
    assert offset.start == pd.Timestamp("2022-01-02 00:30")  # converted to UTC, naive
    assert offset.end == pd.Timestamp("2022-01-03 00:00")
    # A date-only end is not before a start at midnight after it: it runs to that midnight.
    (late,) = read_events(pd.DataFrame({"name": ["x"], "start": ["2022-01-03 00:00"],
                                        "end": ["2022-01-02"]}))
    assert late.end == late.start == pd.Timestamp("2022-01-03")


@pytest.mark.parametrize("frame, field", [
    (pd.DataFrame({"name": ["x"], "start": ["2022-01-02"]}), "end"),
    (pd.DataFrame({"name": ["x"], "start": ["2022-01-03 12:00"],
                   "end": ["2022-01-03 11:00"]}), "end"),
    (pd.DataFrame({"name": ["x"], "start": ["not a time"], "end": ["2022-01-03"]}),
     "start/end"),
])
def test_read_events_rejects_bad_frames(frame, field):
    with pytest.raises(InputError) as err:
        read_events(frame)
    assert err.value.field == field


def event_rows() -> pd.DataFrame:
    # Hourly bars 0..59 closing 2022-01-01 01:00 .. 2022-01-03 12:00. Bar 23 closes at
    # 2022-01-02 00:00, bars 24..47 are the bars of 2022-01-02 (closing 01:00 .. 00:00).
    close = flat(60)
    close[4] = 102.0
    close[24:34] = 99.0 - np.arange(10)  # 99 .. 90, trending_down
    close[34:38] = 80.0                   # capitulation
    close[38:48] = 90.0                   # ranging
    close[48:] = 95.0
    labels = ([None] * 3 + ["ranging"] * 21 + ["trending_down"] * 10 + ["capitulation"] * 4
              + ["ranging"] * 22)
    return history(labels, close=close)


def test_event_windows_move_low_regimes_and_capitulation():
    events = read_events(pd.DataFrame({
        "name": ["crash day", "warm-up", "later"],
        "start": ["2022-01-02 00:30", "2022-01-01 00:30", "2023-01-01"],
        "end": ["2022-01-02", "2022-01-01 05:00", "2023-01-02"],
    }))
    table = evaluate(event_rows(), interval="60", events=events).events
    crash, warm, later = table.to_dict("records")
    # Bars 24..47, from the close of bar 23 (100): to 90 (-10 %), low 80 (-20 %).
    assert crash["event"] == "crash day"
    assert crash["bars"] == 24
    assert crash["move"] == pytest.approx(-0.10)
    assert crash["low"] == pytest.approx(-0.20)
    assert crash["regimes"] == "trending_down 10, capitulation 4, ranging 10"
    assert crash["capitulation"] is True
    # Bars 0..4: no bar before, so from bar 0's close (100) to bar 4's (102).
    assert warm["bars"] == 5
    assert warm["move"] == pytest.approx(0.02)
    assert warm["low"] == pytest.approx(0.0)
    assert warm["regimes"] == "none 3, ranging 2"
    assert warm["capitulation"] is False
    # Outside the data.
    assert later["bars"] == 0
    assert math.isnan(later["move"]) and math.isnan(later["low"])
    assert later["regimes"] == ""
    assert later["capitulation"] is False


def test_no_events_table_unless_asked():
    assert evaluate(event_rows(), interval="60").events is None
    ev = evaluate(event_rows(), interval="60", events=[
        Event("x", pd.Timestamp("2022-01-01 23:00"), pd.Timestamp("2022-01-02")),
        Event("y", pd.Timestamp("2022-01-02"), pd.Timestamp("2022-01-02"))])
    # Bars closing in (start, end]: the bar closing at 2022-01-02 00:00 belongs to the
    # hour that started at 23:00, so the second, empty window holds none.
    assert ev.events["bars"].tolist() == [1, 0]


# -- Evaluation ------------------------------------------------------------------------------


def direct(metrics: dict, shares: dict) -> Evaluation:
    regimes = pd.DataFrame({"share": shares})
    return Evaluation(symbol="BTCUSDT", interval="60", start=None, end=None, bars=0,
                      metrics=metrics, counts={}, regimes=regimes)


def test_passed_compares_with_the_targets_at_the_bounds():
    at_bounds = {"transitions_per_month": 15.0, "stale_share": 0.02,
                 "contradiction_share": 0.003, "crash_catch_rate": 0.95,
                 "pump_catch_rate": 0.90, "fwd_vol_ratio": 1.6, "very_bull_share": 0.01,
                 "very_bear_share": 0.01, "breakout_max_bars": 12.0}
    shares = {"high_volatility": 0.35, "trending_up": 0.08, "trending_down": 0.08,
              "ranging": 0.08, "squeeze": 0.03, "breakout": 0.005}
    passed = direct(at_bounds, shares).passed()
    assert set(passed) == set(METRIC_NAMES) | {f"share_{k}" for k in shares}
    assert all(v is True for v in passed.values()), passed

    beyond = {"transitions_per_month": 15.5, "stale_share": 0.021,
              "contradiction_share": 0.0031, "crash_catch_rate": 0.94,
              "pump_catch_rate": 0.89, "fwd_vol_ratio": 1.59, "very_bull_share": 0.009,
              "very_bear_share": 0.009, "breakout_max_bars": 13.0}
    shares = {"high_volatility": 0.36, "trending_up": 0.07, "trending_down": 0.07,
              "ranging": 0.07, "squeeze": 0.02, "breakout": 0.004}
    passed = direct(beyond, shares).passed()
    assert all(v is False for v in passed.values()), passed


def test_passed_is_none_when_not_measurable():
    metrics = {name: math.nan for name in METRIC_NAMES}
    passed = direct(metrics, {}).passed()
    assert all(v is None for v in passed.values()), passed


def test_passed_from_an_evaluation():
    # The per-regime example: shares ranging 0.6, trending_up 0.2, squeeze 0.2, no
    # trending_down / high_volatility / breakout; flat price, confidence 0.9, score 0.
    labels = [None, None] + ["ranging"] * 4 + ["trending_up"] * 2 + ["ranging"] * 2 + \
        ["squeeze"] * 2
    passed = evaluate(history(labels), interval="60").passed()
    assert passed["stale_share"] is True            # 0 <= 0.02
    assert passed["contradiction_share"] is True    # 0
    assert passed["crash_catch_rate"] is None       # no onsets
    assert passed["pump_catch_rate"] is None
    assert passed["fwd_vol_ratio"] is None          # no closed window
    assert passed["very_bull_share"] is False       # 0 < 0.01
    assert passed["very_bear_share"] is False
    assert passed["breakout_max_bars"] is True      # 0 <= 12
    assert passed["share_high_volatility"] is True  # 0 <= 0.35
    assert passed["share_trending_up"] is True
    assert passed["share_trending_down"] is False
    assert passed["share_ranging"] is True
    assert passed["share_squeeze"] is True
    assert passed["share_breakout"] is False


def test_to_dict_is_plain_json():
    hmm = ["high_volatility"] * 25 + ["bull"] * 23 + ["calm"] * 49 + [None] * 24
    events = [Event("open", pd.Timestamp("2022-01-01"), pd.Timestamp("2022-01-02")),
              Event("outside", pd.Timestamp("2030-01-01"), pd.Timestamp("2030-01-02"))]
    ev = evaluate(history(VOL_LABELS, close=vol_path(), hmm=hmm), interval="60",
                  events=events)
    out = ev.to_dict()
    back = json.loads(json.dumps(out, allow_nan=False))
    assert back["symbol"] == "BTCUSDT" and back["interval"] == "60"
    assert back["start"] == T0.isoformat()
    assert back["bars"] == 121
    assert set(back["metrics"]) == set(METRIC_NAMES)
    assert back["metrics"]["fwd_vol_ratio"] == pytest.approx(A / B, rel=1e-6)
    assert back["metrics"]["crash_catch_rate"] is None  # NaN (no onsets) becomes null
    assert set(back["targets"]) == set(METRIC_NAMES)
    assert back["targets"]["breakout_max_bars"] == {"goal": "<= 12", "met": True}
    assert back["targets"]["crash_catch_rate"]["met"] is None
    assert back["regimes"]["breakout"]["mean_duration"] is None
    assert back["regimes"]["high_volatility"]["closed_bars"] == 25
    assert back["hmm"]["bars"] == 97
    assert [e["event"] for e in back["events"]] == ["open", "outside"]
    assert back["events"][1]["move"] is None
    assert back["events"][1]["start"] == "2030-01-01T00:00:00"


def test_format_report_names_every_metric():
    hmm = ["high_volatility"] * 25 + ["bull"] * 23 + ["calm"] * 49 + [None] * 24
    events = [Event("the open", pd.Timestamp("2022-01-01"), pd.Timestamp("2022-01-02"))]
    ev = evaluate(history(VOL_LABELS, close=vol_path(), hmm=hmm), interval="60",
                  events=events)
    text = format_report(ev, baseline={"fwd_vol_ratio": 1.0})
    assert set(METRICS) == set(METRIC_NAMES) == set(TARGETS)
    for name in METRIC_NAMES:
        assert name in text
    for name in SHARE_TARGETS:
        assert name in text
    assert "HMM layer" in text and "the open" in text
    assert "4.00" in text  # fwd_vol_ratio A / B with two decimals


def test_format_report_without_regime_rows():
    ev = evaluate(history([None] * 5), interval="60")
    assert ev.start is None
    text = format_report(ev)
    assert "no regime rows" in text
    for name in METRIC_NAMES:
        assert name in text
