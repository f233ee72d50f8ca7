"""Replay of Bybit's V5 public WebSocket on 127.0.0.1 (the stream's offline counterpart).

A ``websockets`` server in a daemon thread that speaks the protocol of
``wss://stream.bybit.com/v5/public/linear``: ``subscribe`` / ``unsubscribe`` acks in Bybit's
format (a refused topic gets ``success: false``), ``ping`` answered by a pong, and pushes in
the recorded message formats (``tests/fixtures`` and the replay bundle hold real samples).

What it pushes comes from two places:

* **scripts** (tests): :meth:`ReplayStream.script` gives a topic a list of bursts; each
  subscription to the topic (the first, and each one after a resync) is sent the next burst.
  A burst with a skipped update id is how the tests make a book lose messages.
* **a source** (``make up``, the benchmark; :class:`MarketSource`): each connection gets a
  ``source.session()`` whose ``on_subscribe(topic, now_ms)`` returns the first pushes of a
  subscription (a book snapshot, a ticker snapshot) and whose ``poll(topics, now_ms)``
  returns the pushes due, every ``push_seconds``.

:meth:`push` sends one message to every connection subscribed to its topic now, and
:meth:`drop_connections` closes them all, as a network fault would.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterable

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

TOPIC_RE = re.compile(r"^(tickers|orderbook\.(1|50|200|500)|allLiquidation)\.([A-Z0-9]{2,20})$")


class _Client:
    def __init__(self, conn: ServerConnection, source=None):
        self.conn = conn
        self.session = source.session() if source is not None else None
        self.conn_id = uuid.uuid4().hex[:20]
        self.topics: set[str] = set()
        self.outbox: deque[str] = deque()


class ReplayStream:
    """The replay WebSocket. ``symbols`` limits the accepted topics (None: any symbol)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 symbols: Iterable[str] | None = None, source=None,
                 clock: Callable[[], int] | None = None, push_seconds: float = 0.1):
        self.host = host
        self._port = port
        self.symbols = set(symbols) if symbols is not None else None
        self.source = source
        self.clock = clock or (lambda: 0)
        self.push_seconds = push_seconds
        self.received: list[dict] = []  # every client request, in order
        self._scripts: dict[str, deque[list[dict]]] = {}
        self._clients: set[_Client] = set()
        self._lock = threading.Condition()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._quiet = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ReplayStream:
        if self._server is None:
            self._stopping.clear()
            # close_timeout: a dropped client that never answers the close frame is cut
            # off after 1 s (websockets waits 10 s by default).
            self._server = serve(self._handle, self.host, self._port, compression=None,
                                 ping_interval=None, close_timeout=1.0)
            self._thread = threading.Thread(target=self._server.serve_forever,
                                            name="replay-ws", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self.drop_connections()
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> ReplayStream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._server.socket.getsockname()[1] if self._server else self._port

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/v5/public/linear"

    # ------------------------------------------------------------------ test controls

    def script(self, topic: str, *bursts: list[dict]) -> None:
        """Each later subscription to ``topic`` is sent the next of ``bursts``."""
        with self._lock:
            self._scripts.setdefault(topic, deque()).extend(bursts)

    def push(self, topic: str, message: dict | str) -> int:
        """Send ``message`` (a JSON object, or text sent as it is) to every connection
        subscribed to ``topic``; how many."""
        text = message if isinstance(message, str) else json.dumps(message)
        with self._lock:
            clients = [c for c in self._clients if topic in c.topics]
            for client in clients:
                client.outbox.append(text)
        return len(clients)

    def silence(self, quiet: bool = True) -> None:
        """Stop answering (pings included) without closing: a connection gone dead."""
        self._quiet = quiet

    def drop_connections(self) -> int:
        """Close every open connection (the clients see a network fault)."""
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.conn.close(code=1011, reason="replay: connection dropped")
        return len(clients)

    def wait_for(self, predicate: Callable[[list[dict]], bool], timeout: float = 10.0) -> bool:
        """Block until ``predicate(received)`` holds (or the timeout); tests synchronise on
        what clients asked for, never on sleeps."""
        with self._lock:
            return self._lock.wait_for(lambda: predicate(self.received), timeout=timeout)

    def subscriptions(self, topic: str) -> int:
        """How many subscribe requests named ``topic`` so far."""
        with self._lock:
            return sum(topic in r.get("args", ()) for r in self.received
                       if r.get("op") == "subscribe")

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._clients)

    # ------------------------------------------------------------------ serving

    def _ack(self, client: _Client, op: str, success: bool = True, message: str = "",
             req_id: str = "") -> dict:
        return {"success": success, "ret_msg": message if op != "ping" else "pong",
                "conn_id": client.conn_id, "req_id": req_id, "op": op}

    def _request(self, client: _Client, request: dict) -> list[dict]:
        op = request.get("op")
        req_id = str(request.get("req_id", ""))
        with self._lock:
            self.received.append(request)
            self._lock.notify_all()
        if op == "ping":
            return [self._ack(client, "ping", req_id=req_id)]
        args = request.get("args") or []
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list):
            return [self._ack(client, str(op), False, f"error:invalid op {op!r}", req_id)]
        bad = [t for t in args if not self._valid(t)]
        if bad:
            return [self._ack(client, op, False, f"error:handler not found,topic:{bad[0]}",
                              req_id)]
        out = [self._ack(client, op, req_id=req_id)]
        with self._lock:
            for topic in args:
                if op == "unsubscribe":
                    client.topics.discard(topic)
                    continue
                client.topics.add(topic)
                script = self._scripts.get(topic)
                if script:
                    out += script.popleft()
        if op == "subscribe" and client.session is not None:
            for topic in args:
                out += client.session.on_subscribe(topic, self.clock())
        return out

    def _valid(self, topic) -> bool:
        match = TOPIC_RE.match(topic) if isinstance(topic, str) else None
        return bool(match) and (self.symbols is None or match.group(3) in self.symbols)

    def _handle(self, conn: ServerConnection) -> None:
        client = _Client(conn, self.source)
        with self._lock:
            self._clients.add(client)
        try:
            while not self._stopping.is_set():
                try:
                    raw = conn.recv(timeout=self.push_seconds)
                except TimeoutError:
                    raw = None
                replies: list = []
                if raw is not None:
                    try:
                        request = json.loads(raw)
                    except json.JSONDecodeError:
                        request = {"op": None}
                    replies = self._request(client, request if isinstance(request, dict)
                                            else {"op": None})
                with self._lock:
                    queued = list(client.outbox)
                    client.outbox.clear()
                    topics = set(client.topics)
                if self._quiet:
                    continue
                for reply in replies:
                    conn.send(json.dumps(reply))
                for text in queued:
                    conn.send(text)
                if client.session is not None and topics:
                    for message in client.session.poll(topics, self.clock()):
                        conn.send(json.dumps(message))
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._clients.discard(client)


# ---------------------------------------------------------------------------------------------
# Pushes derived from the bundle (make up, the benchmark)

#: Price tick per symbol (Bybit's 2022 values), for the synthetic book and top of book.
PRICE_TICK = {"BTCUSDT": 0.5, "ETHUSDT": 0.05}

#: The recorded 50-level snapshot's sizes (tests/fixtures/bybit/ws_orderbook_snapshot.json,
#: a real orderbook.50.BTCUSDT push), best level first. That one moment leaned hard to the
#: asks (its top-5 imbalance is -0.76); a book built from it as recorded would read bearish
#: all the time, so the DERIVED books take :data:`_BOOK_SHAPE` from it instead.

_SNAPSHOT_SIZES = {
    "b": (0.557, 0.102, 0.324, 0.003, 0.001, 0.001, 0.002, 0.006, 0.001, 0.001, 0.003, 0.001,
          0.001, 0.001, 0.002, 0.001, 0.001, 0.001, 0.015, 0.003, 0.161, 0.013, 0.001, 0.001,
          0.050, 0.342, 0.002, 0.008, 0.884, 1.235, 0.002, 0.002, 0.234, 0.004, 0.007, 0.001,
          0.204, 0.001, 0.002, 0.141, 0.004, 0.840, 0.126, 0.982, 0.099, 0.002, 0.049, 0.073,
          0.001, 0.070),
    "a": (4.669, 0.001, 1.002, 0.218, 0.001, 0.001, 0.017, 0.002, 0.001, 0.001, 0.002, 0.001,
          0.001, 0.006, 0.001, 0.098, 0.004, 0.001, 0.129, 0.001, 0.003, 0.020, 0.002, 0.001,
          0.347, 0.061, 0.002, 1.417, 0.982, 0.003, 0.048, 0.002, 0.602, 0.001, 0.017, 0.001,
          0.282, 0.003, 0.017, 0.072, 0.002, 0.003, 0.001, 0.840, 0.003, 0.020, 0.613, 0.081,
          0.002, 0.060),
}
#: The size of each level of a DERIVED book, best first, the same on both sides: the mean of
#: the recorded snapshot's two sides. A real book's imbalance swings both ways around 0; the
#: derived one does too, from the per-minute noise and the hour's lean alone.
#: How far a DERIVED book leans to the bids in a rising hour (to the asks in a falling one):
#: sizes x (1 +- lean). Small beside the noise, so the imbalance tilts with the hour but
#: spreads over both signs, as a real book's does.
BOOK_LEAN = 0.15
_BOOK_SHAPE = tuple((b + a) / 2 for b, a in zip(_SNAPSHOT_SIZES["b"], _SNAPSHOT_SIZES["a"],
                                                 strict=True))


def _unit(*key) -> float:
    """A deterministic number in [0, 1) from ``key``."""
    return zlib.crc32(repr(key).encode()) / 2**32


def _mixed_unit(*key) -> float:
    """Like :func:`_unit`, from a hash whose outputs for related keys are independent. CRC-32
    is linear: the keys of a level's bid and ask differ by one character, so their CRCs differ
    by a fixed pattern and the two sides' noise would move together."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class MarketSource:
    """DERIVED pushes for the replay WebSocket, from the bundle's recorded hourly candles and
    the replay clock: nothing here is a recording of the real stream.

    * **book** (``orderbook.50``): 50 levels a side one tick apart around a price that moves
      from the hour's open to its close; sizes follow the recorded snapshot's shape, the
      same on both sides (:data:`_BOOK_SHAPE`), scaled by pseudo-noise that changes every
      replay minute and leans to the bid side in rising hours and to the ask side in falling
      ones, so the imbalance swings around 0 as a real book's does; deltas carry only the
      changed levels, with update ids; every ``gap_every``-th delta skips an id, so the
      client's resync shows;
    * **ticker**: the book's best levels, the hour's price statistics, the synthetic open
      interest and the last settled funding rate (as Bybit's predicted rate);
    * **liquidations**: a pseudo-random handful per hour, more in big moves, mostly longs in
      falling hours and shorts in rising ones.
    """

    def __init__(self, market, *, gap_every: int = 0):
        self.market = market
        self.gap_every = gap_every

    def session(self) -> _MarketSession:
        return _MarketSession(self)


class _MarketSession:
    """One connection's view: its own update ids and what it was last sent."""

    def __init__(self, source: MarketSource):
        self.source = source
        self.books: dict[str, tuple[int, dict, dict, int]] = {}  # topic -> (u, bids, asks, t)
        self.liquidations_sent: dict[str, int] = {}  # topic -> last T sent
        self.tickers: dict[str, int] = {}  # topic -> last push time
        self.deltas = 0
        self._levels_at: dict[str, tuple[int, tuple[dict, dict]]] = {}  # symbol -> (t, book)

    # -- the market at a time ------------------------------------------------------------

    def _hour(self, symbol: str, now_ms: int):
        sym = self.source.market.symbols[symbol]
        i = int(np.searchsorted(sym.hour_ms, now_ms, side="right")) - 1
        return sym, max(0, min(i, len(sym.hour_ms) - 1))

    def _price(self, symbol: str, now_ms: int) -> float:
        sym, i = self._hour(symbol, now_ms)
        frac = min(max((now_ms - sym.hour_ms[i]) / 3_600_000, 0.0), 1.0)
        return float(sym.open[i] + (sym.close[i] - sym.open[i]) * frac)

    def _levels(self, symbol: str, now_ms: int) -> tuple[dict, dict]:
        """The book at ``now_ms`` (the delta and the ticker of one poll read the same)."""
        at, levels = self._levels_at.get(symbol, (None, None))
        if at != now_ms:
            levels = self._build_levels(symbol, now_ms)
            self._levels_at[symbol] = (now_ms, levels)
        return levels

    def _build_levels(self, symbol: str, now_ms: int) -> tuple[dict, dict]:
        tick = PRICE_TICK.get(symbol, 0.01)
        sym, i = self._hour(symbol, now_ms)
        lean = BOOK_LEAN if sym.close[i] >= sym.open[i] else -BOOK_LEAN
        minute = now_ms // 60_000
        mid = self._price(symbol, now_ms)
        best_bid = math.floor(mid / tick) * tick
        bids, asks = {}, {}
        for k in range(50):
            for side, price, book, sign in (("b", best_bid - k * tick, bids, 1.0),
                                            ("a", best_bid + (k + 1) * tick, asks, -1.0)):
                noise = 0.5 + _mixed_unit(symbol, side, k, minute)
                size = _BOOK_SHAPE[k] * noise * (1.0 + sign * lean)
                book[f"{price:.{_decimals(tick)}f}"] = f"{max(size, 0.001):.3f}"
        return bids, asks

    # -- pushes --------------------------------------------------------------------------

    def on_subscribe(self, topic: str, now_ms: int) -> list[dict]:
        kind, _, symbol = topic.rpartition(".")
        if symbol not in self.source.market.symbols:
            return []
        if kind.startswith("orderbook."):
            bids, asks = self._levels(symbol, now_ms)
            u = 1 + now_ms // 1000  # a fresh sequence for each subscription
            self.books[topic] = (u, bids, asks, now_ms)
            return [{"topic": topic, "type": "snapshot", "ts": now_ms, "data": {
                "s": symbol, "b": _sorted(bids, True), "a": _sorted(asks, False), "u": u,
                "seq": u}, "cts": now_ms}]
        if kind == "tickers":
            self.tickers[topic] = now_ms
            return [{"topic": topic, "type": "snapshot", "ts": now_ms, "cs": now_ms,
                     "data": self._ticker(symbol, now_ms)}]
        if kind == "allLiquidation":
            self.liquidations_sent[topic] = now_ms
        return []

    def poll(self, topics, now_ms: int) -> list[dict]:
        out = []
        for topic in sorted(topics):
            kind, _, symbol = topic.rpartition(".")
            if kind.startswith("orderbook.") and topic in self.books:
                out += self._book_delta(topic, symbol, now_ms)
            elif kind == "tickers" and topic in self.tickers and now_ms > self.tickers[topic]:
                self.tickers[topic] = now_ms
                data = self._ticker(symbol, now_ms)
                keep = ("symbol", "lastPrice", "markPrice", "indexPrice", "bid1Price",
                        "bid1Size", "ask1Price", "ask1Size", "openInterest",
                        "openInterestValue")
                out.append({"topic": topic, "type": "delta", "ts": now_ms, "cs": now_ms,
                            "data": {k: data[k] for k in keep}})
            elif kind == "allLiquidation" and topic in self.liquidations_sent:
                out += self._liquidations(topic, symbol, now_ms)
        return out

    def _book_delta(self, topic: str, symbol: str, now_ms: int) -> list[dict]:
        u, bids, asks, last = self.books[topic]
        if now_ms <= last:
            return []
        new_bids, new_asks = self._levels(symbol, now_ms)
        changes = {}
        for side, old, new in (("b", bids, new_bids), ("a", asks, new_asks)):
            levels = [[p, q] for p, q in new.items() if old.get(p) != q]
            levels += [[p, "0"] for p in old if p not in new]
            changes[side] = levels
        if not changes["b"] and not changes["a"]:
            self.books[topic] = (u, bids, asks, now_ms)
            return []
        self.deltas += 1
        step = 2 if self.source.gap_every and self.deltas % self.source.gap_every == 0 else 1
        u += step
        self.books[topic] = (u, new_bids, new_asks, now_ms)
        return [{"topic": topic, "type": "delta", "ts": now_ms, "data": {
            "s": symbol, "b": changes["b"], "a": changes["a"], "u": u, "seq": u},
            "cts": now_ms}]

    def _ticker(self, symbol: str, now_ms: int) -> dict:
        sym, i = self._hour(symbol, now_ms)
        price = self._price(symbol, now_ms)
        bids, asks = self._levels(symbol, now_ms)
        bid = max(bids, key=float)
        ask = min(asks, key=float)
        day = slice(max(0, i - 23), i + 1)
        prev_24h = float(sym.open[max(0, i - 23)])
        funding = sym.funding_ms <= now_ms
        rate = str(sym.funding_rate[np.flatnonzero(funding)[-1]]) if funding.any() else "0"
        oi = float(sym.open_interest[i]) if i < len(sym.open_interest) else float("nan")
        volume = float(sym.volume_units[day].sum()) / sym.volume_scale
        next_funding = (now_ms // 28_800_000 + 1) * 28_800_000
        return {
            "symbol": symbol, "tickDirection": "PlusTick", "lastPrice": f"{price:.2f}",
            "markPrice": f"{price:.2f}", "indexPrice": f"{price:.2f}",
            "prevPrice24h": f"{prev_24h:.2f}", "price24hPcnt": f"{price / prev_24h - 1:.6f}",
            "highPrice24h": f"{float(sym.high[day].max()):.2f}",
            "lowPrice24h": f"{float(sym.low[day].min()):.2f}",
            "prevPrice1h": f"{float(sym.open[i]):.2f}", "openInterest": f"{oi:.3f}",
            "openInterestValue": f"{oi * price:.2f}", "turnover24h": f"{volume * price:.4f}",
            "volume24h": f"{volume:.3f}", "fundingRate": rate,
            "nextFundingTime": str(next_funding), "bid1Price": bid, "bid1Size": bids[bid],
            "ask1Price": ask, "ask1Size": asks[ask],
        }

    def _liquidations(self, topic: str, symbol: str, now_ms: int) -> list[dict]:
        since = self.liquidations_sent[topic]
        if now_ms <= since:
            return []
        self.liquidations_sent[topic] = now_ms
        events = []
        hour = since // 3_600_000 * 3_600_000
        while hour <= now_ms:
            events += [e for e in self._hour_liquidations(symbol, hour)
                       if since < e["T"] <= now_ms]
            hour += 3_600_000
        if not events:
            return []
        return [{"topic": topic, "type": "snapshot", "ts": now_ms, "data": events}]

    def _hour_liquidations(self, symbol: str, hour_ms: int) -> list[dict]:
        sym, i = self._hour(symbol, hour_ms)
        move = float(sym.close[i] / sym.open[i] - 1.0)
        count = int(2 + 400 * abs(move) + 4 * _unit(symbol, hour_ms, "n"))
        p_long = min(0.95, max(0.05, 0.5 - 25 * move))
        volume = float(sym.volume_units[i]) / sym.volume_scale
        out = []
        for k in range(count):
            t = hour_ms + int(_unit(symbol, hour_ms, k, "t") * 3_600_000)
            price = self._price(symbol, t)
            size = volume * 2e-4 * (0.2 + 3 * _unit(symbol, hour_ms, k, "v") ** 3)
            side = "Buy" if _unit(symbol, hour_ms, k, "s") < p_long else "Sell"
            out.append({"T": t, "s": symbol, "S": side, "v": f"{size:.3f}",
                        "p": f"{price:.2f}"})
        return sorted(out, key=lambda e: e["T"])


def _decimals(tick: float) -> int:
    text = f"{tick:.10f}".rstrip("0")
    return len(text.partition(".")[2])


def _sorted(levels: dict, descending: bool) -> list[list[str]]:
    return [[p, levels[p]] for p in sorted(levels, key=float, reverse=descending)]
