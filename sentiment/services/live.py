"""The live update: ingest what is new, extend ``sentiment_history`` from the checkpoint.

One call brings every configured symbol and interval up to the exchange's clock:

1. fetch the bars closed since the last stored one and the slower data published since
   (funding, open interest, long/short, the newest Fear & Greed day), with no connection to
   the database open;
2. in one transaction: load the stream's staged files, store what was fetched, and for each
   symbol and interval run :func:`sentiment.services.pipeline.compute` (the backfill's own
   computation) from the engine state in ``tracker_state``, over the bars after it; write
   their rows, the regime transitions and the new checkpoint.

The checkpoint is kept at the last *final* bar (:mod:`sentiment.services.finality`); rows
after it are written too (so the newest state is visible at once) and recomputed by the
next run when the late data has arrived. That is what makes a live history equal a
backfill. A checkpoint that no longer continues the stored bars (a late bar, another engine
version or configuration) makes the run compute the whole history again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from sentiment.config import Config
from sentiment.core.timeutil import epoch_ms, ms_to_datetime, naive_utc_datetime
from sentiment.errors import CheckpointMismatch
from sentiment.io.sources.bybit import BybitClient
from sentiment.io.sources.fear_greed import FearGreedClient
from sentiment.io.staging import Staging, StagingError, load_staged
from sentiment.io.store import Slice, Store, named_queries
from sentiment.services.finality import (
    FAR_FUTURE,
    final_until_of,
    newest_rows,
    stream_limits,
)
from sentiment.services.pipeline import (
    compute,
    interval_delta,
    load_candles,
    load_inputs,
    model_rows,
)

log = logging.getLogger(__name__)

_MS = dt.timedelta(milliseconds=1)
FETCH_WORKERS = 8  # concurrent requests of one live update


@dataclass
class LiveResult:
    """What one live update did, per (symbol, interval)."""

    bars: dict[tuple[str, str], int] = field(default_factory=dict)
    final_until: dict[tuple[str, str], dt.datetime | None] = field(default_factory=dict)
    ingested: dict[str, int] = field(default_factory=dict)
    touched_dates: set[tuple[str, str]] = field(default_factory=set)  # (date, symbol)
    staged: dict[str, int] = field(default_factory=dict)  # stream rows loaded, by table
    staging_error: str | None = None


# --------------------------------------------------------------------------- ingestion


def fetch_new(store: Store, config: Config, bybit: BybitClient,
              fear_greed: FearGreedClient | None, now: dt.datetime) -> dict[str, pd.DataFrame]:
    """Everything published since the newest stored row, up to ``now``, by table.

    The requests go out concurrently (each client's rate limit still holds). Nothing is
    written here, and no connection to the database stays open while they wait: the caller
    stores the rows in one transaction once every request has answered, so a failed request
    stores nothing and a slow peer never holds the write lock.
    """
    start_default = dt.datetime.combine(config.start_date, dt.time())
    ex = config.exchange_data
    newest = newest_rows(store)

    def since(key, step):
        last = newest.get(key)
        return last + step if last else start_default

    fetches: list[tuple[str, Callable[[], pd.DataFrame]]] = []
    after = {(s, i): since(("candles", s, i), interval_delta(i))
             for s in config.symbols for i in config.intervals}
    # A bar the exchange left out of an earlier answer is asked for again.
    starts = first_missing_bars(store, config, after) if newest else after
    for symbol in config.symbols:
        for interval in config.intervals:
            start = min(after[(symbol, interval)], starts[(symbol, interval)])
            fetches.append(("candles", partial(bybit.klines, symbol, interval, start, now)))
        if ex.funding_rate:
            start = since(("funding_rates", symbol, None), _MS)
            fetches.append(("funding_rates",
                            partial(bybit.funding_history, symbol, start, now)))
        if ex.open_interest:
            code = ex.open_interest_interval
            start = since(("open_interest", symbol, code), _MS)
            fetches.append(("open_interest",
                            partial(bybit.open_interest, symbol, code, start, now)))
        if ex.long_short_ratio:
            code = ex.long_short_period
            start = since(("long_short_ratio", symbol, code), _MS)
            fetches.append(("long_short_ratio",
                            partial(bybit.long_short_ratio, symbol, code, start, now)))
    if fear_greed is not None and config.external_data.fear_greed:
        # API limit: no date range; the newest day is one row, the history ~3000.
        if ("fear_greed", None, None) in newest:
            fetches.append(("fear_greed", fear_greed.latest))
        else:
            fetches.append(("fear_greed", partial(fear_greed.history, start_default, now)))
    with ThreadPoolExecutor(max_workers=min(FETCH_WORKERS, len(fetches) or 1),
                            thread_name_prefix="ingest") as pool:
        futures = [(table, pool.submit(fetch)) for table, fetch in fetches]
        upserts: dict[str, list[pd.DataFrame]] = {}
        for table, future in futures:
            frame = future.result()
            if table == "fear_greed":
                frame = frame[frame["ts"] <= pd.Timestamp(now)]
            upserts.setdefault(table, []).append(frame)
    return {t: pd.concat([f for f in fs if len(f)], ignore_index=True)
            for t, fs in upserts.items() if any(len(f) for f in fs)}


#: How far back the live job looks for a bar an earlier answer left out.
GAP_LOOKBACK = dt.timedelta(days=3)


def first_missing_bars(store: Store, config: Config, after: dict[tuple[str, str], dt.datetime]
                       ) -> dict[tuple[str, str], dt.datetime]:
    """Per (symbol, interval), the open time of the first bar missing between the stored
    bars of the last :data:`GAP_LOOKBACK` before ``after[key]`` (``after[key]`` when there
    is none), in one query."""
    recent = store.query(named_queries("queries.sql")["recent_candle_times"],
                         [GAP_LOOKBACK], read_only=False)
    out = dict(after)
    for (symbol, interval), rows in recent.groupby(["symbol", "interval"], sort=False):
        key = (str(symbol), str(interval))
        if key not in after:
            continue
        iv = pd.Timedelta(interval_delta(key[1]))
        times = pd.DatetimeIndex(pd.to_datetime(rows["open_time"]))
        times = times[(times >= after[key] - GAP_LOOKBACK) & (times < after[key])]
        if len(times) < 2:
            continue
        holes = np.flatnonzero((times[1:] - times[:-1]) > iv)
        if len(holes):
            out[key] = (times[holes[0]] + iv).to_pydatetime()
    return out


# --------------------------------------------------------------------------- computing


#: How far before the checkpoint the stream's rows are read: the liquidation intensity of a
#: bar averages the last hour's bars, so this only has to exceed an hour.
STREAM_LOOKBACK = dt.timedelta(days=3)


def checkpoint_of(store: Store, symbol: str, interval: str) -> dict | None:
    """The live checkpoint of one symbol and interval; ``last_ms`` (its bar's close) is read
    from the row, which checkpoints of earlier versions did not repeat in the state."""
    rows = store.read("tracker_state", where={"symbol": symbol, "interval": interval})
    if rows.empty:
        return None
    state = json.loads(rows["state"].iloc[0])
    return {**state, "last_ms": epoch_ms(rows["last_timestamp"].iloc[0])}


def _close_of(checkpoint: dict | None) -> dt.datetime | None:
    if checkpoint is None:
        return None
    return ms_to_datetime(checkpoint["last_ms"])


@dataclass
class IntervalUpdate:
    """What extending one symbol and interval produced (slices None: nothing to write)."""

    bars: int = 0
    final_until: dt.datetime | None = None  # the close of the last final bar
    history: Slice | None = None
    transitions: Slice | None = None
    state: pd.DataFrame | None = None  # the tracker_state row, at a new final bar
    models: list = field(default_factory=list)  # newly trained HMM models


def update_symbol(store: Store, config: Config, symbol: str, final_until: dt.datetime
                  ) -> dict[str, IntervalUpdate]:
    """Extend every interval of one symbol from its checkpoint."""
    resume = {i: checkpoint_of(store, symbol, i) for i in config.intervals}
    closes = [_close_of(c) for c in resume.values()]
    # The stream's rows count only in the bars that hold them: those after a checkpoint.
    stream_start = None
    if all(closes):
        stream_start = min(closes) - STREAM_LOOKBACK
    inputs = load_inputs(store, config, symbol, stream_start=stream_start)
    out = {}
    for interval in config.intervals:
        candles = load_candles(store, symbol, interval)
        if candles.empty:
            out[interval] = IntervalUpdate()
            continue
        last_close = _close_of(resume[interval])
        try:
            done = compute(store, config, symbol, interval, inputs, candles=candles,
                           resume=resume[interval], final_until=final_until)
        except CheckpointMismatch as exc:
            # After an upgrade of the engine or a change of the configuration the stored
            # rows were made by other rules; after a late bar the checkpoint no longer
            # continues the stored bars: compute the whole history again (rows replaced).
            log.warning("%s %s: %s; recomputing from the first stored bar", symbol,
                        interval, exc)
            last_close = None
            if stream_start is not None:
                inputs = load_inputs(store, config, symbol)
            done = compute(store, config, symbol, interval, inputs, candles=candles,
                           final_until=final_until)
        series = done.series
        if series.rows.empty:
            out[interval] = IntervalUpdate(final_until=last_close)
            continue
        where = {"symbol": symbol, "interval": interval}
        lo = (last_close + _MS) if last_close is not None else dt.datetime(1970, 1, 1)
        state_row = None
        if series.checkpoint is not None:
            state_row = pd.DataFrame([{"symbol": symbol, "interval": interval,
                                       "last_timestamp": series.checkpoint_time,
                                       "state": json.dumps(series.checkpoint,
                                                           allow_nan=False)}])
        out[interval] = IntervalUpdate(
            len(series.rows), series.checkpoint_time or last_close,
            Slice(series.rows, lo, FAR_FUTURE, where),
            Slice(series.transitions, lo, FAR_FUTURE, where), state_row, done.models)
    return out


#: Symbols updated at once on PostgreSQL, each in its own connection and transaction (a
#: DuckDB file takes one writer, so there they run one after another in one session).
LIVE_WORKERS = os.cpu_count() or 1


def live_update(store: Store, config: Config, bybit: BybitClient,
                fear_greed: FearGreedClient | None = None,
                staging: Staging | None = None, *, workers: int | None = None) -> LiveResult:
    """Bring every configured symbol and interval up to the exchange's clock (loading the
    stream's staged files first, when ``staging`` is given).

    The exchange is asked first, with no connection to the database open; the write lock is
    taken only afterwards, to load, compute and commit (a hanging peer used to hold it for
    minutes, and every reader with it).

    ``workers``: symbols computed at once (default: one on DuckDB, :data:`LIVE_WORKERS` on
    PostgreSQL). With more than one, what was fetched is committed first, then each symbol
    is computed and committed in its own connection; a symbol that fails leaves the others
    written, and its own rows and checkpoint as they were (the next run continues it).
    """
    if workers is None:
        workers = LIVE_WORKERS if store.is_postgres else 1
    workers = min(workers, len(config.symbols))
    if workers > 1 and not store.is_postgres:
        raise ValueError("a DuckDB file takes one writer: update its symbols with workers=1")
    now = naive_utc_datetime(bybit.server_time())
    fetched = fetch_new(store, config, bybit, fear_greed, now)
    result = LiveResult()
    with store.session():
        _ingest(store, result, fetched, staging)
        newest = newest_rows(store)
        streams = stream_limits(store, config, now)
        if workers <= 1:
            writes = _Writes()
            for symbol in config.symbols:
                final_until = final_until_of(newest, config, symbol, streams.get(symbol))
                updates = update_symbol(store, config, symbol, final_until)
                writes.add(updates)
                _record(result, symbol, updates)
            writes.commit(store)
            return result

    def one_symbol(symbol: str) -> dict[str, IntervalUpdate]:
        own = Store(store.url, lock_timeout=store.lock_timeout)
        final_until = final_until_of(newest, config, symbol, streams.get(symbol))
        with own.session():
            updates = update_symbol(own, config, symbol, final_until)
            writes = _Writes()
            writes.add(updates)
            writes.commit(own)
        return updates

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="symbol") as pool:
        done = list(pool.map(one_symbol, config.symbols))
    for symbol, updates in zip(config.symbols, done, strict=True):
        _record(result, symbol, updates)
    return result


def _ingest(store: Store, result: LiveResult, fetched: dict[str, pd.DataFrame],
            staging: Staging | None) -> None:
    """Load the stream's staged files and store what was fetched (each in one transaction)."""
    if staging is not None:
        try:
            result.staged = load_staged(store, staging).rows
        except StagingError as exc:  # the good files were loaded; the bad ones set aside
            result.staging_error = str(exc)
    if fetched:
        store.write(upsert=fetched)
    result.ingested = {t: len(f) for t, f in fetched.items()}


def _record(result: LiveResult, symbol: str, updates: dict[str, IntervalUpdate]) -> None:
    for interval, done in updates.items():
        result.bars[(symbol, interval)] = done.bars
        result.final_until[(symbol, interval)] = done.final_until
        if done.history is None:
            continue
        iv = interval_delta(interval)
        for ts in done.history.frame["timestamp"]:
            result.touched_dates.add(((pd.Timestamp(ts) - iv).strftime("%Y-%m-%d"), symbol))


@dataclass
class _Writes:
    """The rows, transitions, checkpoints and models of some symbols, written at once."""

    history: list[Slice] = field(default_factory=list)
    transitions: list[Slice] = field(default_factory=list)
    states: list[pd.DataFrame] = field(default_factory=list)
    models: list = field(default_factory=list)

    def add(self, updates: dict[str, IntervalUpdate]) -> None:
        for done in updates.values():
            self.models += done.models
            if done.history is None or done.transitions is None:
                continue
            self.history.append(done.history)
            self.transitions.append(done.transitions)
            if done.state is not None:
                self.states.append(done.state)

    def commit(self, store: Store) -> None:
        """Write everything collected in one transaction (nothing when nothing changed)."""
        upsert = ({"tracker_state": pd.concat(self.states, ignore_index=True)}
                  if self.states else {})
        if self.models:
            upsert["hmm_models"] = model_rows(self.models)
        if self.history or upsert:
            store.write(replace={"sentiment_history": self.history,
                                 "regime_transitions": self.transitions}, upsert=upsert)
