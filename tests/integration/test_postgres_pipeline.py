"""The live update and a backfill against the replay exchange give the same rows on a
PostgreSQL store as on a DuckDB file (DESIGN 9.5: one contract on both backends)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from sentiment.io.sources.bybit import BybitClient
from sentiment.io.sources.fear_greed import FearGreedClient
from sentiment.io.store import Store
from sentiment.services.live import live_update
from sentiment.services.pipeline import backfill

from helpers import assert_tables_equal, live_config

pytestmark = pytest.mark.integration

START = dt.date(2022, 3, 1)
#: Market tables compared row for row (sentiment_history within 1e-9).
MARKET = ["candles", "funding_rates", "open_interest", "long_short_ratio", "fear_greed"]


def test_live_update_and_backfill_store_the_same_rows_on_both_backends(
        clean_replay, tmp_path, pg_url):
    config = live_config(START)
    stores = {"duckdb": Store(str(tmp_path / "live.duckdb")), "postgresql": Store(pg_url)}
    clients = (BybitClient(clean_replay.base_url), FearGreedClient(clean_replay.fear_greed_url))
    # A bootstrap, then a run from the checkpoint a few bars later.
    for clock in (dt.datetime(2022, 3, 9), dt.datetime(2022, 3, 9, 5, 0, 30)):
        clean_replay.set_clock(clock)
        for store in stores.values():
            live_update(store, config, *clients)
    duck, pg = stores["duckdb"], stores["postgresql"]
    for table in MARKET:
        pd.testing.assert_frame_equal(pg.read(table), duck.read(table), obj=table)
    live = duck.read("sentiment_history")
    assert len(live) > 100 and live["sentiment_score"].notna().any()
    assert_tables_equal(pg.read("sentiment_history"), live)
    assert_tables_equal(pg.read("regime_transitions"), duck.read("regime_transitions"))
    pd.testing.assert_frame_equal(pg.read("tracker_state"), duck.read("tracker_state"))

    # A backfill of two days, written as partition slices, on each backend.
    day, end = dt.datetime(2022, 3, 6), dt.datetime(2022, 3, 8)
    for store in stores.values():
        for symbol in config.symbols:
            result = backfill(store, config, symbol, day, end)
            store.write(replace={"sentiment_history": result.history,
                                 "regime_transitions": result.transitions})
    assert_tables_equal(pg.read("sentiment_history"), duck.read("sentiment_history"))
    models = ["model_id", "symbol", "interval", "train_start", "train_end", "n_states", "labels"]
    pd.testing.assert_frame_equal(pg.read("hmm_models", columns=models),
                                  duck.read("hmm_models", columns=models))
    _every_named_query_answers_alike(duck, pg, tmp_path)


#: Parameters of each named query that takes some (the rest take none).
START_AT, END_AT = dt.datetime(2022, 3, 7), dt.datetime(2022, 3, 9, 6)
PARAMS = {
    "latest_snapshot": ["BTCUSDT", "60"],
    "history_range": ["ETHUSDT", "60", None, dt.datetime(2022, 3, 8)],
    "latest": ["60"],
    "history": [60, "BTCUSDT", "60", START_AT, END_AT],
    "transitions": ["BTCUSDT", "60", dt.datetime(2022, 3, 1), END_AT],
    "funding": ["BTCUSDT", dt.datetime(2022, 3, 1), END_AT],
    "open_interest": ["BTCUSDT", "1h", dt.datetime(2022, 3, 1), END_AT],
    "long_short": ["BTCUSDT", "1h", dt.datetime(2022, 3, 1), END_AT],
    "fear_greed": [dt.datetime(2022, 3, 1), END_AT],
    "obi_series": ["BTCUSDT", dt.datetime(2022, 3, 1), END_AT],
    "liquidation_series": ["BTCUSDT", dt.datetime(2022, 3, 1), END_AT],
}


def _every_named_query_answers_alike(duck: Store, pg: Store, tmp_path) -> None:
    """Every query of sentiment/sql (the CLI's, the checks', the dashboard's) gives the same
    frame on both backends, the PostgreSQL variants included."""
    from conftest import with_stream_data

    from sentiment.io.store import named_queries

    for name, store in (("duck", duck), ("pg", pg)):
        with_stream_data(store.url if store.dialect == "postgresql" else str(store.path),
                         tmp_path / f"staging-{name}")
    answered = 0
    for filename in ("queries.sql", "checks.sql", "dashboard.sql"):
        for name, sql in named_queries(filename).items():
            params = PARAMS.get(name, [])
            expected = duck.query(sql, params, read_only=False)
            got = pg.query(sql, params, read_only=False)
            # Some (newest_rows, the checks) have no ORDER BY: compare as sets of rows.
            pd.testing.assert_frame_equal(_sorted(got), _sorted(expected),
                                          obj=f"{filename}:{name}")
            answered += not expected.empty
    assert answered >= 15  # most of them compared real rows, not two empty answers


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns), ignore_index=True) if len(frame) else frame
