"""Which stored series are not market data: found in the data themselves.

The replay exchange (``replay/``, what ``make demo`` and ``make up`` use by default) serves
recorded candles, funding rates and Fear & Greed, but it has no recording of open interest,
the long/short ratio, the order book or liquidations: it generates open interest and the
long/short ratio from the candles (SYNTHETIC, ``replay/data/README.md``) and derives the
book and the liquidations it pushes from them too. Whatever shows those series must say so;
whatever shows real data must not.

The answer comes from the stored rows, not from where the settings point today (a database
built by ``make demo`` is read later with the default, real-exchange settings):

* **open interest, long/short ratio**: the newest stored rows of each bundled symbol equal the
  bundle's synthetic series at their hour (a pure function of the bundled candles). Real
  values never do: they are measured, not computed from a hash;
* **order-book imbalance, liquidations** (the stream): a symbol's ``stream_state`` says how
  far the stream got in exchange time (``through``) and when that was loaded by this
  machine's clock (``loaded_at``). A real exchange's stream is live: ``through`` is the
  present. One stamped inside the bundle's window, loaded over a day later, came from the
  replay exchange, which plays the past.

``synthetic_series(store, generated)`` gives ``{table: tag}`` for the series so found, empty
for real data. What the replay exchange generates is passed in (:class:`Generated`, built by
the caller from ``replay.server.load_bundle()``): the product package never imports the
replay exchange. Without it only the stream is judged. Pure Python over frames
(:func:`classify`); :func:`synthetic_series` reads them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

SYNTHETIC = "synthetic"
DERIVED = "derived from candles"

#: sentiment_history columns (and the overview's figures) -> the table they come from.
COLUMN_SOURCES: dict[str, str] = {
    "open_interest": "open_interest",
    "open_interest_delta_pct": "open_interest",
    "long_short_ratio": "long_short_ratio",
    "order_book_imbalance": "orderbook_imbalance",
    "liquidation_intensity": "liquidations",
}
#: How many of the newest rows of each symbol are compared with the generated series.
COMPARED_ROWS = 24
#: A stream stamped inside the generated window and loaded this long after its own exchange
#: time was a replay of the past (a live stream is loaded seconds after).
REPLAYED_AFTER = dt.timedelta(days=1)
#: Without a window to check against, only a stream loaded this long after its exchange time
#: counts as replayed (staged files of a live stream never wait a month for the loader).
REPLAYED_AFTER_ANY = dt.timedelta(days=30)


@dataclass(frozen=True)
class Generated:
    """What a replay exchange generates instead of recording: per table
    (``open_interest``, ``long_short_ratio``), the values by (symbol, hour) as a Series with
    a (symbol, ts) MultiIndex; the symbols and the window [start, end) it covers."""

    series: Mapping[str, pd.Series]
    symbols: tuple[str, ...]
    start: dt.datetime
    end: dt.datetime


def _matches(generated: Generated | None, table: str, rows: pd.DataFrame | None,
             column: str) -> bool:
    """Whether most of the newest rows of each generated symbol (``symbol``, ``ts``,
    ``column``) equal the generated value at their hour."""
    if generated is None or table not in generated.series or rows is None or rows.empty:
        return False
    ts = pd.to_datetime(rows["ts"])
    inside = rows[rows["symbol"].isin(generated.symbols) & (ts >= generated.start)
                  & (ts < generated.end)]
    if inside.empty:  # real rows outside the recording: nothing generated them
        return False
    inside = inside.assign(ts=pd.to_datetime(inside["ts"]).dt.floor("h"))
    newest = inside.sort_values("ts").groupby("symbol").tail(COMPARED_ROWS)
    keys = pd.MultiIndex.from_arrays([newest["symbol"], newest["ts"]])
    expected = generated.series[table].reindex(keys).to_numpy(dtype=float)
    stored = newest[column].to_numpy(dtype=float)
    same = np.abs(stored - expected) <= 1e-9 * np.abs(expected) + 1e-9
    return bool(same.mean() > 0.5)


def _replayed_stream(state: pd.DataFrame | None, generated: Generated | None) -> bool:
    if state is None or state.empty:
        return False
    through = pd.to_datetime(state["through"])
    lag = pd.to_datetime(state["loaded_at"]) - through
    if generated is None:
        return bool((lag > REPLAYED_AFTER_ANY).any())
    inside = (through >= generated.start) & (through < generated.end)
    return bool((inside & (lag > REPLAYED_AFTER)).any())


def classify(frames: Mapping[str, pd.DataFrame], generated: Generated | None = None
             ) -> dict[str, str]:
    """``{table: SYNTHETIC or DERIVED}`` from stored rows: ``open_interest`` (symbol, ts,
    open_interest), ``long_short_ratio`` (symbol, ts, buy_ratio) and ``stream_state``
    (symbol, through, loaded_at); a missing frame counts as no rows."""
    out: dict[str, str] = {}
    if _matches(generated, "open_interest", frames.get("open_interest"), "open_interest"):
        out["open_interest"] = SYNTHETIC
    if _matches(generated, "long_short_ratio", frames.get("long_short_ratio"), "buy_ratio"):
        out["long_short_ratio"] = SYNTHETIC
    if _replayed_stream(frames.get("stream_state"), generated):
        out["orderbook_imbalance"] = DERIVED
        out["liquidations"] = DERIVED
    return out


def synthetic_series(store, generated: Generated | None = None) -> dict[str, str]:
    """``{table: tag}`` of the stored series that are not market data (see the module
    docstring), read from ``store`` (a :class:`sentiment.io.store.Store`, or anything with
    ``db_path``, or a database path) through one read-only connection; ``generated`` is what
    the replay exchange generates (without it, open interest and the long/short ratio are
    not judged).

    Raises what a read raises: ``FileNotFoundError`` without a file,
    :class:`sentiment.io.store.StoreError` when a writer holds it too long. A table the
    database lacks counts as empty.
    """
    from sentiment.io.store import MISSING_TABLE_ERRORS, Store, named_queries

    if not isinstance(store, Store):
        store = Store(getattr(store, "db_path", store))
    sql = named_queries("provenance.sql")
    reads = {"open_interest": ("newest_open_interest", [COMPARED_ROWS]),
             "long_short_ratio": ("newest_long_short", [COMPARED_ROWS]),
             "stream_state": ("stream_clocks", [])}
    frames: dict[str, pd.DataFrame] = {}
    with store.connect(read_only=True) as conn:
        for table, (name, params) in reads.items():
            try:
                frames[table] = conn.execute(sql[name], params).df()
            except MISSING_TABLE_ERRORS:
                frames[table] = pd.DataFrame()
    return classify(frames, generated)
