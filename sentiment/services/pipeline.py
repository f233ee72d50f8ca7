"""The pipeline's use of the core: inputs from the store, sentiment rows back to it.

One path for the backfill and the live job (``orchestration/`` stays thin):
:func:`compute` reads a symbol and interval's stored bars and inputs, runs
:func:`sentiment.history.compute_series` from a fresh engine state (backfill) or from the
live checkpoint (live job), and adds the HMM layer with the walk-forward models (trained
here where missing). The two differ only in where the engine state comes from and which
rows they write.

A backfill recomputes a symbol's history from its first stored bar up to the end of the
range and replaces exactly the range's rows, so the result never depends on how the range
was partitioned (DESIGN 8.4: it never touches the live ``tracker_state``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

import pandas as pd

from sentiment import hmm
from sentiment.config import Config
from sentiment.core.timeutil import ms_to_datetime
from sentiment.history import Series, compute_series, with_hmm
from sentiment.io.store import Slice, Store
from sentiment.models import INTERVAL_MINUTES
from sentiment.services.finality import final_until_of, newest_rows

log = logging.getLogger(__name__)

#: A long step says how far it got at most this often (HMM training: about 0.3 s a model).
PROGRESS_SECONDS = 5.0

#: Slower inputs read for a symbol, with the ``compute_history`` argument each feeds.
INPUT_TABLES = {
    "funding": "funding_rates",
    "open_interest": "open_interest",
    "long_short": "long_short_ratio",
    "fear_greed": "fear_greed",
    "liquidations": "liquidations",
    "orderbook_imbalance": "orderbook_imbalance",
}


def interval_delta(interval: str) -> dt.timedelta:
    return dt.timedelta(minutes=INTERVAL_MINUTES[interval])


def load_candles(store: Store, symbol: str, interval: str, end=None) -> pd.DataFrame:
    """Stored bars of one symbol and interval opened before ``end`` (all when None)."""
    return store.read("candles", end=end, where={"symbol": symbol, "interval": interval})


#: The stream's inputs: they count only in the bar that holds them.
STREAM_INPUTS = ("liquidations", "orderbook_imbalance")


def load_inputs(store: Store, config: Config, symbol: str, end=None, start=None, *,
                stream_start=None) -> dict[str, pd.DataFrame]:
    """The slower inputs of one symbol stamped in ``[start, end)`` (the stream's from
    ``stream_start`` when given); None where a table is empty or the input is switched off
    in the configuration."""
    ex = config.exchange_data
    enabled = {
        "funding": ex.funding_rate,
        "open_interest": ex.open_interest,
        "long_short": ex.long_short_ratio,
        "fear_greed": config.external_data.fear_greed,
        "liquidations": ex.liquidations,
        "orderbook_imbalance": ex.orderbook_imbalance,
    }
    out: dict[str, pd.DataFrame | None] = {}
    for arg, table in INPUT_TABLES.items():
        if not enabled[arg]:
            out[arg] = None
            continue
        where = {} if table == "fear_greed" else {"symbol": symbol}
        since = stream_start if stream_start is not None and arg in STREAM_INPUTS else start
        frame = store.read(table, start=since, end=end, where=where)
        out[arg] = frame if len(frame) else None
    return out


def stored_models(store: Store, config: Config, symbol: str, interval: str,
                  since: dt.datetime | None = None) -> dict[dt.datetime, hmm.RegimeModel]:
    """Stored models of one symbol and interval trained with the current settings, by
    training end (those ending at or after ``since`` when given)."""
    rows = store.read("hmm_models", start=since,
                      where={"symbol": symbol, "interval": interval})
    key = hmm.settings_of(config)
    out = {}
    for row in rows.to_dict("records"):
        model = hmm.RegimeModel.from_row(row)
        if model.settings == key:
            out[pd.Timestamp(model.train_end).to_pydatetime()] = model
    return out


def ensure_models(store: Store, config: Config, symbol: str, interval: str,
                  features: pd.DataFrame, upto: dt.datetime | None,
                  since: dt.datetime | None = None
                  ) -> tuple[list[hmm.RegimeModel], list[hmm.RegimeModel]]:
    """The walk-forward models for every boundary up to ``upto``: stored ones reused, the
    missing ones trained. Returns (all models, newly trained ones to store). With
    ``since``, only the models rows closing after ``since`` can use: the last boundary
    before it and every one after."""
    if not config.hmm.enabled or features.empty or upto is None:
        return [], []
    bounds = hmm.boundaries_since(features.index[0], upto, since)
    if not bounds:
        return [], []
    have = stored_models(store, config, symbol, interval, since=bounds[0])
    todo = sum(1 for b in bounds if b not in have)
    models, new = [], []
    said, tried = time.monotonic(), 0
    for boundary in bounds:
        model = have.get(boundary)
        if model is None:
            model = hmm.train_at(features, boundary, config, symbol=symbol,
                                 interval=interval)
            tried += 1
            if time.monotonic() - said >= PROGRESS_SECONDS and tried < todo:
                log.info("%s %s: HMM %d/%d model(s) trained (up to %s)", symbol, interval,
                         tried, todo, f"{boundary:%Y-%m-%d}")
                said = time.monotonic()
            if model is None:
                continue
            new.append(model)
        models.append(model)
    return models, new


def model_rows(models: list[hmm.RegimeModel]) -> pd.DataFrame:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return pd.DataFrame([m.to_row(now) for m in models])


@dataclass
class Computed:
    """:func:`compute`'s answer: the series (rows with the HMM layer) and the models it
    trained that were not stored yet."""

    series: Series
    models: list[hmm.RegimeModel]


def compute(store: Store, config: Config, symbol: str, interval: str,
            inputs: dict[str, pd.DataFrame | None], *, candles: pd.DataFrame | None = None,
            resume: dict | None = None, final_until: dt.datetime | None = None) -> Computed:
    """One symbol and interval, from its stored bars and ``inputs``: the engine from a fresh
    state, or from ``resume`` (then only the bars after it), its checkpoint taken at the last
    bar closed by ``final_until``; the HMM columns from the walk-forward models for every
    boundary up to ``final_until`` (or the last bar), those not stored trained here."""
    if candles is None:
        candles = load_candles(store, symbol, interval)
    series = compute_series(candles, config, symbol=symbol, interval=interval, inputs=inputs,
                            resume=resume, checkpoint_until=final_until,
                            with_features=config.hmm.enabled)
    trained: list[hmm.RegimeModel] = []
    rows = series.rows
    if config.hmm.enabled and len(rows):
        # Models for the boundaries whose bars are final: up to the checkpoint (live), or
        # the last bar (backfill).
        upto = pd.Timestamp(rows["timestamp"].iloc[-1]).to_pydatetime()
        since = None
        if final_until is not None:
            upto = series.checkpoint_time
            if series.resumed:
                # Only the models the new rows use: the last boundary before them and on.
                since = pd.Timestamp(rows["timestamp"].iloc[0]).to_pydatetime()
                upto = upto or ms_to_datetime(resume["last_ms"])
        models, trained = ensure_models(store, config, symbol, interval, series.features,
                                        upto, since=since)
        series.rows = with_hmm(rows, models, config, series.features)
    return Computed(series, trained)


@dataclass
class BackfillResult:
    history: list[Slice]
    transitions: list[Slice]
    rows: int
    models: list[hmm.RegimeModel] = field(default_factory=list)  # newly trained


def backfill(store: Store, config: Config, symbol: str, start: dt.datetime,
             end: dt.datetime) -> BackfillResult:
    """``sentiment_history`` and ``regime_transitions`` slices for bars opened in
    ``[start, end)``, every configured interval, computed from the first stored bar, with
    the HMM fields from the walk-forward models (trained here where not yet stored)."""
    # The last bars close up to one interval after ``end``: read what is usable by then
    # (compute_series itself keeps every bar to the data known at its close).
    longest = max(interval_delta(i) for i in config.intervals)
    inputs = load_inputs(store, config, symbol, end=end + longest + dt.timedelta(minutes=1))
    result = BackfillResult([], [], 0)
    for interval in config.intervals:
        started = time.monotonic()
        candles = load_candles(store, symbol, interval, end=end)
        lo, hi = start + interval_delta(interval), end + interval_delta(interval)
        done = compute(store, config, symbol, interval, inputs, candles=candles)
        result.models += done.models
        frame, trans = done.series.rows, done.series.transitions
        keep = (frame["timestamp"] >= lo) & (frame["timestamp"] < hi)
        frame = frame[keep.to_numpy()].reset_index(drop=True)
        tkeep = (trans["timestamp"] >= lo) & (trans["timestamp"] < hi)
        where = {"symbol": symbol, "interval": interval}
        result.history.append(Slice(frame, lo, hi, where))
        result.transitions.append(
            Slice(trans[tkeep.to_numpy()].reset_index(drop=True), lo, hi, where))
        result.rows += len(frame)
        log.info("%s %s: %s row(s) for %s..%s, %d HMM model(s) trained (%.1f s)", symbol,
                 interval, f"{len(frame):,}", f"{start:%Y-%m-%d}", f"{end:%Y-%m-%d}",
                 len(done.models), time.monotonic() - started)
    return result


@dataclass
class Trained:
    models: list[hmm.RegimeModel]
    skipped: list[str]


def train_latest(store: Store, config: Config) -> Trained:
    """Train every symbol and interval's model at its newest boundary (what
    ``hmm_retrain_schedule`` and an on-demand materialization do).

    The boundary is the newest Monday 00:00 UTC up to which every input is in (the live
    job's finality rule), so the model equals the one a later backfill trains there.
    """
    out = Trained([], [])
    if not config.hmm.enabled:
        out.skipped.append("hmm.enabled is false")
        return out
    newest = newest_rows(store)
    for symbol in config.symbols:
        final = final_until_of(newest, config, symbol)
        inputs = load_inputs(store, config, symbol)
        for interval in config.intervals:
            candles = load_candles(store, symbol, interval)
            if candles.empty:
                out.skipped.append(f"{symbol} {interval}: no candles stored")
                continue
            features = compute_series(candles, config, symbol=symbol, interval=interval,
                                      inputs=inputs, with_features=True).features
            last = min(features.index[-1], pd.Timestamp(final))
            bounds = hmm.boundaries(features.index[0], last.to_pydatetime())
            if not bounds:
                out.skipped.append(f"{symbol} {interval}: no Monday boundary in the data")
                continue
            model = hmm.train_at(features, bounds[-1], config, symbol=symbol,
                                 interval=interval)
            if model is None:
                out.skipped.append(f"{symbol} {interval}: too few usable bars before "
                                   f"{bounds[-1]:%Y-%m-%d}")
                continue
            out.models.append(model)
    return out
