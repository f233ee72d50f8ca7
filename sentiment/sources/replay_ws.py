"""Replay of Bybit's V5 public WebSocket on 127.0.0.1 (the stream's offline counterpart).

A ``websockets`` server in a daemon thread that speaks the protocol of
``wss://stream.bybit.com/v5/public/linear``: ``subscribe`` / ``unsubscribe`` acks in Bybit's
format (a refused topic gets ``success: false``), ``ping`` answered by a pong, and pushes in
the recorded message formats (``tests/fixtures`` and the replay bundle hold real samples).

What it pushes comes from two places:

* **scripts** (tests): :meth:`ReplayStream.script` gives a topic a list of bursts; each
  subscription to the topic (the first, and each one after a resync) is sent the next burst.
  A burst with a skipped update id is how the tests make a book lose messages.
* **a source** (``make up``, the benchmark): an object whose ``poll(topics, now_ms)`` returns
  the pushes due for the subscribed topics, called every ``push_seconds``; and whose
  ``on_subscribe(topic, now_ms)`` returns the first pushes of a new subscription (a book
  snapshot, a ticker snapshot).

:meth:`push` sends one message to every connection subscribed to its topic now, and
:meth:`drop_connections` closes them all, as a network fault would.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

TOPIC_RE = re.compile(r"^(tickers|orderbook\.(1|50|200|500)|allLiquidation)\.([A-Z0-9]{2,20})$")


class _Client:
    def __init__(self, conn: ServerConnection):
        self.conn = conn
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

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ReplayStream:
        if self._server is None:
            self._stopping.clear()
            self._server = serve(self._handle, self.host, self._port, compression=None,
                                 ping_interval=None)
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

    def push(self, topic: str, message: dict) -> int:
        """Send ``message`` to every connection subscribed to ``topic``; how many."""
        text = json.dumps(message)
        with self._lock:
            clients = [c for c in self._clients if topic in c.topics]
            for client in clients:
                client.outbox.append(text)
        return len(clients)

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
        if op == "subscribe" and self.source is not None:
            for topic in args:
                out += self.source.on_subscribe(topic, self.clock())
        return out

    def _valid(self, topic) -> bool:
        match = TOPIC_RE.match(topic) if isinstance(topic, str) else None
        return bool(match) and (self.symbols is None or match.group(3) in self.symbols)

    def _handle(self, conn: ServerConnection) -> None:
        client = _Client(conn)
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
                for reply in replies:
                    conn.send(json.dumps(reply))
                for text in queued:
                    conn.send(text)
                if self.source is not None and topics:
                    for message in self.source.poll(topics, self.clock()):
                        conn.send(json.dumps(message))
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._clients.discard(client)
