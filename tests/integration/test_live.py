"""The near-real-time loop against the replay exchange: live_update_job run bar by bar
equals a backfill, the sensor keys one run per newest bar, a killed run leaves nothing
half-written, and no row uses data published after its bar closed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest
from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context

from orchestration.resources import BybitResource
from sentiment.config import load_config
from sentiment.io.store import Store
from sentiment.models import HISTORY_COLUMNS
from sentiment.tracker import CHECKPOINT_VERSION

from helpers import assert_tables_equal, definitions, live_config
from helpers import run_job as _run

pytestmark = pytest.mark.integration

START = dt.date(2022, 3, 1)
# The live loop runs hour by hour across the HMM retrain boundary of Monday 2022-03-07.
LIVE_FROM = dt.datetime(2022, 3, 6, 20)
LIVE_TO = dt.datetime(2022, 3, 8, 2)


def _config():
    # A short HMM window, so the boundary inside the live window has a model.
    return live_config(START)


def _defs(replay, db_path):
    return definitions(replay, db_path, _config())


@pytest.fixture(scope="module")
def live_db(replay, tmp_path_factory):
    """A database built only by live_update_job runs, one per hour of the replay clock."""
    db = str(tmp_path_factory.mktemp("live") / "live.duckdb")
    replay.clear_faults()
    clean_replay = replay
    defs = _defs(clean_replay, db)
    instance = DagsterInstance.ephemeral()
    clock = LIVE_FROM
    clean_replay.set_clock(clock)
    _run(defs, "live_update_job", instance)  # bootstrap: everything since START
    while clock < LIVE_TO:
        clock += dt.timedelta(hours=1, seconds=30)  # a run shortly after each close
        clean_replay.set_clock(clock)
        _run(defs, "live_update_job", instance)
    yield db
    from replay.server import BUNDLE_END

    replay.set_clock(BUNDLE_END, speed=0.0)


def test_live_bar_by_bar_equals_a_backfill(live_db, clean_replay, tmp_path):
    backfill_db = str(tmp_path / "backfill.duckdb")
    defs = _defs(clean_replay, backfill_db)
    clean_replay.set_clock(LIVE_TO + dt.timedelta(seconds=30))
    last = (LIVE_TO - dt.timedelta(days=1)).strftime("%Y-%m-%d")
    tags = {"dagster/asset_partition_range_start": f"{START}|BTCUSDT",
            "dagster/asset_partition_range_end": f"{last}|ETHUSDT"}
    # The last bars close on the next day: ingest that day too (funding settled at 00:00,
    # that day's Fear & Greed), as the live loop had.
    today = LIVE_TO.strftime("%Y-%m-%d")
    _run(defs, "market_data_job", tags={**tags, "dagster/asset_partition_range_end":
                                        f"{today}|ETHUSDT"})
    _run(defs, "fear_greed_job", tags={"dagster/asset_partition_range_start": f"{START}",
                                       "dagster/asset_partition_range_end": today})
    _run(defs, "sentiment_job", tags=tags)
    live, backfill = Store(live_db), Store(backfill_db)
    end = pd.Timestamp(last) + pd.Timedelta(days=1)
    # Rows of bars opened on the backfilled days, from both databases.
    mine = live.query("SELECT * FROM sentiment_history WHERE timestamp - "
                      "CASE interval WHEN '60' THEN INTERVAL 1 HOUR ELSE INTERVAL 4 HOUR END"
                      " < ?", [end.to_pydatetime()])
    theirs = backfill.read("sentiment_history")
    assert len(theirs) == 7 * 30 * 2
    assert_tables_equal(mine[list(HISTORY_COLUMNS)], theirs)
    assert mine["sentiment_score"].notna().sum() == 2 * (7 * 24 - 104)  # hourly, after warm-up
    # The hourly rows after the boundary carry the model trained on the bars before it.
    hourly = theirs[theirs["interval"] == "60"]
    after = hourly["timestamp"] > pd.Timestamp("2022-03-07")
    assert hourly.loc[after, "hmm_regime"].notna().all()
    assert hourly.loc[~after, "hmm_regime"].isna().all()
    expected = hourly.loc[after, "symbol"] + "-60-20220307T0000-K"
    assert all(m.startswith(e) for m, e in zip(hourly.loc[after, "hmm_model_id"], expected,
                                               strict=True))
    models = backfill.read("hmm_models")
    assert set(models["model_id"]) == set(live.read("hmm_models")["model_id"])
    assert (pd.to_datetime(models["train_end"]) == pd.Timestamp("2022-03-07")).all()
    t_live = live.query("SELECT * FROM regime_transitions WHERE timestamp <= ?",
                        [theirs["timestamp"].max().to_pydatetime()])
    assert_tables_equal(t_live, backfill.read("regime_transitions"))
    # One checkpoint per symbol and interval, at the newest final bar.
    states = live.read("tracker_state")
    assert len(states) == 4
    assert (pd.to_datetime(states["last_timestamp"]) <= pd.Timestamp(LIVE_TO)).all()


def test_no_row_uses_data_published_after_its_bar_closed(live_db):
    store = Store(live_db)
    rows = store.read("sentiment_history")
    funding = store.read("funding_rates")
    oi = store.read("open_interest")
    fng = store.read("fear_greed")
    for row in rows.sample(200, random_state=1).itertuples():
        t = row.timestamp
        f = funding[(funding.symbol == row.symbol) & (funding.funding_time <= t)]
        assert row.funding_rate == f.sort_values("funding_time").funding_rate.iloc[-1]
        o = oi[(oi.symbol == row.symbol) & (oi.ts + pd.Timedelta(hours=1) <= t)]
        assert row.open_interest == o.sort_values("ts").open_interest.iloc[-1]
        g = fng[fng.ts <= t]
        assert row.fear_greed_index == g.sort_values("ts").value.iloc[-1]


def _sensor_eval(defs, replay, cursor=None):
    sensor = defs.get_sensor_def("live_update_sensor")
    context = build_sensor_context(
        cursor=cursor, resources={"bybit": BybitResource(base_url=replay.base_url)})
    return sensor(context), context.cursor


def test_sensor_one_run_key_per_new_bar_catch_up_and_restart(clean_replay, db_path):
    defs = _defs(clean_replay, db_path)
    clean_replay.set_clock(dt.datetime(2022, 3, 5, 10, 0, 30))
    result, cursor = _sensor_eval(defs, clean_replay)
    assert isinstance(result, RunRequest)
    assert result.run_key == "BTCUSDT-60-2022-03-05T09:00"  # the bar that just closed
    # Nothing closed since: no run, the same bar in the cursor.
    clean_replay.set_clock(dt.datetime(2022, 3, 5, 10, 59))
    result, again = _sensor_eval(defs, clean_replay, cursor)
    assert isinstance(result, SkipReason)
    assert json.loads(again)["bar"] == json.loads(cursor)["bar"]
    # The next bar: exactly one new key.
    clean_replay.set_clock(dt.datetime(2022, 3, 5, 11, 0, 5))
    result, cursor = _sensor_eval(defs, clean_replay, cursor)
    assert result.run_key == "BTCUSDT-60-2022-03-05T10:00"
    # Five hours of downtime: one run for the newest bar (it processes all of them).
    clean_replay.set_clock(dt.datetime(2022, 3, 5, 16, 0, 5))
    result, cursor = _sensor_eval(defs, clean_replay, cursor)
    assert result.run_key == "BTCUSDT-60-2022-03-05T15:00"
    assert json.loads(cursor)["bar"] == "2022-03-05T15:00"
    # A restarted daemon evaluates with the stored cursor: no duplicate.
    result, _ = _sensor_eval(defs, clean_replay, cursor)
    assert isinstance(result, SkipReason)
    # The replay clock started over (`make up` again): the bars run again, under new keys.
    clean_replay.set_clock(dt.datetime(2022, 3, 5, 10, 0, 30))
    result, restarted = _sensor_eval(defs, clean_replay, cursor)
    assert result.run_key == "BTCUSDT-60-2022-03-05T09:00-1"
    clean_replay.set_clock(dt.datetime(2022, 3, 5, 11, 0, 30))
    result, _ = _sensor_eval(defs, clean_replay, restarted)
    assert result.run_key == "BTCUSDT-60-2022-03-05T10:00-1"
    clean_replay.set_clock(dt.datetime(2022, 3, 5, 16, 0, 30))
    result, _ = _sensor_eval(defs, clean_replay, cursor)
    assert isinstance(result, SkipReason)


@pytest.mark.slow
def test_sensor_waits_for_a_bar_about_to_close_and_not_on_a_stopped_clock(clean_replay,
                                                                          db_path):
    defs = _defs(clean_replay, db_path)
    clean_replay.set_clock(dt.datetime(2022, 3, 5, 10, 0, 30))
    _, cursor = _sensor_eval(defs, clean_replay)
    # The exchange clock runs in real time, 1.5 s before the next close: one evaluation
    # waits for the close and requests the run for the bar that just closed.
    clean_replay.set_clock(dt.datetime(2022, 3, 5, 10, 59, 58, 500000), speed=1.0)
    start = time.monotonic()
    result, cursor = _sensor_eval(defs, clean_replay, cursor)
    assert isinstance(result, RunRequest)
    assert result.run_key == "BTCUSDT-60-2022-03-05T10:00"
    assert time.monotonic() - start >= 1.0  # it did wait for the close
    # Frozen just before the next close: the cursor's clock sample shows the clock is not
    # running, so the evaluation does not wait.
    clean_replay.set_clock(dt.datetime(2022, 3, 5, 11, 59, 59), speed=0.0)
    _, cursor = _sensor_eval(defs, clean_replay, cursor)
    start = time.monotonic()
    result, cursor = _sensor_eval(defs, clean_replay, cursor)
    assert isinstance(result, SkipReason)
    assert time.monotonic() - start < 0.9
    assert json.loads(cursor)["bar"] == "2022-03-05T10:00"


def test_a_killed_live_run_leaves_no_duplicate_no_gap_and_no_lock(clean_replay, tmp_path):
    db = str(tmp_path / "crash.duckdb")
    clean_replay.set_clock(dt.datetime(2022, 3, 10))
    script = textwrap.dedent("""
        import dataclasses, datetime as dt, sys
        from sentiment.config import load_config
        from sentiment.services.live import live_update
        from sentiment.io.sources.bybit import BybitClient
        from sentiment.io.sources.fear_greed import FearGreedClient
        from sentiment.io.store import Store
        config = dataclasses.replace(load_config(), start_date=dt.date(2022, 3, 1))
        print("ready", flush=True)
        live_update(Store(sys.argv[1]), config, BybitClient(sys.argv[2]),
                    FearGreedClient(sys.argv[3]))
        print("done", flush=True)
    """)
    # Kill the first run while it works (after it started writing some tables), then rerun.
    proc = subprocess.Popen([sys.executable, "-c", script, db, clean_replay.base_url,
                             clean_replay.fear_greed_url], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    clean_replay.inject("/v5/market/open-interest", "slow", count=1, delay_s=3.0,
                        match={"symbol": "ETHUSDT"})
    # The run stores what it fetched only at the end; a slow ETH request holds it mid-way.
    deadline = dt.datetime.now() + dt.timedelta(seconds=30)
    while not any(r["path"] == "/v5/market/open-interest" and r.get("fault")
                  for r in clean_replay.requests()):
        assert dt.datetime.now() < deadline
        proc.poll()
        assert proc.returncode is None
        os.sched_yield()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = Store(db, lock_timeout=5)
    with store.connect() as conn:  # the file is not left locked
        conn.execute("SELECT 1").fetchall()
    clean_replay.clear_faults()
    config = dataclasses.replace(load_config(), start_date=START)
    from sentiment.io.sources.bybit import BybitClient
    from sentiment.io.sources.fear_greed import FearGreedClient
    from sentiment.services.live import live_update

    live_update(store, config, BybitClient(clean_replay.base_url),
                FearGreedClient(clean_replay.fear_greed_url))
    history = store.read("sentiment_history")
    candles = store.read("candles")
    assert len(history) == len(candles) == 9 * 30 * 2
    assert not history.duplicated(["symbol", "interval", "timestamp"]).any()


@pytest.mark.slow
def test_a_live_run_killed_inside_its_commit_writes_nothing_and_reruns_clean(clean_replay,
                                                                            tmp_path):
    db = str(tmp_path / "crash_commit.duckdb")
    clean_replay.set_clock(dt.datetime(2022, 3, 10))
    # The child pauses inside the transaction that writes sentiment_history, after its rows
    # are inserted and before COMMIT, and is killed there.
    script = textwrap.dedent("""
        import dataclasses, datetime as dt, sys
        from sentiment.config import load_config
        from sentiment.services.live import live_update
        from sentiment.io.sources.bybit import BybitClient
        from sentiment.io.sources.fear_greed import FearGreedClient
        from sentiment.io.store import Store
        original = Store._insert
        def pausing_insert(conn, spec, frame, *, replace):
            n = original(conn, spec, frame, replace=replace)
            if spec.name == "sentiment_history":
                print("inside the commit", len(frame), flush=True)
                sys.stdin.readline()
            return n
        Store._insert = staticmethod(pausing_insert)
        config = dataclasses.replace(load_config(), start_date=dt.date(2022, 3, 1))
        live_update(Store(sys.argv[1]), config, BybitClient(sys.argv[2]),
                    FearGreedClient(sys.argv[3]))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script, db, clean_replay.base_url,
                             clean_replay.fear_greed_url], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().split()
    assert line[:3] == ["inside", "the", "commit"] and int(line[3]) > 0
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = Store(db, lock_timeout=5)
    # Not locked; the candles committed before, none of the killed transaction's rows.
    assert len(store.read("candles")) == 9 * 30 * 2
    assert store.read("sentiment_history").empty
    assert store.read("tracker_state").empty
    config = dataclasses.replace(load_config(), start_date=START)
    from sentiment.io.sources.bybit import BybitClient
    from sentiment.io.sources.fear_greed import FearGreedClient
    from sentiment.services.live import live_update

    live_update(store, config, BybitClient(clean_replay.base_url),
                FearGreedClient(clean_replay.fear_greed_url))
    history = store.read("sentiment_history")
    assert len(history) == 9 * 30 * 2
    assert not history.duplicated(["symbol", "interval", "timestamp"]).any()
    assert len(store.read("tracker_state")) == 4


def test_hmm_models_asset_retrains_the_newest_boundary_like_the_live_job(live_db,
                                                                        clean_replay,
                                                                        tmp_path):
    import shutil

    db = str(tmp_path / "retrain.duckdb")
    shutil.copy(live_db, db)
    before = Store(db).read("hmm_models")
    result = _run(_defs(clean_replay, db), "hmm_retrain_job")
    [event] = [e for e in result.get_asset_materialization_events()]
    meta = event.materialization.metadata
    summary = meta["BTCUSDT 60"].value
    assert summary["model_id"].startswith("BTCUSDT-60-20220307T0000-K")
    assert set(summary["bic"]) == {"2", "3", "4"}
    assert str(summary["n_states"]) == summary["model_id"][-1]
    assert len(summary["labels"]) == summary["n_states"] == len(summary["state_means"])
    # The 4-hour bars are too few for a model: said, and nothing stored for them.
    assert "too few" in meta["skipped"].value
    after = Store(db).read("hmm_models")
    assert not (after["interval"] == "240").any()
    # Retraining gives the very model the live job trained at that boundary.
    merged = before.merge(after, on="model_id", suffixes=("_live", "_asset"))
    assert len(merged) == len(before) == len(after) == 2
    assert (merged["params_live"] == merged["params_asset"]).all()


def test_a_failed_request_among_the_concurrent_fetches_stores_nothing(clean_replay,
                                                                      tmp_path):
    from sentiment.errors import SourceBlockedError
    from sentiment.io.sources.bybit import BybitClient
    from sentiment.io.sources.fear_greed import FearGreedClient
    from sentiment.services.live import live_update

    store = Store(str(tmp_path / "fetch_fault.duckdb"))
    config = dataclasses.replace(load_config(), start_date=dt.date(2022, 3, 8))
    clients = (BybitClient(clean_replay.base_url),
               FearGreedClient(clean_replay.fear_greed_url))
    clean_replay.set_clock(dt.datetime(2022, 3, 10))
    live_update(store, config, *clients)
    tables = ["candles", "funding_rates", "open_interest", "long_short_ratio", "fear_greed",
              "sentiment_history", "tracker_state"]
    before = {t: store.read(t) for t in tables}
    clean_replay.set_clock(dt.datetime(2022, 3, 10, 6, 0, 30))
    clean_replay.inject("/v5/market/open-interest", "http_403", count=1,
                        match={"symbol": "ETHUSDT"})
    with pytest.raises(SourceBlockedError, match="ETHUSDT"):
        live_update(store, config, *clients)
    # The other requests of that update answered, yet nothing of it was stored.
    for table, frame in before.items():
        pd.testing.assert_frame_equal(store.read(table), frame, obj=table)
    clean_replay.clear_faults()
    live_update(store, config, *clients)
    assert len(store.read("candles")) == len(before["candles"]) + 2 * (6 + 1)
    newest = store.read("sentiment_history").groupby(["symbol", "interval"])["timestamp"].max()
    assert newest[("BTCUSDT", "60")] == pd.Timestamp("2022-03-10 06:00")
    assert newest[("ETHUSDT", "240")] == pd.Timestamp("2022-03-10 04:00")


def test_a_checkpoint_of_an_older_engine_recomputes_the_history(live_db, clean_replay,
                                                                tmp_path):
    # A database written before an upgrade: its checkpoints carry another engine version.
    old = str(tmp_path / "old.duckdb")
    shutil.copy(live_db, old)
    store = Store(old)
    states = store.read("tracker_state")
    before = store.read("sentiment_history")
    stale = states.assign(state=[json.dumps({**json.loads(s), "version": 1})
                                 for s in states["state"]])
    with store.connect() as conn:
        conn.register("stale", stale)
        conn.execute("DELETE FROM tracker_state")
        conn.execute("INSERT INTO tracker_state SELECT * FROM stale")
        conn.execute("UPDATE sentiment_history SET regime = NULL")  # the old rules' rows
    clean_replay.set_clock(LIVE_TO + dt.timedelta(seconds=30))
    _run(_defs(clean_replay, old), "live_update_job")
    after = store.read("sentiment_history")
    # Every row computed again, from the first stored bar: the same rows the live loop made.
    assert_tables_equal(after[list(HISTORY_COLUMNS)], before[list(HISTORY_COLUMNS)])
    versions = {json.loads(s)["version"] for s in store.read("tracker_state")["state"]}
    assert versions == {CHECKPOINT_VERSION}


@pytest.mark.slow
def test_a_bar_the_exchange_left_out_once_is_healed_and_live_equals_backfill(clean_replay,
                                                                           tmp_path):
    from sentiment.io.sources.bybit import BybitClient
    from sentiment.io.sources.fear_greed import FearGreedClient
    from sentiment.services.live import live_update

    config = dataclasses.replace(load_config(), start_date=dt.date(2022, 3, 8))
    clients = (BybitClient(clean_replay.base_url),
               FearGreedClient(clean_replay.fear_greed_url))
    live = Store(str(tmp_path / "gap.duckdb"))
    clean_replay.set_clock(dt.datetime(2022, 3, 10, 0, 0, 30))
    live_update(live, config, *clients)
    # Three bars close; the answer for BTCUSDT 1h (newest first: the bar in progress, then
    # 02:00, 01:00, 00:00) leaves out the middle one.
    clean_replay.set_clock(dt.datetime(2022, 3, 10, 3, 0, 30))
    clean_replay.inject("/v5/market/kline", "drop_item", count=1, field=2,
                        match={"symbol": "BTCUSDT", "interval": "60"})
    live_update(live, config, *clients)
    opened = set(pd.to_datetime(
        live.read("candles", where={"symbol": "BTCUSDT", "interval": "60"})["open_time"]))
    assert pd.Timestamp("2022-03-10 01:00") not in opened  # the gap
    assert pd.Timestamp("2022-03-10 02:00") in opened
    # The next bar: the left-out one is asked for again, and the history recomputed.
    clean_replay.set_clock(dt.datetime(2022, 3, 10, 4, 0, 30))
    live_update(live, config, *clients)
    opened = pd.to_datetime(
        live.read("candles", where={"symbol": "BTCUSDT", "interval": "60"})["open_time"])
    assert (opened.diff().dropna() == pd.Timedelta(hours=1)).all()
    # The same rows a single computation over every bar gives.
    once = Store(str(tmp_path / "once.duckdb"))
    live_update(once, config, *clients)
    assert_tables_equal(live.read("sentiment_history")[list(HISTORY_COLUMNS)],
                        once.read("sentiment_history")[list(HISTORY_COLUMNS)])
    assert_tables_equal(live.read("regime_transitions"), once.read("regime_transitions"))
