"""The store's invariants on both backends (DESIGN 5 and 9.5): a DuckDB file and a database on
a throwaway PostgreSQL server (``any_db`` runs each test on both)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pandas as pd
import pytest

from sentiment.io.store import ShrinkError, Slice, Store, StoreError
from sentiment.io.tables import TABLES

pytestmark = pytest.mark.integration

DAY = pd.Timestamp("2022-03-01")
NEXT_DAY = DAY + pd.Timedelta(days=1)


def candles(symbol: str, hours: int = 24, *, start=DAY, scale: float = 1.0) -> pd.DataFrame:
    t = pd.date_range(start, periods=hours, freq="h")
    price = scale * (40_000 + np.arange(hours) * 0.1 + 1 / 3)
    return pd.DataFrame({"symbol": symbol, "interval": "60", "open_time": t, "open": price,
                         "high": price + 5, "low": price - 5, "close": price + 0.1,
                         "volume": np.arange(hours) + 0.5, "turnover": price * 2})


def day_slice(frame: pd.DataFrame, symbol: str) -> Slice:
    return Slice(frame, DAY, NEXT_DAY, {"symbol": symbol, "interval": "60"})


def stored(store: Store, symbol: str | None = None) -> pd.DataFrame:
    return store.read("candles", where={"symbol": symbol} if symbol else None)


def test_backend_follows_the_setting(any_db):
    assert Store(any_db).dialect == ("postgresql" if any_db.startswith("postgresql")
                                     else "duckdb")


def test_rerunning_a_write_leaves_the_same_rows(any_db):
    store = Store(any_db)
    frame = candles("BTCUSDT")
    for _ in range(3):
        store.write(replace={"candles": [day_slice(frame, "BTCUSDT")]},
                    upsert={"fear_greed": pd.DataFrame({"ts": [DAY], "value": [40.0],
                                                         "classification": ["Fear"]})})
        rows = stored(store)
        pd.testing.assert_frame_equal(rows, frame, check_dtype=False)
        assert len(store.read("fear_greed")) == 1


def test_upsert_overwrites_by_key(any_db):
    store = Store(any_db)
    store.upsert("candles", candles("BTCUSDT", 4))
    changed = candles("BTCUSDT", 2, scale=2.0)
    assert store.upsert("candles", changed) == 2
    rows = stored(store)
    assert len(rows) == 4
    np.testing.assert_array_equal(rows["open"].to_numpy()[:2], changed["open"].to_numpy())
    np.testing.assert_array_equal(rows["open"].to_numpy()[2:],
                                  candles("BTCUSDT", 4)["open"].to_numpy()[2:])


def test_a_failure_inside_the_transaction_leaves_no_partial_slice(any_db, monkeypatch):
    store = Store(any_db)
    store.write(replace={"candles": [day_slice(candles("BTCUSDT"), "BTCUSDT")]})
    before = stored(store)

    def fail():  # runs after the DELETE and the INSERT, just before COMMIT
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(store, "check_file", fail)
    with pytest.raises(RuntimeError, match="killed mid-write"):
        store.write(replace={"candles": [day_slice(candles("BTCUSDT", 24, scale=3.0),
                                                   "BTCUSDT")]})
    monkeypatch.undo()
    pd.testing.assert_frame_equal(stored(store), before)


#: A writer in its own process that replaces BTCUSDT's day (or ETHUSDT's), prints "inside"
#: after the DELETE and the INSERT, and waits for a line on stdin before it commits.
WRITER = textwrap.dedent("""
    import json, sys
    import pandas as pd
    sys.path.insert(0, {tests!r})
    from test_store_backends import candles, day_slice
    from sentiment.io.store import Store

    db, symbol, scale = json.loads(sys.argv[1])
    store = Store(db, lock_timeout=30)

    inserted = []
    insert = Store._insert

    def insert_and_note(*args, **kwargs):
        inserted.append(True)
        return insert(*args, **kwargs)

    def pause():  # the check before COMMIT (also run when connecting: not then)
        if inserted:
            print("inside", flush=True)
            sys.stdin.readline()

    Store._insert = staticmethod(insert_and_note)
    store.check_file = pause
    store.write(replace={{"candles": [day_slice(candles(symbol, scale=scale), symbol)]}})
    print("committed", flush=True)
""").format(tests=os.path.dirname(__file__))


def _writer(db: str, symbol: str, scale: float) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", WRITER, json.dumps([db, symbol, scale])],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "inside"
    return child


def test_a_writer_killed_inside_its_commit_leaves_the_old_rows(any_db):
    store = Store(any_db)
    store.write(replace={"candles": [day_slice(candles("BTCUSDT"), "BTCUSDT")]})
    before = stored(store)
    child = _writer(any_db, "BTCUSDT", 5.0)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    pd.testing.assert_frame_equal(stored(store), before)


def test_a_shrinking_replace_fails_and_keeps_the_data(any_db):
    store = Store(any_db)
    store.write(replace={"candles": [day_slice(candles("BTCUSDT"), "BTCUSDT")]})
    before = stored(store)
    with pytest.raises(ShrinkError, match="candles: refusing to replace 24 stored row"):
        store.write(replace={"candles": [day_slice(candles("BTCUSDT", 20), "BTCUSDT")]},
                    source="bybit")
    with pytest.raises(ShrinkError, match="24 stored key"):
        store.write(replace={"candles": [day_slice(candles("BTCUSDT", 0), "BTCUSDT")]})
    pd.testing.assert_frame_equal(stored(store), before)
    # On purpose, it goes through.
    store.write(replace={"candles": [day_slice(candles("BTCUSDT", 20), "BTCUSDT")]},
                allow_shrink=True)
    assert len(stored(store)) == 20


@pytest.mark.parametrize("bad, message", [
    (lambda f: pd.concat([f, f.head(1)]), "candles"),  # a duplicate key
    (lambda f: f.assign(close=[None] + [1.0] * (len(f) - 1)), "close"),  # NULL, required
    (lambda f: f.assign(colour="red"), "candles: unknown column"),
    (lambda f: f.drop(columns="open_time"), "candles: frame lacks key column"),
    (lambda f: f.assign(open_time=f["open_time"] + pd.Timedelta(days=1)), "outside"),
])
def test_bad_input_is_refused_and_changes_nothing(any_db, bad, message):
    store = Store(any_db)
    store.write(replace={"candles": [day_slice(candles("BTCUSDT"), "BTCUSDT")]})
    before = stored(store)
    with pytest.raises(StoreError, match=message):
        store.write(
            replace={"candles": [day_slice(bad(candles("BTCUSDT", scale=2.0)), "BTCUSDT")]},
            upsert={"fear_greed": pd.DataFrame({"ts": [DAY], "value": [1.0],
                                                 "classification": ["Extreme Fear"]})})
    pd.testing.assert_frame_equal(stored(store), before)
    assert store.read("fear_greed").empty


def test_a_reader_reads_while_a_writer_of_another_symbol_writes(any_db):
    store = Store(any_db)
    store.write(replace={"candles": [day_slice(candles("BTCUSDT"), "BTCUSDT")]})
    btc = stored(store, "BTCUSDT")
    child = _writer(any_db, "ETHUSDT", 0.05)  # inside its transaction until told to commit
    try:
        if store.dialect == "postgresql":
            # MVCC: neither a reader nor a writer of another symbol waits for it.
            pd.testing.assert_frame_equal(Store(any_db).read("candles", read_only=True), btc)
            Store(any_db).upsert("candles", candles("SOLUSDT", 3))
            assert child.poll() is None  # the ETH writer is still inside its transaction
        else:
            # One writing process per DuckDB file: the reader waits (with backoff) for the
            # writer's commit instead of failing.
            result: dict[str, pd.DataFrame] = {}
            reader = threading.Thread(target=lambda: result.setdefault(
                "rows", Store(any_db, lock_timeout=30).read("candles", read_only=True)))
            reader.start()
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "committed"
        assert child.wait(timeout=30) == 0
        if store.dialect != "postgresql":
            reader.join(timeout=60)
            assert set(result["rows"]["symbol"]) >= {"BTCUSDT"}
    finally:
        if child.poll() is None:
            child.kill()
    pd.testing.assert_frame_equal(stored(store, "BTCUSDT"), btc)
    assert len(stored(store, "ETHUSDT")) == 24


def _history_frame() -> pd.DataFrame:
    """sentiment_history rows with every column type and NULLs in each."""
    spec = TABLES["sentiment_history"]
    n = 6
    frame = pd.DataFrame({"symbol": "BTCUSDT", "interval": "60",
                          "timestamp": pd.date_range(DAY, periods=n, freq="h")})
    rng = np.random.default_rng(0)
    for column, kind in spec.types().items():
        if column in frame:
            continue
        if kind == "double":
            values = rng.normal(size=n) / 3
            values[0] = np.nan
            frame[column] = values
        elif kind == "integer":
            frame[column] = pd.array([None, 1, 2, 3, 4, 5], dtype="Int32")
        else:
            frame[column] = [None, "trending_up", "ranging", "squeeze", "breakout", "ré'gime"]
    return frame


def test_both_backends_return_the_same_frames(tmp_path, pg_url):
    duck, pg = Store(str(tmp_path / "a.duckdb")), Store(pg_url)
    history = _history_frame()
    for store in (duck, pg):
        store.write(replace={"candles": [day_slice(candles("BTCUSDT"), "BTCUSDT")]},
                    upsert={"sentiment_history": history})
    for table in ("candles", "sentiment_history"):
        pd.testing.assert_frame_equal(pg.read(table), duck.read(table))
    # Whole rows, a subset of columns, a range, and the sentiment_history NULL pattern.
    pd.testing.assert_frame_equal(
        pg.read("candles", start=DAY + pd.Timedelta(hours=3), columns=["open_time", "close"]),
        duck.read("candles", start=DAY + pd.Timedelta(hours=3), columns=["open_time", "close"]))
    only_nulls = "SELECT regime, regime_duration_bars FROM sentiment_history WHERE regime IS NULL"
    pd.testing.assert_frame_equal(pg.query(only_nulls), duck.query(only_nulls))
    counts = "SELECT count(*) AS n, max(open_time) AS newest FROM candles WHERE symbol = ?"
    pd.testing.assert_frame_equal(pg.query(counts, ["BTCUSDT"]),
                                  duck.query(counts, ["BTCUSDT"]))
    pd.testing.assert_frame_equal(pg.summary(), duck.summary())
    for view in ("latest_sentiment", "regime_periods"):
        sql = f"SELECT * FROM {view} ORDER BY 1, 2, 3"
        pd.testing.assert_frame_equal(pg.query(sql), duck.query(sql))


def test_a_postgresql_url_stages_the_stream_under_data():
    from sentiment.settings import get_settings

    settings = get_settings({"SENTIMENT_DB": "postgresql://u@127.0.0.1:5432/sentiment"})
    assert settings.db_path.startswith("postgresql://")
    assert settings.stream_dir == "data/stream"
    assert get_settings({"SENTIMENT_DB": "x/y.duckdb"}).stream_dir == "x/stream"
