"""The stream's data in the pipeline: staged files loaded by stream_load_job (and by the
live job), bars with stream data filled with liquidation intensity and order-book imbalance,
live bar by bar equal to a backfill, and bars the stream has not covered yet kept
provisional until it has."""

from __future__ import annotations

import datetime as dt
import math
import os
import time

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context

from orchestration.resources import StagingResource
from orchestration.sensors import STREAM_LOAD_SECONDS
from sentiment.io.staging import Staging
from sentiment.io.store import Store

from helpers import definitions, live_config, run_job
from helpers import ms as _ms

pytestmark = pytest.mark.integration

START = dt.date(2022, 3, 1)
LIVE_FROM = dt.datetime(2022, 3, 8, 6)
HOURS = 6
SYMBOLS = ("BTCUSDT", "ETHUSDT")
MS = 1_000


def _config():
    return live_config(START, sensor_wait_seconds=0.5)  # the sensor's watch


def _defs(replay, db_path: str, staging: str):
    return definitions(replay, db_path, _config(), stream_dir=staging)


def stream_rows(start: dt.datetime, end: dt.datetime) -> dict[str, list[dict]]:
    """What a stream would have staged for [start, end): an OBI sample every 5 min and a few
    liquidations an hour (a burst of long liquidations at 09:00-09:10)."""
    obi, liq = [], []
    t = pd.Timestamp(start).ceil("5min").to_pydatetime()  # on the 5-minute marks
    while t < end:
        ms = _ms(t)
        for k, symbol in enumerate(SYMBOLS):
            obi.append({"symbol": symbol, "ts": ms, "obi": round(math.sin(ms / 4e6 + k), 6)})
            if t.minute % 20 == 0:
                liq.append({"symbol": symbol, "ts": ms + 7 * MS, "side": "Sell",
                            "price": 40_000.0, "size": 0.1 + 0.01 * t.hour, "seq": ms})
            if t.hour == 9 and t.minute <= 10:
                liq.append({"symbol": symbol, "ts": ms + 11 * MS, "side": "Buy",
                            "price": 39_000.0, "size": 3.0, "seq": ms + 1})
        t += dt.timedelta(minutes=5)
    return {"orderbook_imbalance": obi, "liquidations": liq}


def stage(staging: Staging, start: dt.datetime, end: dt.datetime, through: dt.datetime):
    rows = stream_rows(start, end)
    rows["stream_state"] = [{"symbol": s, "through": _ms(through)} for s in SYMBOLS]
    staging.write(rows)


def test_stream_load_sensor_and_job(clean_replay, tmp_path):
    db, directory = str(tmp_path / "s.duckdb"), str(tmp_path / "stream")
    defs = _defs(clean_replay, db, directory)
    sensor = defs.get_sensor_def("stream_load_sensor")
    instance = DagsterInstance.ephemeral()
    resources = {"stream_staging": StagingResource(directory=directory)}
    with build_sensor_context(instance=instance, resources=resources) as context:
        assert isinstance(sensor(context), SkipReason)  # nothing staged
    staging = Staging(directory)
    stage(staging, LIVE_FROM, LIVE_FROM + dt.timedelta(hours=1),
          LIVE_FROM + dt.timedelta(hours=1))
    # Just staged: left for the next live run to load (loads are batched).
    with build_sensor_context(instance=instance, resources=resources) as context:
        assert "the next live run loads them" in sensor(context).skip_message
    # Waiting longer than a live run would take to come: one load run.
    old = time.time() - STREAM_LOAD_SECONDS - 1
    for path in staging.pending():
        os.utime(path, (old, old))
    with build_sensor_context(instance=instance, resources=resources) as context:
        request = sensor(context)
    assert isinstance(request, RunRequest) and request.tags["staged_files"] == "3"
    result = run_job(defs, "stream_load_job", instance)
    assert not staging.pending()
    store = Store(db)
    assert len(store.read("orderbook_imbalance")) == 12 * len(SYMBOLS)
    assert len(store.read("liquidations")) == 3 * len(SYMBOLS)
    assert result.output_for_node("load_stream") == 3  # OBI, liquidations, stream_state
    run_job(defs, "stream_load_job", instance)  # nothing left: a no-op
    assert len(store.read("orderbook_imbalance")) == 12 * len(SYMBOLS)


@pytest.mark.slow
def test_live_with_a_stream_equals_a_backfill_and_waits_for_it(clean_replay, tmp_path):
    live_db, backfill_db = str(tmp_path / "live.duckdb"), str(tmp_path / "backfill.duckdb")
    staging = Staging(tmp_path / "stream")
    defs = _defs(clean_replay, live_db, str(staging.directory))
    instance = DagsterInstance.ephemeral()
    clean_replay.set_clock(LIVE_FROM)
    run_job(defs, "live_update_job", instance)  # bootstrap, before the stream starts
    clock = LIVE_FROM
    for _ in range(HOURS):
        # The stream has staged everything up to a minute before the next close...
        close = clock + dt.timedelta(hours=1)
        stage(staging, clock, close - dt.timedelta(minutes=1), close - dt.timedelta(minutes=1))
        clean_replay.set_clock(close + dt.timedelta(seconds=30))
        run_job(defs, "live_update_job", instance)
        store = Store(live_db)
        state = store.read("tracker_state", where={"symbol": "BTCUSDT", "interval": "60"})
        # ... so that bar is provisional: the checkpoint stays before it.
        assert pd.Timestamp(state["last_timestamp"].iloc[0]) <= pd.Timestamp(clock)
        # Then the stream stages its last minute and passes the close: the next run
        # rewrites the bar with it.
        stage(staging, close - dt.timedelta(minutes=1), close,
              close + dt.timedelta(seconds=30))
        clock = close
    clean_replay.set_clock(clock + dt.timedelta(seconds=45))
    run_job(defs, "live_update_job", instance)
    live = Store(live_db)
    assert not staging.pending()
    rows = live.query("SELECT * FROM sentiment_history WHERE interval = '60' AND timestamp > ?"
                      " ORDER BY symbol, timestamp", [LIVE_FROM])
    assert len(rows) == HOURS * len(SYMBOLS)
    assert rows["order_book_imbalance"].notna().all()
    assert rows["liquidation_intensity"].notna().all()
    burst = rows[pd.to_datetime(rows["timestamp"]) == pd.Timestamp("2022-03-08 10:00")]
    assert (burst["liquidation_intensity"] > 3.0).all()  # the 09:00 burst
    # The bar's OBI is the mean of its samples.
    btc = rows[rows["symbol"] == "BTCUSDT"].iloc[0]
    opened = pd.Timestamp(btc["timestamp"]) - pd.Timedelta(hours=1)
    samples = [r["obi"] for r in stream_rows(opened.to_pydatetime(),
                                             pd.Timestamp(btc["timestamp"]).to_pydatetime())
               ["orderbook_imbalance"] if r["symbol"] == "BTCUSDT"]
    assert btc["order_book_imbalance"] == pytest.approx(np.mean(samples), abs=1e-12)

    # A backfill over the same stored data gives the same rows.
    backfill = Store(backfill_db)
    backfill.init()
    for table in ("candles", "funding_rates", "open_interest", "long_short_ratio",
                  "fear_greed", "liquidations", "orderbook_imbalance", "hmm_models"):
        backfill.upsert(table, live.read(table))
    bdefs = _defs(clean_replay, backfill_db, str(tmp_path / "unused"))
    day = LIVE_FROM.strftime("%Y-%m-%d")
    run_job(bdefs, "sentiment_job", tags={"dagster/asset_partition_range_start": f"{START}|BTCUSDT",
                                       "dagster/asset_partition_range_end": f"{day}|ETHUSDT"})
    theirs = backfill.query("SELECT * FROM sentiment_history WHERE interval = '60' AND "
                            "timestamp > ? ORDER BY symbol, timestamp", [LIVE_FROM])
    assert len(theirs) == len(rows)
    for column in ("sentiment_score", "confidence", "exchange_sentiment",
                   "liquidation_intensity", "order_book_imbalance"):
        assert theirs[column].to_numpy(dtype=float) == pytest.approx(
            rows[column].to_numpy(dtype=float), abs=1e-9), column
    assert theirs["regime"].tolist() == rows["regime"].tolist()


def test_a_bar_that_just_closed_waits_one_flush_for_the_stream(clean_replay, tmp_path):
    """A stream that has just started may stage a bar's last seconds after the live run:
    a bar closed less than a flush (and the grace) ago is provisional, then made final."""
    db = str(tmp_path / "live.duckdb")
    defs = _defs(clean_replay, db, str(tmp_path / "stream"))
    instance = DagsterInstance.ephemeral()

    def checkpoint():
        state = Store(db).read("tracker_state", where={"symbol": "BTCUSDT", "interval": "60"})
        return pd.Timestamp(state["last_timestamp"].iloc[0])

    clean_replay.set_clock(LIVE_FROM + dt.timedelta(seconds=1))
    run_job(defs, "live_update_job", instance)
    assert checkpoint() == pd.Timestamp(LIVE_FROM) - pd.Timedelta(hours=1)
    rows = Store(db).read("sentiment_history", where={"symbol": "BTCUSDT", "interval": "60"})
    assert pd.Timestamp(rows["timestamp"].max()) == pd.Timestamp(LIVE_FROM)  # written, provisional
    clean_replay.set_clock(LIVE_FROM + dt.timedelta(seconds=30))
    run_job(defs, "live_update_job", instance)
    assert checkpoint() == pd.Timestamp(LIVE_FROM)
