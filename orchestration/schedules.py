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


def _daily(job, minute_of_hour: int) -> ScheduleDefinition:
    """``<name>_daily_schedule`` for the partitioned asset job ``<name>_job``: yesterday's
    partitions, ``minute_of_hour`` past midnight UTC; stopped until turned on."""
    return build_schedule_from_partitioned_job(
        job,
        name=job.name.removesuffix("_job") + "_daily_schedule",
        minute_of_hour=minute_of_hour,
        default_status=DefaultScheduleStatus.STOPPED,
    )


market_data_daily_schedule = _daily(market_data_job, minute_of_hour=5)
# alternative.me publishes the new daily value just after 00:00 UTC.
fear_greed_daily_schedule = _daily(fear_greed_job, minute_of_hour=15)


def build_hmm_retrain_schedule(config: Config) -> ScheduleDefinition:
    return ScheduleDefinition(
        name="hmm_retrain_schedule",
        job=hmm_retrain_job,
        cron_schedule=config.hmm.retrain_cron,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description="Weekly retrain of hmm_models (hmm.retrain_cron).",
    )
