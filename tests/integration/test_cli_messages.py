"""What the `sentiment` command says when it cannot answer: a busy database (another process
holds DuckDB's write lock), a missing one, one without tables, a file that is no database, a
symbol or interval that is not configured. Always one sentence on stderr and exit code 1,
never a traceback; and the status block marks the series the replay exchange makes up, but
never real Bybit data. Every command runs as a user runs it: a subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from replay.server import load_bundle
from sentiment.config import load_config
from sentiment.history import compute_history
from sentiment.io.retry import CLI_LOCK_WAIT_SECONDS
from sentiment.io.store import Store
from sentiment.models import HISTORY_COLUMNS

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: The read commands and the arguments each needs to read the database.
READERS = (["status"], ["history"], ["evaluate"], ["tables"])
FIRST, LAST = "2022-02-01", "2022-03-15"


def sentiment(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SENTIMENT_DB"}
    return subprocess.run([sys.executable, "-m", "sentiment.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def one_sentence(out: subprocess.CompletedProcess) -> str:
    """stderr, checked to be one line and no traceback, with exit code 1 and no stdout."""
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    assert out.stdout == ""
    assert out.stderr.count("\n") == 1 and out.stderr.endswith("\n"), out.stderr
    return out.stderr.strip()


def replay_database(path: Path) -> None:
    """Six weeks of 1h rows for both symbols computed from the bundle (what the replay
    exchange serves: recorded candles and funding, SYNTHETIC open interest and long/short),
    with the candles they came from."""
    bundle = load_bundle()
    config = load_config()
    window = slice(pd.Timestamp(FIRST), pd.Timestamp(LAST) - pd.Timedelta(hours=1))
    store = Store(path)
    for symbol in config.symbols:
        candles = bundle["candles"][bundle["candles"]["symbol"] == symbol]
        candles = candles.set_index("open_time").loc[window].reset_index()
        candles.insert(1, "interval", "60")
        mine = {name: frame[frame["symbol"] == symbol] for name, frame in bundle.items()
                if name != "fear_greed"}
        rows = compute_history(
            candles, mine["funding"], mine["open_interest"].assign(interval="1h"),
            mine["long_short"].assign(period="1h"), bundle["fear_greed"], config)
        store.upsert("candles", candles)
        store.upsert("sentiment_history", rows)


@pytest.fixture(scope="module")
def replay_db(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("cli") / "replay.duckdb"
    replay_database(path)
    return str(path)


def _hold_write_lock(path: str) -> subprocess.Popen:
    """Another process with the file open read-write (as a pipeline step holds it while it
    writes), until its stdin closes."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "sys.stdin.readline()", path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.mark.parametrize("command", READERS, ids=lambda c: c[0])
def test_a_busy_database_is_one_sentence_naming_the_writer(replay_db, command):
    holder = _hold_write_lock(replay_db)
    try:
        started = time.monotonic()
        out = sentiment(*command, "--db", replay_db)
        took = time.monotonic() - started
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    line = one_sentence(out)
    assert line.startswith(f"error: the database {replay_db} is busy: process {holder.pid} (")
    assert "holds it open for writing" in line and "try again in a moment" in line
    # It gave up after the command line's short wait, not a pipeline step's minute.
    assert CLI_LOCK_WAIT_SECONDS <= took < CLI_LOCK_WAIT_SECONDS + 20
    # And once the writer is gone the same command answers.
    assert sentiment(*command, "--db", replay_db).returncode == 0


@pytest.mark.parametrize("command", READERS, ids=lambda c: c[0])
def test_a_missing_database_is_one_sentence(tmp_path, command):
    missing = tmp_path / "none.duckdb"
    line = one_sentence(sentiment(*command, "--db", str(missing)))
    assert line.startswith(f"no database at {missing}: run `make demo` first")
    assert not missing.exists()  # a reader creates nothing


@pytest.mark.parametrize("command", [c for c in READERS if c != ["tables"]],
                         ids=lambda c: c[0])
def test_a_database_without_tables_or_rows_is_one_sentence(tmp_path, command):
    bare = tmp_path / "bare.duckdb"
    duckdb.connect(str(bare)).close()  # a DuckDB file, but no table in it
    line = one_sentence(sentiment(*command, "--db", str(bare)))
    assert line == (f"the database {bare} has no sentiment_history table yet: run `make demo` "
                    "first, or point --db (or SENTIMENT_DB) at a database")
    empty = tmp_path / "empty.duckdb"
    Store(empty).init()
    line = one_sentence(sentiment(*command, "--db", str(empty)))
    assert "holds no sentiment rows yet" in line and "make demo" in line


@pytest.mark.parametrize("command", READERS, ids=lambda c: c[0])
def test_a_file_that_is_no_database_is_one_sentence(tmp_path, command):
    text = tmp_path / "notes.duckdb"
    text.write_text("not a database\n")
    line = one_sentence(sentiment(*command, "--db", str(text)))
    assert line.startswith(f"error: cannot open the database {text}: ")
    assert "not a valid DuckDB database file" in line


@pytest.mark.parametrize("command", [c for c in READERS if c != ["tables"]],
                         ids=lambda c: c[0])
def test_an_unknown_interval_or_symbol_lists_the_valid_ones(replay_db, command):
    line = one_sentence(sentiment(*command, "--db", replay_db, "--interval", "2h"))
    assert line == ("error: --interval 2h: 120 (2h) is not configured in sentiment.yaml; "
                    "configured: 60 (1h), 240 (4h)")
    line = one_sentence(sentiment(*command, "--db", replay_db, "--interval", "hourly"))
    assert line.startswith("error: --interval 'hourly' is not a kline interval; use one of: "
                           "60 (1h), 240 (4h)")
    line = one_sentence(sentiment(*command, "--db", replay_db, "--symbol", "XRPUSDT"))
    assert line == ("error: --symbol XRPUSDT is not configured in sentiment.yaml; "
                    "configured: BTCUSDT, ETHUSDT")
    assert "make demo" not in line


def test_interval_names_and_lower_case_symbols_are_accepted(replay_db):
    by_code = sentiment("history", "--db", replay_db, "--symbol", "BTCUSDT", "--interval", "60",
                        "--csv")
    by_name = sentiment("history", "--db", replay_db, "--symbol", "btcusdt", "--interval", "1h",
                        "--csv")
    assert by_code.returncode == by_name.returncode == 0, by_name.stderr
    assert by_code.stdout == by_name.stdout
    rows = pd.read_csv(io.StringIO(by_code.stdout))
    assert list(rows.columns) == list(HISTORY_COLUMNS) and len(rows) == 24
    assert rows["timestamp"].iloc[-1] == f"{LAST}T00:00:00"


def test_a_configured_interval_without_rows_says_what_the_database_holds(replay_db):
    line = one_sentence(sentiment("status", "--db", replay_db, "--interval", "4h"))
    assert line.startswith("no sentiment rows for BTCUSDT at interval 240 (4h) in ")
    assert line.endswith("it holds: BTCUSDT 60 (1h, up to 2022-03-15 00:00), "
                         "ETHUSDT 60 (1h, up to 2022-03-15 00:00)")


def test_status_marks_what_the_replay_exchange_made_up(replay_db):
    out = sentiment("status", "--db", replay_db, "--symbol", "BTCUSDT")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "OI: " in lines[4] and "%/4h (synthetic)" in lines[4]
    assert "L/S: 0." in lines[4] and lines[4].count("(synthetic)") == 2
    assert "FnG: " in lines[4] and "Funding: +0." in lines[4]  # recorded: not marked
    assert lines[5].startswith("  Exchange: ") and "(synthetic inputs)" in lines[5]
    assert lines[-1].startswith("  synthetic = generated by the replay exchange")
    # --json keeps stdout the table's columns; the mark goes to stderr.
    out = sentiment("status", "--db", replay_db, "--symbol", "BTCUSDT", "--json")
    assert out.returncode == 0
    assert list(json.loads(out.stdout)) == list(HISTORY_COLUMNS)
    assert out.stderr.startswith("note: BTCUSDT: open_interest, open_interest_delta_pct, "
                                 "long_short_ratio: SYNTHETIC, generated by the replay")


def test_real_bybit_data_is_never_marked(tmp_path):
    """Three recorded Bybit hours (tests/fixtures/bybit): their turnover is the quote volume
    traded, not volume x close, so the row after them is not marked, whatever its inputs."""
    raw = json.loads((ROOT / "tests/fixtures/bybit/kline_linear_BTCUSDT_1h_ccxt.json")
                     .read_text())["result"]["list"]
    candles = pd.DataFrame(
        [[int(r[0]), *map(float, r[1:7])] for r in raw],
        columns=["open_time", "open", "high", "low", "close", "volume", "turnover"])
    candles["open_time"] = pd.to_datetime(candles["open_time"], unit="ms")
    candles.insert(0, "symbol", "BTCUSDT")
    candles.insert(1, "interval", "60")
    close = candles["open_time"].max() + pd.Timedelta(hours=1)
    row = {c: None for c in HISTORY_COLUMNS} | {
        "symbol": "BTCUSDT", "interval": "60", "timestamp": close, "close": 43352.8,
        "regime": "ranging", "regime_duration_bars": 5, "regime_confidence": 0.6,
        "sentiment_score": 0.1, "confidence": 0.9, "exchange_sentiment": 0.2,
        "open_interest": 5e4, "open_interest_delta_pct": 1.2, "long_short_ratio": 0.55,
        "order_book_imbalance": 0.1, "liquidation_intensity": 1.5}
    db = tmp_path / "bybit.duckdb"
    store = Store(db)
    store.upsert("candles", candles)
    store.upsert("sentiment_history", pd.DataFrame([row]))
    out = sentiment("status", "--db", str(db), "--symbol", "BTCUSDT")
    assert out.returncode == 0, out.stderr
    assert "synthetic" not in out.stdout and "derived" not in out.stdout
    assert "L/S: 0.55  " in out.stdout
    assert "  Order book: +0.10  Liquidations: 1.5x" in out.stdout
    # The same row over replay-served hours (turnover = volume x close) is marked, the
    # stream's series as derived.
    replayed = candles.assign(turnover=(candles["volume"] * candles["close"]).round(4))
    store.upsert("candles", replayed)
    out = sentiment("status", "--db", str(db), "--symbol", "BTCUSDT")
    assert "  Order book: +0.10 (derived)  Liquidations: 1.5x (derived)" in out.stdout
    assert out.stdout.rstrip().endswith("derived = the replay exchange's order book and "
                                        "liquidations, made from the candles")
