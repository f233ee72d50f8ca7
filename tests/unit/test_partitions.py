from __future__ import annotations

import datetime as dt

from orchestration.partitions import DateRun, group_partition_keys


def test_contiguous_days_collapse_into_one_run_per_symbol():
    keys = [f"2022-01-0{d}|{s}" for d in (1, 2, 3, 5) for s in ("BTCUSDT", "ETHUSDT")]
    runs = group_partition_keys(keys)
    day = dt.datetime
    assert runs == [
        DateRun("BTCUSDT", day(2022, 1, 1), day(2022, 1, 4)),
        DateRun("BTCUSDT", day(2022, 1, 5), day(2022, 1, 6)),
        DateRun("ETHUSDT", day(2022, 1, 1), day(2022, 1, 4)),
        DateRun("ETHUSDT", day(2022, 1, 5), day(2022, 1, 6)),
    ]
    assert sum(r.days for r in runs) == len(keys)


def test_plain_date_keys_and_month_boundaries():
    runs = group_partition_keys(["2022-03-01", "2022-02-28", "2022-02-27"])
    assert runs == [DateRun(None, dt.datetime(2022, 2, 27), dt.datetime(2022, 3, 2))]
