"""Schedules: yesterday's market data and Fear & Greed, shortly after the UTC day closes.

Both start stopped: against the bundled replay exchange "yesterday" is outside the
recorded window. Turn them on in the UI when pointing at Bybit.
"""

from __future__ import annotations

from dagster import DefaultScheduleStatus, build_schedule_from_partitioned_job

from orchestration.jobs import fear_greed_job, market_data_job

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
