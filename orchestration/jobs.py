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
from orchestration.resources import (
    BybitResource,
    FearGreedResource,
    StagingResource,
    StoreResource,
)
from sentiment.config import Config
from sentiment.io.staging import load_staged
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


def _in_process_job(name: str, step: OpDefinition, description: str) -> JobDefinition:
    """A job of the one op ``step``, run in the launching process: no per-step process
    start-up (a new bar in well under a second)."""

    @job(name=name, executor_def=in_process_executor, description=description)
    def one_step():
        step()

    return one_step


def build_live_update_job(config: Config) -> JobDefinition:
    """``live_update_job``: ingest what is new and extend sentiment_history (in-process)."""

    @op(
        pool=WRITER_POOL,
        description="Fetch the bars and slower data published since the last run, extend "
        "every tracker from its checkpoint and write rows, transitions and checkpoints in "
        "one transaction.",
    )
    def live_update(context: OpExecutionContext, store: StoreResource, bybit: BybitResource,
                    fear_greed_api: FearGreedResource, stream_staging: StagingResource):
        result = run_live_update(store.store(), config, bybit.client(), fear_greed_api.client(),
                                 stream_staging.staging())
        if result.staged:
            context.log.info(f"loaded the stream's staged rows: {result.staged}")
        if result.staging_error:
            context.log.warning(result.staging_error)
        for (symbol, interval), bars in sorted(result.bars.items()):
            context.log.info(f"{symbol} {interval}: {bars} new bar(s); final up to "
                             f"{result.final_until[(symbol, interval)]}")
        # DESIGN 8.1: the live job reports materializations for the partitions it touched.
        for date, symbol in sorted(result.touched_dates):
            yield AssetMaterialization(
                asset_key="sentiment_history", partition=f"{date}|{symbol}",
                metadata={"source": MetadataValue.text("live_update_job")},
            )
        yield Output(sum(result.bars.values()))

    return _in_process_job(
        "live_update_job", live_update,
        "Near-real-time update of sentiment_history from the newest closed bars.")


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
