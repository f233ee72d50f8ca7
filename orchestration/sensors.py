"""``live_update_sensor``: one run per newly closed bar, never twice, never skipped.

Every ``live.sensor_interval_seconds`` it asks the exchange (its own clock) for the newest
closed bar of the shortest configured interval and compares it with its cursor. A newer bar
requests one ``live_update_job`` run keyed by that bar; the run catches up every bar closed
since the last one (after downtime too), so a single key per newest bar is enough
(DESIGN 8.9). The cursor and the run key together make a restart safe: Dagster drops a
request whose key already ran.
"""

import datetime as dt
import json

import pandas as pd
from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from orchestration.resources import BybitResource
from sentiment.config import INTERVAL_MINUTES, Config


def build_live_update_sensor(config: Config, job) -> SensorDefinition:
    interval = min(config.intervals, key=lambda i: INTERVAL_MINUTES[i])
    symbol = config.symbols[0]
    length = dt.timedelta(minutes=INTERVAL_MINUTES[interval])

    @sensor(
        name="live_update_sensor",
        job=job,
        minimum_interval_seconds=config.live.sensor_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Requests live_update_job when a {symbol} {interval} bar closes on the "
        "exchange.",
    )
    def live_update_sensor(context: SensorEvaluationContext, bybit: BybitResource):
        client = bybit.client()
        now = client.server_time()
        bars = client.klines(symbol, interval, now - 3 * length, now)
        if bars.empty:
            return SkipReason(f"no closed {symbol} {interval} bar up to {now}")
        newest = pd.Timestamp(bars["open_time"].max())
        key = newest.strftime("%Y-%m-%dT%H:%M")
        cursor = json.loads(context.cursor) if context.cursor else {}
        if cursor.get("bar") is not None and key <= cursor["bar"]:
            return SkipReason(f"no new bar since {cursor['bar']}")
        context.update_cursor(json.dumps({"bar": key}))
        return RunRequest(run_key=f"{symbol}-{interval}-{key}",
                          tags={"newest_bar_open": key})

    return live_update_sensor
