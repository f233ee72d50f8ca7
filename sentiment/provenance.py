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

``synthetic_series(store)`` gives ``{table: tag}`` for the series so found, empty for real
data. Pure Python over frames (:func:`classify`); :func:`synthetic_series` reads them.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping

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
#: How many of the newest rows of each symbol are compared with the bundle.
COMPARED_ROWS = 24
#: A stream loaded this long after its own exchange time was a replay of the past.
REPLAYED_AFTER = dt.timedelta(days=1)


@functools.lru_cache(maxsize=1)
def _bundle() -> tuple[dict[str, pd.Series], tuple[str, ...], dt.datetime, dt.datetime] | None:
    """The bundle's synthetic series, ``{table: Series indexed by (symbol, hour)}``, its
    symbols and window; None where the replay package is not installed."""
    try:
        from replay.server import BUNDLE_END, BUNDLE_START, BUNDLED_SYMBOLS, load_bundle
    except ImportError:  # pragma: no cover - the replay package ships with the project
        return None
    bundle = load_bundle()
    series = {
        "open_interest": bundle["open_interest"].set_index(["symbol", "ts"])["open_interest"],
        "long_short_ratio": bundle["long_short"].set_index(["symbol", "ts"])["buy_ratio"],
    }
    return series, tuple(BUNDLED_SYMBOLS), BUNDLE_START, BUNDLE_END


def _matches_bundle(table: str, rows: pd.DataFrame, column: str) -> bool:
    """Whether most of the newest rows of each bundled symbol (``symbol``, ``ts``,
    ``column``) equal the bundle's synthetic value at their hour."""
    if rows is None or rows.empty:
        return False
    ts = pd.to_datetime(rows["ts"])
    bundle = _bundle()
    if bundle is None:
        return False
    series, symbols, start, end = bundle
    inside = rows[rows["symbol"].isin(symbols) & (ts >= start) & (ts < end)]
    if inside.empty:  # real rows outside the recording: nothing the bundle made
        return False
    inside = inside.assign(ts=pd.to_datetime(inside["ts"]).dt.floor("h"))
    newest = inside.sort_values("ts").groupby("symbol").tail(COMPARED_ROWS)
    keys = pd.MultiIndex.from_arrays([newest["symbol"], newest["ts"]])
    expected = series[table].reindex(keys).to_numpy(dtype=float)
    stored = newest[column].to_numpy(dtype=float)
    same = abs(stored - expected) <= 1e-9 * abs(expected) + 1e-9
    return bool(same.mean() > 0.5)


def _replayed_stream(state: pd.DataFrame) -> bool:
    if state is None or state.empty:
        return False
    bundle = _bundle()
    start, end = (bundle[2], bundle[3]) if bundle else (dt.datetime(2022, 1, 1),
                                                         dt.datetime(2023, 1, 1))
    through = pd.to_datetime(state["through"])
    loaded = pd.to_datetime(state["loaded_at"])
    return bool(((through >= start) & (through < end)
                 & (loaded - through > REPLAYED_AFTER)).any())


def classify(frames: Mapping[str, pd.DataFrame]) -> dict[str, str]:
    """``{table: SYNTHETIC or DERIVED}`` from stored rows: ``open_interest`` (symbol, ts,
    open_interest), ``long_short_ratio`` (symbol, ts, buy_ratio) and ``stream_state``
    (symbol, through, loaded_at); a missing frame counts as no rows."""
    out: dict[str, str] = {}
    if _matches_bundle("open_interest", frames.get("open_interest"), "open_interest"):
        out["open_interest"] = SYNTHETIC
    if _matches_bundle("long_short_ratio", frames.get("long_short_ratio"), "buy_ratio"):
        out["long_short_ratio"] = SYNTHETIC
    if _replayed_stream(frames.get("stream_state")):
        out["orderbook_imbalance"] = DERIVED
        out["liquidations"] = DERIVED
    return out


def synthetic_series(store) -> dict[str, str]:
    """``{table: tag}`` of the stored series that are not market data (see the module
    docstring), read from ``store`` (a :class:`sentiment.io.store.Store`, or anything with
    ``db_path``, or a database path) through one read-only connection.

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
    return classify(frames)
