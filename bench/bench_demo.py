"""Wall time of the demo pipeline after install (`python -m orchestration.demo`).

Runs it twice on a fresh database file and checks that the second run leaves the same rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("candles", "funding_rates", "open_interest", "long_short_ratio", "fear_greed")


def counts(db: str) -> dict[str, int]:
    with duckdb.connect(db, read_only=True) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "demo.duckdb")
        env = {**os.environ, "SENTIMENT_DB": db}
        env.pop("DAGSTER_HOME", None)
        times, seen = [], []
        for _ in range(2):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "orchestration.demo"], cwd=ROOT, env=env,
                           check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
            seen.append(counts(db))
    print("demo pipeline (after install), fresh database")
    print(f"  first run:  {times[0]:.1f} s   rows {seen[0]}")
    print(f"  second run: {times[1]:.1f} s   same rows: {seen[0] == seen[1]}")


if __name__ == "__main__":
    main()
