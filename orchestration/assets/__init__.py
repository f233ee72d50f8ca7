"""Assets: each owns the DuckDB table of its name.

What every asset here shares is defined once: they write one DuckDB file, which allows one
writing process at a time, so they all run in one pool.
"""

import datetime as dt

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    BackfillPolicy,
    MetadataValue,
    asset_check,
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


#: How many empty partition keys a materialization lists (the count is always exact).
EMPTY_KEYS_SHOWN = 200


def empty_metadata(empty: list[str], total: int, why: str) -> dict[str, MetadataValue]:
    """What a materialization says about the partitions it wrote that hold no rows: how
    many (always), which and why (when any). ``<asset>_partitions_have_rows`` reads it."""
    meta = {"empty_partitions": MetadataValue.int(len(empty)),
            "partitions_written": MetadataValue.int(total)}
    if empty:
        meta["empty"] = MetadataValue.text(
            f"{len(empty)} of {total} partition(s) hold no rows (first {empty[0]}): {why}")
        meta["empty_keys"] = MetadataValue.json(empty[:EMPTY_KEYS_SHOWN])
    return meta


def build_rows_check(table: str) -> AssetChecksDefinition:
    """``<table>_partitions_have_rows``: the newest materialization of ``table`` wrote no
    empty partition. A backfill of days the source has no data for (before a listing,
    after the data's end) still succeeds, but never silently: this check fails (a warning)
    naming them. It runs with every materialization, and alone on the newest one."""

    @asset_check(asset=table, name=rows_check_name(table),
                 description="Every partition the newest materialization wrote holds rows (a "
                 "day the source has no data for is named here instead of passing as "
                 "materialized).")
    def check(context: AssetCheckExecutionContext) -> AssetCheckResult:
        event = context.instance.get_latest_materialization_event(AssetKey(table))
        if event is None or event.asset_materialization is None:
            return AssetCheckResult(passed=True, description="not materialized yet")
        meta = event.asset_materialization.metadata
        count = meta.get("empty_partitions")
        run = f"run {event.run_id[:8]}"
        if count is None or not count.value:
            return AssetCheckResult(passed=True, description=f"no empty partition ({run})",
                                    metadata={"empty_partitions": MetadataValue.int(0)})
        keys = list(meta["empty_keys"].value) if "empty_keys" in meta else []
        total = meta["partitions_written"].value if "partitions_written" in meta else "?"
        shown = ", ".join(keys[:5]) + (f" and {count.value - 5} more" if count.value > 5
                                       else "")
        return AssetCheckResult(
            passed=False, severity=AssetCheckSeverity.WARN,
            description=f"{count.value} of {total} partition(s) hold no rows ({run}): {shown}",
            metadata={"empty_partitions": MetadataValue.int(count.value),
                      "empty": meta["empty"] if "empty" in meta else MetadataValue.text(""),
                      "empty_keys": MetadataValue.json(keys)})

    return check
