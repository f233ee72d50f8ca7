"""Bybit V5 public WebSocket client (``wss://stream.bybit.com/v5/public/linear``).

Written on ``websocket-client`` (the library pybit's own WebSocket uses) rather than on
pybit's ``WebSocket`` class, because pybit's order book ignores Bybit's update ids and its
reconnect loop cannot ask for a fresh snapshot (DESIGN 8.16). The protocol is Bybit's:

* ``{"op": "subscribe", "args": [topics]}`` (at most 10 topics per request), answered by
  ``{"success": true, "op": "subscribe", ...}``; a refused topic is an error naming it;
* ``{"op": "ping"}`` every ``ping_seconds`` (Bybit drops a connection silent for long); no
  message at all for ``dead_seconds`` means the connection is dead;
* a book that lost messages is resubscribed (``unsubscribe`` then ``subscribe``), which
  makes Bybit send a new snapshot.

One thread does everything: it waits for the next message at most until the next ping or
the next ``tick`` (the caller's flush), so a stop request is honoured within
``tick_seconds``. A dropped connection is retried with exponential backoff and jitter; the
caller's state (books, pending rows) survives, and every book is re-synced from the
snapshot the new subscription brings.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence

import websocket

from sentiment.errors import SourceError
from sentiment.io.retry import STREAM

log = logging.getLogger(__name__)

DEFAULT_WS_URL = "wss://stream.bybit.com/v5/public/linear"
SUBSCRIBE_BATCH = 10
#: The largest frame read. Bybit's largest public push (a 50-level book snapshot) is a few
#: kB; a bigger frame is refused as soon as its header announces it, before it is read.
MAX_FRAME_BYTES = 1024 * 1024


class StreamRefused(SourceError):
    """The exchange refused a subscription (unknown topic or symbol): retrying won't help."""


class ConnectionLost(Exception):
    """The connection went silent or closed; the stream reconnects."""


class BybitStream:
    """Subscribe to ``topics`` at ``url`` and hand every decoded push to ``on_message``,
    which returns a topic to resubscribe (or None). ``tick`` runs every ``tick_seconds``."""

    def __init__(self, url: str, topics: Sequence[str],
                 on_message: Callable[[Mapping], str | None], *,
                 tick: Callable[[], None] | None = None, tick_seconds: float = 1.0,
                 ping_seconds: float = STREAM.ping_seconds,
                 dead_seconds: float = STREAM.dead_seconds,
                 backoff_seconds: float = STREAM.backoff_seconds,
                 max_backoff_seconds: float = STREAM.max_backoff_seconds,
                 connect_timeout: float = STREAM.connect_timeout_seconds):
        self.url = url
        self.topics = list(topics)
        self.on_message = on_message
        self.tick = tick or (lambda: None)
        self.tick_seconds = tick_seconds
        self.ping_seconds = ping_seconds
        self.dead_seconds = dead_seconds
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.connect_timeout = connect_timeout
        # A plain flag: set from a signal handler it cannot block on a lock.
        self.stopping = False
        self.connections = 0  # successful connects (reconnects = connections - 1)
        self.resubscribed = 0
        self.bad_frames = 0
        self._ws: websocket.WebSocket | None = None

    def stop(self) -> None:
        """Ask :meth:`run` to return within ``tick_seconds`` (safe from a signal handler or
        another thread)."""
        self.stopping = True

    def _tick(self) -> None:
        try:
            self.tick()
        except Exception:  # the caller's flush failing is not a connection fault
            log.exception("bybit_ws: the periodic tick failed")

    # ------------------------------------------------------------------ protocol

    def _send(self, payload: dict) -> None:
        self._ws.send(json.dumps(payload))

    def _subscribe(self, op: str, topics: Sequence[str]) -> None:
        for i in range(0, len(topics), SUBSCRIBE_BATCH):
            self._send({"op": op, "args": list(topics[i:i + SUBSCRIBE_BATCH])})

    def _control(self, message: Mapping) -> None:
        op = message.get("op")
        if op == "subscribe" and message.get("success") is False:
            raise StreamRefused("bybit_ws", f"subscription refused: {message.get('ret_msg')}",
                                endpoint=self.url, field="args")
        if op not in ("subscribe", "unsubscribe", "ping", "pong") and "success" not in message:
            log.debug("bybit_ws: unexpected control message %s", message)

    def _session(self) -> None:
        """One connection: subscribe, then read until stopped or the connection dies."""
        self._ws = websocket.create_connection(self.url, timeout=self.connect_timeout,
                                               enable_multithread=True)
        _cap_frames(self._ws, MAX_FRAME_BYTES)
        try:
            self.connections += 1
            self._subscribe("subscribe", self.topics)
            now = time.monotonic()
            next_ping = now + self.ping_seconds
            next_tick = now + self.tick_seconds
            last_heard = now
            while not self.stopping:
                now = time.monotonic()
                if now >= next_tick:
                    self._tick()
                    next_tick = now + self.tick_seconds
                if now >= next_ping:
                    self._send({"op": "ping"})
                    next_ping = now + self.ping_seconds
                if now - last_heard > self.dead_seconds:
                    raise ConnectionLost(f"nothing received for {now - last_heard:.0f} s")
                self._ws.settimeout(max(0.01, min(next_tick, next_ping) - now))
                try:
                    raw = self._ws.recv()
                except websocket.WebSocketTimeoutException:
                    continue
                if not raw:
                    raise ConnectionLost("the exchange closed the connection")
                last_heard = time.monotonic()
                try:
                    message = json.loads(raw)
                except (json.JSONDecodeError, RecursionError):  # not JSON, or nested too deep
                    self.bad_frames += 1
                    log.error("bybit_ws: a frame that is not usable JSON skipped: %.80r", raw)
                    continue
                if not isinstance(message, dict):
                    self.bad_frames += 1
                    log.error("bybit_ws: a frame that is not a JSON object skipped: %.80r", raw)
                    continue
                if "topic" not in message:
                    self._control(message)
                    continue
                try:
                    resync = self.on_message(message)
                except Exception:  # a message the handler could not take never ends the stream
                    self.bad_frames += 1
                    log.exception("bybit_ws: a %s push could not be handled",
                                  message.get("topic"))
                    continue
                if resync is not None:
                    self.resubscribed += 1
                    self._subscribe("unsubscribe", [resync])
                    self._subscribe("subscribe", [resync])
        finally:
            ws, self._ws = self._ws, None
            ws.close()

    def run(self) -> None:
        """Stream until :meth:`stop`; reconnect with backoff on any connection fault."""
        failures = 0
        while not self.stopping:
            connected_before = self.connections
            try:
                self._session()
                return  # stopped
            except StreamRefused:
                raise
            except (ConnectionLost, websocket.WebSocketException, OSError) as exc:
                if isinstance(exc, FrameTooLarge):
                    self.bad_frames += 1
                if self.connections > connected_before:
                    failures = 0  # it had worked: start the backoff again
                failures += 1
                delay = min(self.max_backoff_seconds,
                            self.backoff_seconds * 2 ** (failures - 1))
                delay *= random.uniform(0.8, 1.2)
                log.warning("bybit_ws: %s (%s); reconnecting in %.1f s", type(exc).__name__,
                            exc, delay)
                self._tick()  # keep flushing what was received while disconnected
                waited = time.monotonic() + delay
                while not self.stopping and time.monotonic() < waited:
                    time.sleep(min(0.05, delay))


class FrameTooLarge(websocket.WebSocketException):
    """A frame's header announced more than :data:`MAX_FRAME_BYTES`."""


def _cap_frames(ws: websocket.WebSocket, limit: int) -> None:
    """Refuse a frame longer than ``limit`` once its length is known. websocket-client has
    no such option; its frame buffer reads the length, then the whole payload in one go, so
    the check goes between the two (library internals: ``frame_buffer.recv_length``)."""
    buffer = ws.frame_buffer
    read_length = buffer.recv_length

    def capped() -> None:
        read_length()
        if buffer.length is not None and buffer.length > limit:
            raise FrameTooLarge(f"a frame of {buffer.length:,} bytes is over the "
                                f"{limit:,}-byte cap")

    buffer.recv_length = capped
