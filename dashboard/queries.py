"""Everything the dashboard reads, and its caching.

DuckDB lets one process write a file or many processes read it, never both at once. The
pipeline's writers retry a locked file with backoff, so the dashboard must never keep a
connection open: each page read opens one read-only connection, runs its queries, and closes
it within milliseconds (retrying while a writer commits). Results are cached for part of the
refresh period with ``st.cache_data``. The SQL is in ``sentiment/sql/dashboard.sql``; values
are bound as parameters, never formatted into it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import OrderedDict

import pandas as pd
import streamlit as st

from sentiment.config import Config, load_config
from sentiment.core.evaluation import Evaluation, evaluate
from sentiment.core.liquidations import LiquidationMonitor
from sentiment.core.timeutil import epoch_ms, epoch_ms_array
from sentiment.errors import SentimentError
from sentiment.io.retry import DASHBOARD_LOCK_WAIT_SECONDS
from sentiment.io.sources.bybit import BybitClient
from sentiment.io.store import MISSING_TABLE_ERRORS, Store, named_queries
from sentiment.models import INTERVAL_MINUTES
from sentiment.settings import Settings, get_settings

log = logging.getLogger(__name__)
SQL = named_queries("dashboard.sql")
#: How long a read waits for a writer to finish committing before the page says so
#: (``dashboard.lock_wait_seconds``, set at every page run by :func:`context`).
LOCK_TIMEOUT_S = DASHBOARD_LOCK_WAIT_SECONDS
#: How long a result is reused (by every open page) before the database is read again.
CACHE_TTL_S = 2
#: How long the exchange clock is trusted before it is asked again.
CLOCK_TTL_S = 5


class NoData(Exception):
    """The database is missing or holds no history yet; the message says what to run."""


class Busy(Exception):
    """A writer held the database longer than :data:`LOCK_TIMEOUT_S`."""


def context() -> tuple[Settings, Config]:
    """The process settings (where the database and the exchange are) and the validated
    configuration; read at every page run, so a configuration error shows at once."""
    global LOCK_TIMEOUT_S
    config = load_config()
    LOCK_TIMEOUT_S = config.dashboard.lock_wait_seconds
    return get_settings(), config


#: The last answer to each read, and when it was read: shown, with a note, while a writer
#: holds the database past :data:`LOCK_TIMEOUT_S` (process-wide, like the cache). Bounded:
#: the least recently used reads go first.
_LAST_GOOD: OrderedDict[tuple, tuple[list[pd.DataFrame], dt.datetime]] = OrderedDict()
LAST_GOOD_KEPT = 64
#: Per database, the time of the data shown while it is busy (absent when it is not).
_SHOWING_AS_OF: dict[str, dt.datetime] = {}


def _read(db_path: str, queries: list[tuple[str, list]]) -> list[pd.DataFrame]:
    store = Store(db_path, lock_timeout=LOCK_TIMEOUT_S)
    key = (db_path, json.dumps(queries, default=str))
    try:
        with store.connect(read_only=True) as conn:
            frames = [conn.execute(SQL[name], params).df() for name, params in queries]
    except FileNotFoundError:
        raise NoData(f"No database at {db_path} yet.") from None
    except MISSING_TABLE_ERRORS:
        raise NoData(f"The database {db_path} has no sentiment tables yet.") from None
    except SentimentError as exc:  # the lock wait ran out
        log.info("dashboard read of %s waited out the lock: %s", db_path, exc)
        if key in _LAST_GOOD:
            frames, when = _LAST_GOOD[key]
            _SHOWING_AS_OF[db_path] = min(when, _SHOWING_AS_OF.get(db_path, when))
            return [f.copy() for f in frames]
        raise Busy("the pipeline is writing to the database") from None
    _LAST_GOOD[key] = (frames, dt.datetime.now(dt.UTC).replace(tzinfo=None))
    _LAST_GOOD.move_to_end(key)
    while len(_LAST_GOOD) > LAST_GOOD_KEPT:
        _LAST_GOOD.popitem(last=False)
    _SHOWING_AS_OF.pop(db_path, None)
    return frames


def showing_as_of(db_path: str) -> dt.datetime | None:
    """When the data shown were read, if the database was busy at the last read (the page
    shows its last good view meanwhile); None when every read was fresh."""
    return _SHOWING_AS_OF.get(db_path)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def latest(db_path: str, interval: str) -> pd.DataFrame:
    """The newest sentiment_history row of every symbol at ``interval``."""
    (frame,) = _read(db_path, [("latest", [interval])])
    return frame


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def extents(db_path: str) -> pd.DataFrame:
    (frame,) = _read(db_path, [("extents", [])])
    if frame.empty:
        raise NoData(f"The database {db_path} holds no sentiment history yet.")
    return frame


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def history(db_path: str, symbol: str, interval: str, start: dt.datetime,
            end: dt.datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows with their bar's OHLC, regime transitions) of the bars opened in [start, end)."""
    rows, transitions = _read(db_path, [
        ("history", [INTERVAL_MINUTES[interval], symbol, interval, start, end]),
        ("transitions", [symbol, interval, start, end]),
    ])
    return rows, transitions


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def quality(db_path: str, symbol: str, interval: str, start: dt.datetime,
            end: dt.datetime) -> Evaluation:
    """The regime-quality evaluation (:func:`sentiment.core.evaluation.evaluate`) of the rows
    :func:`history` reads (under 0.1 s for a year of 1h bars), cached like them."""
    rows, _ = history(db_path, symbol, interval, start, end)
    return evaluate(rows, interval)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def stream(db_path: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per symbol: how far the live stream got and its newest OBI sample, the liquidations
    of the hour before that); empty when no stream ever ran."""
    try:
        now, liquidations = _read(db_path, [("stream_now", []), ("stream_liquidations", [])])
    except NoData:  # a database from before the stream tables
        return pd.DataFrame(), pd.DataFrame()
    return now, liquidations


def liquidation_pressure(liquidations: pd.DataFrame, row: dict, window_seconds: int):
    """The stream's liquidation pressure of one symbol as of its stream time (watched since
    its first order-book sample)."""
    first = row["first_ts"]
    monitor = LiquidationMonitor(row["symbol"], window_seconds * 1000,
                                 since_ms=None if pd.isna(first) else epoch_ms(first))
    if len(liquidations):
        mine = liquidations[liquidations["symbol"] == row["symbol"]]
        for ts, r in zip(epoch_ms_array(mine["ts"]), mine.itertuples(index=False), strict=True):
            monitor.add(int(ts), r.side, float(r.size), float(r.price))
    return monitor.reading(epoch_ms(row["through"]))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def exchange(db_path: str, symbol: str, oi_interval: str, ls_period: str, start: dt.datetime,
             end: dt.datetime) -> dict[str, pd.DataFrame]:
    """Funding, open interest, long/short buy ratio, Fear & Greed and the stream's order-book
    imbalance and liquidations in [start, end)."""
    names = ("funding", "open_interest", "long_short", "fear_greed", "obi", "liquidations")
    frames = _read(db_path, [
        ("funding", [symbol, start, end]),
        ("open_interest", [symbol, oi_interval, start, end]),
        ("long_short", [symbol, ls_period, start, end]),
        ("fear_greed", [start, end]),
        ("obi_series", [symbol, start, end]),
        ("liquidation_series", [symbol, start, end]),
    ])
    return dict(zip(names, frames, strict=True))


@st.cache_data(ttl=CLOCK_TTL_S, show_spinner=False)
def source_now(base_url: str) -> tuple[pd.Timestamp, bool]:
    """The exchange's clock (the replay exchange reports its own), and whether it answered;
    this machine's UTC clock when it did not."""
    client = BybitClient(base_url, timeout=2.0, max_retries=0)
    try:
        return client.server_time(), True
    except (SentimentError, OSError):
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        return pd.Timestamp(now), False
    finally:
        client.close()


def state_probabilities(frame: pd.DataFrame) -> pd.DataFrame:
    """The HMM label probabilities of each row (``hmm_state_probabilities`` JSON) as one
    column per label, indexed by bar close; rows without a model are left out."""
    values = frame["hmm_state_probabilities"]
    keep = values.notna()
    parsed = [json.loads(v) for v in values[keep]]
    return pd.DataFrame(parsed, index=pd.DatetimeIndex(frame.loc[keep, "timestamp"]))
