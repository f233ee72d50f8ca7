"""Jobs: ingestion (partitioned by date and symbol), sentiment backfills and the live update.

No ``from __future__ import annotations`` here: Dagster reads the op's annotations.
"""


from dagster import (
    AssetMaterialization,
    AssetSelection,
    JobDefinition,
    MetadataValue,
    OpDefinition,
    OpExecutionContext,
    Output,
    define_asset_job,
    in_process_executor,
    job,
    op,
)

from orchestration.assets import WRITER_POOL
from orchestration.assets.market_data import GROUP, INGESTIONS
from orchestration.logs import forward_progress
from orchestration.partitions import in_partitions, symbol_tags
from orchestration.resources import (
    BybitResource,
    FearGreedResource,
    StagingResource,
    StoreResource,
)
from sentiment.config import Config
from sentiment.core.timeutil import naive_utc_datetime
from sentiment.io.staging import load_staged
from sentiment.services.bootstrap import behind
from sentiment.services.bootstrap import bootstrap as run_bootstrap
from sentiment.services.live import live_update as run_live_update

#: The ingestion assets partitioned by date and symbol (the others: by date only).
MARKET_DATA_ASSETS = tuple(spec.table for spec in INGESTIONS if spec.by_symbol)
DAILY_ASSETS = tuple(spec.table for spec in INGESTIONS if not spec.by_symbol)

market_data_job = define_asset_job(
    "market_data_job",
    selection=AssetSelection.assets(*MARKET_DATA_ASSETS),
    description="Ingest candles, funding, open interest and long/short ratio for a "
    "date|symbol partition (or a backfill range of them).",
    tags={"group": GROUP},
)

fear_greed_job = define_asset_job(
    "fear_greed_job",
    selection=AssetSelection.assets(*DAILY_ASSETS),
    description="Ingest the daily Fear & Greed Index.",
)

hmm_retrain_job = define_asset_job(
    "hmm_retrain_job",
    selection=AssetSelection.assets("hmm_models"),
    description="Retrain the HMM regime models at the newest weekly boundary of the data.",
)

sentiment_job = define_asset_job(
    "sentiment_job",
    selection=AssetSelection.assets("sentiment_history"),
    description="Compute sentiment_history (and regime_transitions) for a date|symbol "
    "partition or a backfill range, from the stored market data.",
)


def _in_process_job(name: str, step: OpDefinition, description: str,
                    tags: dict[str, str] | None = None) -> JobDefinition:
    """A job of the one op ``step``, run in the launching process: no per-step process
    start-up (a new bar in well under a second)."""

    @job(name=name, executor_def=in_process_executor, description=description, tags=tags)
    def one_step():
        step()

    return one_step


def _materializations(config: Config, touched_dates, source: str):
    # DESIGN 8.1: the live job reports materializations for the partitions it touched (those
    # the configuration has: a live loop may run past its end_date).
    for date, symbol in sorted(touched_dates):
        if not in_partitions(config, date):
            continue
        yield AssetMaterialization(
            asset_key="sentiment_history", partition=f"{date}|{symbol}",
            metadata={"source": MetadataValue.text(source)},
        )


def _bootstrap_steps(context: OpExecutionContext, config: Config, db, bybit, fear_greed,
                     job_name: str):
    """Run the bootstrap month by month, yielding each month's materializations as it is
    committed; returns the sentiment rows written."""
    rows = 0
    for chunk in run_bootstrap(db, config, bybit, fear_greed):
        rows += chunk.rows
        yield from _materializations(config, chunk.touched_dates, job_name)
    return rows


def build_live_update_job(config: Config) -> JobDefinition:
    """``live_update_job``: ingest what is new and extend sentiment_history (in-process)."""

    @op(
        pool=WRITER_POOL,
        description="Fetch the bars and slower data published since the last run, extend "
        "every tracker from its checkpoint and write rows, transitions and checkpoints in "
        "one transaction. A database weeks behind is first brought up in monthly chunks, "
        "as bootstrap_job does.",
    )
    def live_update(context: OpExecutionContext, store: StoreResource, bybit: BybitResource,
                    fear_greed_api: FearGreedResource, stream_staging: StagingResource):
        db, client = store.store(), bybit.client()
        with forward_progress(context):
            # Requested directly on an empty or long idle database: the monthly chunks
            # first, so the write lock is never held for the whole history.
            reason = behind(db, config, naive_utc_datetime(client.server_time()))
            if reason:
                context.log.info(f"catching up first ({reason})")
                yield from _bootstrap_steps(context, config, db, client,
                                            fear_greed_api.client(), "live_update_job")
            result = run_live_update(db, config, client, fear_greed_api.client(),
                                     stream_staging.staging())
        if result.staged:
            context.log.info(f"loaded the stream's staged rows: {result.staged}")
        if result.staging_error:
            context.log.warning(result.staging_error)
        for (symbol, interval), bars in sorted(result.bars.items()):
            context.log.info(f"{symbol} {interval}: {bars} new bar(s); final up to "
                             f"{result.final_until[(symbol, interval)]}")
        yield from _materializations(config, result.touched_dates, "live_update_job")
        yield Output(sum(result.bars.values()))

    return _in_process_job(
        "live_update_job", live_update,
        "Near-real-time update of sentiment_history from the newest closed bars.",
        tags=symbol_tags(config.symbols))


def build_bootstrap_job(config: Config) -> JobDefinition:
    """``bootstrap_job``: the first start, month by month (in-process)."""

    @op(
        pool=WRITER_POOL,
        description="Bring an empty or long idle database up to the last Monday before the "
        "exchange's clock, one month at a time: fetch the month with no connection open, "
        "store it, extend every tracker over it and train its HMM models, then commit "
        "the month's rows and checkpoints in one short transaction. Readers get in between "
        "months; progress is logged per symbol and interval.",
    )
    def bootstrap(context: OpExecutionContext, store: StoreResource, bybit: BybitResource,
                  fear_greed_api: FearGreedResource):
        with forward_progress(context):
            rows = yield from _bootstrap_steps(context, config, store.store(), bybit.client(),
                                               fear_greed_api.client(), "bootstrap_job")
        yield Output(rows)

    return _in_process_job(
        "bootstrap_job", bootstrap,
        "First start: ingestion and sentiment history for the configured history, in "
        "monthly chunks (requested by live_update_sensor on an empty or long idle "
        "database); the live job then only adds new bars.",
        tags=symbol_tags(config.symbols))


@op(
    pool=WRITER_POOL,
    description="Load the live stream's staged Parquet files (liquidations, order-book "
    "imbalance, tickers, how far the stream got) into DuckDB in one transaction.",
)
def load_stream(context: OpExecutionContext, store: StoreResource,
                stream_staging: StagingResource):
    result = load_staged(store.store(), stream_staging.staging())
    context.log.info(f"{len(result.files)} staged file(s): {result.rows}")
    yield Output(len(result.files), metadata={
        table: MetadataValue.int(n) for table, n in result.rows.items()})


stream_load_job = _in_process_job(
    "stream_load_job", load_stream,
    "Move the stream's staged rows into DuckDB (requested by stream_load_sensor).")
