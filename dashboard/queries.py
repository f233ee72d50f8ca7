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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import psycopg
import streamlit as st

from sentiment.config import Config, load_config
from sentiment.core.evaluation import Evaluation, evaluate
from sentiment.core.liquidations import LiquidationMonitor
from sentiment.core.timeutil import epoch_ms, epoch_ms_array
from sentiment.errors import SentimentError
from sentiment.io.retry import DASHBOARD_LOCK_WAIT_SECONDS
from sentiment.io.sources.bybit import BybitClient
from sentiment.io.staging import Staging
from sentiment.io.store import MISSING_TABLE_ERRORS, DatabaseBusy, Store, named_queries
from sentiment.models import INTERVAL_MINUTES
from sentiment.provenance import SYNTHETIC_TABLES, series_tags
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


class Unavailable(Exception):
    """The database cannot show anything right now; the message is one sentence for the
    page (never a traceback)."""


class NoData(Unavailable):
    """The database is missing or holds no history yet; the message says what is missing."""


class Busy(Unavailable):
    """A writer held the database longer than :data:`LOCK_TIMEOUT_S`."""


class Unreadable(Unavailable):
    """The database could not be read for another reason (not a database file, a server
    that does not answer); the message says which and why, in one line."""


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
_LAST_GOOD: OrderedDict[tuple, tuple[Any, dt.datetime]] = OrderedDict()
LAST_GOOD_KEPT = 64
#: Per database, the time of the data shown while it is busy (absent when it is not).
_SHOWING_AS_OF: dict[str, dt.datetime] = {}


def _is_lock_wait(exc: BaseException) -> bool:
    """Whether a store error is the lock wait running out (a writer holds the file), not
    a file DuckDB cannot open at all (also an IO error)."""
    return isinstance(exc, DatabaseBusy)


def _guarded(db_path: str, key: tuple, read: Callable[[Store], Any]) -> Any:
    """``read(store)`` through the store's short read-only connections, every failure turned
    into an :class:`Unavailable` with one sentence. While a writer holds the database, the
    last good answer to the same read is returned (and :func:`showing_as_of` says since
    when); a read never answered before raises :class:`Busy`."""
    store = Store(db_path, lock_timeout=LOCK_TIMEOUT_S)
    key = (db_path, *key)
    try:
        result = read(store)
    except FileNotFoundError:
        raise NoData(f"No database at {db_path} yet.") from None
    except MISSING_TABLE_ERRORS:
        raise NoData(f"The database {db_path} has no sentiment tables yet.") from None
    except SentimentError as exc:
        if not _is_lock_wait(exc):
            raise Unreadable(f"The database {db_path} cannot be read: "
                             f"{str(exc).splitlines()[0]}") from None
        log.info("dashboard read of %s waited out the lock: %s", db_path, exc)
        if key in _LAST_GOOD:
            result, when = _LAST_GOOD[key]
            _SHOWING_AS_OF[db_path] = min(when, _SHOWING_AS_OF.get(db_path, when))
            return _copy(result)
        raise Busy("the pipeline is writing to the database") from None
    except (duckdb.Error, psycopg.Error, OSError) as exc:
        raise Unreadable(f"The database {db_path} cannot be read: "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                         ) from None
    _LAST_GOOD[key] = (result, dt.datetime.now(dt.UTC).replace(tzinfo=None))
    _LAST_GOOD.move_to_end(key)
    while len(_LAST_GOOD) > LAST_GOOD_KEPT:
        _LAST_GOOD.popitem(last=False)
    _SHOWING_AS_OF.pop(db_path, None)
    return result


def _copy(result: Any) -> Any:
    if isinstance(result, list):
        return [f.copy() if isinstance(f, pd.DataFrame) else f for f in result]
    return result.copy() if hasattr(result, "copy") else result


def _read(db_path: str, queries: list[tuple[str, list]]) -> list[pd.DataFrame]:
    """The named queries of ``dashboard.sql`` through one read-only connection."""
    def run(store: Store) -> list[pd.DataFrame]:
        with store.connect(read_only=True) as conn:
            return [conn.execute(SQL[name], params).df() for name, params in queries]

    return _guarded(db_path, (json.dumps(queries, default=str),), run)


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


#: The squeeze badge needs a burst, not a lone liquidation: the window's notional must be at
#: least SQUEEZE_MULTIPLE x the symbol's usual notional per window (the median hour over the
#: last SQUEEZE_BASELINE_DAYS days, scaled to the window) and at least SQUEEZE_MIN_NOTIONAL.
SQUEEZE_MULTIPLE = 3.0
SQUEEZE_BASELINE_DAYS = 7
SQUEEZE_MIN_NOTIONAL = 100_000.0


def usual_window_notional(hourly: pd.DataFrame, since: pd.Timestamp, through: pd.Timestamp,
                          window_seconds: int) -> float:
    """The symbol's usual liquidated notional per window: the median of its hourly totals
    (``liquidation_series`` rows: ts, longs, shorts) over the whole hours from ``since`` to
    ``through`` (an hour without any counts as 0), times window / hour."""
    start, end = pd.Timestamp(since).floor("h"), pd.Timestamp(through).floor("h")
    hours = pd.date_range(start, end, freq="h", inclusive="left")
    if len(hours) == 0:
        return 0.0
    totals = pd.Series(0.0, index=hours)
    if len(hourly):
        t = pd.DatetimeIndex(pd.to_datetime(hourly["ts"]))
        sums = pd.Series((hourly["longs"] + hourly["shorts"]).to_numpy(float), index=t)
        inside = sums[(t >= start) & (t < end)]
        totals.loc[inside.index] = inside.to_numpy()
    return float(totals.median()) * window_seconds / 3600


def squeeze_shown(reading, usual: float) -> str | None:
    """The squeeze the overview shows ("long", "short" or None): the stream's call (one side
    over 80 % of the window) when the window's notional is a burst for this symbol."""
    if reading.squeeze is None:
        return None
    needed = max(SQUEEZE_MIN_NOTIONAL, SQUEEZE_MULTIPLE * usual)
    return reading.squeeze if reading.volume >= needed else None


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
def liquidation_baseline(db_path: str, symbol: str, through: dt.datetime,
                         window_seconds: int) -> float:
    """:func:`usual_window_notional` of ``symbol`` over the last
    :data:`SQUEEZE_BASELINE_DAYS` days before ``through``, counted from its first
    liquidation in them (before it, the stream was not watching)."""
    since = pd.Timestamp(through) - pd.Timedelta(days=SQUEEZE_BASELINE_DAYS)
    (hourly,) = _read(db_path, [("liquidation_series", [symbol, since, through])])
    if hourly.empty:
        return 0.0
    first = pd.to_datetime(hourly["ts"]).min()
    return usual_window_notional(hourly, first, pd.Timestamp(through), window_seconds)


def staged_at(stream_dir: str) -> dt.datetime | None:
    """When the stream last staged a file that is still waiting to be loaded (this
    machine's clock, naive UTC); None when nothing is waiting (or the directory is not
    visible from here)."""
    newest = None
    for path in Staging(Path(stream_dir)).pending():
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:  # loaded and deleted meanwhile
            continue
        newest = mtime if newest is None else max(newest, mtime)
    if newest is None:
        return None
    return dt.datetime.fromtimestamp(newest, dt.UTC).replace(tzinfo=None)


def stream_silence(row: dict, staged: dt.datetime | None, wall_now: dt.datetime) -> float:
    """Seconds since the live stream last showed life, by this machine's clock: its newest
    staged file still waiting for the loader, or else when its data were last loaded
    (``stream_state.loaded_at``). Never the exchange time the messages carry: the replay
    exchange's clock runs up to thousands of times faster than this one, so a loader a few
    seconds behind would make a running stream look hours old."""
    signs = [pd.Timestamp(row["loaded_at"])] if not pd.isna(row.get("loaded_at")) else []
    if staged is not None:
        signs.append(pd.Timestamp(staged))
    if not signs:
        return float("inf")
    return max(0.0, (pd.Timestamp(wall_now) - max(signs)).total_seconds())


@st.cache_data(ttl=60, show_spinner=False)
def provenance(db_path: str, symbol: str, at: dt.datetime) -> dict[str, str]:
    """Which of ``symbol``'s series at ``at`` (a bar close, or the stream's exchange time)
    are not market data: :func:`sentiment.provenance.series_tags`, ``{table: "synthetic" or
    "derived"}``, re-read every minute; empty for market data or when nothing is stored."""
    def read(store: Store) -> dict[str, str]:
        with store.connect(read_only=True) as conn:
            return series_tags(conn, symbol, at)

    try:
        return _guarded(db_path, ("provenance", symbol, str(at)), read)
    except NoData:
        return {}


def tier_notes(series: dict[str, str]) -> dict[str, str]:
    """The sub-score tiers fed by a series that is not market data, with a note."""
    notes = {}
    if set(SYNTHETIC_TABLES) & set(series):
        notes["exchange"] = "partly synthetic"
    return notes


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def recent_closes(db_path: str, symbol: str, interval: str, through: dt.datetime
                  ) -> pd.Series:
    """The closes of ``symbol`` at ``interval`` over the day up to ``through`` (and the bar
    before it), indexed by bar close: what the price change is read from."""
    bar = dt.timedelta(minutes=INTERVAL_MINUTES[interval])
    start = through - dt.timedelta(days=1) - bar - dt.timedelta(seconds=1)
    rows, _ = history(db_path, symbol, interval, start, through)
    return pd.Series(rows["close"].to_numpy(float), index=pd.to_datetime(rows["timestamp"]))


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
