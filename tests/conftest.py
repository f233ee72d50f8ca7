"""Shared fixtures: a replay exchange on 127.0.0.1, a temporary DuckDB file and a throwaway
PostgreSQL server."""

from __future__ import annotations

import os
import shutil

import pytest

# Tests never reach the internet: every client is pointed at the replay exchange, and these
# defaults make a forgotten override fail fast on loopback instead of calling Bybit.
os.environ.setdefault("BYBIT_BASE_URL", "http://127.0.0.1:9")
os.environ.setdefault("FEAR_GREED_URL", "http://127.0.0.1:9/fng/")
os.environ.setdefault("BYBIT_WS_URL", "ws://127.0.0.1:9/v5/public/linear")

# Fixtures whose first use builds a database through dozens of Dagster runs (15-25 s): a test
# asking for one is slow, so `pytest -m "not slow"` never builds them.
SLOW_FIXTURES = {"dashboard_db", "live_db"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def replay():
    from replay.server import ReplayExchange

    with ReplayExchange(port=0) as exchange:
        yield exchange


@pytest.fixture
def clean_replay(replay):
    """The shared replay exchange with no queued faults, an empty log and the default clock."""
    from replay.server import BUNDLE_END

    replay.clear_faults()
    replay.clear_requests()
    replay.set_clock(BUNDLE_END, speed=0.0)
    yield replay
    replay.clear_faults()
    replay.set_clock(BUNDLE_END, speed=0.0)


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "sentiment.duckdb")


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server on 127.0.0.1 for the session (scripts/local_postgres.py):
    ``postgresql://postgres@127.0.0.1:PORT``, without a database name."""
    from local_postgres import postgres_binaries, throwaway_postgres

    bin_dir = postgres_binaries()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (make test installs Debian's postgresql)")
    with throwaway_postgres(bin_dir) as url:
        yield url


@pytest.fixture
def pg_url(postgres_server, request):
    """A new, empty PostgreSQL database of its own for this test: its URL."""
    import re

    from local_postgres import create_database

    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40] + "_" + (
        os.urandom(4).hex())
    return create_database(postgres_server, name)


@pytest.fixture(params=["duckdb", "postgresql"])
def any_db(request, tmp_path):
    """``SENTIMENT_DB`` of an empty database on each backend in turn (DESIGN 9.5: tests of
    the invariants run on both)."""
    if request.param == "duckdb":
        return str(tmp_path / "sentiment.duckdb")
    return request.getfixturevalue("pg_url")


#: The window of the dashboard's test database: long enough for HMM models on 1h bars.
DASHBOARD_FIRST, DASHBOARD_LAST = "2022-03-01", "2022-03-31"


def dashboard_config():
    """The configuration of the dashboard's test database: a short HMM window, so a month
    of 1h bars has weekly models."""
    import dataclasses

    from sentiment.config import load_config

    config = load_config()
    return dataclasses.replace(config, hmm=dataclasses.replace(
        config.hmm, window_bars=200, min_bars=150))


def build_database(replay, db_path: str, first: str, last: str, config=None) -> None:
    """Market data, Fear & Greed and sentiment_history (with HMM models) for both symbols
    over [first, last], through the real Dagster jobs against the replay exchange
    (``config`` defaults to :func:`dashboard_config`)."""
    import dataclasses

    from dagster import DagsterInstance

    from orchestration.definitions import build_definitions
    from sentiment.settings import get_settings

    settings = dataclasses.replace(get_settings(), db_path=db_path,
                                   bybit_base_url=replay.base_url,
                                   fear_greed_url=replay.fear_greed_url)
    defs = build_definitions(config or dashboard_config(), settings)
    pairs = {"dagster/asset_partition_range_start": f"{first}|BTCUSDT",
             "dagster/asset_partition_range_end": f"{last}|ETHUSDT"}
    days = {"dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last}
    for job, tags in (("market_data_job", pairs), ("fear_greed_job", days),
                      ("sentiment_job", pairs)):
        result = defs.resolve_job_def(job).execute_in_process(
            tags=tags, instance=DagsterInstance.ephemeral(), raise_on_error=True)
        assert result.success, job


@pytest.fixture(scope="session")
def dashboard_db(replay, tmp_path_factory):
    """A database the dashboard tests only read (copy it to change it)."""
    db = str(tmp_path_factory.mktemp("dashboard") / "sentiment.duckdb")
    build_database(replay, db, DASHBOARD_FIRST, DASHBOARD_LAST)
    return db


def with_stream_data(db: str, staging_dir):
    """Add an hour and a half of live-stream data for BTCUSDT ending at the last bar of
    ``db`` (staged and loaded like the stream's): OBI samples every minute, steady short
    liquidations, then a burst of long ones in the last two minutes. Returns that end."""
    import numpy as np
    import pandas as pd

    from sentiment.io.staging import Staging, load_staged
    from sentiment.io.store import Store

    store = Store(db)
    end = pd.Timestamp(store.query("SELECT max(timestamp) AS t FROM sentiment_history")["t"]
                       .iloc[0])
    start = end - pd.Timedelta(minutes=90)
    minutes = pd.date_range(start, end, freq="1min", inclusive="left")
    ms = [int(t.value // 1_000_000) for t in minutes]
    obi = [{"symbol": "BTCUSDT", "ts": t, "obi": round(np.sin(i / 7), 6)}
           for i, t in enumerate(ms)]
    liq = [{"symbol": "BTCUSDT", "ts": t + 5_000, "side": "Sell", "price": 40_000.0,
            "size": 0.05, "seq": t} for t in ms[::3]]
    liq += [{"symbol": "BTCUSDT", "ts": t + 9_000 + k, "side": "Buy", "price": 39_500.0,
             "size": 2.0, "seq": t + k} for t in ms[-2:] for k in range(5)]
    staging = Staging(staging_dir)
    staging.write({"orderbook_imbalance": obi, "liquidations": liq,
                   "stream_state": [{"symbol": "BTCUSDT", "through": ms[-1] + 30_000}]})
    load_staged(store, staging)
    return end


@pytest.fixture
def ws():
    """A replay WebSocket on 127.0.0.1 for BTCUSDT and ETHUSDT, pushing every 20 ms."""
    from replay.ws import ReplayStream

    with ReplayStream(symbols=["BTCUSDT", "ETHUSDT"], push_seconds=0.02) as server:
        yield server


@pytest.fixture(scope="session")
def _seeds(tmp_path_factory):
    return {}, tmp_path_factory.mktemp("seeds")


@pytest.fixture
def seeded(request, _seeds, clean_replay):
    """``seeded(defs, db_path, *runs)``: ``db_path`` as the successful ``runs`` (pairs of a
    job name and its ``execute_in_process`` arguments) of ``defs`` leave it, at the replay
    exchange's current clock. The first test of a module to ask really runs them and keeps a
    copy of the file; the next ones asking for the same runs at the same clock start from the
    copy: the runs give the same database every time, so each test sees the state it would
    have built, for a fraction of the time. Tests of one module sharing a seed must build
    ``defs`` alike."""
    from helpers import run_job

    cache, directory = _seeds

    def seed(defs, db_path: str, *runs: tuple[str, dict]) -> None:
        key = (request.module.__name__, clean_replay.now_ms(), repr(runs))
        files = (db_path, db_path + ".wal")
        if key in cache:
            for source, target in zip(cache[key], files, strict=True):
                if os.path.exists(source):
                    shutil.copyfile(source, target)
            return
        for job, kwargs in runs:
            run_job(defs, job, **kwargs)
        copies = [str(directory / f"{len(cache)}{os.path.splitext(f)[1]}") for f in files]
        for source, target in zip(files, copies, strict=True):
            if os.path.exists(source):
                shutil.copyfile(source, target)
        cache[key] = copies

    return seed
