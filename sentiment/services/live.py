"""The live update: ingest what is new, extend ``sentiment_history`` from the checkpoint.

One call brings every configured symbol and interval up to the exchange's clock:

1. fetch the bars closed since the last stored one and the slower data published since
   (funding, open interest, long/short, the newest Fear & Greed day) and store them;
2. restore each tracker from its ``tracker_state`` checkpoint, reopening its TA-Lib handles
   over the stored history (bit-identical to a run that never stopped), or build it from
   the first stored bar when there is none;
3. feed the new bars; write their snapshots, the regime transitions and the new checkpoint
   in one transaction.

Publication lags (DESIGN 8.3): a bar's row is *final* once every slower source has
published what that bar may use. The checkpoint is kept at the last final bar; rows after
it are written too (so the newest state is visible at once) and recomputed by the next run
when the late data has arrived. That is what makes a live history equal a backfill.

=================  ===================================================================
source             a bar closing at ``t`` is final for it when ...
=================  ===================================================================
open interest      the record stamped ``t - period`` (the last one usable at t) is stored
long/short ratio   likewise
funding            the newest settlement stored is less than 8 h before ``t``
Fear & Greed       the day of ``t`` is stored
live stream        ``t`` is a flush old and the running stream staged every message up to it
=================  ===================================================================

A source with no stored data at all is not waited for; neither is a stream that has staged
nothing for ``stream.alive_seconds`` (it is stopped: its bars have no stream data, and the
capitulation rule falls back to its price proxy).

The stream's staged files (``sentiment stream``) are loaded first, in their own transaction,
so the bars see every liquidation and order-book sample received up to now.
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

from sentiment import hmm
from sentiment.config import PERIOD_MINUTES, Config
from sentiment.core.inputs import usable_notional
from sentiment.errors import CheckpointMismatch
from sentiment.history import history_frame, hmm_features, with_hmm
from sentiment.io.sources.bybit import BybitClient
from sentiment.io.sources.fear_greed import FearGreedClient
from sentiment.io.staging import Staging, StagingError, load_staged
from sentiment.io.store import Slice, Store, named_queries
from sentiment.models import HISTORY_COLUMNS
from sentiment.services.pipeline import (
    ensure_models,
    interval_delta,
    load_candles,
    load_inputs,
    model_rows,
)
from sentiment.tracker import MarketSentimentTracker

log = logging.getLogger(__name__)

FUNDING_INTERVAL = dt.timedelta(hours=8)  # Bybit's settlement interval for BTC/ETH perpetuals
FAR_FUTURE = dt.datetime(2200, 1, 1)
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


def _naive(ts) -> dt.datetime:
    ts = pd.Timestamp(ts)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


Newest = dict[tuple[str, str | None, str | None], dt.datetime]


def newest_rows(store: Store) -> Newest:
    """(table, symbol, interval or period) -> the newest stored time, in one query."""
    frame = store.query(named_queries("queries.sql")["newest_rows"], read_only=False)
    out: Newest = {}
    for row in frame.itertuples(index=False):
        if not pd.isna(row.newest):
            symbol = None if pd.isna(row.symbol) else row.symbol
            code = None if pd.isna(row.code) else row.code
            out[(row.tbl, symbol, code)] = _naive(row.newest)
    return out


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


# --------------------------------------------------------------------------- due rules


#: A liquidation is pushed a few hundred ms after its time: the stream's ``through`` must
#: pass a bar's close by this much before the bar's stream data count as complete.
STREAM_GRACE = dt.timedelta(seconds=5)


def stream_limits(store: Store, config: Config, now: dt.datetime) -> dict[str, dt.datetime]:
    """Per symbol, how far the stream's data are complete: up to one flush before ``now``
    (a stream that has just started may not have staged its first seconds yet), and no
    further than a *running* stream has staged (a stopped one is not waited for). Empty
    when the stream inputs are switched off."""
    ex = config.exchange_data
    if not (ex.liquidations or ex.orderbook_imbalance):
        return {}
    limits = {s: now - dt.timedelta(seconds=config.stream.flush_seconds)
              for s in config.symbols}
    alive = now - dt.timedelta(seconds=config.stream.alive_seconds)
    for row in store.read("stream_state").itertuples(index=False):
        through = _naive(row.through)
        if row.symbol in limits and through >= alive:
            limits[row.symbol] = min(limits[row.symbol], through)
    return limits


def final_until_of(newest: Newest, config: Config, symbol: str,
                   stream: dt.datetime | None = None) -> dt.datetime:
    """The latest bar close whose slower sources have all published (FAR_FUTURE if none
    is awaited); ``stream`` is how far ``symbol``'s stream data are complete."""
    ex = config.exchange_data
    limits = [FAR_FUTURE]
    if stream is not None:
        limits.append(stream - STREAM_GRACE)
    if ex.open_interest:
        code = ex.open_interest_interval
        last = newest.get(("open_interest", symbol, code))
        if last is not None:
            limits.append(last + dt.timedelta(minutes=PERIOD_MINUTES[code]))
    if ex.long_short_ratio:
        code = ex.long_short_period
        last = newest.get(("long_short_ratio", symbol, code))
        if last is not None:
            limits.append(last + dt.timedelta(minutes=PERIOD_MINUTES[code]))
    if ex.funding_rate:
        last = newest.get(("funding_rates", symbol, None))
        if last is not None:
            limits.append(last + FUNDING_INTERVAL - _MS)
    if config.external_data.fear_greed:
        last = newest.get(("fear_greed", None, None))
        if last is not None:
            limits.append(last + dt.timedelta(days=1) - _MS)
    return min(limits)


# --------------------------------------------------------------------------- trackers


def _feed_inputs(tracker: MarketSentimentTracker, inputs: dict, since: dt.datetime | None):
    """Give the tracker every stored slower row (re-feeding a row is harmless)."""
    def recent(frame, column):
        if frame is None:
            return []
        if since is not None:
            frame = frame[pd.to_datetime(frame[column]) >= pd.Timestamp(since)]
        return frame.itertuples(index=False)

    for r in recent(inputs["funding"], "funding_time"):
        tracker.on_funding(r.funding_time, r.funding_rate)
    for r in recent(inputs["open_interest"], "ts"):
        tracker.on_open_interest(r.ts, r.open_interest, r.interval)
    for r in recent(inputs["long_short"], "ts"):
        tracker.on_long_short(r.ts, r.buy_ratio, r.period)
    for r in recent(inputs["fear_greed"], "ts"):
        tracker.on_fear_greed(r.ts, r.value)
    # Stream events count in the bar that holds them: only those after the checkpoint. The
    # checkpoint may hold some of them already (fed before it was taken, for bars after
    # it): the store has them all, so they are fed from there, once.
    tracker.drop_pending_stream_events()
    after = tracker.last_timestamp

    def since_checkpoint(frame):
        if frame is None:
            return []
        if after is not None:
            frame = frame[pd.to_datetime(frame["ts"]) >= pd.Timestamp(after)]
        return frame.itertuples(index=False)

    for r in since_checkpoint(inputs["liquidations"]):
        if not usable_notional(float(r.size) * float(r.price)):
            continue  # a stored row no bar can count (skipped by a backfill alike)
        tracker.on_liquidation({"ts": r.ts, "symbol": r.symbol, "side": r.side,
                                "size": r.size, "price": r.price})
    for r in since_checkpoint(inputs["orderbook_imbalance"]):
        tracker.on_obi_sample(r.ts, r.obi)


def update_symbol_interval(store: Store, config: Config, symbol: str, interval: str,
                           final_until: dt.datetime) -> tuple[int, dt.datetime | None,
                                                               list[Slice], list[Slice],
                                                               pd.DataFrame | None, list]:
    """Extend one tracker; returns (bars, last final close, history slices, transition
    slices, tracker_state row, newly trained HMM models)."""
    where = {"symbol": symbol, "interval": interval}
    state_rows = store.read("tracker_state", where=where)
    candles = load_candles(store, symbol, interval)
    if candles.empty:
        return 0, None, [], [], None, []
    iv = interval_delta(interval)
    tracker, since, last_close = None, None, None
    if not state_rows.empty:
        state = json.loads(state_rows["state"].iloc[0])
        last_close = _naive(state_rows["last_timestamp"].iloc[0])
        done = candles[pd.to_datetime(candles["open_time"]) + iv <= pd.Timestamp(last_close)]
        try:
            tracker = MarketSentimentTracker.restore(state, config, candles=done)
            if tracker.n_bars != len(done):
                # A bar before the checkpoint arrived late (the exchange had left it out):
                # the checkpoint no longer continues the stored history.
                raise CheckpointMismatch(
                    "checkpoint", f"made over {tracker.n_bars} bars, {len(done)} are stored "
                    f"up to {last_close}", symbol=symbol, field="candles")
            since = last_close - dt.timedelta(days=3)
        except CheckpointMismatch as exc:
            # After an upgrade of the engine or a change of the configuration the stored
            # rows were made by other rules: compute the whole history again (its rows are
            # replaced) rather than continue from a state that no longer means the same.
            log.warning("%s %s: %s; recomputing from the first stored bar", symbol,
                        interval, exc)
            tracker, last_close = None, None
    if tracker is None:
        tracker = MarketSentimentTracker(symbol, interval, config)
    inputs = load_inputs(store, config, symbol, start=since)
    _feed_inputs(tracker, inputs, since)
    new = candles
    if last_close is not None:
        new = candles[pd.to_datetime(candles["open_time"]) + iv > pd.Timestamp(last_close)]
    rows, checkpoint, checkpoint_time = [], None, None
    previous = tracker.get_regime()
    closes = pd.to_datetime(new["open_time"]) + iv
    # The checkpoint goes at the last bar whose sources are all in (one per run: a
    # checkpoint is a few hundred kB of JSON).
    n_final = int((closes <= pd.Timestamp(final_until)).sum())
    for i, candle in enumerate(new.to_dict("records")):
        snap = tracker.on_candle_close(candle)
        rows.append(snap.as_row())
        if i + 1 == n_final:
            checkpoint = json.dumps(tracker.checkpoint(), allow_nan=False)
            checkpoint_time = snap.timestamp
    if not rows:
        return 0, last_close, [], [], None, []
    history = history_frame({c: [r[c] for r in rows] for c in HISTORY_COLUMNS})
    history, models = _with_hmm(store, config, symbol, interval, candles, history,
                                last_close, checkpoint_time or last_close)
    trans = _transitions_from_rows(history, previous)
    trans_frame = pd.DataFrame(
        [{"symbol": symbol, "interval": interval, "timestamp": t, "from_regime": a,
          "to_regime": b} for t, a, b in trans],
        columns=["symbol", "interval", "timestamp", "from_regime", "to_regime"])
    lo = (last_close + _MS) if last_close is not None else dt.datetime(1970, 1, 1)
    slices_h = [Slice(history, lo, FAR_FUTURE, where)]
    slices_t = [Slice(trans_frame, lo, FAR_FUTURE, where)]
    state_row = None
    if checkpoint is not None:
        state_row = pd.DataFrame([{"symbol": symbol, "interval": interval,
                                   "last_timestamp": checkpoint_time, "state": checkpoint}])
    return len(rows), checkpoint_time or last_close, slices_h, slices_t, state_row, models


def _with_hmm(store: Store, config: Config, symbol: str, interval: str,
              candles: pd.DataFrame, new: pd.DataFrame, last_close: dt.datetime | None,
              final: dt.datetime | None) -> tuple[pd.DataFrame, list]:
    """The new rows with their HMM fields, computed exactly as a backfill does: models for
    every boundary up to the last final bar (trained where missing), features from the
    stored rows up to the checkpoint, then the new ones.

    Only the rows those models read are loaded: every feature at a bar uses at most
    ``max(volatility_window, volume_window) + 1`` bars back, and a model is trained on, and
    filters from, the last ``window_bars`` bars up to its boundary.
    """
    if not config.hmm.enabled:
        return new, []
    h = config.hmm
    bars = candles.sort_values("open_time", ignore_index=True)
    closes = pd.DatetimeIndex(pd.to_datetime(bars["open_time"]) + interval_delta(interval))
    first_new = pd.Timestamp(new["timestamp"].iloc[0])
    first = 0
    if final is not None:
        bounds = hmm.boundaries_since(closes[0], final, first_new.to_pydatetime())
        if bounds:
            upto = int(closes.searchsorted(pd.Timestamp(bounds[0]), side="right"))
            warmup = max(h.volatility_window, h.volume_window) + 1
            first = max(0, upto - h.window_bars - warmup)
    cols = ["timestamp", "close", "funding_rate", "open_interest"]
    parts = [new[cols]]
    if last_close is not None and closes[first] <= pd.Timestamp(last_close):
        stored = store.read("sentiment_history", start=closes[first],
                            end=last_close + _MS, columns=cols,
                            where={"symbol": symbol, "interval": interval})
        parts.insert(0, stored)
    rows = pd.concat(parts, ignore_index=True)
    closes, bars = closes[first:], bars.iloc[first:]
    rows = rows.set_index("timestamp").reindex(closes).rename_axis("timestamp")
    features = hmm_features(rows.reset_index(), bars["volume"].to_numpy(dtype=float), config)
    # Only the models the new rows use: the last boundary before them and every later one.
    models, trained = ensure_models(store, config, symbol, interval, features, final,
                                    since=first_new.to_pydatetime())
    return with_hmm(new, None, models, config, features=features), trained


def _transitions_from_rows(history: pd.DataFrame, previous: str | None) -> list[tuple]:
    """Confirmed changes: a row whose regime differs from the row before (every change of
    the reported regime is one)."""
    regime = history["regime"]
    prev = regime.shift()
    if len(prev):
        prev.iloc[0] = previous
    changed = regime.notna() & prev.notna() & (regime != prev)
    return [(t.to_pydatetime(), a, b) for t, a, b in zip(
        history.loc[changed, "timestamp"], prev[changed], regime[changed], strict=True)]


def live_update(store: Store, config: Config, bybit: BybitClient,
                fear_greed: FearGreedClient | None = None,
                staging: Staging | None = None) -> LiveResult:
    """Bring every configured symbol and interval up to the exchange's clock (loading the
    stream's staged files first, when ``staging`` is given).

    The exchange is asked first, with no connection to the database open; the write lock is
    taken only afterwards, to load, compute and commit (a hanging peer used to hold it for
    minutes, and every reader with it)."""
    now = _naive(bybit.server_time())
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
        for interval in config.intervals:
            n, final, sh, st, state, trained = update_symbol_interval(
                store, config, symbol, interval, final_until)
            models += trained
            result.bars[(symbol, interval)] = n
            result.final_until[(symbol, interval)] = final
            history += sh
            transitions += st
            if state is not None:
                states.append(state)
            for piece in sh:
                iv = interval_delta(interval)
                for ts in piece.frame["timestamp"]:
                    result.touched_dates.add(((pd.Timestamp(ts) - iv).strftime("%Y-%m-%d"),
                                              symbol))
    upsert = {"tracker_state": pd.concat(states, ignore_index=True)} if states else {}
    if models:
        upsert["hmm_models"] = model_rows(models)
    if history or upsert:
        store.write(replace={"sentiment_history": history, "regime_transitions": transitions},
                    upsert=upsert)
    return result
