"""`make up-postgres` from the command line, as a user runs it: a PostgreSQL server of this
machine, the Dagster instance and the warehouse in it, the live loop writing rows of both
symbols and its runs recorded in the instance's database."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from local_postgres import free_port, postgres_binaries

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _wait(condition, seconds: float, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"make up-postgres exited early:\n{log.read_text()[-4000:]}")
        try:
            if condition():
                return
        except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
            pass  # the server, the database or its tables are not there yet
        time.sleep(1)
    pytest.fail(f"timed out:\n{log.read_text()[-4000:]}")


def _interrupt(proc: subprocess.Popen) -> bool:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it); then SIGTERM, as a
    service manager sends it, if the parts are still shutting down after a minute. True
    when everything exited."""
    for sig, grace in ((signal.SIGINT, 90), (signal.SIGTERM, 60)):
        if proc.poll() is not None:
            return True
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
            return True
        except subprocess.TimeoutExpired:
            continue
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return False


@pytest.mark.timeout(900)
@pytest.mark.skipif(postgres_binaries() is None, reason="no PostgreSQL server binaries")
def test_make_up_postgres_runs_the_live_loop(tmp_path):
    config = tmp_path / "sentiment.yaml"
    config.write_text((ROOT / "sentiment.yaml").read_text().replace(
        'start_date: "2022-01-01"', 'start_date: "2022-11-24"'))
    ports = {name: str(free_port()) for name in
             ("PG_PORT", "DAGSTER_PORT", "DASHBOARD_PORT", "REPLAY_PORT", "REPLAY_WS_PORT")}
    log = tmp_path / "make.log"
    # Where the postgres user can enter (pytest's own directories are private to root).
    pg_dir = tempfile.mkdtemp(prefix="sentiment-up-pg-")
    # The sources are the replay exchange `make up` starts (the tests' dead-end defaults go).
    env = {k: v for k, v in os.environ.items() if k not in (
        "BYBIT_BASE_URL", "BYBIT_WS_URL", "FEAR_GREED_URL", "SENTIMENT_DB", "DAGSTER_HOME")}
    env |= {"SENTIMENT_CONFIG": str(config), "SENTIMENT_STREAM_DIR": str(tmp_path / "stream")}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["make", "--no-print-directory", "up-postgres", f"PG_DIR={pg_dir}",
             f"PG_DAGSTER_HOME={tmp_path / 'dagster'}",
             *(f"{k}={v}" for k, v in ports.items())],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = f"postgresql://postgres@127.0.0.1:{ports['PG_PORT']}"
    try:
        def live_rows() -> bool:
            with psycopg.connect(f"{server}/sentiment", connect_timeout=5) as conn:
                n = conn.execute(
                    "SELECT count(DISTINCT symbol) FROM sentiment_history WHERE "
                    "timestamp > %s", [dt.datetime(2022, 12, 1, 1)]).fetchone()[0]
            return n == 2  # both symbols have a row the live loop wrote after its start

        _wait(live_rows, 400, proc, log)
        with psycopg.connect(f"{server}/dagster") as conn:  # the instance is in PostgreSQL
            runs = dict(conn.execute("SELECT pipeline_name, count(*) FROM runs WHERE "
                                     "status = 'SUCCESS' GROUP BY 1").fetchall())
        assert runs.get("live_update_job", 0) + runs.get("bootstrap_job", 0) >= 1, runs
    finally:
        # Ctrl-C, then SIGTERM; with a run in flight Dagster's shutdown can take minutes on
        # a loaded machine, so what is checked here is the loop, not how fast it stops.
        if not _interrupt(proc):
            from local_postgres import stop

            stop(postgres_binaries(), pg_dir, mode="immediate")  # never leave a server
        shutil.rmtree(pg_dir, ignore_errors=True)
