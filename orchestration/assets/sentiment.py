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
    MaterializeResult,
    MetadataValue,
    MultiToSingleDimensionPartitionMapping,
    asset,
)

from orchestration.assets import (
    SINGLE_RUN,
    WRITES_DUCKDB,
    empty_metadata,
    empty_partitions,
    span_metadata,
    tag_run_symbols,
)
from orchestration.assets.market_data import INGESTIONS
from orchestration.logs import forward_progress
from orchestration.partitions import group_partition_keys, market_data_partitions
from orchestration.resources import StoreResource
from sentiment.config import Config
from sentiment.services.pipeline import backfill, interval_delta, model_rows, train_latest

GROUP = "sentiment"


def _market_data_deps() -> list[str | AssetDep]:
    """Every ingested table; the daily ones (Fear & Greed) map onto the date dimension."""
    return [spec.table if spec.by_symbol else AssetDep(
        spec.table, partition_mapping=MultiToSingleDimensionPartitionMapping("date"))
        for spec in INGESTIONS]


def build_sentiment_assets(config: Config) -> list[AssetsDefinition]:
    @asset(
        description="One snapshot per closed bar: composite sentiment, confidence, six "
        "sub-scores, regime with hysteresis (timestamp = the bar's close). Writes "
        "regime_transitions for the same bars.",
        partitions_def=market_data_partitions(config),
        backfill_policy=SINGLE_RUN,
        group_name=GROUP,
        deps=[*_market_data_deps(), "hmm_models"],
        **WRITES_DUCKDB,
    )
    def sentiment_history(context: AssetExecutionContext, store: StoreResource
                          ) -> MaterializeResult:
        db = store.store()
        history, transitions, rows, models = [], [], 0, {}
        runs = group_partition_keys(list(context.partition_keys))
        tag_run_symbols(context, runs)
        with forward_progress(context):  # per symbol and interval, as each is computed
            for run in runs:
                result = backfill(db, config, run.symbol, run.start, run.end)
                history += result.history
                transitions += result.transitions
                rows += result.rows
                models.update({m.model_id: m for m in result.models})
        upsert = {"hmm_models": model_rows(list(models.values()))} if models else {}
        db.write(replace={"sentiment_history": history, "regime_transitions": transitions},
                 upsert=upsert)
        frames = [s.frame for s in history if len(s.frame)]
        combined = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        # A row's partition is the UTC day its bar opened (its timestamp is the close).
        opened = [(s.frame["timestamp"] - interval_delta(s.frame["interval"].iloc[0]))
                  .dt.floor("D") for s in history if len(s.frame)]
        days = pd.DataFrame({"day": pd.concat(opened, ignore_index=True),
                             "symbol": combined["symbol"]}) if frames else pd.DataFrame(
                                 {"day": [], "symbol": []})
        empty, total = empty_partitions(runs, days)
        why = ("no stored candles for those days: materialize candles for them first (the "
               "exchange may have none: before the symbol's listing, after its data's end)")
        meta = {
            "dagster/row_count": MetadataValue.int(rows),
            "transitions": MetadataValue.int(sum(len(s.frame) for s in transitions)),
            "hmm_models_trained": MetadataValue.int(len(models)),
        }
        if not combined.empty:
            meta |= span_metadata(combined["timestamp"])
            regimes = combined["regime"].value_counts()
            meta["regimes"] = MetadataValue.json({str(k): int(v) for k, v in regimes.items()})
        return MaterializeResult(metadata=meta | empty_metadata(empty, total, why))

    @asset(
        description="Gaussian HMM regime models per symbol and interval, trained on the last "
        "hmm.window_bars bars closed by the newest Monday 00:00 UTC boundary of the stored "
        "data whose inputs are all in (2-4 states by BIC, stable labels, JSON parameters).",
        group_name=GROUP,
        deps=["candles", "funding_rates", "open_interest"],
        **WRITES_DUCKDB,
    )
    def hmm_models(context: AssetExecutionContext, store: StoreResource) -> MaterializeResult:
        db = store.store()
        trained = train_latest(db, config)
        if trained.models:
            db.write(upsert={"hmm_models": model_rows(trained.models)})
        for line in trained.skipped:
            context.log.warning(line)
        meta: dict = {"models": MetadataValue.int(len(trained.models))}
        for m in trained.models:
            summary = m.state_summary()
            meta[f"{m.symbol} {m.interval}"] = MetadataValue.json({
                "model_id": m.model_id, "n_states": m.n_states,
                "bic": {str(k): round(v, 2) for k, v in m.bic.items()},
                "labels": m.labels, "train_start": str(m.train_start),
                "train_end": str(m.train_end), "n_train": m.n_train,
                "state_means": {f"{k}:{row['label']}": {c[:-5]: row[c] for c in summary
                                                        if c.endswith("_mean")}
                                for k, row in summary.iterrows()},
            })
        if trained.skipped:
            meta["skipped"] = MetadataValue.md("\n".join(f"- {s}" for s in trained.skipped))
        return MaterializeResult(metadata=meta)

    return [sentiment_history, hmm_models]
