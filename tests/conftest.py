"""Shared fixtures: a replay exchange on 127.0.0.1 and a temporary DuckDB file."""

from __future__ import annotations

import os

import pytest

# Tests never reach the internet: every client is pointed at the replay exchange, and these
# defaults make a forgotten override fail fast on loopback instead of calling Bybit.
os.environ.setdefault("BYBIT_BASE_URL", "http://127.0.0.1:9")
os.environ.setdefault("FEAR_GREED_URL", "http://127.0.0.1:9/fng/")
os.environ.setdefault("BYBIT_WS_URL", "ws://127.0.0.1:9/v5/public/linear")


@pytest.fixture(scope="session")
def replay():
    from sentiment.sources.replay import ReplayExchange

    with ReplayExchange(port=0) as exchange:
        yield exchange


@pytest.fixture
def clean_replay(replay):
    """The shared replay exchange with no queued faults, an empty log and the default clock."""
    from sentiment.sources.replay import BUNDLE_END

    replay.clear_faults()
    replay.clear_requests()
    replay.set_clock(BUNDLE_END, speed=0.0)
    yield replay
    replay.clear_faults()
    replay.set_clock(BUNDLE_END, speed=0.0)


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "sentiment.duckdb")
