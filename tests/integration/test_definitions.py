"""The one Definitions object loads, and its wiring is what the docs and the UI promise."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_definitions_names():
    from orchestration.definitions import defs

    repo = defs.get_repository_def()
    assets = {key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()}
    assert assets == {"candles", "funding_rates", "open_interest", "long_short_ratio",
                      "fear_greed", "sentiment_history", "hmm_models"}
    checks = {key.name for key in repo.asset_graph.asset_check_keys}
    assert checks == {
        "candles_no_gaps", "candles_on_grid", "candles_values_in_range",
        "candles_freshness", "funding_rates_values_in_range", "funding_rates_freshness",
        "open_interest_values_in_range", "long_short_ratio_values_in_range",
        "fear_greed_values_in_range", "fear_greed_freshness",
        "sentiment_history_values_in_range", "sentiment_history_no_gaps",
        "sentiment_history_regimes_valid",
        # Reported by each materialization: every partition it wrote holds rows.
        "candles_partitions_have_rows", "funding_rates_partitions_have_rows",
        "open_interest_partitions_have_rows", "long_short_ratio_partitions_have_rows",
        "fear_greed_partitions_have_rows", "sentiment_history_partitions_have_rows",
    }
    jobs = {job.name for job in repo.get_all_jobs() if not job.name.startswith("__")}
    assert jobs == {"market_data_job", "fear_greed_job", "sentiment_job", "hmm_retrain_job",
                    "live_update_job", "bootstrap_job", "stream_load_job"}
    assert {s.name for s in repo.schedule_defs} == {
        "market_data_daily_schedule", "fear_greed_daily_schedule", "hmm_retrain_schedule"
    }
    assert {s.name for s in repo.sensor_defs} == {"live_update_sensor", "stream_load_sensor"}


def test_market_data_partitions_read_date_then_symbol():
    from orchestration.definitions import defs

    candles = defs.get_assets_def("candles")
    partitions = candles.partitions_def
    assert [d.name for d in partitions.partitions_defs] == ["date", "symbol"]
    keys = partitions.get_partition_keys()
    assert "2022-06-01|BTCUSDT" in keys
    assert "2022-06-01|ETHUSDT" in keys
    assert candles.backfill_policy is not None
    assert candles.backfill_policy.max_partitions_per_run is None  # single run
    assert defs.get_assets_def("fear_greed").partitions_def.get_partition_keys()[0] == "2022-01-01"


def test_every_writer_is_in_the_single_writer_pool():
    from orchestration.definitions import defs

    for name in ("candles", "funding_rates", "open_interest", "long_short_ratio", "fear_greed",
                 "sentiment_history"):
        assets_def = defs.get_assets_def(name)
        assert assets_def.node_def.pool == "duckdb_writer"


@pytest.mark.slow
def test_a_config_error_is_reported_when_the_definitions_load(tmp_path, monkeypatch):
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("sentiment:\n  weights: {trend: lots}\n")
    env = {**__import__("os").environ, "SENTIMENT_CONFIG": str(bad)}
    out = subprocess.run([sys.executable, "-c", "import orchestration.definitions"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode != 0
    assert "sentiment.weights.trend: expected a number" in out.stderr
