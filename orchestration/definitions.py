"""The one Dagster ``Definitions`` of the project: wiring only.

The configuration and the settings are read here, when the code location loads, so a
config error is reported at load and names its key.
"""

from __future__ import annotations

import warnings

from dagster import BetaWarning, Definitions

from orchestration.assets.market_data import build_market_data_assets
from orchestration.assets.sentiment import build_sentiment_assets
from orchestration.checks import build_asset_checks
from orchestration.jobs import (
    build_bootstrap_job,
    build_live_update_job,
    fear_greed_job,
    hmm_retrain_job,
    market_data_job,
    sentiment_job,
    stream_load_job,
)
from orchestration.resources import (
    BybitResource,
    FearGreedResource,
    StagingResource,
    StoreResource,
)
from orchestration.schedules import (
    build_hmm_retrain_schedule,
    fear_greed_daily_schedule,
    market_data_daily_schedule,
)
from orchestration.sensors import build_live_update_sensor, build_stream_load_sensor
from sentiment.config import load_config
from sentiment.settings import get_settings

for message in (
    # BackfillPolicy is marked beta in Dagster 1.13; single-run backfills are a deliberate
    # choice here (DESIGN 8.11), so the warning would only be noise in every run's log.
    "Parameter `backfill_policy`",
    # Dagster's own @sensor decorator passes the beta `owners` parameter through.
    "Parameter `owners`",
    # The 2-D sentiment partitions map onto the daily Fear & Greed ones with this beta class.
    "Class `MultiToSingleDimensionPartitionMapping`",
):
    warnings.filterwarnings("ignore", message=message, category=BetaWarning)


def build_definitions(config=None, settings=None) -> Definitions:
    config = config or load_config()
    settings = settings or get_settings()
    live_job = build_live_update_job(config)
    bootstrap_job = build_bootstrap_job(config)
    store = StoreResource(database=settings.db_path)
    return Definitions(
        assets=build_market_data_assets(config) + build_sentiment_assets(config),
        asset_checks=build_asset_checks(config),
        jobs=[market_data_job, fear_greed_job, sentiment_job, hmm_retrain_job, live_job,
              bootstrap_job, stream_load_job],
        schedules=[market_data_daily_schedule, fear_greed_daily_schedule,
                   build_hmm_retrain_schedule(config)],
        sensors=[build_live_update_sensor(config, live_job, bootstrap_job, store),
                 build_stream_load_sensor(config, stream_load_job,
                                          [live_job.name, bootstrap_job.name])],
        resources={
            "store": store,
            "bybit": BybitResource.configured(settings.bybit_base_url, config),
            "fear_greed_api": FearGreedResource.configured(settings.fear_greed_url, config),
            "stream_staging": StagingResource(directory=settings.stream_dir),
        },
    )


defs = build_definitions()
