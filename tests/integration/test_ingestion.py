"""Real Dagster runs of the ingestion assets against the replay exchange and a temporary
DuckDB file: exact rows, idempotency, single-run ranges and fault handling."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from dagster import DagsterInstance

from orchestration.definitions import build_definitions
from replay.server import load_bundle
from sentiment.config import load_config
from sentiment.io.store import Store
from sentiment.settings import get_settings

pytestmark = pytest.mark.integration

DAY = "2022-06-01"
RANGE_TAGS = {
    "dagster/asset_partition_range_start": "2022-06-01|BTCUSDT",
    "dagster/asset_partition_range_end": "2022-06-10|ETHUSDT",
}


@pytest.fixture(scope="module")
def bundle():
    return load_bundle()


@pytest.fixture
def defs(clean_replay, db_path):
    settings = dataclasses.replace(
        get_settings(),
        db_path=db_path,
        bybit_base_url=clean_replay.base_url,
        fear_greed_url=clean_replay.fear_greed_url,
    )
    config = load_config()
    # Fast retries: the tests check that faults are retried, not how long the backoff is.
    config = dataclasses.replace(
        config,
        sources=dataclasses.replace(config.sources, max_retries=3, backoff_base_seconds=0.01,
                                    backoff_max_seconds=0.05, timeout_seconds=1.0),
    )
    return build_definitions(config, settings)


def run(defs, job="market_data_job", *, partition=None, tags=None, instance=None):
    return defs.resolve_job_def(job).execute_in_process(
        partition_key=partition, tags=tags, raise_on_error=False,
        instance=instance or DagsterInstance.ephemeral(),
    )


def stored(db_path, table):
    return Store(db_path).read(table)


def test_one_partition_holds_exactly_the_recorded_rows(defs, db_path, bundle):
    result = run(defs, partition=f"{DAY}|BTCUSDT")
    assert result.success
    candles = stored(db_path, "candles")
    assert set(candles.symbol) == {"BTCUSDT"}
    assert candles.groupby("interval").size().to_dict() == {"240": 6, "60": 24}
    hourly = candles[candles.interval == "60"].reset_index(drop=True)
    expected = bundle["candles"]
    expected = expected[(expected.symbol == "BTCUSDT") & (expected.open_time >= DAY)
                        & (expected.open_time < "2022-06-02")].reset_index(drop=True)
    for column in ("open", "high", "low", "close", "volume"):
        assert hourly[column].tolist() == expected[column].tolist(), column
    assert (pd.to_datetime(hourly.open_time) == pd.to_datetime(expected.open_time)).all()
    four_hourly = candles[candles.interval == "240"].reset_index(drop=True)
    assert four_hourly["high"].iloc[0] == expected["high"].iloc[:4].max()
    assert four_hourly["volume"].iloc[1] == pytest.approx(expected["volume"].iloc[4:8].sum())

    funding = stored(db_path, "funding_rates")
    assert [t.hour for t in pd.to_datetime(funding.funding_time)] == [0, 8, 16]
    assert len(stored(db_path, "open_interest")) == 24
    ls = stored(db_path, "long_short_ratio")
    assert len(ls) == 24
    assert ((ls.buy_ratio + ls.sell_ratio - 1).abs() < 1e-9).all()

    mats = result.asset_materializations_for_node("candles")
    assert mats[0].metadata["dagster/row_count"].value == 30
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["candles_no_gaps"] and checks["candles_on_grid"]
    assert checks["candles_values_in_range"] and checks["long_short_ratio_values_in_range"]


def test_materializing_twice_gives_the_same_rows(defs, db_path):
    assert run(defs, partition=f"{DAY}|ETHUSDT").success
    first = {t: stored(db_path, t) for t in ("candles", "funding_rates", "open_interest",
                                             "long_short_ratio")}
    assert run(defs, partition=f"{DAY}|ETHUSDT").success
    for table, frame in first.items():
        pd.testing.assert_frame_equal(stored(db_path, table), frame, obj=table)


def test_a_range_runs_as_one_run_and_leaves_no_gaps(defs, db_path):
    instance = DagsterInstance.ephemeral()
    result = run(defs, tags=RANGE_TAGS, instance=instance)
    assert result.success
    assert len(instance.get_runs()) == 1
    candles = stored(db_path, "candles")
    counts = candles.groupby(["symbol", "interval"]).size().to_dict()
    assert counts == {("BTCUSDT", "240"): 60, ("BTCUSDT", "60"): 240,
                      ("ETHUSDT", "240"): 60, ("ETHUSDT", "60"): 240}
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["candles_no_gaps"]
    assert checks["candles_on_grid"]


def test_fear_greed_partitions(defs, db_path, bundle):
    tags = {"dagster/asset_partition_range_start": "2022-06-01",
            "dagster/asset_partition_range_end": "2022-06-30"}
    result = run(defs, "fear_greed_job", tags=tags)
    assert result.success
    fg = stored(db_path, "fear_greed")
    assert len(fg) == 30
    expected = bundle["fear_greed"]
    expected = expected[(expected.ts >= "2022-06-01") & (expected.ts < "2022-07-01")]
    assert fg["value"].tolist() == expected["value"].tolist()


@pytest.mark.parametrize(
    ("kind", "extra"),
    [("rate_limit", {}), ("http_500", {}), ("http_502", {}), ("slow", {"delay_s": 1.5})],
)
def test_transient_faults_are_retried(defs, db_path, clean_replay, seeded, kind, extra):
    seeded(defs, db_path, ("market_data_job", {"partition_key": f"{DAY}|BTCUSDT"}))
    before = stored(db_path, "candles")
    clean_replay.inject("/v5/market/kline", kind, count=2, **extra)
    clean_replay.clear_requests()
    result = run(defs, partition=f"{DAY}|BTCUSDT")
    assert result.success
    served = [r for r in clean_replay.requests() if r["path"] == "/v5/market/kline"]
    assert sum(1 for r in served if r["fault"]) == 2
    pd.testing.assert_frame_equal(stored(db_path, "candles"), before)


@pytest.mark.parametrize(
    ("kind", "extra", "expected"),
    [
        ("retcode", {"ret_code": 10001, "ret_msg": "params error: symbol invalid"}, "10001"),
        ("malformed", {}, "body"),
        ("missing_field", {"field": "close"}, "close"),
        ("bad_number", {"field": "fundingRate"}, "fundingRate"),
        ("http_403", {}, "403"),
    ],
)
def test_fatal_faults_fail_the_run_and_keep_stored_rows(
    defs, db_path, clean_replay, seeded, kind, extra, expected
):
    seeded(defs, db_path, ("market_data_job", {"tags": RANGE_TAGS}))
    before = {t: stored(db_path, t) for t in ("candles", "funding_rates")}
    path = "/v5/market/funding/history" if extra.get("field") == "fundingRate" else (
        "/v5/market/kline")
    # Let the first symbol's requests through so the failure comes half way through the run:
    # nothing of the run may be written.
    clean_replay.inject(path, kind, count=10, match={"symbol": "ETHUSDT"}, **extra)
    result = run(defs, tags=RANGE_TAGS)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = str(failure.step_failure_data.error)
    assert expected in message
    assert "ETHUSDT" in message
    for table, frame in before.items():
        pd.testing.assert_frame_equal(stored(db_path, table), frame, obj=table)
