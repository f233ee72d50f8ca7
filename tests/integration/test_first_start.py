"""The first start against the replay exchange: on an empty database live_update_sensor
asks for bootstrap_job (and for nothing while it runs); the bootstrap commits month by month
in short transactions with progress in its log, a reader sees the history grow while it
runs, and the live job after it only adds the last days. The rows equal a single live
update over the whole history."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest
from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context

from orchestration.resources import BybitResource
from sentiment.io.sources.bybit import BybitClient
from sentiment.io.sources.fear_greed import FearGreedClient
from sentiment.io.store import Store
from sentiment.models import HISTORY_COLUMNS
from sentiment.services.bootstrap import BOOTSTRAP_AFTER, behind, bootstrap_until, month_ends
from sentiment.services.live import live_update

from helpers import assert_tables_equal, definitions, live_config, run_job

pytestmark = pytest.mark.integration

START = dt.date(2022, 2, 1)
# A Thursday: the bootstrap stops a day after Monday 2022-04-11 and leaves two days and a
# half to the live job.
NOW = dt.datetime(2022, 4, 14, 12, 0, 30)
SERIES = [(s, i) for s in ("BTCUSDT", "ETHUSDT") for i in ("60", "240")]


def test_chunks_are_months_up_to_the_last_monday():
    until = bootstrap_until(NOW)
    assert until == dt.datetime(2022, 4, 12)
    assert month_ends(dt.datetime(2022, 2, 1), until) == [
        dt.datetime(2022, 3, 1), dt.datetime(2022, 4, 1), until]
    assert month_ends(dt.datetime(2022, 4, 12), until) == []
    # On a Monday morning the boundary of the day is not a day old yet: the week before's.
    assert bootstrap_until(dt.datetime(2022, 4, 11, 9)) == dt.datetime(2022, 4, 5)


def _sensor(defs, replay, db, instance, cursor=None):
    sensor = defs.get_sensor_def("live_update_sensor")
    with build_sensor_context(instance=instance, cursor=cursor,
                              resources={"bybit": BybitResource(base_url=replay.base_url)}
                              ) as context:
        return sensor(context), context.cursor


#: A reader beside the writer, as the dashboard and `sentiment status` are: it counts the
#: rows through short read-only connections and prints each count it sees.
READER = textwrap.dedent("""
    import sys, time
    from sentiment.io.store import Store
    store = Store(sys.argv[1], lock_timeout=30)
    print("ready", flush=True)
    while True:
        started = time.monotonic()
        n = int(store.query("SELECT count(*) AS n FROM sentiment_history")["n"].iloc[0])
        print(n, round(time.monotonic() - started, 3), flush=True)
""")


@contextlib.contextmanager
def write_connections():
    """Seconds each write connection of this process stayed open (the write lock)."""
    holds: list[float] = []
    original = Store.connect

    @contextlib.contextmanager
    def timed(self, *, read_only=False):
        outer = self._session is None and not read_only
        started = time.perf_counter()
        with original(self, read_only=read_only) as conn:
            try:
                yield conn
            finally:
                if outer:
                    holds.append(time.perf_counter() - started)

    Store.connect = timed
    try:
        yield holds
    finally:
        Store.connect = original


@pytest.mark.slow
def test_first_start_bootstraps_in_chunks_then_the_live_job_adds_only_new_bars(
        clean_replay, tmp_path):
    db = str(tmp_path / "live.duckdb")
    config = live_config(START)
    defs = definitions(clean_replay, db, config)
    instance = DagsterInstance.ephemeral()
    clean_replay.set_clock(NOW)

    # An empty database: the sensor asks for the bootstrap, keyed by the newest bar.
    request, cursor = _sensor(defs, clean_replay, db, instance)
    assert isinstance(request, RunRequest)
    assert request.job_name == "bootstrap_job"
    assert request.run_key == "BTCUSDT-60-2022-04-14T11:00"
    assert "no" in request.tags["sentiment/bootstrap"]
    # While a bootstrap (or live) run is queued or running, nothing more is requested.
    queued = instance.create_run_for_job(defs.resolve_job_def("bootstrap_job"))
    clean_replay.set_clock(NOW + dt.timedelta(hours=1))
    skipped, _ = _sensor(defs, clean_replay, db, instance, cursor)
    assert isinstance(skipped, SkipReason)
    assert "bootstrap_job" in skipped.skip_message and queued.run_id[:8] in skipped.skip_message
    instance.delete_run(queued.run_id)
    clean_replay.set_clock(NOW)

    Store(db).init()
    reader = subprocess.Popen([sys.executable, "-c", READER, db], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert reader.stdout.readline().strip() == "ready"
        with write_connections() as holds:
            result = run_job(defs, "bootstrap_job", instance)
    finally:
        reader.kill()
        seen = [line.split() for line in reader.stdout.read().splitlines()]
    store = Store(db)
    total = len(store.read("sentiment_history"))
    assert total > 0
    # Month by month: the reader saw the history grow while the bootstrap ran, and never
    # waited long for the writer.
    counts = [int(n) for n, _ in seen]
    assert len({n for n in counts if 0 < n < total}) >= 2, sorted(set(counts))
    assert max(float(waited) for _, waited in seen) < 5.0
    # Every write connection was short: no transaction holds the lock for the history.
    assert max(holds) < 5.0, sorted(holds)[-3:]
    # Progress per symbol and interval, with bars done out of all, in the run's log.
    messages = [e.message for e in instance.all_logs(result.run_id) if e.message]
    for symbol, interval in SERIES:
        lines = [m for m in messages if m.startswith(f"{symbol} {interval}: ")
                 and " bars (up to " in m]
        assert len(lines) == 3, (symbol, interval, lines)  # one per chunk
        done, of = lines[-1].split(": ")[1].split(" bars")[0].replace(",", "").split("/")
        assert 0 < int(done) <= int(of)
    # The materializations of the partitions written, reported as each month committed.
    dates = {m.partition.split("|")[0] for m in result.asset_materializations_for_node(
        "bootstrap")}
    assert min(dates) == "2022-02-01" and max(dates) == "2022-04-11"
    # Checkpoints for every series: the sensor now asks for the live job.
    assert behind(store, config, NOW) is None
    clean_replay.set_clock(NOW + dt.timedelta(hours=1))
    request, _ = _sensor(defs, clean_replay, db, instance, cursor)
    assert request.job_name == "live_update_job"
    models = len(store.read("hmm_models"))

    # The live job's first run: only the days after the bootstrap, no model trained.
    clean_replay.set_clock(NOW)
    with write_connections() as holds:
        live = run_job(defs, "live_update_job", instance)
    assert not [m for m in (e.message for e in instance.all_logs(live.run_id))
                if m and "catching up first" in m]
    assert len(store.read("hmm_models")) == models
    after = store.read("sentiment_history")
    assert 0 < len(after) - total <= 2 * (3 * 24 + 3 * 6)
    assert max(holds) < 5.0

    # The same rows, transitions, models and checkpoints as one live update over it all.
    once = Store(str(tmp_path / "once.duckdb"))
    live_update(once, config, BybitClient(clean_replay.base_url),
                FearGreedClient(clean_replay.fear_greed_url))
    assert_tables_equal(after[list(HISTORY_COLUMNS)],
                        once.read("sentiment_history")[list(HISTORY_COLUMNS)])
    assert_tables_equal(store.read("regime_transitions"), once.read("regime_transitions"))
    assert set(store.read("hmm_models")["model_id"]) == set(once.read("hmm_models")["model_id"])
    mine, theirs = store.read("tracker_state"), once.read("tracker_state")
    assert list(mine["last_timestamp"]) == list(theirs["last_timestamp"])
    assert [json.loads(s) for s in mine["state"]] == [json.loads(s) for s in theirs["state"]]


def test_a_database_weeks_behind_is_caught_up_in_chunks_by_the_live_job_itself(
        clean_replay, tmp_path):
    """live_update_job launched by hand on a database idle for weeks: it catches up month
    by month first (and says so), instead of one transaction over the whole gap."""
    db = str(tmp_path / "idle.duckdb")
    config = live_config(dt.date(2022, 3, 1))
    defs = definitions(clean_replay, db, config)
    instance = DagsterInstance.ephemeral()
    clean_replay.set_clock(dt.datetime(2022, 3, 5))
    run_job(defs, "live_update_job", instance)
    store = Store(db)
    later = dt.datetime(2022, 4, 20, 6)  # a Wednesday, six weeks on
    assert later - dt.datetime(2022, 3, 5) > BOOTSTRAP_AFTER
    assert "days behind" in behind(store, config, later)
    clean_replay.set_clock(later)
    with write_connections() as holds:
        result = run_job(defs, "live_update_job", instance)
    messages = [e.message for e in instance.all_logs(result.run_id) if e.message]
    assert any("catching up first" in m and "days behind" in m for m in messages)
    chunks = [m.split(":")[0] for m in messages if m.startswith("chunk up to ")]
    assert chunks == ["chunk up to 2022-04-01", "chunk up to 2022-04-19"]
    assert max(holds) < 5.0
    assert behind(store, config, later) is None
    newest = store.read("sentiment_history").groupby("interval")["timestamp"].max()
    assert newest["60"] >= pd.Timestamp(later - dt.timedelta(hours=2))


@pytest.mark.slow
def test_the_bootstrap_on_postgresql_equals_one_live_update_on_duckdb(clean_replay, pg_url,
                                                                      tmp_path):
    from sentiment.services.bootstrap import bootstrap

    config = live_config(dt.date(2022, 3, 1))
    clients = (BybitClient(clean_replay.base_url),
               FearGreedClient(clean_replay.fear_greed_url))
    clean_replay.set_clock(dt.datetime(2022, 4, 20, 6))
    pg = Store(pg_url)
    lines: list[str] = []
    chunks = list(bootstrap(pg, config, *clients, report=lines.append))
    assert [c.end for c in chunks] == [dt.datetime(2022, 4, 1), dt.datetime(2022, 4, 19)]
    assert any(line.startswith("BTCUSDT 60: ") for line in lines)
    live_update(pg, config, *clients)
    once = Store(str(tmp_path / "once.duckdb"))
    live_update(once, config, *clients)
    assert_tables_equal(pg.read("sentiment_history")[list(HISTORY_COLUMNS)],
                        once.read("sentiment_history")[list(HISTORY_COLUMNS)])
    assert_tables_equal(pg.read("regime_transitions"), once.read("regime_transitions"))
    assert set(pg.read("hmm_models")["model_id"]) == set(once.read("hmm_models")["model_id"])
