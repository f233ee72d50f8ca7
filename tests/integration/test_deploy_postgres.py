"""The production Dagster instance (deploy/dagster/dagster.yaml) on a real PostgreSQL server:
jobs run on it, their runs and events land in PostgreSQL, and a date|symbol run carries the
tag the run queue limits per symbol.

Needs the PostgreSQL server binaries (Debian package postgresql) and dagster-postgres;
skipped without them.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from helpers import definitions, free_port, run_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INSTANCE_DIR = Path(__file__).resolve().parents[2] / "deploy" / "dagster"


def _as_server_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: then run it as the ``postgres`` account."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@pytest.fixture(scope="module")
def postgres():
    pytest.importorskip("dagster_postgres")
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("no PostgreSQL server binaries")
    bin_dir = Path(found[-1]).parent
    # Not under pytest's temporary directory: that one is private to the test's user.
    root = Path(tempfile.mkdtemp(prefix="sentiment-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    port = free_port()
    run = lambda *cmd: subprocess.run(_as_server_user(list(cmd)), check=True,  # noqa: E731
                                      capture_output=True, text=True, timeout=120)
    run(str(bin_dir / "initdb"), "-D", str(data), "-U", "dagster", "--auth=trust",
        "-E", "UTF8")
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log"), "-o",
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start")
    try:
        run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "dagster",
            "dagster_test")
        yield {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(port),
               "DAGSTER_PG_USER": "dagster", "DAGSTER_PG_PASSWORD": "",
               "DAGSTER_PG_DB": "dagster_test", "psql": str(bin_dir / "psql")
               if (bin_dir / "psql").exists() else "psql"}
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _sql(postgres, query: str) -> list[str]:
    """Rows of ``query`` read with psql, outside Dagster."""
    out = subprocess.run(
        [postgres["psql"], "-h", postgres["DAGSTER_PG_HOST"], "-p", postgres["DAGSTER_PG_PORT"],
         "-U", postgres["DAGSTER_PG_USER"], "-d", postgres["DAGSTER_PG_DB"], "-At", "-c", query],
        check=True, capture_output=True, text=True, timeout=60)
    return out.stdout.splitlines()


def test_jobs_run_on_the_production_instance(postgres, replay, db_path, tmp_path, monkeypatch):
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    from sentiment.config import load_config

    for name, value in postgres.items():
        if name.startswith("DAGSTER_PG_"):
            monkeypatch.setenv(name, value)
    # The settings from deploy/dagster; local artifacts (compute logs) in tmp_path.
    ref = InstanceRef.from_dir(str(tmp_path), config_dir=str(INSTANCE_DIR))
    defs = definitions(replay, db_path, load_config())
    with DagsterInstance.from_ref(ref) as instance:
        for storage, name in ((instance.run_storage, "PostgresRunStorage"),
                              (instance.event_log_storage, "PostgresEventLogStorage"),
                              (instance.schedule_storage, "PostgresScheduleStorage")):
            assert type(storage).__module__.startswith("dagster_postgres.")
            assert type(storage).__name__ == name

        fear_greed = run_job(defs, "fear_greed_job", instance, tags={
            "dagster/asset_partition_range_start": "2022-06-01",
            "dagster/asset_partition_range_end": "2022-06-07"})
        market = run_job(defs, "market_data_job", instance, partition_key="2022-06-01|BTCUSDT")

        stored = instance.get_run_by_id(market.run_id)
        assert stored.tags["dagster/partition/symbol"] == "BTCUSDT"
        # The tags the production run queue limits per value are the ones such runs carry;
        # the one for runs over several symbols is the live job's (and the bootstrap's).
        limits = ref.settings["concurrency"]["runs"]["tag_concurrency_limits"]
        assert {limit["key"] for limit in limits} - {"sentiment/symbols"} <= set(stored.tags)
        assert "sentiment/symbols" in defs.resolve_job_def("live_update_job").tags

    # Read back from PostgreSQL itself: both runs succeeded, their events are there.
    rows = dict(line.split("|") for line in _sql(postgres, "SELECT run_id, status FROM runs"))
    assert rows == {fear_greed.run_id: "SUCCESS", market.run_id: "SUCCESS"}
    events = _sql(postgres, "SELECT count(*) FROM event_logs WHERE run_id = "
                  f"'{market.run_id}' AND dagster_event_type = 'ASSET_MATERIALIZATION'")
    assert int(events[0]) == 4  # candles, funding, open interest, long/short ratio
