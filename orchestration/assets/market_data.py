"""Ingestion assets: candles, funding rates, open interest, long/short ratio, Fear & Greed.

Each asset owns the table of its name. A run fetches every partition it was given first and
only then replaces exactly those partitions in one transaction, so a failed fetch (bad
response, exhausted retries) writes nothing and leaves what is stored untouched.

An answer with fewer rows than a partition holds (an empty list, the exchange's clock behind,
a partial page) fails the step with ``ShrinkError`` and changes nothing. A user who knows the
shorter data is right (the exchange removed a delisted symbol's history) runs the asset with
the config ``allow_shrink: true``. Each step writes to the database file the run started
with: a file deleted or replaced mid-run fails the step instead of being recreated with only
the run's rows.
"""


import datetime as dt
from collections.abc import Callable

import dagster as dg
import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from orchestration.partitions import (
    DateRun,
    daily_partitions,
    group_partition_keys,
    market_data_partitions,
)
from orchestration.resources import BybitResource, FearGreedResource, StoreResource
from sentiment.config import Config
from sentiment.io.store import TABLES, ShrinkError, Slice, Store

#: One pool for every writer of the DuckDB file: it allows one writing process at a time.
WRITER_POOL = "duckdb_writer"
GROUP = "market_data"
#: Run tag: "<run id> <device:inode>" of the database file the run's first writing step found.
DB_FILE_TAG = "sentiment/database_file"


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
    pinned = _pinned_file(context)
    db = Store(store.database, lock_timeout=store.lock_timeout_seconds, identity=pinned)
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


def _metadata(table: str, frame: pd.DataFrame, runs: list[DateRun], source: str) -> dict:
    spec = TABLES[table]
    meta: dict = {
        "dagster/row_count": MetadataValue.int(len(frame)),
        "partitions": MetadataValue.int(sum(r.days for r in runs)),
        "source": MetadataValue.text(source),
    }
    if not frame.empty:
        times = pd.to_datetime(frame[spec.time_column])
        meta["first"] = MetadataValue.text(str(times.min()))
        meta["last"] = MetadataValue.text(str(times.max()))
        if "symbol" in frame.columns:
            counts = frame.groupby("symbol").size()
            meta["rows_by_symbol"] = MetadataValue.json({k: int(v) for k, v in counts.items()})
    return meta


def _ingest(
    context: AssetExecutionContext,
    store: StoreResource,
    table: str,
    source: str,
    fetch: Callable[[str | None, dt.datetime, dt.datetime], pd.DataFrame],
    where: Callable[[str | None], dict],
    *,
    config: IngestConfig,
    disabled: str | None = None,
) -> MaterializeResult:
    runs = group_partition_keys(list(context.partition_keys))
    if disabled:
        # Switched off: nothing is fetched and what is stored stays (an empty "answer" would
        # otherwise delete it).
        context.log.info(f"{table}: {disabled} is false: nothing fetched, stored rows kept")
        return MaterializeResult(metadata={
            "dagster/row_count": MetadataValue.int(0),
            "skipped": MetadataValue.text(f"{disabled} is false"),
        })
    db = run_store(context, store)  # before fetching: the file as the run found it
    frames, slices = [], []
    for run in runs:
        context.log.info(
            f"{table}: fetching {run.symbol or 'all'} {run.start:%Y-%m-%d}..{run.end:%Y-%m-%d} "
            f"({run.days} day(s))"
        )
        frame = fetch(run.symbol, run.start, run.end)
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
    context.log.info(f"{table}: wrote {written} row(s) for {len(runs)} range(s)")
    return MaterializeResult(metadata=_metadata(table, combined, runs, source))


def build_market_data_assets(config: Config) -> list[AssetsDefinition]:
    """The five ingestion assets for this configuration."""
    partitions = market_data_partitions(config)
    intervals = list(config.intervals)
    exchange = config.exchange_data
    oi_interval = exchange.open_interest_interval
    ls_period = exchange.long_short_period
    # One run for a whole backfill range: the fetch pages through the range once and the
    # write is one transaction (DESIGN 8.11).
    policy = BackfillPolicy.single_run()
    common = dict(
        partitions_def=partitions,
        backfill_policy=policy,
        pool=WRITER_POOL,
        group_name=GROUP,
        kinds={"duckdb", "python"},
    )

    @asset(
        description="Closed Bybit linear-perpetual candles for every configured interval "
        "(a bar belongs to the UTC date of its open time).",
        **common,
    )
    def candles(
        context: AssetExecutionContext, config: IngestConfig, store: StoreResource,
        bybit: BybitResource,
    ) -> MaterializeResult:
        client = bybit.client()

        def fetch(symbol, start, end):
            frames = [client.klines(symbol, iv, start, end) for iv in intervals]
            return pd.concat(frames, ignore_index=True)

        return _ingest(
            context, store, "candles", bybit.base_url, fetch,
            lambda symbol: {"symbol": symbol, "interval": intervals}, config=config,
        )

    @asset(
        description="Settled Bybit funding rates (fraction per settlement).",
        **common,
    )
    def funding_rates(
        context: AssetExecutionContext, config: IngestConfig, store: StoreResource,
        bybit: BybitResource,
    ) -> MaterializeResult:
        client = bybit.client()
        return _ingest(
            context, store, "funding_rates", bybit.base_url, client.funding_history,
            lambda symbol: {"symbol": symbol}, config=config,
            disabled=None if exchange.funding_rate else "exchange_data.funding_rate",
        )

    @asset(
        description=f"Bybit open interest per {oi_interval} (base coin).",
        **common,
    )
    def open_interest(
        context: AssetExecutionContext, config: IngestConfig, store: StoreResource,
        bybit: BybitResource,
    ) -> MaterializeResult:
        client = bybit.client()

        def fetch(symbol, start, end):
            return client.open_interest(symbol, oi_interval, start, end)

        return _ingest(
            context, store, "open_interest", bybit.base_url, fetch,
            lambda symbol: {"symbol": symbol, "interval": oi_interval}, config=config,
            disabled=None if exchange.open_interest else "exchange_data.open_interest",
        )

    @asset(
        description=f"Bybit long/short account ratio per {ls_period} "
        "(buy_ratio = share of accounts net long).",
        **common,
    )
    def long_short_ratio(
        context: AssetExecutionContext, config: IngestConfig, store: StoreResource,
        bybit: BybitResource,
    ) -> MaterializeResult:
        client = bybit.client()

        def fetch(symbol, start, end):
            return client.long_short_ratio(symbol, ls_period, start, end)

        return _ingest(
            context, store, "long_short_ratio", bybit.base_url, fetch,
            lambda symbol: {"symbol": symbol, "period": ls_period}, config=config,
            disabled=None if exchange.long_short_ratio else "exchange_data.long_short_ratio",
        )

    @asset(
        description="alternative.me Crypto Fear & Greed Index, one value per UTC day (0-100).",
        partitions_def=daily_partitions(config),
        backfill_policy=policy,
        pool=WRITER_POOL,
        group_name=GROUP,
        kinds={"duckdb", "python"},
    )
    def fear_greed(
        context: AssetExecutionContext, config: IngestConfig, store: StoreResource,
        fear_greed_api: FearGreedResource,
    ) -> MaterializeResult:
        client = fear_greed_api.client()
        history: list[pd.DataFrame] = []

        def fetch(_symbol, start, end):
            # API limit: alternative.me has no date range, only "the newest N days"; the whole
            # history is ~3000 rows, so fetch it once per run and slice it.
            if not history:
                history.append(client.history())
            frame = history[0]
            mask = (frame["ts"] >= pd.Timestamp(start)) & (frame["ts"] < pd.Timestamp(end))
            return frame.loc[mask].reset_index(drop=True)

        return _ingest(context, store, "fear_greed", fear_greed_api.base_url, fetch,
                       lambda _: {}, config=config)

    return [candles, funding_rates, open_interest, long_short_ratio, fear_greed]

