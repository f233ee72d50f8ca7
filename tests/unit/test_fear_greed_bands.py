"""alternative.me's Fear & Greed bands: one definition (sentiment.models.fear_greed_class),
used by the status block, the dashboard, the replay exchange and the CSV import."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from sentiment.models import FEAR_GREED_BANDS, HISTORY_COLUMNS, fear_greed_class


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (0, "Extreme Fear"),
        (25, "Extreme Fear"),
        (26, "Fear"),
        (46, "Fear"),
        (47, "Neutral"),
        (54, "Neutral"),
        (55, "Greed"),
        (75, "Greed"),
        (76, "Extreme Greed"),
        (100, "Extreme Greed"),
    ],
)
def test_band_boundaries(value, label):
    assert fear_greed_class(value) == label
    assert fear_greed_class(float(value)) == label


def test_bands_cover_0_to_100_without_gaps():
    assert FEAR_GREED_BANDS[0][0] == 0 and FEAR_GREED_BANDS[-1][1] == 100
    for (_, high, _), (low, _, _) in zip(FEAR_GREED_BANDS, FEAR_GREED_BANDS[1:], strict=False):
        assert low == high + 1
    for low, high, label in FEAR_GREED_BANDS:
        assert {fear_greed_class(v) for v in range(low, high + 1)} == {label}


@pytest.mark.parametrize(("value", "label"),
                         [(25.5, "Fear"), (46.5, "Fear"), (54.9, "Neutral"), (75.5, "Greed")])
def test_fractional_values_keep_the_extremes_at_25_and_76(value, label):
    assert fear_greed_class(value) == label


@pytest.mark.parametrize("value", [-1, 100.5, math.nan, math.inf])
def test_values_outside_the_index_are_errors(value):
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        fear_greed_class(value)


def test_engine_extreme_marks_are_the_edges_of_the_outer_bands():
    from sentiment.core.engine import FEAR_GREED_HIGH, FEAR_GREED_LOW

    assert fear_greed_class(FEAR_GREED_LOW) == "Extreme Fear"
    assert fear_greed_class(FEAR_GREED_LOW + 1) == "Fear"
    assert fear_greed_class(FEAR_GREED_HIGH - 1) == "Greed"
    assert fear_greed_class(FEAR_GREED_HIGH) == "Extreme Greed"


def test_status_block_uses_the_same_bands():
    from sentiment.services import status

    assert status.fear_greed_class is fear_greed_class
    row = {c: None for c in HISTORY_COLUMNS} | {
        "symbol": "BTCUSDT", "interval": "60", "timestamp": pd.Timestamp("2022-01-01 05:00"),
        "fear_greed_index": 25.0,
    }
    assert "FnG: 25 (Extreme Fear)" in status.format_status(row)


def test_recorded_labels_agree_and_the_replay_serves_them():
    import replay.server as replay

    recorded = replay.load_bundle()["fear_greed"]
    assert len(recorded) > 300
    derived = [fear_greed_class(v) for v in recorded["value"]]
    assert derived == recorded["classification"].tolist()
    market = replay._market(replay.BUNDLE_DIR)
    assert market.fng_class.tolist() == recorded["classification"].tolist()


def test_csv_without_a_classification_column_is_labelled(tmp_path):
    from sentiment.io.csvfiles import read_fear_greed

    path = tmp_path / "fng.csv"
    path.write_text("date,value\n2022-01-01,25\n2022-01-02,26\n2022-01-03,76\n")
    assert read_fear_greed(path)["classification"].tolist() == [
        "Extreme Fear", "Fear", "Extreme Greed"]


def test_dashboard_threshold_labels_name_the_marks():
    from dashboard import charts

    empty = {
        "funding": pd.DataFrame({"ts": pd.to_datetime([]), "funding_rate": []}),
        "oi": pd.DataFrame({"ts": pd.to_datetime([]), "open_interest": []}),
        "long_short": pd.DataFrame({"ts": pd.to_datetime([]), "buy_ratio": []}),
        "fear_greed": pd.DataFrame({"ts": pd.to_datetime([]), "value": [],
                                    "classification": []}),
    }
    fig = charts.exchange(empty["funding"], empty["oi"], empty["long_short"],
                          empty["fear_greed"])
    texts = {a.text for a in fig.layout.annotations}
    assert {"extreme fear ≤ 25", "extreme greed ≥ 76"} <= texts
