"""The live stream against the replay WebSocket on 127.0.0.1: the real client, the real
recorder, real Parquet staging and a real DuckDB file.

Tests synchronise on what the server saw (subscriptions, pings) and on staged files, never
on sleeps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from sentiment.config import load_config
from sentiment.io.sources.bybit_ws import BybitStream
from sentiment.io.staging import Staging, StagingError, load_staged
from sentiment.io.store import Store
from sentiment.services.stream import StreamRecorder, StreamService, topics

from helpers import BOOK, delta, snap, until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "bybit"
T0 = 1_773_386_409_389  # the recorded snapshot's time


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def liquidation(ts: int, side: str, size: str, price: str = "70000") -> dict:
    return {"topic": "allLiquidation.BTCUSDT", "type": "snapshot", "ts": ts + 200,
            "data": [{"T": ts, "s": "BTCUSDT", "S": side, "v": size, "p": price}]}


class Running:
    """A :class:`BybitStream` with its recorder, running in a thread."""

    def __init__(self, url: str, symbols=("BTCUSDT",), **options):
        self.recorder = StreamRecorder(symbols, sample_ms=1)
        self.client = BybitStream(url, topics(symbols), self.recorder.on_message,
                                  tick_seconds=0.05, **options)
        self.thread = threading.Thread(target=self.client.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.client.stop()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


def test_the_recorded_book_arrives_whole(ws):
    ws.script(BOOK, [fixture("ws_orderbook_snapshot.json"),
                     fixture("ws_orderbook_delta_following_snapshot.json")])
    with Running(ws.url) as run:
        book = run.recorder.symbols["BTCUSDT"].book
        until(lambda: book.update_id == 10132541)
    assert ws.subscriptions(BOOK) == 1
    assert book.bids[71418.2] == 0.159 and 71419.8 not in book.bids
    assert len(book.bids) == len(book.asks) == 50  # 4 bids and 2 asks out, as many in
    assert run.recorder.counters.resyncs == 0 and run.recorder.counters.bad_messages == 0


def test_a_gap_makes_the_client_ask_for_a_new_snapshot(ws):
    ws.script(BOOK,
              [snap(100, [["100", "1"]], [["101", "1"]], T0), delta(101, T0 + 1,
               bids=[["100", "2"]]), delta(103, T0 + 2, bids=[["99", "9"]])],
              [snap(500, [["100", "4"]], [["101", "1"]], T0 + 3),
               delta(501, T0 + 4, asks=[["102", "2"]])])
    with Running(ws.url) as run:
        book = run.recorder.symbols["BTCUSDT"].book
        until(lambda: book.update_id == 501)
    # The client unsubscribed and subscribed the book again, nothing else.
    ops = [(r["op"], r["args"]) for r in ws.received if r["op"] != "ping"]
    assert ops[-2:] == [("unsubscribe", [BOOK]), ("subscribe", [BOOK])]
    assert run.recorder.counters.resyncs == 1 and run.client.resubscribed == 1
    assert book.bids == {100.0: 4.0} and book.asks == {101.0: 1.0, 102.0: 2.0}
    assert 99.0 not in book.bids  # the delta after the gap was never applied
    # OBI samples exist only for synced books: none from the broken stretch.
    samples = run.recorder.drain()["orderbook_imbalance"]
    assert [s["ts"] for s in samples] == [T0, T0 + 1, T0 + 3, T0 + 4]
    assert samples[1]["obi"] == pytest.approx((2 - 1) / (2 + 1))


def test_obi_is_sampled_once_per_slot_of_exchange_time(ws):
    ws.script(BOOK, [snap(1, [["100", "1"]], [["101", "1"]], T0)]
              + [delta(1 + i, T0 + i * 250, bids=[["100", str(1 + i)]]) for i in range(1, 9)])
    recorder = StreamRecorder(["BTCUSDT"], sample_ms=1000)
    client = BybitStream(ws.url, topics(["BTCUSDT"]), recorder.on_message, tick_seconds=0.05)
    thread = threading.Thread(target=client.run, daemon=True)
    thread.start()
    until(lambda: recorder.symbols["BTCUSDT"].book.update_id == 9)
    client.stop()
    thread.join(timeout=10)
    samples = recorder.drain()["orderbook_imbalance"]
    # Messages at T0 + 0, 250, ..., 2000 ms: the first of each second's slot is sampled.
    slots = sorted({(T0 + i * 250) // 1000 for i in range(9)})
    assert [s["ts"] // 1000 for s in samples] == slots
    first = samples[1]  # the book right after the first message of the second slot
    i = next(i for i in range(9) if (T0 + i * 250) // 1000 == slots[1])
    assert first["ts"] == T0 + i * 250
    assert first["obi"] == pytest.approx((1 + i - 1) / (1 + i + 1))


def test_heartbeats_are_sent(ws):
    with Running(ws.url, ping_seconds=0.1, dead_seconds=5.0):
        assert ws.wait_for(lambda r: sum(x.get("op") == "ping" for x in r) >= 3)


def test_a_silent_connection_is_given_up_and_reopened(ws):
    with Running(ws.url, ping_seconds=0.1, dead_seconds=0.5) as run:
        until(lambda: ws.subscriptions(BOOK) == 1)
        ws.silence()  # no pongs, no pushes: the connection is dead to the client
        until(lambda: ws.subscriptions(BOOK) == 2)  # it reconnected and subscribed again
        ws.silence(False)
    assert run.client.connections == 2


def test_a_refused_topic_is_an_error_naming_it(ws):
    client = BybitStream(ws.url, ["orderbook.50.NOTACOIN"], lambda m: None, tick_seconds=0.05)
    with pytest.raises(Exception) as err:
        client.run()
    assert "NOTACOIN" in str(err.value)


@pytest.mark.slow
def test_a_dropped_connection_reconnects_and_loses_nothing_staged(ws, tmp_path):
    config = load_config()
    staging = Staging(tmp_path / "stream")
    service = StreamService(config, ws.url, staging.directory)
    service.client.backoff_seconds = 0.05
    service.client.tick_seconds = 0.05
    thread = threading.Thread(target=service.run, kwargs={"install_signals": False},
                              daemon=True)
    thread.start()
    topic = "allLiquidation.BTCUSDT"
    until(lambda: ws.subscriptions(topic) == 1)
    sent = [liquidation(T0 + i, "Buy" if i % 3 else "Sell", f"0.{i + 1:03d}")
            for i in range(5)]
    for message in sent:
        ws.push(topic, message)
    until(lambda: service.recorder.counters.liquidations == 5)
    until(lambda: any(p.name.startswith("liquidations.") for p in staging.pending()))
    assert ws.drop_connections() == 1
    until(lambda: ws.subscriptions(topic) == 2)  # reconnected and subscribed again
    later = [liquidation(T0 + 1_000 + i, "Sell", f"1.{i:03d}") for i in range(3)]
    for message in later:
        ws.push(topic, message)
    until(lambda: service.recorder.counters.liquidations == 8)
    service.client.stop()
    thread.join(timeout=10)
    assert service.client.connections == 2
    store = Store(str(tmp_path / "s.duckdb"))
    store.init()
    result = load_staged(store, staging)
    assert result.rows["liquidations"] == 8 and not staging.pending()
    stored = store.read("liquidations").sort_values("ts")
    want = [(m["data"][0]["T"], m["data"][0]["S"], float(m["data"][0]["v"]))
            for m in sent + later]
    got = list(zip(stored["ts"].astype("datetime64[ms]").astype("int64"), stored["side"],
                   stored["size"], strict=True))
    assert got == want
    assert (stored["price"] == 70000.0).all() and stored["seq"].is_unique


def test_staged_rows_load_exactly_once_even_when_loaded_twice(tmp_path):
    staging = Staging(tmp_path / "stream")
    staging.write({
        "liquidations": [{"symbol": "BTCUSDT", "ts": T0, "side": "Buy", "price": 70000.0,
                          "size": 0.5, "seq": 1}],
        "orderbook_imbalance": [{"symbol": "BTCUSDT", "ts": T0 + i * 1000, "obi": i / 10}
                                for i in range(5)],
        "stream_state": [{"symbol": "BTCUSDT", "through": T0 + 4000}],
    })
    staging.write({"orderbook_imbalance": [{"symbol": "BTCUSDT", "ts": T0 + 5000,
                                            "obi": -0.5}],
                   "stream_state": [{"symbol": "BTCUSDT", "through": T0 + 5000}]})
    copies = {p.name: p.read_bytes() for p in staging.pending()}
    store = Store(str(tmp_path / "s.duckdb"))
    store.init()
    first = load_staged(store, staging)
    assert first.rows["orderbook_imbalance"] == 6 and not staging.pending()
    # A crash between the commit and the deletes: the same files are loaded again.
    for name, data in copies.items():
        (staging.directory / name).write_bytes(data)
    load_staged(store, staging)
    assert len(store.read("orderbook_imbalance")) == 6
    assert len(store.read("liquidations")) == 1
    state = store.read("stream_state")
    assert len(state) == 1 and state["through"].iloc[0] == pd.Timestamp(T0 + 5000, unit="ms")
    # An older file arriving late never moves `through` back.
    staging.write({"stream_state": [{"symbol": "BTCUSDT", "through": T0}]})
    load_staged(store, staging)
    assert store.read("stream_state")["through"].iloc[0] == pd.Timestamp(T0 + 5000, unit="ms")


def test_a_bad_staged_file_is_set_aside_and_named_and_the_rest_loads(tmp_path):
    staging = Staging(tmp_path / "stream")
    staging.write({"orderbook_imbalance": [{"symbol": "BTCUSDT", "ts": T0, "obi": 0.2}]})
    staging.write({"orderbook_imbalance": [{"symbol": "ETHUSDT", "ts": T0, "obi": 1.7}]})
    (staging.directory / "tickers.0000000000001.1.00000001.parquet").write_bytes(b"not parquet")
    store = Store(str(tmp_path / "s.duckdb"))
    store.init()
    with pytest.raises(StagingError) as err:
        load_staged(store, staging)
    message = str(err.value)
    assert "OBI 1.7 outside [-1, 1]" in message and "ETHUSDT" in message
    assert "tickers.0000000000001.1.00000001.parquet is unreadable" in message
    assert store.read("orderbook_imbalance")["symbol"].tolist() == ["BTCUSDT"]
    assert len(list(staging.rejected.iterdir())) == 2 and not staging.pending()


def test_sentiment_stream_stages_what_it_received_when_stopped(ws, tmp_path):
    """SIGTERM stops `sentiment stream` cleanly, and what it held (no periodic flush yet:
    flush_seconds is 600 here) is staged on the way out."""
    staging = tmp_path / "stream"
    config = tmp_path / "sentiment.yaml"
    config.write_text((ROOT / "sentiment.yaml").read_text().replace(
        "flush_seconds: 2 ", "flush_seconds: 600 "))
    env = dict(os.environ, BYBIT_WS_URL=ws.url, SENTIMENT_STREAM_DIR=str(staging),
               SENTIMENT_CONFIG=str(config))
    proc = subprocess.Popen([sys.executable, "-m", "sentiment.cli", "stream"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        topic = "allLiquidation.ETHUSDT"
        until(lambda: ws.subscriptions(topic) == 1 and ws.subscriptions(BOOK) == 1,
              timeout=30)
        ws.push(topic, {"topic": topic, "type": "snapshot", "ts": T0,
                        "data": [{"T": T0 - 5, "s": "ETHUSDT", "S": "Sell", "v": "3.5",
                                  "p": "2000"}]})
        # Then a delta without a snapshot: the client asks for the book again, which tells
        # the server it has read everything sent before (one connection keeps the order).
        ws.push(BOOK, delta(7, T0 + 1, bids=[["100", "1"]]))
        assert ws.wait_for(lambda r: any(x.get("op") == "unsubscribe" for x in r))
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    frames = [pd.read_parquet(p) for p in Staging(staging).pending()
              if p.name.startswith("liquidations.")]
    assert len(frames) == 1  # one flush: the last one
    rows = frames[0]
    assert rows[["symbol", "side", "size", "price"]].values.tolist() == [
        ["ETHUSDT", "Sell", 3.5, 2000.0]]
    assert "stopped after" in output


def test_the_replay_exchange_streams_a_derived_market(tmp_path):
    """`make up`'s source: the replay exchange's WebSocket pushes books, tickers and
    liquidations derived from the bundle (an hour of replay time per second here), with a
    book gap every 20 deltas; the stream resyncs and everything staged loads."""
    from replay.server import ReplayExchange

    with ReplayExchange(port=0, now="2022-06-13 00:00", speed=3600, ws_port=0,
                        ws_gap_every=20) as exchange:
        service = StreamService(load_config(), exchange.ws_url, tmp_path / "stream")
        service.client.tick_seconds = 0.2
        thread = threading.Thread(target=service.run, kwargs={"install_signals": False},
                                  daemon=True)
        thread.start()
        counters = service.recorder.counters
        until(lambda: counters.resyncs >= 2 and counters.liquidations >= 5
              and counters.ticker_rows >= 4, timeout=60)
        service.client.stop()
        thread.join(timeout=10)
    assert counters.bad_messages == 0 and counters.obi_samples > 10
    for state in service.recorder.symbols.values():
        bids, asks = state.book.top(5)
        assert bids[0][0] < asks[0][0]  # a sane book after the resyncs
        assert state.ticker["bid1_price"] <= state.ticker["ask1_price"]
    store = Store(str(tmp_path / "s.duckdb"))
    store.init()
    result = load_staged(store, Staging(tmp_path / "stream"))
    assert result.rows["liquidations"] == counters.liquidations
    assert result.rows["orderbook_imbalance"] == counters.obi_samples
    through = store.read("stream_state").set_index("symbol")["through"]
    assert set(through.index) == {"BTCUSDT", "ETHUSDT"}
    assert (through >= pd.Timestamp("2022-06-13 00:00")).all()


def test_a_failed_flush_keeps_its_rows_for_the_next(tmp_path, monkeypatch):
    service = StreamService(load_config(), "ws://127.0.0.1:9/unused", tmp_path / "stream")
    service.recorder.on_message(liquidation(T0, "Buy", "0.5"))
    real_write = service.staging.write
    calls = []

    def full_disk(rows):
        calls.append(rows)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real_write(rows)

    monkeypatch.setattr(service.staging, "write", full_disk)
    assert service.flush() == [] and service.failed_flushes == 1
    assert not list((tmp_path / "stream").glob("*"))  # no partial file left behind
    service.recorder.on_message(liquidation(T0 + 1, "Sell", "0.7"))
    written = service.flush()
    rows = pd.concat(pd.read_parquet(p) for p in written if p.name.startswith("liq"))
    assert rows["size"].tolist() == [0.5, 0.7]
    state = pd.concat(pd.read_parquet(p) for p in written if p.name.startswith("stream_"))
    assert state["through"].tolist() == [pd.Timestamp(T0 + 201, unit="ms")]


def test_oddly_shaped_pushes_are_counted_not_fatal():
    recorder = StreamRecorder(["BTCUSDT"])
    topic = "allLiquidation.BTCUSDT"
    recorder.on_message({"topic": "tickers.BTCUSDT", "type": "snapshot", "ts": T0,
                         "data": ["not", "an", "object"]})
    recorder.on_message({"topic": topic, "type": "snapshot", "ts": T0, "data": [
        "garbage", {"T": T0, "s": "BTCUSDT", "S": "Up", "v": "1", "p": "1"},
        {"T": T0, "s": "BTCUSDT", "S": "Buy", "v": "0.25", "p": "70000"}]})
    recorder.on_message(5)  # a frame that is JSON but not an object
    assert recorder.counters.bad_messages == 3
    rows = recorder.drain()["liquidations"]
    assert [(r["side"], r["size"]) for r in rows] == [("Buy", 0.25)]  # the good item stays


def test_one_resync_per_gap_however_many_deltas_are_in_flight(ws):
    ws.script(BOOK,
              [snap(100, [["100", "1"]], [["101", "1"]], T0), delta(102, T0 + 1),
               delta(103, T0 + 2), delta(104, T0 + 3), delta(105, T0 + 4)],
              [snap(500, [["100", "2"]], [["101", "1"]], T0 + 5)])
    with Running(ws.url) as run:
        until(lambda: run.recorder.symbols["BTCUSDT"].book.update_id == 500)
    assert [r["op"] for r in ws.received if r.get("args") == [BOOK]].count("unsubscribe") == 1
    assert run.recorder.counters.resyncs == 1


def test_a_frame_nested_too_deeply_is_skipped_and_the_stream_goes_on(ws):
    topic = "allLiquidation.BTCUSDT"
    with Running(ws.url) as run:
        until(lambda: ws.subscriptions(topic) == 1)
        ws.push(topic, "[" * 100_000 + "]" * 100_000)  # json's recursive decoder gives up
        ws.push(topic, liquidation(T0, "Buy", "0.5"))
        until(lambda: run.recorder.counters.liquidations == 1)
    assert run.client.bad_frames == 1
    assert run.client.connections == 1  # skipped, not a reason to reconnect


def test_a_frame_over_the_cap_is_refused_before_it_is_read(ws, monkeypatch):
    from sentiment.io.sources import bybit_ws

    monkeypatch.setattr(bybit_ws, "MAX_FRAME_BYTES", 100_000)
    topic = "allLiquidation.BTCUSDT"
    with Running(ws.url, backoff_seconds=0.05) as run:
        until(lambda: ws.subscriptions(topic) == 1)
        ws.push(topic, '{"topic": "' + "x" * 5_000_000 + '"}')  # a 5 MB frame
        until(lambda: ws.subscriptions(topic) == 2)  # dropped at its header, connected again
        ws.push(topic, liquidation(T0, "Buy", "0.5"))
        until(lambda: run.recorder.counters.liquidations == 1)
    assert run.client.bad_frames == 1
