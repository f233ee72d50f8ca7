"""Bulk write throughput of 1 M candle rows: PostgreSQL (binary COPY) against DuckDB.

The same ``Store.replace_range`` call (delete + insert in one transaction, the partition
write) and ``Store.upsert`` of new keys on each backend, on a throwaway PostgreSQL server
started from Debian's package (``scripts/local_postgres.py``; fsync off, like the tests) and a
temporary DuckDB file. Each figure is the best of 3 runs on a fresh database, including the
connection, the transfer and the commit. ``python bench/bench_postgres.py ROWS`` writes
another number of rows. Skips with a message when PostgreSQL's server binaries are not
installed (``apt-get install postgresql``).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_store import frame  # noqa: E402
from local_postgres import create_database, postgres_binaries, throwaway_postgres  # noqa: E402

from sentiment.io.store import Store  # noqa: E402

ROWS = 1_000_000
RUNS = 3


def measure(make_store, data) -> dict[str, float]:
    start = data.open_time.iloc[0]
    end = data.open_time.iloc[-1] + pd.Timedelta(minutes=1)
    where = {"symbol": "BTCUSDT", "interval": "1"}
    best: dict[str, list[float]] = {"replace (DELETE + INSERT), empty range": [],
                                    "replace (DELETE + INSERT), existing rows": [],
                                    "upsert new keys": []}
    for run in range(RUNS):
        store = make_store(run)
        store.init()
        for name in list(best)[:2]:
            began = time.perf_counter()
            store.replace_range("candles", data, start=start, end=end, where=where)
            best[name].append(time.perf_counter() - began)
        fresh = make_store(f"{run}u")
        fresh.init()
        began = time.perf_counter()
        fresh.upsert("candles", data)
        best["upsert new keys"].append(time.perf_counter() - began)
    return {name: min(times) for name, times in best.items()}


def main() -> None:
    bin_dir = postgres_binaries()
    if bin_dir is None:
        print("bench_postgres: skipped, no PostgreSQL server binaries under "
              "/usr/lib/postgresql/*/bin (apt-get install postgresql)")
        return
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else ROWS
    data = frame(rows)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["DuckDB"] = measure(lambda run: Store(Path(tmp) / f"{run}.duckdb"), data)
    with throwaway_postgres(bin_dir) as server:
        results["PostgreSQL (COPY)"] = measure(
            lambda run: Store(create_database(server, f"bench_{run}")), data)
    print(f"bulk write of {rows:,} candle rows (best of {RUNS}, rows/s)")
    for backend, figures in results.items():
        for name, seconds in figures.items():
            print(f"  {backend:<18} {name:<42} {rows / seconds / 1e6:6.2f} M rows/s "
                  f"({seconds:.2f} s)")


if __name__ == "__main__":
    main()
