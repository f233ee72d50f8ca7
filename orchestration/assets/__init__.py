"""Assets: each owns the DuckDB table of its name.

What every asset here shares is defined once: they write one DuckDB file, which allows one
writing process at a time, so they all run in one pool.
"""

import datetime as dt

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    BackfillPolicy,
    MetadataValue,
)

from orchestration.partitions import symbol_tags

#: One pool for every writer of the DuckDB file: it allows one writing process at a time.
WRITER_POOL = "duckdb_writer"

#: The ``@asset`` arguments of every writer of the DuckDB file.
WRITES_DUCKDB = {"pool": WRITER_POOL, "kinds": frozenset({"duckdb", "python"})}

#: One run for a whole backfill range: the fetch pages through the range once and the write
#: is one transaction (DESIGN 8.11).
SINGLE_RUN = BackfillPolicy.single_run()


def span_metadata(times: pd.Series) -> dict[str, MetadataValue]:
    """``first`` and ``last`` of a materialization's rows (``times`` not empty)."""
    times = pd.to_datetime(times)
    return {"first": MetadataValue.text(str(times.min())),
            "last": MetadataValue.text(str(times.max()))}


def tag_run_symbols(context, runs) -> None:
    """Tag the run with the symbols it writes (``runs``: its ``DateRun`` ranges).

    Dagster tags a one-partition run ``dagster/partition/symbol`` when it queues it, but a
    range (a single-run backfill) only with its first and last key, which no run-queue limit
    can read; a ``dagster/partition/...`` tag on a range would make Dagster take the range
    for one partition. So the first step of a run adds ``sentiment/symbol(s)``: runs queued
    after it then wait while it writes (deploy/dagster/dagster.yaml).
    """
    tags = symbol_tags(run.symbol for run in runs)
    run = context.instance.get_run_by_id(context.run.run_id)
    missing = {k: v for k, v in tags.items() if run is None or run.tags.get(k) != v}
    if missing:
        context.instance.add_run_tags(context.run.run_id, missing)


def rows_check_name(table: str) -> str:
    return f"{table}_partitions_have_rows"


def rows_check_spec(table: str) -> AssetCheckSpec:
    """The check a materialization of ``table`` reports with itself: every partition it
    wrote holds rows. A backfill of days the source has no data for (before a listing,
    after the data's end) still succeeds, but never silently."""
    return AssetCheckSpec(
        rows_check_name(table), asset=table,
        description="Every partition of the materialization holds rows (a day the source "
        "has no data for is named here instead of passing as materialized).")


def empty_partitions(runs, days: pd.DataFrame) -> tuple[list[str], int]:
    """Partition keys of ``runs`` (``DateRun``) without a row in ``days`` (columns ``day``:
    a UTC midnight, and ``symbol`` for partitions by symbol), and the number of keys."""
    have = set()
    if len(days):
        symbols = days["symbol"] if "symbol" in days.columns else [None] * len(days)
        have = {(s, pd.Timestamp(d).to_pydatetime()) for s, d in zip(symbols, days["day"],
                                                                       strict=True)}
    empty, total = [], 0
    for run in runs:
        for n in range(run.days):
            day = run.start + dt.timedelta(days=n)
            total += 1
            if (run.symbol, day) not in have:
                empty.append(f"{day:%Y-%m-%d}|{run.symbol}" if run.symbol else f"{day:%Y-%m-%d}")
    return empty, total


def rows_check(table: str, empty: list[str], total: int, why: str) -> AssetCheckResult:
    """:func:`rows_check_spec`'s result: failed (a warning) when a partition is empty."""
    if not empty:
        return AssetCheckResult(check_name=rows_check_name(table), asset_key=table,
                                passed=True, description=f"all {total} partition(s) hold rows",
                                metadata={"empty_partitions": MetadataValue.int(0)})
    shown = ", ".join(empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
    return AssetCheckResult(
        check_name=rows_check_name(table), asset_key=table, passed=False,
        severity=AssetCheckSeverity.WARN,
        description=f"{len(empty)} of {total} partition(s) hold no rows: {shown} ({why})",
        metadata={"empty_partitions": MetadataValue.int(len(empty)),
                  "empty": MetadataValue.json(empty[:200])})


def empty_metadata(empty: list[str], total: int, why: str) -> dict[str, MetadataValue]:
    """What a materialization says about its empty partitions (nothing when none is)."""
    if not empty:
        return {}
    return {"empty_partitions": MetadataValue.int(len(empty)),
            "empty": MetadataValue.text(f"{len(empty)} of {total} partition(s) hold no rows "
                                        f"(first {empty[0]}): {why}")}
