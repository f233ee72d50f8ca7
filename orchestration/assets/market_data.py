"""Ingestion assets: candles, funding rates, open interest, long/short ratio, Fear & Greed.

Each asset owns the table of its name and is generated from one row of ``INGESTIONS`` (the
client call that fetches it, the columns a partition spans, its partitions). A run fetches
every partition it was given first and only then replaces exactly those partitions in one
transaction, so a failed fetch (bad response, exhausted retries) writes nothing and leaves
what is stored untouched.

An answer with fewer rows than a partition holds (an empty list, the exchange's clock behind,
a partial page) fails the step with ``ShrinkError`` and changes nothing. A user who knows the
shorter data is right (the exchange removed a delisted symbol's history) runs the asset with
the config ``allow_shrink: true``. Each step writes to the database file the run started
with: a file deleted or replaced mid-run fails the step instead of being recreated with only
the run's rows.
"""


import datetime as dt
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    asset,
)
from pydantic import Field

from orchestration.assets import (
    SINGLE_RUN,
    WRITES_DUCKDB,
    empty_metadata,
    empty_partitions,
    span_metadata,
    tag_run_symbols,
)
from orchestration.logs import forward_progress
from orchestration.partitions import (
    DateRun,
    daily_partitions,
    group_partition_keys,
    market_data_partitions,
)
from orchestration.resources import StoreResource
from sentiment.config import Config
from sentiment.io.store import TABLES, ShrinkError, Slice, Store

log = logging.getLogger(__name__)

GROUP = "market_data"
#: Run tag: "<run id> <device:inode>" of the database file the run's first writing step found.
DB_FILE_TAG = "sentiment/database_file"

#: ``fetch(symbol, start, end)``: the rows of ``[start, end)`` for one symbol (or for none).
Fetch = Callable[[str | None, dt.datetime, dt.datetime], pd.DataFrame]


@dataclass(frozen=True)
class Ingestion:
    """One ingestion asset: the table it owns and how a run fills it."""

    table: str
    #: The client's fetch call: ``method(symbol, [per value,] start, end)``.
    method: str
    #: Formatted with the configuration's ``exchange_data`` as ``exchange``.
    description: str
    #: The column a partition spans besides the symbol, and its configured value(s): the
    #: call is made once per value and a write replaces exactly those values.
    per: tuple[str, Callable[[Config], str | list[str]]] | None = None
    #: The ``exchange_data`` flag that switches the asset off.
    switch: str | None = None
    #: The resource whose ``client()`` makes the call (and whose URL is the rows' source).
    resource: str = "bybit"
    partitions: Callable[[Config], PartitionsDefinition] = market_data_partitions
    #: ``method()`` takes no range and returns the whole history (sliced per partition).
    whole_history: bool = False

    @property
    def by_symbol(self) -> bool:
        return self.partitions is market_data_partitions


INGESTIONS = (
    Ingestion(
        "candles", method="klines", per=("interval", lambda config: list(config.intervals)),
        description="Closed Bybit linear-perpetual candles for every configured interval "
        "(a bar belongs to the UTC date of its open time).",
    ),
    Ingestion(
        "funding_rates", method="funding_history", switch="funding_rate",
        description="Settled Bybit funding rates (fraction per settlement).",
    ),
    Ingestion(
        "open_interest", method="open_interest", switch="open_interest",
        per=("interval", lambda config: config.exchange_data.open_interest_interval),
        description="Bybit open interest per {exchange.open_interest_interval} (base coin).",
    ),
    Ingestion(
        "long_short_ratio", method="long_short_ratio", switch="long_short_ratio",
        per=("period", lambda config: config.exchange_data.long_short_period),
        description="Bybit long/short account ratio per {exchange.long_short_period} "
        "(buy_ratio = share of accounts net long).",
    ),
    # API limit: alternative.me has no date range, only "the newest N days"; the whole
    # history is ~3000 rows, so a run fetches it once and slices it.
    Ingestion(
        "fear_greed", method="history", whole_history=True, resource="fear_greed_api",
        partitions=daily_partitions,
        description="alternative.me Crypto Fear & Greed Index, one value per UTC day (0-100).",
    ),
)


class IngestConfig(dg.Config):
    """Run configuration of an ingestion asset (all optional)."""

    allow_shrink: bool = Field(
        default=False,
        description="Accept an answer with fewer rows than a partition holds and delete the "
        "stored rows it lacks (e.g. the exchange removed a delisted symbol's history). By "
        "default such an answer fails the run and nothing is changed.",
    )


def run_store(context: AssetExecutionContext, store: StoreResource) -> Store:
    """This step's store, pinned to the database file the run started with.

    The first step to find the file records it in a run tag; later steps (also in other
    processes) expect that file, so a database deleted mid-run fails each of them instead of
    being recreated holding only this run's partitions. The tag names its run: a retry (a
    new run, which Dagster may give its parent's tags) starts afresh.
    """
    db = store.store(identity=_pinned_file(context))
    _remember_file(context, db)
    return db


def _pinned_file(context: AssetExecutionContext) -> str | None:
    run = context.instance.get_run_by_id(context.run.run_id)
    run_id, _, identity = (run.tags.get(DB_FILE_TAG, "") if run else "").partition(" ")
    return identity if run_id == context.run.run_id and identity else None


def _remember_file(context: AssetExecutionContext, db: Store) -> None:
    if db.identity is not None and _pinned_file(context) is None:
        context.instance.add_run_tags(context.run.run_id,
                                      {DB_FILE_TAG: f"{context.run.run_id} {db.identity}"})


def _fetcher(spec: Ingestion, client: Any, values: list[str]) -> Fetch:
    """The run's ``fetch`` for ``spec`` through ``client``."""
    call = getattr(client, spec.method)
    if spec.whole_history:
        history = functools.cache(call)  # once per run
        time = TABLES[spec.table].time_column

        def fetch_slice(_symbol, start, end):
            frame = history()
            mask = (frame[time] >= pd.Timestamp(start)) & (frame[time] < pd.Timestamp(end))
            return frame.loc[mask].reset_index(drop=True)

        return fetch_slice
    if spec.per is None:
        return call

    def fetch_each(symbol, start, end):
        return pd.concat([call(symbol, v, start, end) for v in values], ignore_index=True)

    return fetch_each


def _metadata(table: str, frame: pd.DataFrame, runs: list[DateRun], source: str) -> dict:
    meta: dict = {
        "dagster/row_count": MetadataValue.int(len(frame)),
        "partitions": MetadataValue.int(sum(r.days for r in runs)),
        "source": MetadataValue.text(source),
    }
    if not frame.empty:
        meta |= span_metadata(frame[TABLES[table].time_column])
        if "symbol" in frame.columns:
            counts = frame.groupby("symbol").size()
            meta["rows_by_symbol"] = MetadataValue.json({k: int(v) for k, v in counts.items()})
    return meta


def _ingest(
    context: AssetExecutionContext,
    store: StoreResource,
    table: str,
    source: str,
    fetch: Fetch,
    where: Callable[[str | None], dict],
    config: IngestConfig,
) -> MaterializeResult:
    runs = group_partition_keys(list(context.partition_keys))
    tag_run_symbols(context, runs)
    db = run_store(context, store)  # before fetching: the file as the run found it
    frames, slices = [], []
    for run in runs:
        frame = fetch(run.symbol, run.start, run.end)
        log.info(f"{table} {run.symbol or 'all'}: {len(frame):,} row(s) fetched for "
                 f"{run.start:%Y-%m-%d}..{run.end:%Y-%m-%d} ({run.days} day(s))")
        frames.append(frame)
        slices.append(Slice(frame, run.start, run.end, where(run.symbol)))
    if config.allow_shrink:
        context.log.warning(f"{table}: allow_shrink is set: stored rows missing from the "
                            "answer are deleted")
    try:
        written = db.replace_slices(table, slices, allow_shrink=config.allow_shrink,
                                    source=source)
    except ShrinkError as exc:
        exc.advice = (
            "If the exchange really dropped these rows (e.g. a delisted symbol), accept the "
            "shorter data on purpose with the run config "
            f"{{ops: {{{table}: {{config: {{allow_shrink: true}}}}}}}} (the Launchpad, or "
            "`dagster asset materialize --config-json`)"
        )
        raise
    _remember_file(context, db)  # a file this write created
    combined = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    log.info(f"{table}: wrote {written:,} row(s) for {len(runs)} range(s)")
    empty, total = empty_partitions(runs, _days(table, combined))
    why = (f"{source} answered no {table} rows for those days: before the symbol's "
           "listing, after the end of its data, or not published yet")
    if empty:
        log.warning(f"{table}: {len(empty)} of {total} partition(s) hold no rows "
                    f"(first {empty[0]})")
    return MaterializeResult(metadata=_metadata(table, combined, runs, source)
                             | empty_metadata(empty, total, why))


def _days(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The partition (UTC day, and symbol) of each row of ``frame``."""
    if frame.empty:
        return pd.DataFrame({"day": []})
    days = {"day": pd.to_datetime(frame[TABLES[table].time_column]).dt.floor("D")}
    if "symbol" in frame.columns:
        days["symbol"] = frame["symbol"]
    return pd.DataFrame(days)


def _skipped(context: AssetExecutionContext, table: str, flag: str) -> MaterializeResult:
    # Switched off: nothing is fetched and what is stored stays (an empty "answer" would
    # otherwise delete it).
    context.log.info(f"{table}: {flag} is false: nothing fetched, stored rows kept")
    return MaterializeResult(metadata={
        "dagster/row_count": MetadataValue.int(0),
        "skipped": MetadataValue.text(f"{flag} is false"),
    })


def build_ingestion_asset(spec: Ingestion, config: Config) -> AssetsDefinition:
    """The asset that fills ``spec.table`` under this configuration."""
    column, value = spec.per or (None, None)
    per_value = value(config) if value else None
    values = per_value if isinstance(per_value, list) else [per_value]
    off = (f"exchange_data.{spec.switch}"
           if spec.switch and not getattr(config.exchange_data, spec.switch) else None)

    def where(symbol: str | None) -> dict:
        return ({"symbol": symbol} if spec.by_symbol else {}) | (
            {column: per_value} if column else {})

    @asset(
        name=spec.table,
        description=spec.description.format(exchange=config.exchange_data),
        partitions_def=spec.partitions(config),
        backfill_policy=SINGLE_RUN,
        group_name=GROUP,
        required_resource_keys={"store", spec.resource},
        **WRITES_DUCKDB,
    )
    # ``config`` is the run's: Dagster finds the asset's run config by this parameter name.
    def ingest(context: AssetExecutionContext, config: IngestConfig) -> MaterializeResult:
        if off:
            return _skipped(context, spec.table, off)
        source = getattr(context.resources, spec.resource)
        fetch = _fetcher(spec, source.client(), values)
        with forward_progress(context):
            return _ingest(context, context.resources.store, spec.table, source.base_url,
                           fetch, where, config)

    return ingest


def build_market_data_assets(config: Config) -> list[AssetsDefinition]:
    """The five ingestion assets for this configuration."""
    return [build_ingestion_asset(spec, config) for spec in INGESTIONS]
