"""The asset checks on real runs: a deliberately broken table fails them, a good one passes.

Each check runs on its own (a job of the checks only), so the broken rows are not replaced by
a fresh materialization first.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from dagster import AssetSelection, DagsterInstance, Definitions, define_asset_job

from orchestration.definitions import build_definitions
from sentiment.config import load_config
from sentiment.io.store import Store
from sentiment.settings import get_settings

pytestmark = pytest.mark.integration

DAY = "2022-06-01"


@pytest.fixture
def defs(clean_replay, db_path):
    settings = dataclasses.replace(get_settings(), db_path=db_path,
                                   bybit_base_url=clean_replay.base_url,
                                   fear_greed_url=clean_replay.fear_greed_url)
    config = load_config()
    config = dataclasses.replace(config, sources=dataclasses.replace(
        config.sources, max_retries=0, timeout_seconds=1.0))
    return build_definitions(config, settings)


def run(defs, job, partition=None):
    result = defs.resolve_job_def(job).execute_in_process(
        partition_key=partition, raise_on_error=False, instance=DagsterInstance.ephemeral())
    assert result.success, job
    return result


def run_checks(defs, asset: str) -> dict:
    """Run only the checks of ``asset``; their evaluations by check name."""
    job = define_asset_job(f"{asset}_checks", selection=AssetSelection.checks_for_assets(asset))
    result = run(Definitions.merge(defs, Definitions(jobs=[job])), job.name)
    assert not result.asset_materializations_for_node(asset)  # the table stays as it is
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def all_checks(defs) -> dict:
    return {name: check for asset in ("candles", "funding_rates", "fear_greed")
            for name, check in run_checks(defs, asset).items()}


@pytest.fixture
def ingested(defs):
    for symbol in ("BTCUSDT", "ETHUSDT"):
        run(defs, "market_data_job", f"{DAY}|{symbol}")
    run(defs, "fear_greed_job", DAY)
    return defs


def test_candles_off_the_utc_grid_fail_the_grid_check_and_only_it(ingested, db_path):
    checks = run_checks(ingested, "candles")
    assert checks["candles_on_grid"].passed
    assert checks["candles_on_grid"].description == "no candle(s) off the interval grid"

    # A clock one hour off for the 4h bars: still one interval apart, still unique keys and
    # sane prices, so every other row check passes; only the grid shows it.
    store = Store(db_path)
    with store.connect() as conn:
        conn.execute("UPDATE candles SET open_time = open_time + INTERVAL 1 HOUR "
                     "WHERE symbol = 'BTCUSDT' AND interval = '240'")
    checks = run_checks(ingested, "candles")
    grid = checks["candles_on_grid"]
    assert not grid.passed
    assert grid.severity.value == "ERROR"
    assert grid.description == "6 candle(s) off the interval grid"
    assert grid.metadata["offending_rows"].value == 6
    sample = grid.metadata["sample"].value
    assert [(r["symbol"], r["interval"], r["open_time"]) for r in sample[:2]] == [
        ("BTCUSDT", "240", f"{DAY} 01:00:00"), ("BTCUSDT", "240", f"{DAY} 05:00:00")]
    assert checks["candles_no_gaps"].passed
    assert checks["candles_values_in_range"].passed

    # Back on the grid: passes again.
    with store.connect() as conn:
        conn.execute("UPDATE candles SET open_time = open_time - INTERVAL 1 HOUR "
                     "WHERE symbol = 'BTCUSDT' AND interval = '240'")
    assert run_checks(ingested, "candles")["candles_on_grid"].passed


@pytest.mark.parametrize(
    ("interval", "good", "bad"),
    [
        ("D", "2022-06-02 00:00", "2022-06-02 08:00"),  # D opens at 00:00 UTC
        ("W", "2022-06-06 00:00", "2022-06-05 00:00"),  # W on Monday (06-05 is a Sunday)
        ("15", "2022-06-02 00:45", "2022-06-02 00:50"),
    ],
)
def test_the_grid_of_daily_weekly_and_minute_bars(ingested, db_path, interval, good, bad):
    store = Store(db_path)

    def bar(open_time):
        with store.connect() as conn:
            conn.execute("INSERT INTO candles VALUES ('ETHUSDT', ?, ?, 1, 1, 1, 1, 1, 1)",
                         [interval, open_time])

    bar(good)
    assert run_checks(ingested, "candles")["candles_on_grid"].passed
    bar(bad)
    grid = run_checks(ingested, "candles")["candles_on_grid"]
    assert not grid.passed
    sample = grid.metadata["sample"].value
    assert [pd.Timestamp(r["open_time"]) for r in sample] == [pd.Timestamp(bad)]


def test_freshness_follows_the_exchange_clock_per_series(ingested, clean_replay):
    # The day's newest bars close at 00:00, the newest settlement was at 16:00, the newest
    # Fear & Greed value is the day's own.
    clean_replay.set_clock("2022-06-02T00:30:00")
    fresh = all_checks(ingested)
    for name in ("candles_freshness", "funding_rates_freshness", "fear_greed_freshness"):
        assert fresh[name].passed, (name, fresh[name].description)
        assert fresh[name].description == "fresh"
    assert fresh["candles_freshness"].metadata["newest"].value == {
        f"{s}/{i}": "2022-06-02 00:00:00" for s in ("BTCUSDT", "ETHUSDT") for i in ("60", "240")}

    # 3 h later: hourly bars (limit 2 intervals) and funding (limit 9 h) are stale, the
    # 4-hour bars (limit 8 h) and the daily index (2 days) are not.
    clean_replay.set_clock("2022-06-02T03:00:00")
    stale = all_checks(ingested)
    candles = stale["candles_freshness"]
    assert not candles.passed and candles.severity.value == "WARN"
    assert candles.description == "stale: BTCUSDT/60, ETHUSDT/60"
    assert stale["funding_rates_freshness"].description == "stale: BTCUSDT, ETHUSDT"
    assert stale["fear_greed_freshness"].passed

    clean_replay.set_clock("2022-06-04T00:00:01")
    assert run_checks(ingested, "fear_greed")["fear_greed_freshness"].description == \
        "stale: fear_greed"


def test_freshness_without_the_exchange_clock_warns(ingested, clean_replay):
    clean_replay.inject("/v5/market/time", "http_403", count=10)
    check = run_checks(ingested, "funding_rates")["funding_rates_freshness"]
    assert not check.passed
    assert check.severity.value == "WARN"
    assert check.description == "exchange clock unavailable"
