"""The live update and a backfill against the replay exchange give the same rows on a
PostgreSQL store as on a DuckDB file (DESIGN 9.5: one contract on both backends)."""

from __future__ import annotations

import datetime as dt
import threading

import pandas as pd
import pytest

from sentiment.io.sources.bybit import BybitClient
from sentiment.io.sources.fear_greed import FearGreedClient
from sentiment.io.store import Store
from sentiment.services import live
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
            # PostgreSQL: both symbols at once, each in its own connection and transaction.
            live_update(store, config, *clients, workers=2 if store.is_postgres else 1)
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
    "history_recent": ["ETHUSDT", "60", 24],
    "replay_turnover": ["BTCUSDT", END_AT],
    "latest": ["60"],
    "history": [60, "BTCUSDT", "60", START_AT, END_AT],
    "transitions": ["BTCUSDT", "60", dt.datetime(2022, 3, 1), END_AT],
    "funding": ["BTCUSDT", dt.datetime(2022, 3, 1), END_AT],
    "open_interest": ["BTCUSDT", "1h", dt.datetime(2022, 3, 1), END_AT],
    "long_short": ["BTCUSDT", "1h", dt.datetime(2022, 3, 1), END_AT],
    "fear_greed": [dt.datetime(2022, 3, 1), END_AT],
    "obi_series": ["BTCUSDT", dt.datetime(2022, 3, 1), END_AT],
    "liquidation_series": ["BTCUSDT", dt.datetime(2022, 3, 1), END_AT],
    "recent_candle_times": [dt.timedelta(days=3)],
}


def test_symbols_updated_at_once_commit_apart(clean_replay, tmp_path, pg_url, monkeypatch):
    """On PostgreSQL the live update computes symbols in parallel, each committed on its
    own: a symbol that fails leaves the others' new rows written and its own rows and
    checkpoint as they were, and the next run catches it up to what one writer stores."""
    config = live_config(START)
    clients = (BybitClient(clean_replay.base_url), FearGreedClient(clean_replay.fear_greed_url))
    pg, duck = Store(pg_url), Store(str(tmp_path / "serial.duckdb"))
    with pytest.raises(ValueError, match="one writer"):
        live_update(duck, config, *clients, workers=2)
    clean_replay.set_clock(dt.datetime(2022, 3, 9))
    live_update(pg, config, *clients, workers=2)
    before = pg.read("sentiment_history")
    states = pg.read("tracker_state").set_index(["symbol", "interval"])["last_timestamp"]

    real, threads = live.update_symbol, set()

    def eth_fails(store, config_, symbol, final_until):
        threads.add(threading.current_thread().name)
        if symbol == "ETHUSDT":
            raise RuntimeError("ETHUSDT: computation failed")
        return real(store, config_, symbol, final_until)

    monkeypatch.setattr(live, "update_symbol", eth_fails)
    clean_replay.set_clock(dt.datetime(2022, 3, 9, 5, 0, 30))
    with pytest.raises(RuntimeError, match="ETHUSDT"):
        live_update(pg, config, *clients, workers=2)
    assert len(threads) == 2  # the two symbols ran in two threads
    after = pg.read("sentiment_history")
    eth = after["symbol"] == "ETHUSDT"
    assert_tables_equal(after[eth].reset_index(drop=True),
                        before[before["symbol"] == "ETHUSDT"].reset_index(drop=True))
    assert after[~eth]["timestamp"].max() > before["timestamp"].max()  # BTC went on
    moved = pg.read("tracker_state").set_index(["symbol", "interval"])["last_timestamp"]
    assert (moved["ETHUSDT"] == states["ETHUSDT"]).all()
    assert (moved["BTCUSDT"] > states["BTCUSDT"]).all()
    # The bars fetched before the failure are stored: the next run only computes.
    assert pg.read("candles", where={"symbol": "ETHUSDT", "interval": "60"})[
        "open_time"].max() == dt.datetime(2022, 3, 9, 4)

    monkeypatch.undo()
    live_update(pg, config, *clients, workers=2)
    for clock in (dt.datetime(2022, 3, 9), dt.datetime(2022, 3, 9, 5, 0, 30)):
        clean_replay.set_clock(clock)
        live_update(duck, config, *clients)
    assert_tables_equal(pg.read("sentiment_history"), duck.read("sentiment_history"))
    pd.testing.assert_frame_equal(pg.read("tracker_state"), duck.read("tracker_state"))


def _every_named_query_answers_alike(duck: Store, pg: Store, tmp_path) -> None:
    """Every query of sentiment/sql (the CLI's, the checks', the dashboard's, the provenance
    rule's) gives the same frame on both backends, the PostgreSQL variants included."""
    from conftest import with_stream_data

    from sentiment.io.store import named_queries

    for name, store in (("duck", duck), ("pg", pg)):
        with_stream_data(store.url if store.dialect == "postgresql" else str(store.path),
                         tmp_path / f"staging-{name}")
    answered = 0
    for filename in ("queries.sql", "checks.sql", "dashboard.sql", "provenance.sql"):
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
    # When this machine loaded the stream's rows differs between the two loads.
    frame = frame.drop(columns=["loaded_at"], errors="ignore")
    return frame.sort_values(list(frame.columns), ignore_index=True) if len(frame) else frame
