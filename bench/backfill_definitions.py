"""The project's Dagster definitions without sensors and schedules, for
``bench_parallel.py backfill``: the benchmark submits every run itself, and a live run
started by the sensor would only disturb the timing."""

from dagster import Definitions

import orchestration.definitions


def _without_automation() -> Definitions:
    project = orchestration.definitions.defs
    return Definitions(assets=project.assets, asset_checks=project.asset_checks,
                       jobs=project.jobs, resources=project.resources)


defs = _without_automation()
