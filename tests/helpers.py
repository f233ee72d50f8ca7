"""Helpers shared by the test modules (imported as ``helpers``: pytest puts ``tests/`` on
``sys.path`` for ``conftest.py``). Fixtures live in ``conftest.py``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
import time

import numpy as np
import pandas as pd


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def until(condition, timeout: float = 10.0) -> None:
    """Poll ``condition`` (a state the code under test reaches) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def ms(t: str | dt.datetime | pd.Timestamp) -> int:
    """Epoch milliseconds of a naive-UTC time."""
    return int(pd.Timestamp(t).value // 1_000_000)


# --------------------------------------------------------------------------- Dagster


def live_config(start: dt.date, **live):
    """The configuration of the live-loop tests: history from ``start`` and a short HMM
    window, so a weekly retrain inside a few days of bars has a model; ``live`` overrides
    fields of ``config.live``."""
    from sentiment.config import load_config

    config = load_config()
    hmm = dataclasses.replace(config.hmm, window_bars=150, min_bars=100)
    return dataclasses.replace(config, start_date=start, hmm=hmm,
                               live=dataclasses.replace(config.live, **live))


def definitions(replay, db_path: str, config, **settings):
    """The project's Definitions on ``db_path`` against the replay exchange; ``settings``
    overrides further fields of the settings (``stream_dir``...)."""
    from orchestration.definitions import build_definitions
    from sentiment.settings import get_settings

    merged = dataclasses.replace(get_settings(), db_path=db_path,
                                 bybit_base_url=replay.base_url,
                                 fear_greed_url=replay.fear_greed_url, **settings)
    return build_definitions(config, merged)


def run_job(defs, job: str, instance=None, **kwargs):
    """Execute ``job`` in process on ``instance`` (a new ephemeral one by default) and
    assert that it succeeded, naming the failed steps' errors."""
    from dagster import DagsterInstance

    result = defs.resolve_job_def(job).execute_in_process(
        raise_on_error=False, instance=instance or DagsterInstance.ephemeral(), **kwargs)
    failures = [e.event_specific_data.error.message.splitlines()[0]
                for e in result.all_events if e.is_step_failure]
    assert result.success, (job, failures)
    return result


# --------------------------------------------------------------------------- tables


def sorted_by_key(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["symbol", "interval", "timestamp"], ignore_index=True)


def assert_tables_equal(a: pd.DataFrame, b: pd.DataFrame, tol=1e-9) -> None:
    """Same rows by (symbol, interval, timestamp); numbers within ``tol``, NULLs alike."""
    a, b = sorted_by_key(a), sorted_by_key(b)
    assert len(a) == len(b)
    for column in a.columns:
        x, y = a[column], b[column]
        assert (x.isna().to_numpy() == y.isna().to_numpy()).all(), column
        if pd.api.types.is_numeric_dtype(x.dtype):
            xv = x.to_numpy(dtype=float, na_value=np.nan)
            yv = y.to_numpy(dtype=float, na_value=np.nan)
            ok = np.isnan(xv) | (np.abs(xv - yv) <= tol)
            assert ok.all(), (column, int((~ok).sum()))
        else:
            assert (x.fillna("-").astype(str) == y.fillna("-").astype(str)).all(), column


# --------------------------------------------------------------------------- WebSocket pushes

BOOK = "orderbook.50.BTCUSDT"


def snap(u: int, bids, asks, ts: int) -> dict:
    """A BTCUSDT order-book snapshot with update id ``u``."""
    return {"topic": BOOK, "type": "snapshot", "ts": ts,
            "data": {"s": "BTCUSDT", "b": bids, "a": asks, "u": u, "seq": u}}


def delta(u: int, ts: int, bids=(), asks=()) -> dict:
    """A BTCUSDT order-book delta with update id ``u``."""
    return {"topic": BOOK, "type": "delta", "ts": ts,
            "data": {"s": "BTCUSDT", "b": list(bids), "a": list(asks), "u": u, "seq": u}}
