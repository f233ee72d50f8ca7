"""Which runs the deployment's run queue holds back: a run that writes one symbol carries
that symbol's tag, a run over several symbols a tag that a limit counts
(deploy/dagster/dagster.yaml, read through Dagster's own schema)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration.partitions import SYMBOL_TAG, SYMBOLS_TAG, symbol_tags

ROOT = Path(__file__).resolve().parents[2]
PG_ENV = {"DAGSTER_PG_HOST": "db", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_USER": "dagster",
          "DAGSTER_PG_PASSWORD": "secret", "DAGSTER_PG_DB": "dagster"}


def test_symbol_tags():
    assert symbol_tags(["BTCUSDT", "BTCUSDT"]) == {SYMBOL_TAG: "BTCUSDT"}
    assert symbol_tags(["ETHUSDT", "BTCUSDT"]) == {SYMBOLS_TAG: "BTCUSDT,ETHUSDT"}
    assert symbol_tags([None]) == {}  # Fear & Greed: no symbol


@pytest.fixture
def counter(monkeypatch, tmp_path):
    """``blocked(run, *in_flight)``: whether the deployment's queue holds ``run`` back."""
    from dagster._core.instance.config import ConcurrencyConfig
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster._utils.tags import TagConcurrencyLimitsCounter

    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    ref = InstanceRef.from_dir(str(tmp_path), config_dir=str(ROOT / "deploy" / "dagster"))
    coordinator = ref.run_coordinator_data.rehydrate(QueuedRunCoordinator)
    limits = ConcurrencyConfig.from_concurrency_settings(
        ref.settings.get("concurrency", {}), coordinator.get_run_queue_config()
    ).run_queue_config.tag_concurrency_limits

    def blocked(run, *in_flight) -> bool:
        return TagConcurrencyLimitsCounter(limits, list(in_flight)).is_blocked(run)

    return blocked


def _run(job: str, tags: dict[str, str]):
    from dagster import DagsterRun

    return DagsterRun(job_name=job, tags=tags)


def test_the_queue_reads_the_symbol_tags_of_ranges_and_of_multi_symbol_runs(counter):
    from orchestration.definitions import build_definitions

    defs = build_definitions()
    live = _run("live_update_job", defs.resolve_job_def("live_update_job").tags)
    bootstrap = _run("bootstrap_job", defs.resolve_job_def("bootstrap_job").tags)
    assert live.tags[SYMBOLS_TAG] == bootstrap.tags[SYMBOLS_TAG] == "BTCUSDT,ETHUSDT"
    btc_range = _run("market_data_job", symbol_tags(["BTCUSDT"]))
    eth_range = _run("sentiment_job", symbol_tags(["ETHUSDT"]))
    all_range = _run("sentiment_job", symbol_tags(["BTCUSDT", "ETHUSDT"]))
    # Several symbols: one such run at a time (live, bootstrap, a backfill of both).
    assert counter(live, bootstrap)
    assert counter(bootstrap, live)
    assert counter(all_range, live)
    assert not counter(live)
    # One symbol: one run per symbol, whatever the run's kind.
    assert counter(btc_range, _run("sentiment_job", symbol_tags(["BTCUSDT"])))
    assert not counter(eth_range, btc_range)
    started_partition = _run("market_data_job", {"dagster/partition/symbol": "BTCUSDT",
                                                 **symbol_tags(["BTCUSDT"])})
    assert counter(btc_range, started_partition)
