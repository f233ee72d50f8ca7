"""Speed of the live stream.

1. Order-book deltas the stream handles per second on one core: JSON decoding, the book
   update with its update-id check and the OBI sampling, in one thread (the recorded
   50-level snapshot, then deltas shaped like the recorded one: about 15 changed levels).
2. The same through the real WebSocket: the replay WebSocket in another process sends the
   deltas as fast as it can; the client here receives, decodes and applies them.
3. Delay from a message to its row in DuckDB: the replay WebSocket pushes a liquidation,
   ``sentiment stream``'s service stages it at its next flush (every 2 s), and the
   ``stream_load_sensor`` of a real ``dagster dev`` requests ``stream_load_job``, which
   loads it. Also the loader alone (``load_staged`` in-process).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from replay.ws import ReplayStream  # noqa: E402
from sentiment.config import load_config  # noqa: E402
from sentiment.io.sources.bybit_ws import BybitStream  # noqa: E402
from sentiment.io.staging import Staging, load_staged  # noqa: E402
from sentiment.io.store import Store  # noqa: E402
from sentiment.services.stream import StreamRecorder, StreamService  # noqa: E402

SNAPSHOT = ROOT / "tests" / "fixtures" / "bybit" / "ws_orderbook_snapshot.json"
DELTAS = 50_000
PUSH_MS = 20  # Bybit pushes orderbook.50 every 20 ms


def deltas(n: int) -> list[str]:
    """The recorded snapshot, then ``n`` deltas of about 15 levels each (some deleted, some
    new, the rest resized), as JSON text."""
    snap = json.loads(SNAPSHOT.read_text())
    rng = random.Random(7)
    bids = {float(p): q for p, q in snap["data"]["b"]}
    asks = {float(p): q for p, q in snap["data"]["a"]}
    u, ts = snap["data"]["u"], snap["ts"]
    out = [json.dumps(snap)]
    for _ in range(n):
        u += 1
        ts += PUSH_MS
        change = {"b": [], "a": []}
        for side, book, sign in (("b", bids, -1), ("a", asks, 1)):
            levels = sorted(book)
            for _ in range(7):
                price = rng.choice(levels)
                if rng.random() < 0.2 and len(book) > 40:
                    del book[price]
                    levels.remove(price)
                    change[side].append([f"{price:.2f}", "0"])
                else:
                    size = f"{rng.uniform(0.001, 2):.3f}"
                    book[price] = size
                    change[side].append([f"{price:.2f}", size])
            far = (min(levels) if sign < 0 else max(levels)) + sign * 0.1
            book[far] = "0.010"
            change[side].append([f"{far:.2f}", "0.010"])
        out.append(json.dumps({"topic": "orderbook.50.BTCUSDT", "type": "delta", "ts": ts,
                               "data": {"s": "BTCUSDT", "b": change["b"], "a": change["a"],
                                        "u": u, "seq": u}, "cts": ts - 2}))
    return out


def bench_processing(messages: list[str]) -> None:
    rates = []
    for _ in range(5):
        recorder = StreamRecorder(["BTCUSDT"], sample_ms=1000)
        start = time.perf_counter()
        for raw in messages:
            recorder.on_message(json.loads(raw))
        rates.append(len(messages) / (time.perf_counter() - start))
        assert recorder.counters.resyncs == 0 and recorder.counters.bad_messages == 0
    print(f"order-book deltas decoded and applied on one core: median "
          f"{statistics.median(rates):,.0f} messages/s (Bybit sends 50/s per symbol for "
          f"orderbook.50)")


_SERVER = """
import json, sys
from replay.ws import ReplayStream
messages = [json.loads(line) for line in open(sys.argv[1])]
with ReplayStream(symbols=["BTCUSDT"], push_seconds=0.001) as ws:
    ws.script("orderbook.50.BTCUSDT", messages)
    print(ws.url, flush=True)
    sys.stdin.read()
"""


def bench_websocket(messages: list[str], tmp: Path) -> None:
    feed = tmp / "deltas.jsonl"
    feed.write_text("\n".join(messages))
    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(feed)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        recorder = StreamRecorder(["BTCUSDT"], sample_ms=1000)
        client = BybitStream(url, ["orderbook.50.BTCUSDT"], recorder.on_message,
                             tick_seconds=0.5)
        thread = threading.Thread(target=client.run, daemon=True)
        start = time.perf_counter()
        thread.start()
        while recorder.counters.book_messages < len(messages):
            time.sleep(0.01)
            assert thread.is_alive()
        elapsed = time.perf_counter() - start
        client.stop()
        thread.join(timeout=10)
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    print(f"order-book deltas through the WebSocket on loopback (sender in another "
          f"process): {len(messages) / elapsed:,.0f} messages/s received and applied")


def bench_loader(tmp: Path) -> None:
    store = Store(str(tmp / "loader.duckdb"))
    store.init()
    staging = Staging(tmp / "loader-stream")
    times = []
    t0 = 1_700_000_000_000
    for k in range(20):
        # What a 2 s flush holds for two symbols: 2 OBI samples, a ticker, a liquidation.
        staging.write({
            "orderbook_imbalance": [{"symbol": s, "ts": t0 + k * 2000 + i * 1000, "obi": 0.1}
                                    for s in ("BTCUSDT", "ETHUSDT") for i in range(2)],
            "liquidations": [{"symbol": "BTCUSDT", "ts": t0 + k * 2000, "side": "Buy",
                              "price": 40_000.0, "size": 0.1, "seq": k}],
            "stream_state": [{"symbol": s, "through": t0 + k * 2000 + 1999}
                             for s in ("BTCUSDT", "ETHUSDT")]})
        start = time.perf_counter()
        load_staged(store, staging)
        times.append(time.perf_counter() - start)
    print(f"loading one flush's staged files into DuckDB (in-process): median "
          f"{statistics.median(times) * 1000:.0f} ms")


def _row_visible(store: Store, size: float) -> bool:
    try:
        frame = store.query("SELECT count(*) AS n FROM liquidations WHERE size = ?", [size])
    except Exception:  # not created yet, or the loader holds the file this instant
        return False
    return int(frame["n"].iloc[0]) > 0


def bench_delay(tmp: Path, pushes: int = 8) -> None:
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    db = str(tmp / "delay.duckdb")
    Store(db).init()
    staging_dir = tmp / "stream"
    with ReplayStream(symbols=["BTCUSDT", "ETHUSDT"], push_seconds=0.01) as ws:
        env = {**os.environ, "DAGSTER_HOME": str(home), "SENTIMENT_DB": db,
               "SENTIMENT_STREAM_DIR": str(staging_dir), "BYBIT_WS_URL": ws.url}
        proc = subprocess.Popen(
            ["env", "--default-signal=INT,TERM", str(Path(sys.executable).parent / "dagster"),
             "dev", "-h", "127.0.0.1", "-p", "3998", "-w", str(ROOT / "workspace.yaml")],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        service = StreamService(load_config(), ws.url, staging_dir)
        thread = threading.Thread(target=service.run, kwargs={"install_signals": False},
                                  daemon=True)
        thread.start()
        store = Store(db, lock_timeout=30)
        delays = []
        try:
            time.sleep(20)  # the webserver and the daemon come up
            topic = "allLiquidation.BTCUSDT"
            for k in range(pushes):
                size = 1.0 + k / 1000
                now = int(time.time() * 1000)
                sent = time.monotonic()
                ws.push(topic, {"topic": topic, "type": "snapshot", "ts": now, "data": [
                    {"T": now, "s": "BTCUSDT", "S": "Sell", "v": f"{size:.3f}",
                     "p": "40000"}]})
                deadline = sent + 120
                while not _row_visible(store, size):
                    assert time.monotonic() < deadline, "the liquidation never reached DuckDB"
                    time.sleep(0.1)
                delays.append(time.monotonic() - sent)
                time.sleep(random.uniform(0, 3))  # not in step with the flush or the sensor
        finally:
            service.client.stop()
            thread.join(timeout=10)
            proc.terminate()
            proc.wait(timeout=60)
    print(f"liquidation pushed -> row in DuckDB, through the stream's 2 s flush, "
          f"stream_load_sensor and stream_load_job in dagster dev: median "
          f"{statistics.median(delays):.1f} s, max {max(delays):.1f} s over {len(delays)} "
          f"({', '.join(f'{d:.1f}' for d in delays)})")


def main() -> None:
    messages = deltas(DELTAS)
    bench_processing(messages)
    with tempfile.TemporaryDirectory() as tmp:
        bench_websocket(messages, Path(tmp))
        bench_loader(Path(tmp))
        bench_delay(Path(tmp))


if __name__ == "__main__":
    main()
