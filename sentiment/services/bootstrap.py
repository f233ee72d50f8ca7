"""The first start: bring an empty (or long idle) database up to the exchange's clock in
monthly chunks, so readers get in between and the live job's first run only adds new bars.

A live update over months of history fetches, computes and trains every HMM model of those
months in one call, holding the write lock throughout (about 100 s for the eleven months
`make up` starts with; readers wait or fail for all of it). The bootstrap does the same
work as the live job, with the live job's own functions, one calendar month at a time:

1. Fear & Greed once (alternative.me answers with its whole history, ~3000 days);
2. per month, with no connection open: fetch every series up to the month's end
   (:func:`sentiment.services.live.fetch_new`); one short transaction stores it;
3. per month and symbol, with no connection open: extend every interval from its live
   checkpoint over the month's bars (:func:`sentiment.services.live.update_symbol`, which
   trains the month's HMM models); one short transaction per month writes the rows, the
   transitions, the models and the new checkpoints.

So the write lock is held only while a month is committed (a fraction of a second), the
dashboard and ``sentiment status`` read between months and see the history grow, and each
month is reported ("BTCUSDT 60: 4,320/8,016 bars"). The rows are the live job's: a
history made month by month from the checkpoint equals one made in a single run (DESIGN
5.2, tested). The bootstrap stops a day after the newest HMM retrain boundary (Monday
00:00 UTC) that is a day old, so the live job's first run after it has at most eight days
of bars to add and no model to train (unless a newer boundary passed), and it loads what
the stream staged meanwhile.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pandas as pd

from sentiment.config import Config
from sentiment.core.timeutil import naive_utc_datetime
from sentiment.io.sources.bybit import BybitClient
from sentiment.io.sources.fear_greed import FearGreedClient
from sentiment.io.store import MISSING_TABLE_ERRORS, Store
from sentiment.services.finality import final_until_of, newest_rows, stream_limits
from sentiment.services.live import fetch_new, update_symbol
from sentiment.services.pipeline import interval_delta, model_rows

log = logging.getLogger(__name__)

#: A live checkpoint older than this (by the exchange's clock), or none at all: the live
#: sensor requests a bootstrap instead of a live run. Two weeks: more than the eight days
#: the bootstrap leaves to the live job, so a finished bootstrap is never asked for again.
BOOTSTRAP_AFTER = dt.timedelta(days=14)

Report = Callable[[str], None]


def behind(store: Store, config: Config, now: dt.datetime) -> str | None:
    """Why the database needs a bootstrap before the live job can take over (None: it does
    not): a configured symbol and interval without a live checkpoint, or a checkpoint more
    than :data:`BOOTSTRAP_AFTER` behind ``now``. Reads read-only."""
    try:
        states = store.read("tracker_state", read_only=True)
    except (FileNotFoundError, *MISSING_TABLE_ERRORS):
        return "no database yet"
    have = {(row.symbol, row.interval): naive_utc_datetime(row.last_timestamp)
            for row in states.itertuples(index=False)}
    missing = [f"{s} {i}" for s in config.symbols for i in config.intervals
               if (s, i) not in have]
    if missing:
        return f"no live checkpoint for {', '.join(missing)}"
    oldest = min(have[(s, i)] for s in config.symbols for i in config.intervals)
    if now - oldest > BOOTSTRAP_AFTER:
        return (f"the live checkpoints end at {oldest:%Y-%m-%d %H:%M}, "
                f"{(now - oldest).days} days behind the exchange")
    return None


def bootstrap_until(now: dt.datetime) -> dt.datetime:
    """Where the bootstrap stops: a day after the newest HMM boundary (Monday 00:00 UTC) at
    least a day before ``now``. The slower sources are final for the boundary's bars a few
    hours after it, so the bootstrap trains its models and the live job's first run has at
    most eight days of bars to add, with no model to train unless a newer boundary passed."""
    day = dt.datetime.combine((now - dt.timedelta(days=1)).date(), dt.time())
    return day - dt.timedelta(days=day.weekday()) + dt.timedelta(days=1)


def month_ends(start: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
    """The chunk ends after ``start``: every first of a month before ``until``, then
    ``until``."""
    ends = []
    month = dt.datetime(start.year, start.month, 1)
    while True:
        month = (month + dt.timedelta(days=32)).replace(day=1)
        if month >= until:
            break
        ends.append(month)
    if until > start:
        ends.append(until)
    return ends


@dataclass
class Chunk:
    """What one month of the bootstrap stored and computed."""

    end: dt.datetime
    ingested: dict[str, int] = field(default_factory=dict)  # rows fetched, by table
    rows: int = 0  # sentiment_history rows written
    models: int = 0  # HMM models trained
    touched_dates: set[tuple[str, str]] = field(default_factory=set)  # (date, symbol)
    #: Per (symbol, interval): stored bars since the start date, and bars the whole
    #: bootstrap will have stored.
    bars: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)


def _start(config: Config, store: Store) -> dt.datetime:
    """Where the chunks begin: the oldest newest stored bar (the start date without one)."""
    first = dt.datetime.combine(config.start_date, dt.time())
    newest = newest_rows(store)
    lasts = [newest.get(("candles", s, i)) for s in config.symbols for i in config.intervals]
    if any(last is None for last in lasts):
        return first
    return max(first, min(last for last in lasts if last is not None))


def _stored_bars(store: Store, first: dt.datetime) -> dict[tuple[str, str], int]:
    frame = store.read("candles", start=first, columns=["symbol", "interval"])
    return {key: int(n) for key, n in frame.groupby(["symbol", "interval"]).size().items()}


def bootstrap(store: Store, config: Config, bybit: BybitClient,
              fear_greed: FearGreedClient | None = None, *,
              report: Report = log.info) -> Iterator[Chunk]:
    """Bring the database up to :func:`bootstrap_until` the exchange's clock, one month at
    a time; yields each month once it is committed (and tells ``report`` how far it got)."""
    now = naive_utc_datetime(bybit.server_time())
    until = bootstrap_until(now)
    first = dt.datetime.combine(config.start_date, dt.time())
    start = _start(config, store)
    ends = month_ends(start, until)
    if not ends:
        report(f"bootstrap: nothing to do, the stored bars reach {start:%Y-%m-%d %H:%M}")
        return
    expected = {(s, i): int((until - first) / interval_delta(i))
                for s in config.symbols for i in config.intervals}
    report(f"bootstrap: {start:%Y-%m-%d} .. {until:%Y-%m-%d} in {len(ends)} chunk(s) for "
           f"{', '.join(config.symbols)} x {', '.join(config.intervals)}; the live job "
           f"takes over from {until:%Y-%m-%d}")
    if fear_greed is not None and config.external_data.fear_greed:
        # API limit: alternative.me has no date range; the whole history is one request.
        days = fear_greed.history(first, now)
        days = days[days["ts"] <= pd.Timestamp(now)]
        if len(days):
            store.write(upsert={"fear_greed": days})
        report(f"fear_greed: {len(days):,} day(s)")
    for end in ends:
        yield _chunk(store, config, bybit, end, first, expected, report)


def _chunk(store: Store, config: Config, bybit: BybitClient, end: dt.datetime,
           first: dt.datetime, expected: dict, report: Report) -> Chunk:
    chunk = Chunk(end)
    fetched = fetch_new(store, config, bybit, None, end)  # no connection open meanwhile
    if fetched:
        store.write(upsert=fetched)  # one short transaction
    chunk.ingested = {t: len(f) for t, f in fetched.items()}
    newest = newest_rows(store)
    streams = stream_limits(store, config, end)
    history, transitions, states, models = [], [], [], []
    for symbol in config.symbols:
        final_until = final_until_of(newest, config, symbol, streams.get(symbol))
        # Reads through short connections; the HMM training happens here, with no lock.
        for interval, done in update_symbol(store, config, symbol, final_until).items():
            models += done.models
            if done.history is None or done.transitions is None:
                continue
            history.append(done.history)
            transitions.append(done.transitions)
            chunk.rows += done.bars
            if done.state is not None:
                states.append(done.state)
            iv = interval_delta(interval)
            for ts in done.history.frame["timestamp"]:
                chunk.touched_dates.add(((pd.Timestamp(ts) - iv).strftime("%Y-%m-%d"),
                                         symbol))
    upsert = {"tracker_state": pd.concat(states, ignore_index=True)} if states else {}
    if models:
        upsert["hmm_models"] = model_rows(models)
    if history or upsert:
        store.write(replace={"sentiment_history": history, "regime_transitions": transitions},
                    upsert=upsert)  # one short transaction
    chunk.models = len(models)
    stored = _stored_bars(store, first)
    chunk.bars = {key: (stored.get(key, 0), total) for key, total in expected.items()}
    for (symbol, interval), (done_bars, total) in chunk.bars.items():
        report(f"{symbol} {interval}: {done_bars:,}/{total:,} bars (up to {end:%Y-%m-%d})")
    report(f"chunk up to {end:%Y-%m-%d}: {chunk.rows:,} sentiment row(s), "
           f"{chunk.models} HMM model(s) trained")
    return chunk

