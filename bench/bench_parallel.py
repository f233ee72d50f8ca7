"""Many symbols: DuckDB (one writer) against PostgreSQL (runs and symbols side by side).

Twenty symbols (the two recorded ones and 18 derived ones, :mod:`derived`) x two intervals
(1h, 4h), served by the replay exchange from a derived bundle; PostgreSQL is a throwaway
server from Debian's package (``tests/pg_server.py``: fsync off, as in the tests).

1. ``backfill``: the bundled year through the real daemon (``dagster dev``): per symbol one
   ``market_data_job`` run and one ``sentiment_job`` run over the whole year (what a
   backfill of all symbols launches), all submitted at once through the webserver's GraphQL
   API. DuckDB runs against its instance in ``dagster_home/`` (its pool admits one writing
   step at a time); PostgreSQL against ``deploy/dagster/dagster.yaml`` with 2 and then 4
   runs at once. Wall time from the first submission to the last run's end; rows/s are the
   rows written (candles and the other market tables, then sentiment_history) per second.
2. ``live``: ``live_update_job`` in process for one new bar of 20 symbols after a month
   stored, on DuckDB (one session) and PostgreSQL (one connection per symbol, 1 and 2 at
   once); then ``latency``: bar close on the exchange -> committed row of every symbol
   through ``dagster dev`` (sensor polling every second), both backends.

``python bench/bench_parallel.py [backfill] [live] [latency]`` (all three by default).
Skips with a message when PostgreSQL's server binaries are not installed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from dagster import DagsterInstance  # noqa: E402
from derived import config_text, write_bundle  # noqa: E402

from orchestration.definitions import build_definitions  # noqa: E402
from replay.server import ReplayExchange  # noqa: E402
from sentiment.config import load_config  # noqa: E402
from sentiment.io.store import Store  # noqa: E402
from sentiment.services.live import live_update  # noqa: E402
from sentiment.settings import get_settings  # noqa: E402

from pg_server import create_database, postgres_binaries, throwaway_postgres  # noqa: E402

SYMBOLS = 20
LIVE_START = dt.datetime(2022, 12, 1)
BARS = 8


def _defs(exchange, db, config):
    settings = dataclasses.replace(get_settings(), db_path=db,
                                   bybit_base_url=exchange.base_url,
                                   fear_greed_url=exchange.fear_greed_url)
    return build_definitions(config, settings)


def _run(defs, job, instance, **kwargs):
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=True,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}}, **kwargs)
    assert result.success
    return result


# ------------------------------------------------------------------------------ live


def bench_live(tmp: Path, bundle: Path, databases: dict[str, str]) -> None:
    """One new bar for 20 symbols x 2 intervals after a month stored, in process."""
    cfg = tmp / "live.yaml"
    cfg.write_text(config_text(_symbols(bundle), "2022-11-01"))
    config = load_config(cfg)
    print(f"live update in process, one new bar, {len(config.symbols)} symbols x "
          f"{len(config.intervals)} intervals, a month stored (median of {BARS} bars):")
    for name, (db, workers) in databases.items():
        with ReplayExchange(port=0, now=LIVE_START, bundle_dir=bundle) as exchange:
            defs = _defs(exchange, db, config)
            bybit = defs.resources["bybit"].client()
            fng = defs.resources["fear_greed_api"].client()
            store = Store(db)
            start = time.perf_counter()
            live_update(store, config, bybit, fng, workers=workers)
            bootstrap = time.perf_counter() - start
            times, clock = [], LIVE_START
            for _ in range(BARS):
                clock += dt.timedelta(hours=1)
                exchange.set_clock(clock + dt.timedelta(seconds=5))
                start = time.perf_counter()
                result = live_update(store, config, bybit, fng, workers=workers)
                times.append(time.perf_counter() - start)
                assert sum(result.bars.values()) >= len(config.symbols), result.bars
        print(f"  {name:<34} median {statistics.median(times):5.2f} s, max "
              f"{max(times):5.2f} s  (bootstrap {bootstrap:5.1f} s)")


def _symbols(bundle: Path) -> list[str]:
    import pandas as pd

    return list(dict.fromkeys(pd.read_csv(bundle / "candles_60.csv.gz", usecols=["symbol"],
                                          compression="gzip")["symbol"]))


def main() -> None:
    parts = set(sys.argv[1:]) or {"backfill", "live", "latency"}
    bin_dir = postgres_binaries()
    if bin_dir is None:
        print("bench_parallel: skipped, no PostgreSQL server binaries under "
              "/usr/lib/postgresql/*/bin (apt-get install postgresql)")
        return
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as name, \
            throwaway_postgres(bin_dir) as server:
        tmp = Path(name)
        bundle = tmp / "bundle"
        write_bundle(bundle, SYMBOLS)
        if "live" in parts:
            bench_live(tmp, bundle, {
                "DuckDB (one session)": (str(tmp / "live.duckdb"), 1),
                "PostgreSQL, 1 symbol at a time": (create_database(server, "live1"), 1),
                "PostgreSQL, 2 symbols at once": (create_database(server, "live2"), 2),
            })


if __name__ == "__main__":
    main()
