"""``make demo``: the whole pipeline on the bundled recorded data, with no internet.

Starts the replay exchange on 127.0.0.1, points the clients at it, materializes every
ingestion asset over the bundled window for every configured symbol (one run per job: a
range of partitions, DESIGN 8.11), runs the asset checks, and prints rows and time range
per table. Running it twice gives the same rows: every write replaces its partitions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time

from dagster import DagsterInstance

from orchestration.definitions import build_definitions
from orchestration.logs import progress_to
from orchestration.partitions import symbol_tags
from replay.server import (
    BUNDLE_END,
    BUNDLE_START,
    BUNDLED_SYMBOLS,
    SYNTHETIC_SERIES,
    ReplayExchange,
)
from sentiment.config import load_config
from sentiment.io.store import Store, named_queries
from sentiment.provenance import read_source
from sentiment.services.status import format_status
from sentiment.settings import get_settings

#: Tables filled by the ingestion assets, and what the demo says about their origin.
INGESTED = {
    "candles": "recorded Bybit",
    "funding_rates": "recorded Bybit",
    "open_interest": "SYNTHETIC (from candles)",
    "long_short_ratio": "SYNTHETIC (from candles)",
    "fear_greed": "recorded alternative.me",
    "sentiment_history": "computed (sentiment engine)",
    "regime_transitions": "computed (sentiment engine)",
    "hmm_models": "trained (walk-forward HMM)",
}


#: Keep Dagster's per-step log lines out of the demo's report (the UI shows them all);
#: the steps' own progress lines are printed instead (:func:`_progress`).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class _Elapsed(logging.Formatter):
    """``    [  12.3 s] message``: seconds since the job started."""

    def __init__(self) -> None:
        super().__init__()
        self.started = time.perf_counter()

    def format(self, record: logging.LogRecord) -> str:
        return f"    [{time.perf_counter() - self.started:6.1f} s] {record.getMessage()}"


def _progress():
    """Print the steps' progress lines (per table and symbol, per symbol and interval, HMM
    models) while a job runs: a long step never sits silent."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_Elapsed())
    return progress_to(handler)


def _range_tags(first: str, last: str) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }


def _instance(persist: bool) -> DagsterInstance:
    # A persistent instance (DAGSTER_HOME, as `make up` uses) records every partition's
    # materialization in SQLite: ~3,000 events that take about 2 minutes to write here,
    # against ~25 s in memory. The demo stays in memory unless asked to persist.
    if persist and os.environ.get("DAGSTER_HOME"):
        return DagsterInstance.get()
    return DagsterInstance.ephemeral()


def print_table_summary(store: Store, tables: dict[str, str]) -> None:
    summary = store.summary(list(tables))
    header = f"{'table':<18} {'rows':>8} {'symbols':>7}  {'first':<19}  {'last':<19}  source"
    print(header)
    print("-" * len(header))
    for row in summary.to_dict("records"):
        nsym = row["symbols"]
        symbols = "-" if nsym is None or nsym != nsym else int(nsym)
        first = str(row["first"])[:19] if row["first"] is not None else "-"
        last = str(row["last"])[:19] if row["last"] is not None else "-"
        print(
            f"{row['table']:<18} {row['rows']:>8} {symbols!s:>7}  {first:<19}  {last:<19}  "
            f"{tables[row['table']]}"
        )


def print_status(store: Store, symbols: list[str], interval: str) -> None:
    query = named_queries("queries.sql")["latest_snapshot"]
    with store.connect(read_only=True) as conn:
        for symbol in symbols:
            frame = conn.execute(query, [symbol, interval]).df()
            if not frame.empty:
                row = frame.iloc[0].to_dict()
                print()
                print(format_status(row, read_source(conn, symbol, row["timestamp"])))


def run(start: dt.date, end: dt.date, persist: bool = False) -> int:
    config = load_config()
    symbols = [s for s in config.symbols if s in BUNDLED_SYMBOLS]
    if not symbols:
        print(f"none of the configured symbols {config.symbols} is in the bundle {BUNDLED_SYMBOLS}")
        return 2
    last_day = end - dt.timedelta(days=1)
    with ReplayExchange(port=0) as exchange:
        os.environ["BYBIT_BASE_URL"] = exchange.base_url
        os.environ["FEAR_GREED_URL"] = exchange.fear_greed_url
        settings = get_settings()
        print(f"replay exchange on {exchange.base_url} (recorded Bybit and alternative.me data; "
              f"{', '.join(SYNTHETIC_SERIES)} are SYNTHETIC, generated from the candles)")
        print(f"database: {settings.db_path}")
        defs = build_definitions(config, settings)
        instance = _instance(persist)
        days = _range_tags(f"{start:%Y-%m-%d}", f"{last_day:%Y-%m-%d}")
        pairs = _range_tags(f"{start:%Y-%m-%d}|{symbols[0]}", f"{last_day:%Y-%m-%d}|{symbols[-1]}"
                            ) | symbol_tags(symbols)
        runs = [("market_data_job", pairs), ("fear_greed_job", days), ("sentiment_job", pairs),
                ("hmm_retrain_job", {})]
        failed = []
        for job_name, tags in runs:
            started = time.perf_counter()
            job = defs.resolve_job_def(job_name)
            span = (f"{tags['dagster/asset_partition_range_start']} .. "
                    f"{tags['dagster/asset_partition_range_end']}  "
                    if "dagster/asset_partition_range_start" in tags else "")
            print(f"{job_name}: {span}...", flush=True)
            with _progress():
                result = job.execute_in_process(
                    instance=instance, tags=tags, raise_on_error=False, run_config=QUIET
                )
            took = time.perf_counter() - started
            status = "ok" if result.success else "FAILED"
            print(f"{job_name}: {span}{status} in {took:.1f} s")
            for check in result.get_asset_check_evaluations():
                mark = "pass" if check.passed else f"FAIL ({check.severity.value})"
                print(f"  check {check.check_name:<36} {mark}  {check.description or ''}")
            if not result.success:
                failed.append(job_name)
        print()
        store = Store(settings.db_path)
        print_table_summary(store, INGESTED)
        if "sentiment_job" not in failed:
            print_status(store, symbols, config.intervals[0])
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print()
    print("Query it (read-only, so the pipeline can keep writing):")
    print(f"  .venv/bin/python -c \"import duckdb; print(duckdb.connect('{settings.db_path}', "
          f"read_only=True).sql('SELECT symbol, interval, count(*) FROM candles GROUP BY ALL'))\"")
    print("  more in sentiment/sql/examples.sql; rows per table: .venv/bin/sentiment tables")
    print("See it in the dashboard (http://127.0.0.1:8501):")
    print(f"  SENTIMENT_DB={settings.db_path} .venv/bin/streamlit run dashboard/app.py")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=dt.date.fromisoformat, default=BUNDLE_START.date())
    parser.add_argument("--end", type=dt.date.fromisoformat, default=BUNDLE_END.date(),
                        help="exclusive")
    parser.add_argument("--persist", action="store_true",
                        help="record the runs in $DAGSTER_HOME so `make up` shows them (slower)")
    args = parser.parse_args(argv)
    return run(args.start, args.end, args.persist)


if __name__ == "__main__":
    sys.exit(main())
