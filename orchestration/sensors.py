"""``live_update_sensor``: one run per newly closed bar, never twice, never skipped.

Every ``live.sensor_interval_seconds`` it asks the exchange (its own clock) for the newest
closed bar of the shortest configured interval and compares it with its cursor. A newer bar
requests one ``live_update_job`` run keyed by that bar; the run catches up every bar closed
since the last one (after downtime too), so a single key per newest bar is enough
(DESIGN 8.9). The cursor and the run key together make a restart safe: Dagster drops a
request whose key already ran.

Dagster's daemon evaluates sensors at most once every 5 s, so a bar would wait 2.5 s on
average before anyone looks. When the next bar closes within ``live.sensor_wait_seconds``
of an evaluation, the sensor waits for it instead: it sleeps until the expected close, then
polls the exchange clock every 0.1 s for up to one more second. The expected close is in
exchange time; the cursor keeps the last (exchange, wall) clock sample so the wait is right
for a replay clock running faster than real time (and nothing waits on a stopped clock).

On an empty database, or one whose live checkpoints are weeks behind the exchange, the
request is for ``bootstrap_job`` instead (same run key): the history comes in monthly
chunks with progress in the run's log, and the live runs after it only add new bars. While
a bootstrap or live run is queued or running, the sensor requests nothing (the run in
flight catches up every bar closed meanwhile, and the next evaluation after it asks for the
newest), so runs never pile up behind a long one.
"""

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import TypeVar

import pandas as pd
from dagster import (
    DagsterInvariantViolationError,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from orchestration.resources import BybitResource, StagingResource, StoreResource
from sentiment.config import Config
from sentiment.core.timeutil import naive_utc_datetime
from sentiment.errors import SentimentError
from sentiment.io.store import Store
from sentiment.models import INTERVAL_MINUTES
from sentiment.services.bootstrap import behind

POLL_SECONDS = 0.1  # exchange clock polling step while a close is due
GRACE_SECONDS = 1.0  # how long past the expected close to keep polling

T = TypeVar("T")


def _poll(probe: Callable[[], T], deadline: float) -> T:
    """``probe()`` every ``POLL_SECONDS`` until it finds something (a true value) or the
    ``time.monotonic()`` deadline has passed; at least once. Returns its last answer."""
    while True:
        found = probe()
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(POLL_SECONDS)


def _clock_rate(sample, now: pd.Timestamp, wall: float) -> float:
    """Exchange seconds per wall second since the previous evaluation (1.0 without one)."""
    if not sample:
        return 1.0
    ex_ms, wall_then = sample
    elapsed = wall - wall_then
    if elapsed < 0.5:
        return 1.0
    return max(0.0, (now.value / 1e6 - ex_ms) / 1000.0 / elapsed)


#: Runs that have not finished yet.
IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
             DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
#: How long the sensor waits for a database another process writes before asking anyway.
READ_LOCK_SECONDS = 5.0


def _in_flight(context: SensorEvaluationContext, job_names: list[str]):
    """The newest unfinished run of one of ``job_names`` (None when there is none, or when
    a test built the context without an instance)."""
    try:
        instance = context.instance
    except DagsterInvariantViolationError:
        return None
    for name in job_names:
        runs = instance.get_runs(filters=RunsFilter(job_name=name, statuses=IN_FLIGHT),
                                 limit=1)
        if runs:
            return runs[0]
    return None


def build_live_update_sensor(config: Config, job, bootstrap_job,
                             store: StoreResource) -> SensorDefinition:
    interval = min(config.intervals, key=lambda i: INTERVAL_MINUTES[i])
    symbol = config.symbols[0]
    length = dt.timedelta(minutes=INTERVAL_MINUTES[interval])
    budget = config.live.sensor_wait_seconds

    @sensor(
        name="live_update_sensor",
        jobs=[job, bootstrap_job],
        minimum_interval_seconds=config.live.sensor_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Requests live_update_job when a {symbol} {interval} bar closes on the "
        "exchange (bootstrap_job first on an empty or long idle database); nothing while "
        "either runs.",
    )
    def live_update_sensor(context: SensorEvaluationContext, bybit: BybitResource):
        running = _in_flight(context, [bootstrap_job.name, job.name])
        if running is not None:
            return SkipReason(f"{running.job_name} run {running.run_id[:8]} is "
                              f"{running.status.value.lower()}: it catches up every bar "
                              "closed meanwhile")
        client = bybit.client()
        cursor = json.loads(context.cursor) if context.cursor else {}
        done = cursor.get("bar")

        def newest() -> tuple[str | None, pd.Timestamp]:
            now = client.server_time()
            bars = client.klines(symbol, interval, now - 3 * length, now)
            if bars.empty:
                return None, now
            return pd.Timestamp(bars["open_time"].max()).strftime("%Y-%m-%dT%H:%M"), now

        era = cursor.get("era", 0)

        def request(key: str) -> RunRequest:
            context.update_cursor(json.dumps({"bar": key, "era": era}))
            suffix = f"-{era}" if era else ""
            tags = {"newest_bar_open": key}
            try:
                reason = behind(Store(store.database, lock_timeout=READ_LOCK_SECONDS), config,
                                naive_utc_datetime(now))
            except SentimentError as exc:  # a writer kept the file: the live run decides
                context.log.info(f"could not read the live checkpoints: {exc}")
                reason = None
            if reason:
                context.log.info(f"requesting bootstrap_job: {reason}")
                tags["sentiment/bootstrap"] = reason[:200]
            return RunRequest(run_key=f"{symbol}-{interval}-{key}{suffix}",
                              job_name=bootstrap_job.name if reason else job.name, tags=tags)

        key, now = newest()
        if key is not None and done is not None and key < done:
            # The exchange's newest bar is older than the cursor: a replay clock started
            # again (or another exchange). A new era of run keys, so the bars run again.
            era += 1
            context.log.info(f"the exchange's newest bar {key} is before the cursor's {done}: "
                             f"starting over (run keys of era {era})")
            return request(key)
        if key is not None and (done is None or key > done):
            return request(key)
        wall = time.time()
        rate = _clock_rate(cursor.get("clock"), now, wall)
        context.update_cursor(json.dumps({"bar": done, "era": era,
                                          "clock": [now.value // 10**6, wall]}))
        if key is None:
            return SkipReason(f"no closed {symbol} {interval} bar up to {now}")
        next_close = pd.Timestamp(key) + 2 * length
        if budget > 0 and rate > 0:
            wait = (next_close - now).total_seconds() / rate
            if wait <= budget:
                deadline = time.monotonic() + min(budget, wait + GRACE_SECONDS)
                time.sleep(max(0.0, wait))

                def closed() -> str | None:
                    if client.server_time() < next_close:
                        return None
                    key = newest()[0]
                    return key if key is not None and key > done else None

                key = _poll(closed, deadline)
                if key is not None:
                    return request(key)
        return SkipReason(f"no new bar since {done}; the next closes at {next_close}")

    return live_update_sensor


#: Staged stream files wait this long for a live run to load them (it does, before it
#: computes) before stream_load_sensor requests a load run of its own. While live runs come
#: more often (`make up`'s replay: a bar every 30 s) no load run is needed at all; with
#: hourly bars the stream's rows still reach the database within about a minute and a half.
STREAM_LOAD_SECONDS = 60


def _oldest_age(paths) -> float:
    """Seconds since the oldest of ``paths`` was staged (0 when they are all gone)."""
    times = []
    for path in paths:
        try:
            times.append(path.stat().st_mtime)
        except FileNotFoundError:  # loaded (and deleted) meanwhile
            continue
    return time.time() - min(times) if times else 0.0


def build_stream_load_sensor(config: Config, job, writers: list[str]) -> SensorDefinition:
    """``stream_load_sensor``: one ``stream_load_job`` run when the stream's files have
    waited :data:`STREAM_LOAD_SECONDS` and no writer that loads them (``writers``: the live
    and bootstrap jobs, and the load job itself) is queued or running. Loads are batched so
    the Runs page shows the runs that matter, not one load every few seconds."""

    @sensor(
        name="stream_load_sensor",
        job=job,
        minimum_interval_seconds=STREAM_LOAD_SECONDS // 2,
        default_status=DefaultSensorStatus.RUNNING,
        description="Loads the live stream's staged files into the database when no live "
        f"run has loaded them for {STREAM_LOAD_SECONDS} s.",
    )
    def stream_load_sensor(context: SensorEvaluationContext,
                           stream_staging: StagingResource):
        pending = stream_staging.staging().pending()
        if not pending:
            return SkipReason("nothing staged")
        age = _oldest_age(pending)
        if age < STREAM_LOAD_SECONDS:
            return SkipReason(f"{len(pending)} file(s) staged, the oldest {age:.0f} s ago: "
                              f"the next live run loads them (a load run after "
                              f"{STREAM_LOAD_SECONDS} s)")
        running = _in_flight(context, [job.name, *writers])
        if running is not None:
            return SkipReason(f"{running.job_name} run {running.run_id[:8]} is "
                              f"{running.status.value.lower()} ({len(pending)} file(s) staged)")
        # No run key: after a failed load the same files must be loadable again; the check
        # above keeps the requests to one run at a time.
        return RunRequest(tags={"staged_files": str(len(pending))})

    return stream_load_sensor
