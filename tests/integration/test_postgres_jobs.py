"""The Dagster jobs on a PostgreSQL store: switching backends is the setting only (DESIGN 7)."""

from __future__ import annotations

import datetime as dt

import pytest

from sentiment.io.store import Store

from helpers import assert_tables_equal, definitions, live_config, run_job

pytestmark = pytest.mark.integration


def test_the_jobs_write_the_same_rows_to_postgresql_as_to_duckdb(clean_replay, tmp_path,
                                                                  pg_url):
    config = live_config(dt.date(2022, 3, 1))
    pairs = {"dagster/asset_partition_range_start": "2022-03-01|BTCUSDT",
             "dagster/asset_partition_range_end": "2022-03-10|ETHUSDT"}
    days = {"dagster/asset_partition_range_start": "2022-03-01",
            "dagster/asset_partition_range_end": "2022-03-10"}
    stores = []
    for db in (str(tmp_path / "jobs.duckdb"), pg_url):
        defs = definitions(clean_replay, db, config)
        for job, tags in (("market_data_job", pairs), ("fear_greed_job", days),
                          ("sentiment_job", pairs)):
            run_job(defs, job, tags=tags)
        stores.append(Store(db))
    duck, pg = stores
    history = duck.read("sentiment_history")
    assert len(history) > 400
    assert_tables_equal(pg.read("sentiment_history"), history)
    for table in ("candles", "funding_rates", "open_interest", "long_short_ratio"):
        assert len(pg.read(table)) == len(duck.read(table)) > 0, table
