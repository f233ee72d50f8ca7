"""Upsert throughput of candles into DuckDB (DESIGN 8.15: new keys and the replace path).

Prints rows/s for: bulk insert of new keys, upsert over existing keys, and the partition
replace path (delete + insert in one transaction). Each figure is the median of 3 runs on a
fresh file, including opening the connection and committing.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sentiment.io.store import Store  # noqa: E402

ROWS = 1_000_000


def frame(rows: int) -> pd.DataFrame:
    times = pd.date_range("2000-01-01", periods=rows, freq="min")
    rng = np.random.default_rng(0)
    price = 100 + rng.standard_normal(rows).cumsum()
    return pd.DataFrame({
        "symbol": "BTCUSDT", "interval": "1", "open_time": times, "open": price,
        "high": price + 1, "low": price - 1, "close": price, "volume": 1.0,
        "turnover": price,
    })


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    data = frame(ROWS)
    start, end = data.open_time.iloc[0], data.open_time.iloc[-1] + pd.Timedelta(minutes=1)
    where = {"symbol": "BTCUSDT", "interval": "1"}
    results: dict[str, list[float]] = {"insert new keys (replace path on an empty range)": [],
                                       "upsert new keys (INSERT OR REPLACE)": [],
                                       "upsert existing keys (INSERT OR REPLACE)": [],
                                       "replace existing partition (DELETE + INSERT)": []}
    for _ in range(3):
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "a.duckdb")
            store.init()
            results["insert new keys (replace path on an empty range)"].append(
                timed(lambda store=store: store.replace_range("candles", data, start=start, end=end,
                                                  where=where)))
            results["replace existing partition (DELETE + INSERT)"].append(
                timed(lambda store=store: store.replace_range("candles", data, start=start, end=end,
                                                  where=where)))
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "b.duckdb")
            store.init()
            results["upsert new keys (INSERT OR REPLACE)"].append(
                timed(lambda store=store: store.upsert("candles", data)))
            results["upsert existing keys (INSERT OR REPLACE)"].append(
                timed(lambda store=store: store.upsert("candles", data)))
    print(f"DuckDB candle writes, {ROWS:,} rows, median of 3")
    for name, seconds in results.items():
        median = statistics.median(seconds)
        print(f"  {name:<50} {ROWS / median / 1e6:5.2f} M rows/s  ({median:.2f} s)")


if __name__ == "__main__":
    main()
