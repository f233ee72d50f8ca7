"""The store: idempotent upserts, exact partition replaces, all-or-nothing writes, no lock
left behind."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pandas as pd
import pytest

from sentiment.io.store import TABLES, ShrinkError, Slice, Store, StoreError, named_queries


def candles(symbol: str, start: str, hours: int, interval: str = "60", base: float = 100.0):
    times = pd.date_range(start, periods=hours, freq="h")
    price = base + pd.Series(range(hours), dtype="float64")
    return pd.DataFrame(
        {
            "symbol": symbol,
            "interval": interval,
            "open_time": times,
            "open": price,
            "high": price + 1,
            "low": price - 1,
            "close": price + 0.5,
            "volume": 10.0,
            "turnover": 10.0 * (price + 0.5),
        }
    )


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "db" / "test.duckdb", lock_timeout=5)
    s.init()
    return s


def test_schema_has_every_design_table_and_is_idempotent(store):
    store.init()
    store.init()
    names = set(store.query("SELECT table_name FROM information_schema.tables")["table_name"])
    assert set(TABLES) <= names
    for required in ("candles", "funding_rates", "open_interest", "long_short_ratio",
                     "fear_greed", "liquidations", "orderbook_imbalance", "sentiment_history",
                     "regime_transitions", "hmm_models", "tracker_state"):
        assert required in names
    cols = set(store.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
        ["sentiment_history"],
    )["column_name"])
    assert set(TABLES["sentiment_history"].all_columns) == cols


def test_upsert_twice_leaves_the_same_rows(store):
    frame = candles("BTCUSDT", "2022-01-01", 48)
    assert store.upsert("candles", frame) == 48
    assert store.upsert("candles", frame) == 48
    stored = store.read("candles")
    assert len(stored) == 48
    changed = frame.assign(close=frame["close"] * 2).iloc[:5]
    store.upsert("candles", changed)
    stored = store.read("candles")
    assert len(stored) == 48
    assert stored["close"].iloc[:5].tolist() == changed["close"].tolist()
    assert stored["close"].iloc[5:].tolist() == frame["close"].iloc[5:].tolist()


def test_read_selects_columns_within_the_time_range(store):
    store.write(upsert={"candles": candles("BTCUSDT", "2022-01-01", 6)})
    part = store.read("candles", start="2022-01-01 02:00", end="2022-01-01 04:00",
                      columns=["open_time", "close"])
    assert list(part.columns) == ["open_time", "close"]
    assert list(part["open_time"]) == list(pd.date_range("2022-01-01 02:00", periods=2,
                                                         freq="h"))
    with pytest.raises(StoreError, match="candles: unknown column 'nope'"):
        store.read("candles", columns=["close", "nope"])


def test_upsert_refuses_duplicate_keys_in_one_frame(store):
    frame = candles("BTCUSDT", "2022-01-01", 3)
    with pytest.raises(StoreError, match="duplicate primary keys"):
        store.upsert("candles", pd.concat([frame, frame.iloc[:1]]))
    assert store.read("candles").empty


def test_replace_range_touches_exactly_its_slice(store):
    store.upsert("candles", candles("BTCUSDT", "2022-01-01", 72))
    store.upsert("candles", candles("ETHUSDT", "2022-01-01", 72))
    day2 = candles("BTCUSDT", "2022-01-02", 24, base=500.0).iloc[:20]  # fewer rows than before
    written = store.replace_range(
        "candles", day2, start="2022-01-02", end="2022-01-03",
        where={"symbol": "BTCUSDT", "interval": ["60"]}, allow_shrink=True,
    )
    assert written == 20
    btc = store.read("candles", where={"symbol": "BTCUSDT"})
    eth = store.read("candles", where={"symbol": "ETHUSDT"})
    assert len(eth) == 72  # other symbol untouched
    assert len(btc) == 24 + 20 + 24  # day 2 replaced, neighbours untouched
    inside = btc[(btc.open_time >= "2022-01-02") & (btc.open_time < "2022-01-03")]
    assert inside["open"].min() == 500.0


DAY2 = {"start": "2022-01-02", "end": "2022-01-03", "where": {"symbol": "BTCUSDT"}}


@pytest.mark.parametrize(
    ("answer", "count", "missing"),
    [
        (candles("BTCUSDT", "2022-01-02", 0), 0, 24),  # an empty answer
        (candles("BTCUSDT", "2022-01-02", 12), 12, 12),  # a partial one
        # As many rows, but half an hour later: every stored key is missing.
        (candles("BTCUSDT", "2022-01-02 00:30", 23), 23, 24),
    ],
)
def test_a_replace_never_shrinks_market_data(store, answer, count, missing):
    store.upsert("candles", candles("BTCUSDT", "2022-01-01", 72))
    before = store.read("candles")
    with pytest.raises(ShrinkError) as info:
        store.replace_range("candles", answer, source="bybit", **DAY2)
    (shrink,) = info.value.shrinks
    assert (shrink.stored, shrink.incoming, shrink.missing) == (24, count, missing)
    message = str(info.value)
    for part in ("candles", "bybit", "symbol=BTCUSDT", "[2022-01-02 00:00:00, "
                 "2022-01-03 00:00:00)", "24 stored", f"{count} in the answer"):
        assert part in message, (part, message)
    pd.testing.assert_frame_equal(store.read("candles"), before)


def test_equal_or_more_rows_replace_and_allow_shrink_forces_fewer(store):
    store.upsert("candles", candles("BTCUSDT", "2022-01-02", 12))
    assert store.replace_range("candles", candles("BTCUSDT", "2022-01-02", 24), **DAY2) == 24
    again = candles("BTCUSDT", "2022-01-02", 24, base=7.0)  # same keys, new values
    assert store.replace_range("candles", again, **DAY2) == 24
    assert store.read("candles")["open"].iloc[0] == 7.0
    assert store.replace_range("candles", again.iloc[:3], allow_shrink=True, **DAY2) == 3
    assert len(store.read("candles")) == 3


def test_one_shrinking_slice_fails_the_whole_write(store):
    store.upsert("candles", candles("BTCUSDT", "2022-01-01", 48))
    before = store.read("candles")
    with pytest.raises(ShrinkError, match="2022-01-02"):
        store.replace_slices("candles", [
            Slice(candles("BTCUSDT", "2022-01-01", 24, base=900.0), "2022-01-01", "2022-01-02",
                  {"symbol": "BTCUSDT"}),
            Slice(candles("BTCUSDT", "2022-01-02", 0), "2022-01-02", "2022-01-03",
                  {"symbol": "BTCUSDT"}),
        ])
    pd.testing.assert_frame_equal(store.read("candles"), before)


def test_computed_tables_may_shrink(store):
    rows = pd.DataFrame({"symbol": "BTCUSDT", "interval": "60",
                         "timestamp": pd.date_range("2022-01-01", periods=3, freq="h"),
                         "from_regime": "ranging", "to_regime": "squeeze"})
    store.upsert("regime_transitions", rows)
    assert store.replace_range("regime_transitions", rows.iloc[:0], start="2022-01-01",
                               end="2022-01-02") == 0
    assert store.read("regime_transitions").empty


def test_a_memory_database_is_refused():
    for path in (":memory:", ":memory:named", ""):
        with pytest.raises(StoreError, match="memory"):
            Store(path)


def test_a_writer_refuses_a_deleted_database(store):
    store.upsert("candles", candles("BTCUSDT", "2022-01-01", 3))
    store.path.unlink()
    with pytest.raises(StoreError, match="deleted"):
        store.upsert("candles", candles("BTCUSDT", "2022-01-02", 3))
    assert not store.path.exists()  # not recreated holding only the new rows
    store.init()  # explicitly starting afresh is allowed
    assert store.upsert("candles", candles("BTCUSDT", "2022-01-02", 3)) == 3


def test_replace_refuses_rows_outside_the_slice_and_keeps_old_rows(store):
    store.upsert("candles", candles("BTCUSDT", "2022-01-01", 48))
    stray = candles("BTCUSDT", "2022-01-02", 25)  # the 25th hour is on day 3
    with pytest.raises(StoreError, match="outside"):
        store.replace_range("candles", stray, start="2022-01-02", end="2022-01-03",
                            where={"symbol": "BTCUSDT"})
    assert len(store.read("candles")) == 48


def test_a_failing_write_rolls_back_every_slice(store):
    store.upsert("candles", candles("BTCUSDT", "2022-01-01", 48))
    before = store.read("candles")
    good = candles("BTCUSDT", "2022-01-01", 24, base=900.0)
    bad = candles("BTCUSDT", "2022-01-02", 24)
    bad = pd.concat([bad, bad.iloc[:1]])  # duplicate key: the insert itself fails
    with pytest.raises(StoreError, match="(?i)duplicate"):
        store.replace_slices("candles", [
            Slice(good, "2022-01-01", "2022-01-02", {"symbol": "BTCUSDT"}),
            Slice(bad, "2022-01-02", "2022-01-03", {"symbol": "BTCUSDT"}),
        ])
    pd.testing.assert_frame_equal(store.read("candles"), before)


def _open_in_other_process(path) -> str:
    code = (
        "import duckdb, sys\n"
        "c = duckdb.connect(sys.argv[1]); c.execute('SELECT 1'); c.close(); print('opened')\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, timeout=60)
    return out.stdout.strip() or out.stderr.strip()


def test_no_lock_is_left_behind_after_an_error(store):
    with pytest.raises(RuntimeError, match="boom"), store.connect() as conn:
        conn.execute("SELECT 1")
        raise RuntimeError("boom")
    assert _open_in_other_process(store.path) == "opened"


def test_a_locked_file_is_retried_then_reported(tmp_path):
    path = tmp_path / "locked.duckdb"
    Store(path).init()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "sys.stdin.readline()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match="locked"):
            Store(path, lock_timeout=0.3).read("candles")
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert Store(path, lock_timeout=5).read("candles").empty


def test_read_only_connections_refuse_writes(store):
    with store.connect(read_only=True) as conn, pytest.raises(duckdb.Error):
        conn.execute("DELETE FROM candles")


def test_check_queries_find_gaps_duplicates_and_bad_values(store):
    queries = named_queries("checks.sql")
    frame = candles("BTCUSDT", "2022-01-01", 10)
    store.upsert("candles", frame.drop(index=[4]))
    gaps = store.query(queries["candles_gaps"])
    assert len(gaps) == 1
    assert gaps["minutes"].iloc[0] == 120
    assert store.query(queries["candles_out_of_range"]).empty
    store.upsert("candles", frame.iloc[[4]].assign(low=1e9))
    assert store.query(queries["candles_gaps"]).empty
    assert len(store.query(queries["candles_out_of_range"])) == 1
    store.upsert("candles", candles("BTCUSDT", "2022-01-01", 3, interval="D"))
    daily_gaps = store.query(queries["candles_gaps"])  # 1-hour spacing is a gap for "D"
    assert set(daily_gaps["interval"]) == {"D"}
