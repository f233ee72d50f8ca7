"""The pipeline's use of the core: inputs from the store, sentiment rows back to it.

Shared by the Dagster backfill asset and the live job (``orchestration/``), which stay thin.
A backfill recomputes a symbol's history from its first stored bar up to the end of the
range and replaces exactly the range's rows, so the result never depends on how the range
was partitioned (DESIGN 8.4: it never touches the live ``tracker_state``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from sentiment.config import INTERVAL_MINUTES, Config
from sentiment.history import compute_history_and_transitions
from sentiment.store import Slice, Store

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


def load_inputs(store: Store, config: Config, symbol: str, end=None, start=None
                ) -> dict[str, pd.DataFrame]:
    """The slower inputs of one symbol stamped in ``[start, end)``; None where a table is
    empty or the input is switched off in the configuration."""
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
        frame = store.read(table, start=start, end=end, where=where)
        out[arg] = frame if len(frame) else None
    return out


@dataclass
class BackfillResult:
    history: list[Slice]
    transitions: list[Slice]
    rows: int


def backfill(store: Store, config: Config, symbol: str, start: dt.datetime,
             end: dt.datetime) -> BackfillResult:
    """``sentiment_history`` and ``regime_transitions`` slices for bars opened in
    ``[start, end)``, every configured interval, computed from the first stored bar."""
    # The last bars close up to one interval after ``end``: read what is usable by then
    # (compute_history itself keeps every bar to the data known at its close).
    longest = max(interval_delta(i) for i in config.intervals)
    inputs = load_inputs(store, config, symbol, end=end + longest + dt.timedelta(minutes=1))
    history, transitions, rows = [], [], 0
    for interval in config.intervals:
        candles = load_candles(store, symbol, interval, end=end)
        lo, hi = start + interval_delta(interval), end + interval_delta(interval)
        frame, trans = compute_history_and_transitions(candles, config=config, **inputs)
        keep = (frame["timestamp"] >= lo) & (frame["timestamp"] < hi)
        frame = frame[keep.to_numpy()].reset_index(drop=True)
        tkeep = (trans["timestamp"] >= lo) & (trans["timestamp"] < hi)
        where = {"symbol": symbol, "interval": interval}
        history.append(Slice(frame, lo, hi, where))
        transitions.append(Slice(trans[tkeep.to_numpy()].reset_index(drop=True), lo, hi, where))
        rows += len(frame)
    return BackfillResult(history, transitions, rows)
