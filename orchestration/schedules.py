"""Schedules: yesterday's market data and Fear & Greed, shortly after the UTC day closes;
the weekly HMM retrain.

The daily ones start stopped: against the bundled replay exchange "yesterday" is outside the
recorded window. Turn them on in the UI when pointing at Bybit. The HMM retrain runs by
default (``hmm.retrain_cron``, Monday 01:00 UTC): it trains at the newest boundary of the
stored data, whatever the clock says.
"""

from __future__ import annotations

from dagster import (
    DefaultScheduleStatus,
    ScheduleDefinition,
    build_schedule_from_partitioned_job,
)

from orchestration.jobs import fear_greed_job, hmm_retrain_job, market_data_job
from sentiment.config import Config

market_data_daily_schedule = build_schedule_from_partitioned_job(
    market_data_job,
    name="market_data_daily_schedule",
    minute_of_hour=5,
    default_status=DefaultScheduleStatus.STOPPED,
)

# alternative.me publishes the new daily value just after 00:00 UTC.
fear_greed_daily_schedule = build_schedule_from_partitioned_job(
    fear_greed_job,
    name="fear_greed_daily_schedule",
    minute_of_hour=15,
    default_status=DefaultScheduleStatus.STOPPED,
)


def build_hmm_retrain_schedule(config: Config) -> ScheduleDefinition:
    return ScheduleDefinition(
        name="hmm_retrain_schedule",
        job=hmm_retrain_job,
        cron_schedule=config.hmm.retrain_cron,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description="Weekly retrain of hmm_models (hmm.retrain_cron).",
    )
