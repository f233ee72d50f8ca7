"""``sentiment_history`` (and ``regime_transitions`` with it) as a backfillable asset.

A run recomputes each symbol's history from its first stored bar up to the end of the run's
range (fast: a year of hourly bars in a fraction of a second) and replaces exactly the
run's partitions, every configured interval, in one transaction. So history never depends
on how it was partitioned, and re-materializing a partition leaves the same rows.
"""


import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    MultiToSingleDimensionPartitionMapping,
    asset,
)

from orchestration.assets.market_data import WRITER_POOL
from orchestration.partitions import group_partition_keys, market_data_partitions
from orchestration.resources import StoreResource
from sentiment.config import Config
from sentiment.pipeline import backfill

GROUP = "sentiment"


def build_sentiment_assets(config: Config) -> list[AssetsDefinition]:
    @asset(
        description="One snapshot per closed bar: composite sentiment, confidence, six "
        "sub-scores, regime with hysteresis (timestamp = the bar's close). Writes "
        "regime_transitions for the same bars.",
        partitions_def=market_data_partitions(config),
        backfill_policy=BackfillPolicy.single_run(),
        pool=WRITER_POOL,
        group_name=GROUP,
        kinds={"duckdb", "python"},
        deps=[
            "candles", "funding_rates", "open_interest", "long_short_ratio",
            AssetDep("fear_greed",
                     partition_mapping=MultiToSingleDimensionPartitionMapping("date")),
        ],
    )
    def sentiment_history(context: AssetExecutionContext, store: StoreResource
                          ) -> MaterializeResult:
        db = store.store()
        history, transitions, rows = [], [], 0
        for run in group_partition_keys(list(context.partition_keys)):
            result = backfill(db, config, run.symbol, run.start, run.end)
            history += result.history
            transitions += result.transitions
            rows += result.rows
            context.log.info(f"sentiment_history: {run.symbol} {run.start:%Y-%m-%d}.."
                             f"{run.end:%Y-%m-%d}: {result.rows} row(s)")
        db.write(replace={"sentiment_history": history, "regime_transitions": transitions})
        frames = [s.frame for s in history if len(s.frame)]
        combined = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        meta = {
            "dagster/row_count": MetadataValue.int(rows),
            "transitions": MetadataValue.int(sum(len(s.frame) for s in transitions)),
        }
        if not combined.empty:
            meta["first"] = MetadataValue.text(str(combined["timestamp"].min()))
            meta["last"] = MetadataValue.text(str(combined["timestamp"].max()))
            regimes = combined["regime"].value_counts()
            meta["regimes"] = MetadataValue.json({str(k): int(v) for k, v in regimes.items()})
        return MaterializeResult(metadata=meta)

    return [sentiment_history]
