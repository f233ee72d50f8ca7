"""Hostile WebSocket pushes (issue items 1 and 9): impossible values and times are checked
where a push becomes a row, counted, logged once naming source, symbol and field, and
dropped; the good rows of the same message and of the same flush are kept. The staging
loader is the second line, and the reading side skips a bad row a database already holds,
the same way in a backfill and in the live job.

The real client against the replay WebSocket on 127.0.0.1, the real recorder, real Parquet
staging, a real DuckDB file and the real Dagster jobs. Tests synchronise on what the client
received and what the server saw, never on sleeps."""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance

from sentiment.config import load_config
from sentiment.io.sources.bybit_ws import BybitStream
from sentiment.io.staging import Staging, StagingError, load_staged
from sentiment.io.store import Store
from sentiment.services.stream import StreamRecorder, StreamService, topics

from helpers import BOOK, definitions, delta, live_config, ms, run_job, snap, until

pytestmark = pytest.mark.integration

T0 = 1_773_386_409_389  # 2026-03-13, the recorded snapshot's time
DAY = 86_400_000
YEARS_10 = 3_652 * DAY
LIQ = "allLiquidation.BTCUSDT"
TICK = "tickers.BTCUSDT"


# --------------------------------------------------------------------------- helpers


def liq_item(ts: int, side: str = "Buy", size: str = "0.5", price: str = "70000") -> dict:
    return {"T": ts, "s": "BTCUSDT", "S": side, "v": size, "p": price}


def liq_message(items: list[dict], ts: int) -> dict:
    return {"topic": LIQ, "type": "snapshot", "ts": ts, "data": items}


def ticker(ts: int, kind: str = "snapshot", **fields) -> dict:
    data = {"symbol": "BTCUSDT", "lastPrice": "70000.5", "markPrice": "70001.0",
            "indexPrice": "70002.0", "prevPrice24h": "69000", "price24hPcnt": "0.0145",
            "highPrice24h": "71000", "lowPrice24h": "68000", "prevPrice1h": "69900",
            "openInterest": "50000.5", "openInterestValue": "3500000000",
            "turnover24h": "4936790807.65", "volume24h": "73191.387",
            "fundingRate": "0.0001", "nextFundingTime": str(T0 // 28_800_000 * 28_800_000
                                                           + 28_800_000),
            "bid1Price": "70000.0", "bid1Size": "1.5", "ask1Price": "70000.5",
            "ask1Size": "2.5"} if kind == "snapshot" else {"symbol": "BTCUSDT"}
    data.update(fields)
    return {"topic": TICK, "type": kind, "ts": ts, "cs": 1, "data": data}


class Running:
    """A :class:`BybitStream` with its recorder, running in a thread."""

    def __init__(self, url: str, symbols=("BTCUSDT",), **options):
        self.recorder = StreamRecorder(symbols, sample_ms=1, **options)
        self.client = BybitStream(url, topics(symbols), self.recorder.on_message,
                                  tick_seconds=0.05)
        self.thread = threading.Thread(target=self.client.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.client.stop()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


class Service:
    """``sentiment stream`` (the real :class:`StreamService`) in a thread; an exception that
    ends it is kept for the test to see."""

    def __init__(self, url: str, directory, config=None, flush_seconds: float = 0.05):
        self.service = StreamService(config or load_config(), url, directory)
        self.service.client.tick_seconds = flush_seconds
        self.service.client.ping_seconds = 0.1  # the read loop sees a stop this often
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.service.run(install_signals=False)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            self.error = exc

    @property
    def counters(self):
        return self.service.recorder.counters

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.service.client.stop()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


def stream_errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "sentiment.services.stream" and r.levelno >= logging.ERROR]


def ms_of(column: pd.Series) -> list[int]:
    return pd.to_datetime(column).astype("datetime64[ms]").astype("int64").tolist()


# --------------------------------------------------------------------------- liquidations

HOSTILE_LIQUIDATIONS = {
    # case: (what the hostile item changes, the field its log line names)
    "size inf": ({"v": "inf"}, "v"),
    "price x size overflows": ({"v": "1e200", "p": "1e200"}, "v"),
    "price above the cap": ({"p": "1e13"}, "p"),
    "size above the cap": ({"v": "1e16"}, "v"),
    "time in 2100": ({"T": 4_102_444_800_000}, "T"),
    "time a month back": ({"T": T0 - 30 * DAY}, "T"),
    "time not representable": ({"T": 10**17}, "T"),
}


@pytest.mark.parametrize("case", list(HOSTILE_LIQUIDATIONS))
def test_a_hostile_liquidation_is_dropped_and_the_rest_of_its_push_is_kept(
        ws, tmp_path, caplog, case):
    change, field = HOSTILE_LIQUIDATIONS[case]
    caplog.set_level(logging.INFO)
    staging = Staging(tmp_path / "stream")
    with Service(ws.url, staging.directory) as run:
        until(lambda: ws.subscriptions(LIQ) == 1)
        hostile = liq_item(T0 + 1, "Sell", "0.7") | change
        ws.push(LIQ, liq_message([liq_item(T0, "Buy", "0.5"), hostile,
                                  liq_item(T0 + 2, "Sell", "0.25")], T0 + 200))
        until(lambda: run.counters.messages == 1)
    assert run.error is None
    assert run.counters.liquidations == 2 and run.counters.bad_messages == 1
    errors = stream_errors(caplog)
    assert len(errors) == 1, errors  # logged once, naming source, symbol and field
    assert "liquidations" in errors[0] and "BTCUSDT" in errors[0]
    assert f"field {field}" in errors[0]
    store = Store(str(tmp_path / "s.duckdb"))
    store.init()
    result = load_staged(store, staging)  # no StagingError: nothing bad reached staging
    assert result.rows["liquidations"] == 2 and not staging.rejected.exists()
    stored = store.read("liquidations").sort_values("ts")
    assert list(zip(ms_of(stored["ts"]), stored["side"], stored["size"], strict=True)) == [
        (T0, "Buy", 0.5), (T0 + 2, "Sell", 0.25)]
    through = store.read("stream_state")["through"].iloc[0]
    assert through == pd.Timestamp(T0 + 200, unit="ms")


def test_a_liquidation_push_stamped_years_ahead_is_dropped_whole(ws, tmp_path):
    staging = Staging(tmp_path / "stream")
    with Service(ws.url, staging.directory) as run:
        until(lambda: ws.subscriptions(LIQ) == 1)
        ws.push(LIQ, liq_message([liq_item(T0)], T0 + 200))
        # Its items' own times agree with it, but the push is stamped 10 years ahead of
        # the exchange clock that the first push set.
        ws.push(LIQ, liq_message([liq_item(T0 + YEARS_10, "Sell")], T0 + YEARS_10 + 200))
        ws.push(LIQ, liq_message([liq_item(T0 + 1000, "Sell", "0.1")], T0 + 1200))
        until(lambda: run.counters.messages == 3)
    assert run.counters.liquidations == 2 and run.counters.bad_messages == 1
    store = Store(str(tmp_path / "s.duckdb"))
    store.init()
    load_staged(store, staging)
    assert ms_of(store.read("liquidations").sort_values("ts")["ts"]) == [T0, T0 + 1000]
    # stream_state.through is not pinned in 2036.
    assert store.read("stream_state")["through"].iloc[0] == pd.Timestamp(T0 + 1200,
                                                                          unit="ms")


@pytest.mark.parametrize("stamp", [4_102_444_800_000, 10**17, 1_000])
def test_a_first_push_stamped_off_any_clock_does_not_set_it(ws, tmp_path, stamp):
    """The very first push has no exchange clock to be checked against: a time in 2100,
    one no timestamp can hold, or one in 1970 is still refused, and the honest pushes
    after it are kept."""
    staging = Staging(tmp_path / "stream")
    with Service(ws.url, staging.directory) as run:
        until(lambda: ws.subscriptions(LIQ) == 1)
        ws.push(LIQ, liq_message([liq_item(stamp - 200)], stamp))
        ws.push(LIQ, liq_message([liq_item(T0, "Sell")], T0 + 200))
        ws.push(LIQ, liq_message([liq_item(T0 + 1000, "Sell", "0.1")], T0 + 1200))
        until(lambda: run.counters.messages == 3)
    assert run.error is None and run.counters.bad_messages == 1
    store = Store(str(tmp_path / "s.duckdb"))
    store.init()
    load_staged(store, staging)
    assert ms_of(store.read("liquidations").sort_values("ts")["ts"]) == [T0, T0 + 1000]
    assert store.read("stream_state")["through"].iloc[0] == pd.Timestamp(T0 + 1200,
                                                                          unit="ms")


# --------------------------------------------------------------------------- books

GOOD_BIDS, GOOD_ASKS = [["100", "1"], ["99", "2"]], [["101", "1"], ["102", "3"]]
AGAIN = snap(50, [["100", "4"]], [["101", "1"]], T0 + 1000)  # the snapshot of the resync

HOSTILE_BOOKS = {
    # case: (the first subscription's burst, whether its snapshot was good)
    "crossed snapshot": ([snap(1, [["101.5", "1"]], GOOD_ASKS, T0)], False),
    "crossed by a delta": ([snap(1, GOOD_BIDS, GOOD_ASKS, T0),
                            delta(2, T0 + 1, bids=[["101", "5"]])], True),
    "negative size in a delta": ([snap(1, GOOD_BIDS, GOOD_ASKS, T0),
                                  delta(2, T0 + 1, bids=[["100", "-3"]])], True),
    "negative size in a snapshot": ([snap(1, [["100", "-1"], ["99", "2"]], GOOD_ASKS, T0)],
                                    False),
    "size not finite": ([snap(1, GOOD_BIDS, GOOD_ASKS, T0),
                         delta(2, T0 + 1, asks=[["101", "inf"]])], True),
    "price not positive": ([snap(1, GOOD_BIDS, GOOD_ASKS, T0),
                            delta(2, T0 + 1, bids=[["-5", "1"]])], True),
    "price above the cap": ([snap(1, GOOD_BIDS, GOOD_ASKS, T0),
                             delta(2, T0 + 1, asks=[["1e13", "1"]])], True),
    "stamped 10 years ahead": ([snap(1, GOOD_BIDS, GOOD_ASKS, T0),
                                delta(2, T0 + YEARS_10, bids=[["100", "2"]])], True),
}


@pytest.mark.parametrize("case", list(HOSTILE_BOOKS))
def test_a_hostile_book_push_is_dropped_and_the_book_taken_again(ws, caplog, case):
    burst, good_snapshot = HOSTILE_BOOKS[case]
    caplog.set_level(logging.INFO)
    ws.script(BOOK, burst, [AGAIN, delta(51, T0 + 2000, bids=[["100", "5"]])])
    with Running(ws.url) as run:
        book = run.recorder.symbols["BTCUSDT"].book
        until(lambda: book.update_id == 51, timeout=5)
    counters = run.recorder.counters
    assert counters.bad_messages == 1 and counters.resyncs == 1
    errors = stream_errors(caplog)
    assert len(errors) == 1 and "orderbook" in errors[0] and "BTCUSDT" in errors[0], errors
    assert book.bids == {100.0: 5.0} and book.asks == {101.0: 1.0}
    rows = run.recorder.drain()
    # OBI samples only from sane books: none from the bad push, sampling goes on after it.
    samples = [s["ts"] for s in rows["orderbook_imbalance"]]
    assert samples == ([T0] if good_snapshot else []) + [T0 + 1000, T0 + 2000]
    assert all(-1.0 <= s["obi"] <= 1.0 for s in rows["orderbook_imbalance"])
    assert rows["stream_state"] == [{"symbol": "BTCUSDT", "through": T0 + 2000}]


# --------------------------------------------------------------------------- tickers

HOSTILE_TICKERS = {
    # case: (Bybit field, hostile value, column)
    "last price inf": ("lastPrice", "inf", "last_price"),
    "mark price negative": ("markPrice", "-1", "mark_price"),
    "index price above the cap": ("indexPrice", "1e300", "index_price"),
    "open interest negative": ("openInterest", "-5", "open_interest"),
    "volume nan": ("volume24h", "nan", "volume_24h"),
    "funding rate 300 %": ("fundingRate", "3", "funding_rate"),
    "24 h change below -100 %": ("price24hPcnt", "-2", "price_24h_pcnt"),
    "next funding time not representable": ("nextFundingTime", "99999999999999999",
                                            "next_funding_time"),
    "next funding time in 2100": ("nextFundingTime", "4102444800000", "next_funding_time"),
}


@pytest.mark.parametrize("case", list(HOSTILE_TICKERS))
def test_an_absurd_ticker_value_is_dropped_and_its_other_fields_kept(ws, caplog, case):
    name, value, column = HOSTILE_TICKERS[case]
    caplog.set_level(logging.INFO)
    ws.script(TICK, [ticker(T0, **{name: value})])
    with Running(ws.url) as run:
        until(lambda: run.recorder.counters.messages == 1)
    assert run.recorder.counters.bad_messages == 1
    errors = stream_errors(caplog)
    assert len(errors) == 1 and f"field {name}" in errors[0] and "BTCUSDT" in errors[0]
    [row] = run.recorder.drain()["tickers"]
    assert row[column] is None or math.isnan(row[column])
    assert row["last_price" if column != "last_price" else "mark_price"] > 0
    assert row["ask1_size"] == 2.5 and row["ts"] == T0


def test_a_ticker_stamped_10_years_ahead_does_not_stop_the_ticker_rows(ws):
    ws.script(TICK, [ticker(T0)])
    with Running(ws.url) as run:
        until(lambda: run.recorder.counters.ticker_rows == 1)
        ws.push(TICK, ticker(T0 + YEARS_10, "delta", lastPrice="1"))
        ws.push(TICK, ticker(T0 + 20_000, "delta", lastPrice="70100"))
        until(lambda: run.recorder.counters.messages == 3)
    rows = run.recorder.drain()
    assert [(r["ts"], r["last_price"]) for r in rows["tickers"]] == [
        (T0, 70000.5), (T0 + 20_000, 70100.0)]
    assert rows["stream_state"] == [{"symbol": "BTCUSDT", "through": T0 + 20_000}]
    assert run.recorder.counters.bad_messages == 1


def test_an_unrepresentable_ticker_time_loses_nothing_of_the_flush(ws, tmp_path):
    """One flush (only the last one, on the way out) holds a liquidation and a ticker whose
    nextFundingTime no timestamp can hold: both rows are staged and load."""
    staging = Staging(tmp_path / "stream")
    with Service(ws.url, staging.directory, flush_seconds=600) as run:
        until(lambda: ws.subscriptions(LIQ) == 1 and ws.subscriptions(TICK) == 1)
        ws.push(LIQ, liq_message([liq_item(T0)], T0 + 200))
        ws.push(TICK, ticker(T0 + 300, nextFundingTime="99999999999999999"))
        until(lambda: run.counters.messages == 2)
    assert run.error is None and run.service.failed_flushes == 0
    store = Store(str(tmp_path / "s.duckdb"))
    store.init()
    result = load_staged(store, staging)
    assert result.rows["liquidations"] == 1 and result.rows["tickers"] == 1
    row = store.read("tickers").iloc[0]
    assert pd.isna(row["next_funding_time"]) and row["last_price"] == 70000.5


# --------------------------------------------------------------------------- the loader


def test_the_loader_rejects_bad_staged_rows_and_loads_the_good_ones(tmp_path, caplog):
    """A file staged by an older stream (or by hand) with non-finite or overflowing values:
    its bad rows go to rejected/ under the file's name, the error names the file, symbol
    and field, and its good rows load."""
    staging = Staging(tmp_path / "stream")
    good = {"symbol": "BTCUSDT", "side": "Buy", "price": 70000.0, "size": 0.5}
    staging.write({
        "liquidations": [good | {"ts": T0, "seq": 1},
                         good | {"ts": T0 + 1, "size": math.inf, "seq": 2},
                         good | {"ts": T0 + 2, "price": 1e200, "size": 1e200, "seq": 3},
                         good | {"ts": T0 + 3, "side": "Sell", "seq": 4}],
        "tickers": [{"symbol": "ETHUSDT", "ts": T0, "last_price": 2000.0},
                    {"symbol": "ETHUSDT", "ts": T0 + 10_000, "last_price": math.inf}],
    })
    names = {p.name.split(".")[0]: p.name for p in staging.pending()}
    store = Store(str(tmp_path / "s.duckdb"))
    store.init()
    with pytest.raises(StagingError) as err:
        load_staged(store, staging)
    message = str(err.value)
    assert names["liquidations"] in message and names["tickers"] in message
    assert "BTCUSDT" in message and "ETHUSDT" in message
    assert "2 of 4 row(s)" in message and "size" in message and "last_price" in message
    stored = store.read("liquidations").sort_values("ts")
    assert ms_of(stored["ts"]) == [T0, T0 + 3] and np.isfinite(stored["size"]).all()
    assert ms_of(store.read("tickers")["ts"]) == [T0]
    assert not staging.pending()
    rejected = {p.name: pd.read_parquet(p) for p in staging.rejected.iterdir()}
    assert set(rejected) == set(names.values())
    assert rejected[names["liquidations"]]["seq"].tolist() == [2, 3]
    assert rejected[names["tickers"]]["last_price"].tolist() == [math.inf]


# --------------------------------------------------------------------------- the pipeline

START = dt.date(2022, 3, 1)
LIVE_FROM = dt.datetime(2022, 3, 8, 6)
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def _config():
    return live_config(START)


def _defs(replay, db_path: str, staging: str):
    return definitions(replay, db_path, _config(), stream_dir=staging)


def _backfill(defs, day: dt.datetime):
    run_job(defs, "sentiment_job", tags={
        "dagster/asset_partition_range_start": f"{START}|BTCUSDT",
        "dagster/asset_partition_range_end": f"{day:%Y-%m-%d}|ETHUSDT"})


def _history(store: Store) -> pd.DataFrame:
    return store.query("SELECT * FROM sentiment_history WHERE interval = '60' AND "
                       "timestamp > ? ORDER BY symbol, timestamp", [LIVE_FROM])


@pytest.mark.slow
def test_after_a_hostile_liquidation_on_the_wire_the_pipeline_runs_on(clean_replay, ws,
                                                                      tmp_path):
    """The stream receives a liquidation of size inf among good ones; stream_load_job, the
    next live run and a sentiment backfill all succeed, with the good liquidations."""
    db, staging = str(tmp_path / "live.duckdb"), Staging(tmp_path / "stream")
    defs = _defs(clean_replay, db, str(staging.directory))
    instance = DagsterInstance.ephemeral()
    clean_replay.set_clock(LIVE_FROM)
    run_job(defs, "live_update_job", instance)  # bootstrap, before the stream starts
    close = LIVE_FROM + dt.timedelta(hours=1)
    with Service(ws.url, staging.directory, config=_config()) as run:
        until(lambda: ws.subscriptions(LIQ) == 1)
        sent = 0
        for minute in range(0, 60, 10):
            at = ms(LIVE_FROM + dt.timedelta(minutes=minute))
            items = [liq_item(at, "Sell", "0.2", "40000")]
            if minute == 30:
                items.append(liq_item(at + 1, "Buy", "inf", "40000"))
            ws.push(LIQ, liq_message(items, at + 300))
            sent += 1
        # The stream passes the bar's close (its `through`), so the bar can be final.
        ws.push(LIQ, liq_message([liq_item(ms(close) + 20_000, "Buy", "0.1", "40000")],
                                 ms(close) + 30_000))
        until(lambda: run.counters.messages == sent + 1)
    assert run.error is None and run.counters.bad_messages == 1
    run_job(defs, "stream_load_job", instance)
    assert len(Store(db).read("liquidations")) == 7
    clean_replay.set_clock(close + dt.timedelta(seconds=45))
    run_job(defs, "live_update_job", instance)
    clean_replay.set_clock(close + dt.timedelta(hours=1, seconds=45))
    run_job(defs, "live_update_job", instance)  # and the one after it
    rows = Store(db).read("sentiment_history", where={"symbol": "BTCUSDT", "interval": "60"})
    bar = rows[pd.to_datetime(rows["timestamp"]) == pd.Timestamp(close)]
    assert np.isfinite(bar["liquidation_intensity"]).all() and len(bar) == 1
    _backfill(defs, close)


def _stored_rows_with(bad: list[dict]) -> pd.DataFrame:
    """Good liquidations for three hours from LIVE_FROM, and the ``bad`` rows (changes of a
    good one) loaded by a version of the stream before the fix."""
    rows = []
    for minute in range(0, 180, 10):
        at = LIVE_FROM + dt.timedelta(minutes=minute, seconds=7)
        for symbol in SYMBOLS:
            rows.append({"symbol": symbol, "ts": pd.Timestamp(at), "side": "Sell",
                         "price": 40_000.0, "size": 0.1 + minute / 1000, "seq": minute})
    for i, change in enumerate(bad):
        at = LIVE_FROM + dt.timedelta(minutes=75, seconds=3 + i)
        rows.append({"symbol": "BTCUSDT", "ts": pd.Timestamp(at), "side": "Buy",
                     "price": 40_000.0, "size": 0.3, "seq": 900 + i} | change)
    return pd.DataFrame(rows)


STORED_BAD = {"size inf": [{"size": math.inf}],
              "price x size overflows": [{"price": 1e200, "size": 1e200}],
              # each product is finite (1.2e308), their sum is not
              "price x size sums to inf": [{"price": 1e154, "size": 1.2e154}] * 2}


@pytest.mark.parametrize("case", list(STORED_BAD))
def test_a_bad_liquidation_already_stored_is_skipped_by_backfill(clean_replay, tmp_path,
                                                                  seeded, case):
    db = str(tmp_path / "s.duckdb")
    defs = _defs(clean_replay, db, str(tmp_path / "unused"))
    clean_replay.set_clock(LIVE_FROM + dt.timedelta(hours=3, seconds=45))
    seeded(defs, db, ("live_update_job", {}))  # the bars, stored before the bad rows arrive
    Store(db).upsert("liquidations", _stored_rows_with(STORED_BAD[case]))
    _backfill(defs, LIVE_FROM + dt.timedelta(hours=3))
    rows = _history(Store(db))
    assert len(rows) == 3 * len(SYMBOLS)
    assert np.isfinite(rows["liquidation_intensity"].to_numpy(dtype=float)).all()


LIVE_CASES = [
    "size inf",
    "price x size overflows",
    "price x size sums to inf",
]


@pytest.mark.slow
@pytest.mark.parametrize("case", LIVE_CASES)
def test_a_bad_liquidation_already_stored_is_skipped_live_as_in_a_backfill(
        clean_replay, tmp_path, seeded, case):
    """A database holding a bad liquidation from before the fix: every later live run
    succeeds, and its rows equal a backfill's (both skip the row the same way)."""
    live_db, backfill_db = str(tmp_path / "live.duckdb"), str(tmp_path / "backfill.duckdb")
    staging = Staging(tmp_path / "stream")
    defs = _defs(clean_replay, live_db, str(staging.directory))
    instance = DagsterInstance.ephemeral()
    clean_replay.set_clock(LIVE_FROM)
    seeded(defs, live_db, ("live_update_job", {}))  # the bootstrap: everything since START
    Store(live_db).upsert("liquidations", _stored_rows_with(STORED_BAD[case]))
    for hour in range(1, 4):
        clean_replay.set_clock(LIVE_FROM + dt.timedelta(hours=hour, seconds=45))
        run_job(defs, "live_update_job", instance)
    live = _history(Store(live_db))
    assert len(live) == 3 * len(SYMBOLS)
    assert np.isfinite(live["liquidation_intensity"]).all()

    backfill = Store(backfill_db)
    backfill.init()
    source = Store(live_db)
    for table in ("candles", "funding_rates", "open_interest", "long_short_ratio",
                  "fear_greed", "liquidations", "orderbook_imbalance", "hmm_models"):
        backfill.upsert(table, source.read(table))
    _backfill(_defs(clean_replay, backfill_db, str(tmp_path / "unused")),
              LIVE_FROM + dt.timedelta(hours=3))
    theirs = _history(backfill)
    for column in ("liquidation_intensity", "sentiment_score", "exchange_sentiment"):
        assert theirs[column].to_numpy(dtype=float) == pytest.approx(
            live[column].to_numpy(dtype=float), abs=1e-9), column
