"""A stored day never shrinks to a shorter answer; the database path is used safely.

Real components only: the replay exchange on 127.0.0.1 (its clock decides what it has
"seen", so an answer for a day after the clock is empty and one for the day in progress is
partial), the real Dagster jobs on a temporary DuckDB file, and the real ``sentiment`` CLI.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dagster import DagsterInstance

from orchestration.definitions import build_definitions
from sentiment.cli import main
from sentiment.config import load_config
from sentiment.errors import SentimentError
from sentiment.io.store import Store
from sentiment.settings import get_settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DAY = "2022-06-01"
PARTITION = f"{DAY}|BTCUSDT"
MARKET_TABLES = ("candles", "funding_rates", "open_interest", "long_short_ratio")
# The run that stores the day most tests start from.
STORED_DAY = ("market_data_job", {"partition_key": PARTITION})
FG_TAGS = {"dagster/asset_partition_range_start": "2022-06-01",
           "dagster/asset_partition_range_end": "2022-06-10"}


def make_defs(replay, db_path: str, config=None):
    settings = dataclasses.replace(get_settings(), db_path=db_path,
                                   bybit_base_url=replay.base_url,
                                   fear_greed_url=replay.fear_greed_url)
    config = config or load_config()
    config = dataclasses.replace(
        config,
        sources=dataclasses.replace(config.sources, max_retries=2, backoff_base_seconds=0.01,
                                    backoff_max_seconds=0.05, timeout_seconds=10.0),
    )
    return build_definitions(config, settings)


def run(defs, job="market_data_job", *, partition=PARTITION, tags=None, run_config=None):
    return defs.resolve_job_def(job).execute_in_process(
        partition_key=partition, tags=tags, run_config=run_config, raise_on_error=False,
        instance=DagsterInstance.ephemeral(),
    )


def failures(result) -> dict[str, str]:
    """Step name -> error message of every failed step."""
    return {e.step_key: str(e.step_failure_data.error) for e in result.all_events
            if e.is_step_failure}


def snapshot(db_path: str, tables=MARKET_TABLES) -> dict[str, pd.DataFrame]:
    store = Store(db_path)
    return {t: store.read(t, read_only=True) for t in tables}


def assert_unchanged(db_path: str, before: dict[str, pd.DataFrame]) -> None:
    for table, frame in snapshot(db_path, tuple(before)).items():
        pd.testing.assert_frame_equal(frame, before[table], obj=table)


# --------------------------------------------------------------------------------------------
# Item 4: an answer that would shrink stored data fails and changes nothing


def test_an_empty_answer_does_not_delete_a_stored_day(clean_replay, db_path, seeded):
    defs = make_defs(clean_replay, db_path)
    seeded(defs, db_path, STORED_DAY)
    before = snapshot(db_path)
    assert len(before["candles"]) == 30
    # The exchange's clock before the day: every endpoint answers an empty list for it.
    clean_replay.set_clock("2022-05-31T00:00:00")
    result = run(defs)
    assert not result.success
    errors = failures(result)
    message = errors["candles"]
    for part in ("ShrinkError", "candles", "BTCUSDT", clean_replay.base_url,
                 "2022-06-01 00:00:00", "2022-06-02 00:00:00", "30 stored", "0 in the answer",
                 "allow_shrink"):
        assert part in message, (part, message)
    assert set(errors) == set(MARKET_TABLES)
    assert_unchanged(db_path, before)


def test_a_partial_answer_does_not_shrink_a_stored_day(clean_replay, db_path, seeded):
    defs = make_defs(clean_replay, db_path)
    seeded(defs, db_path, STORED_DAY)
    before = snapshot(db_path)
    # Half the day seen: 12 hourly and 3 four-hourly closed bars instead of 24 + 6.
    clean_replay.set_clock("2022-06-01T12:00:00")
    result = run(defs)
    assert not result.success
    message = failures(result)["candles"]
    assert "30 stored" in message and "15 in the answer" in message, message
    assert_unchanged(db_path, before)


@pytest.mark.slow
def test_a_growing_or_identical_answer_still_replaces(clean_replay, db_path):
    # Guard (passes before and after): the day in progress grows, a rerun is idempotent.
    defs = make_defs(clean_replay, db_path)
    clean_replay.set_clock("2022-06-01T12:00:00")
    assert run(defs).success
    assert len(snapshot(db_path)["candles"]) == 15
    clean_replay.set_clock(None)
    assert run(defs).success
    full = snapshot(db_path)
    assert len(full["candles"]) == 30
    assert run(defs).success
    assert_unchanged(db_path, full)


def test_allow_shrink_forces_a_shorter_answer(clean_replay, db_path, seeded):
    defs = make_defs(clean_replay, db_path)
    seeded(defs, db_path, STORED_DAY)
    clean_replay.set_clock("2022-06-01T12:00:00")
    result = run(defs, run_config={"ops": {"candles": {"config": {"allow_shrink": True}}}})
    errors = failures(result)
    assert "candles" not in errors, errors
    assert set(errors) == {"funding_rates", "open_interest", "long_short_ratio"}
    candles = Store(db_path).read("candles", read_only=True)
    assert candles.groupby("interval").size().to_dict() == {"240": 3, "60": 12}


def test_fear_greed_does_not_shrink(clean_replay, db_path):
    defs = make_defs(clean_replay, db_path)
    assert run(defs, "fear_greed_job", partition=None, tags=FG_TAGS).success
    before = snapshot(db_path, ("fear_greed",))
    assert len(before["fear_greed"]) == 10
    clean_replay.set_clock("2022-06-05T12:00:00")
    result = run(defs, "fear_greed_job", partition=None, tags=FG_TAGS)
    assert not result.success
    message = failures(result)["fear_greed"]
    assert "10 stored" in message and "5 in the answer" in message, message
    assert_unchanged(db_path, before)


def test_a_switched_off_input_keeps_its_stored_rows(clean_replay, db_path, seeded):
    defs = make_defs(clean_replay, db_path)
    seeded(defs, db_path, STORED_DAY)
    before = snapshot(db_path)
    config = load_config()
    config = dataclasses.replace(config, exchange_data=dataclasses.replace(
        config.exchange_data, funding_rate=False))
    result = run(make_defs(clean_replay, db_path, config))
    assert result.success, failures(result)
    assert_unchanged(db_path, before)


# --------------------------------------------------------------------------------------------
# Item 13: the database path


def test_tables_does_not_create_a_missing_database(tmp_path, capsys):
    path = tmp_path / "no" / "such" / "sentiment.duckdb"
    assert main(["tables", "--db", str(path)]) == 1
    assert "no database at" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def _hold_read_only(path: Path) -> subprocess.Popen:
    """Another process (a dashboard, a SQL user) holding a read-only connection."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
         "print('held', flush=True); sys.stdin.readline()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_tables_reads_beside_other_readers(clean_replay, db_path, seeded):
    seeded(make_defs(clean_replay, db_path), db_path, STORED_DAY)
    holder = _hold_read_only(Path(db_path))
    try:
        # A read-write open would wait for the reader (60 s) and then fail.
        out = subprocess.run([sys.executable, "-m", "sentiment.cli", "tables", "--db", db_path],
                             capture_output=True, text=True, timeout=30, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.fail("`sentiment tables` waited for the write lock a reader held")
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert out.returncode == 0, out.stderr
    assert "candles" in out.stdout and "30" in out.stdout


def test_tables_on_a_read_only_disk(clean_replay, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "sentiment.duckdb"
    assert run(make_defs(clean_replay, str(db))).success
    tables = [sys.executable, "-m", "sentiment.cli", "tables", "--db", str(db)]
    if os.geteuid() != 0:
        folder.chmod(0o555)
        db.chmod(0o444)
        command = tables
    else:
        # root writes through chmod: make the folder a read-only bind mount, in a private
        # mount namespace so nothing outlives the subprocess.
        if shutil.which("unshare") is None:
            pytest.skip("running as root without unshare: cannot make a read-only disk")
        script = ('mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && '
                  '! touch "$1/probe" 2>/dev/null && shift && exec "$@"')
        command = ["unshare", "-m", "sh", "-c", script, "sh", str(folder), *tables]
        probe = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(folder), "true"],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.skip(f"cannot make a read-only bind mount here: {probe.stderr.strip()}")
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)
    finally:
        folder.chmod(0o755)
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 0, out.stderr
    assert "candles" in out.stdout


def test_a_memory_database_is_refused(clean_replay, monkeypatch, capsys):
    # A job given an in-memory database (the resource's own setting) fails, never reports
    # a success whose rows vanished with the connection.
    result = run(make_defs(clean_replay, ":memory:"))
    assert not result.success
    assert ":memory:" in failures(result)["candles"]
    with pytest.raises(SentimentError, match="SENTIMENT_DB"):
        get_settings({"SENTIMENT_DB": ":memory:"})
    monkeypatch.setenv("SENTIMENT_DB", ":memory:")
    assert main(["tables"]) == 1
    assert "SENTIMENT_DB" in capsys.readouterr().err


def _delete_when_fetching(replay, path: Path, done: threading.Event) -> threading.Thread:
    """Delete the database while the first kline request of a run is being answered."""

    def watch():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not done.is_set():
            if any(r["path"] == "/v5/market/kline" for r in replay.requests()):
                path.unlink()
                Path(f"{path}.wal").unlink(missing_ok=True)
                # The steps of `dagster dev` run in fresh processes that have applied no
                # schema yet; forget it here too, so this in-process run behaves the same.
                Store._schema_applied.clear()
                done.set()
                return
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_a_database_deleted_mid_run_fails_the_run(clean_replay, db_path):
    defs = make_defs(clean_replay, db_path)
    tags = {"dagster/asset_partition_range_start": "2022-06-01|BTCUSDT",
            "dagster/asset_partition_range_end": "2022-06-03|BTCUSDT"}
    assert run(defs, partition=None, tags=tags).success
    assert len(Store(db_path).read("candles", read_only=True)) == 90
    clean_replay.clear_requests()
    clean_replay.inject("/v5/market/kline", "slow", count=1, delay_s=0.5)
    deleted = threading.Event()
    watcher = _delete_when_fetching(clean_replay, Path(db_path), deleted)
    result = run(defs, partition="2022-06-02|BTCUSDT")
    watcher.join(timeout=30)
    assert deleted.is_set()
    assert not result.success
    messages = failures(result)
    assert "candles" in messages
    assert "deleted" in messages["candles"] and db_path in messages["candles"]
    # Not recreated by this step nor by the run's later steps with only their partitions.
    assert not Path(db_path).exists()


def test_a_database_replaced_mid_run_fails_the_write(tmp_path):
    path = tmp_path / "sentiment.duckdb"
    store = Store(path)
    store.init()
    shutil.copy(path, tmp_path / "other.duckdb")
    os.replace(tmp_path / "other.duckdb", path)  # same name, another file
    frame = pd.DataFrame({"ts": [pd.Timestamp(DAY)], "value": [50],
                          "classification": ["Neutral"]})
    with pytest.raises(SentimentError, match="replaced"):
        store.upsert("fear_greed", frame)
    assert duckdb.connect(str(path), read_only=True).execute(
        "SELECT count(*) FROM fear_greed").fetchone() == (0,)


@pytest.mark.parametrize(
    ("argv", "option"),
    [(["--port", "99999"], "--port"), (["--port", "http"], "--port"),
     (["--ws-port", "70000"], "--ws-port"), (["--now", "notadate"], "--now"),
     (["--speed", "-1"], "--speed"), (["--gap-every", "-2"], "--gap-every")],
)
def test_replay_server_bad_arguments_are_usage_errors(argv, option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["replay-server", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and option in err, err
    assert "Traceback" not in err
