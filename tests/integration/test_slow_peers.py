"""Slow and hostile HTTP peers on 127.0.0.1: every request has a total deadline and a body
cap, and the live job never holds the database's write lock while it waits for one."""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.server
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import requests

from sentiment.config import load_config
from sentiment.errors import SourceError, TransientSourceError
from sentiment.io.sources import http as http_mod
from sentiment.io.sources.bybit import BybitClient
from sentiment.io.store import Store

pytestmark = pytest.mark.integration

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


@contextmanager
def peer(handle: Handler) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 answering every GET with ``handle``; yields its URL."""

    class _Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the standard library's name)
            try:
                handle(self)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up on us: what these tests want

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def trickle(stop: threading.Event, byte_every: float = 0.2) -> Handler:
    """Headers at once, then one byte of a long JSON body every ``byte_every`` seconds."""
    def handle(h):
        body = b'{"retCode":0,"result":{"list":[]},"pad":"' + b"x" * 10_000 + b'"}'
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        for i in range(len(body)):
            if stop.wait(byte_every):
                return
            h.wfile.write(body[i:i + 1])
            h.wfile.flush()
    return handle


def test_a_trickling_peer_is_cut_at_the_total_deadline():
    stop = threading.Event()
    with peer(trickle(stop)) as url:
        client = BybitClient(url, timeout=1.0, max_retries=1, backoff_base=0.01,
                             backoff_max=0.01)
        start = time.monotonic()
        try:
            with pytest.raises(TransientSourceError, match="timed out after 1 s"):
                client.server_time()
        finally:
            stop.set()
        took = time.monotonic() - start
    # Two attempts of at most 1 s each (the peer would have trickled for 2,000 s); before
    # the deadline each socket read reset the clock and one attempt lasted as long as the
    # peer kept sending.
    assert took < 2 * 1.0 + 1.0


def test_the_exchange_clock_call_of_the_dashboard_has_a_deadline():
    from dashboard.queries import source_now

    stop = threading.Event()
    with peer(trickle(stop)) as url:
        start = time.monotonic()
        try:
            now, answered = source_now.__wrapped__(url)
        finally:
            stop.set()
        took = time.monotonic() - start
    assert not answered  # this machine's clock instead, at once
    assert took < 2.0 + 1.0  # the overview's 2 s budget, not minutes


def test_a_body_over_the_cap_is_refused_and_named(monkeypatch):
    monkeypatch.setattr(http_mod, "MAX_BODY_BYTES", 1_000_000)

    def declared(h):
        h.send_response(200)
        h.send_header("Content-Length", str(50_000_000))
        h.end_headers()

    def undeclared(h):  # no length: the cap must hold while reading
        h.send_response(200)
        h.end_headers()
        chunk = b"x" * 65536
        for _ in range(100):
            h.wfile.write(chunk)

    for handle in (declared, undeclared):
        with peer(handle) as url:
            with pytest.raises(SourceError, match="cap") as err:
                BybitClient(url, timeout=5.0, max_retries=0).server_time()
        assert err.value.field == "body"
        assert err.value.source == "bybit"


def test_deeply_nested_json_is_a_named_error():
    def nested(h):
        body = b"[" * 200_000 + b"]" * 200_000
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    with peer(nested) as url:
        with pytest.raises(SourceError, match="nested too deeply") as err:
            BybitClient(url, timeout=5.0, max_retries=0).server_time()
    assert err.value.field == "body"


def test_the_live_job_holds_no_lock_while_the_exchange_hangs(clean_replay, tmp_path):
    """A peer in front of the replay exchange holds every kline request until released;
    meanwhile another process-like writer and a reader must get into the database."""
    from sentiment.services.live import live_update

    store = Store(str(tmp_path / "hang.duckdb"))
    store.init()
    config = dataclasses.replace(load_config(), start_date=dt.date(2022, 3, 8))
    clean_replay.set_clock(dt.datetime(2022, 3, 9))
    arrived, release = threading.Event(), threading.Event()

    def proxy(h):
        if "/kline" in h.path:
            arrived.set()
            release.wait(30)
        answer = requests.get(clean_replay.base_url + h.path, timeout=10)
        h.send_response(answer.status_code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(answer.content)))
        h.end_headers()
        h.wfile.write(answer.content)

    errors: list[BaseException] = []
    with peer(proxy) as url:
        def run():
            try:
                live_update(store, config, BybitClient(url, timeout=30.0))
            except BaseException as exc:  # reported below
                errors.append(exc)

        job = threading.Thread(target=run)
        job.start()
        try:
            assert arrived.wait(30), "the live job never asked for klines"
            # While the exchange hangs, another process (a dashboard, a backfill) gets in:
            # DuckDB's lock is per process, so the reader and the writer run apart.
            for read_only in (True, False):
                probe = subprocess.run(
                    [sys.executable, "-c", textwrap.dedent(f"""
                        from sentiment.io.store import Store
                        store = Store({str(store.path)!r}, lock_timeout=2.0)
                        with store.connect(read_only={read_only}) as conn:
                            print(conn.execute("SELECT count(*) FROM candles").fetchone()[0])
                    """)], capture_output=True, text=True, timeout=60)
                assert probe.returncode == 0, (
                    f"the live job held the database while waiting: {probe.stderr[-300:]}")
                assert probe.stdout.strip() == "0"
        finally:
            release.set()
            job.join(60)
    assert not errors, errors
    assert len(store.read("candles")) > 0  # and it still wrote its rows afterwards
