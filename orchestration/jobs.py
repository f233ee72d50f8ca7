"""Jobs: ingestion of market data (partitioned by date and symbol) and of Fear & Greed."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from orchestration.assets.market_data import GROUP

MARKET_DATA_ASSETS = ("candles", "funding_rates", "open_interest", "long_short_ratio")

market_data_job = define_asset_job(
    "market_data_job",
    selection=AssetSelection.assets(*MARKET_DATA_ASSETS),
    description="Ingest candles, funding, open interest and long/short ratio for a "
    "date|symbol partition (or a backfill range of them).",
    tags={"group": GROUP},
)

fear_greed_job = define_asset_job(
    "fear_greed_job",
    selection=AssetSelection.assets("fear_greed"),
    description="Ingest the daily Fear & Greed Index.",
)

sentiment_job = define_asset_job(
    "sentiment_job",
    selection=AssetSelection.assets("sentiment_history"),
    description="Compute sentiment_history (and regime_transitions) for a date|symbol "
    "partition or a backfill range, from the stored market data.",
)
