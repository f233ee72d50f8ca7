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
from sentiment.io.store import Slice, Store
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
    for symbol in config.symbols:
        for interval in config.intervals:
            start = since(("candles", symbol, interval), interval_delta(interval))
            # A bar the exchange left out of an earlier answer is asked for again.
            start = min(start, first_missing_bar(store, symbol, interval, start))
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


def first_missing_bar(store: Store, symbol: str, interval: str, after: dt.datetime
                      ) -> dt.datetime:
    """The open time of the first bar missing between the stored bars of the last
    :data:`GAP_LOOKBACK` before ``after`` (``after`` when there is none)."""
    iv = interval_delta(interval)
    stored = store.read("candles", start=after - GAP_LOOKBACK, end=after,
                        where={"symbol": symbol, "interval": interval})
    if len(stored) < 2:
        return after
    times = pd.DatetimeIndex(pd.to_datetime(stored["open_time"])).sort_values()
    holes = np.flatnonzero((times[1:] - times[:-1]) > pd.Timedelta(iv))
    return (times[holes[0]] + iv).to_pydatetime() if len(holes) else after


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


def live_update(store: Store, config: Config, bybit: BybitClient,
                fear_greed: FearGreedClient | None = None,
                staging: Staging | None = None) -> LiveResult:
    """Bring every configured symbol and interval up to the exchange's clock (loading the
    stream's staged files first, when ``staging`` is given).

    The exchange is asked first, with no connection to the database open; the write lock is
    taken only afterwards, to load, compute and commit (a hanging peer used to hold it for
    minutes, and every reader with it)."""
    now = naive_utc_datetime(bybit.server_time())
    fetched = fetch_new(store, config, bybit, fear_greed, now)
    with store.session():
        return _live_update(store, config, now, fetched, staging)


def _live_update(store: Store, config: Config, now: dt.datetime,
                 fetched: dict[str, pd.DataFrame], staging: Staging | None) -> LiveResult:
    result = LiveResult()
    if staging is not None:
        try:
            result.staged = load_staged(store, staging).rows
        except StagingError as exc:  # the good files were loaded; the bad ones set aside
            result.staging_error = str(exc)
    if fetched:
        store.write(upsert=fetched)
    result.ingested = {t: len(f) for t, f in fetched.items()}
    history, transitions, states, models = [], [], [], []
    newest = newest_rows(store)
    streams = stream_limits(store, config, now)
    for symbol in config.symbols:
        final_until = final_until_of(newest, config, symbol, streams.get(symbol))
        for interval, done in update_symbol(store, config, symbol, final_until).items():
            models += done.models
            result.bars[(symbol, interval)] = done.bars
            result.final_until[(symbol, interval)] = done.final_until
            if done.history is None or done.transitions is None:
                continue
            history.append(done.history)
            transitions.append(done.transitions)
            if done.state is not None:
                states.append(done.state)
            iv = interval_delta(interval)
            for ts in done.history.frame["timestamp"]:
                result.touched_dates.add(((pd.Timestamp(ts) - iv).strftime("%Y-%m-%d"),
                                          symbol))
    upsert = {"tracker_state": pd.concat(states, ignore_index=True)} if states else {}
    if models:
        upsert["hmm_models"] = model_rows(models)
    if history or upsert:
        store.write(replace={"sentiment_history": history, "regime_transitions": transitions},
                    upsert=upsert)
    return result
