"""Times between Unix milliseconds, naive-UTC datetimes and pandas: one rule everywhere."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from sentiment.core.timeutil import (
    EPOCH,
    epoch_ms,
    epoch_ms_array,
    ms_to_datetime,
    ms_to_timestamps,
    naive_utc,
    naive_utc_datetime,
    naive_utc_series,
)

MS = 1_654_084_800_000  # 2022-06-01 12:00 UTC
NOON = dt.datetime(2022, 6, 1, 12)
PLUS_TWO = dt.timezone(dt.timedelta(hours=2))


@pytest.mark.parametrize("value", [
    MS, np.int64(MS), float(MS), np.float64(MS), str(MS), f" {MS} ",
    NOON, NOON.replace(tzinfo=dt.UTC), dt.datetime(2022, 6, 1, 14, tzinfo=PLUS_TWO),
    pd.Timestamp(NOON), pd.Timestamp("2022-06-01 14:00", tz="Europe/Paris"),
    np.datetime64("2022-06-01T12:00:00"), "2022-06-01T12:00:00", "2022-06-01T14:00:00+02:00",
])
def test_every_shape_of_one_time_gives_the_same_ms(value):
    assert epoch_ms(value) == MS


def test_ms_are_floored_and_a_date_is_its_midnight():
    assert epoch_ms(NOON + dt.timedelta(microseconds=999)) == MS
    assert epoch_ms(pd.Timestamp(NOON) - pd.Timedelta(nanoseconds=1)) == MS - 1
    assert epoch_ms(dt.datetime(1969, 12, 31, 23, 59, 59, 999_500)) == -1
    assert epoch_ms(dt.date(2022, 6, 1)) == MS - 12 * 3_600_000
    assert epoch_ms("-5") == -5


@pytest.mark.parametrize("value, error", [
    (True, TypeError), (None, TypeError), ([MS], TypeError), (object(), TypeError),
    (float("nan"), ValueError), (float("inf"), ValueError), ("not a date", ValueError),
    (pd.NaT, ValueError), ("", ValueError),
])
def test_what_is_not_a_time_is_named(value, error):
    with pytest.raises(error, match="not a time"):
        epoch_ms(value)


def test_naive_utc_keeps_naive_times_and_converts_aware_ones():
    assert naive_utc("2022-06-01 12:00") == pd.Timestamp(NOON)
    converted = naive_utc(pd.Timestamp("2022-06-01 14:00", tz="Europe/Paris"))
    assert converted == pd.Timestamp(NOON) and converted.tzinfo is None
    as_datetime = naive_utc_datetime(dt.datetime(2022, 6, 1, 14, tzinfo=PLUS_TWO))
    assert type(as_datetime) is dt.datetime and as_datetime == NOON
    assert as_datetime.tzinfo is None


def test_a_column_of_times_becomes_naive_utc():
    aware = pd.Series(pd.to_datetime(["2022-06-01 14:00", "2022-06-01 15:00"])).dt.tz_localize(
        PLUS_TWO)
    got = naive_utc_series(aware)
    assert got.dt.tz is None
    assert list(got) == [pd.Timestamp(NOON), pd.Timestamp(NOON) + pd.Timedelta(hours=1)]
    naive = naive_utc_series(["2022-06-01 12:00"])
    assert list(naive) == [pd.Timestamp(NOON)]


def test_array_and_scalar_agree_and_round_trip():
    times = pd.Series(pd.date_range("2021-12-31 23:00", periods=50, freq="37min"))
    ms = epoch_ms_array(times)
    assert ms.dtype == np.int64
    assert list(ms) == [epoch_ms(t) for t in times]
    assert list(epoch_ms_array(times.dt.tz_localize("UTC"))) == list(ms)
    assert list(epoch_ms_array(times.to_numpy().astype("datetime64[s]"))) == list(ms)
    assert list(epoch_ms_array(ms.astype(np.float64))) == list(ms)  # numbers are ms already
    assert [ms_to_datetime(m) for m in ms] == [t.to_pydatetime() for t in times]
    back = ms_to_timestamps(ms)
    assert back.dtype.kind == "M" and list(back) == list(times)
    assert ms_to_timestamps([MS, np.nan]).isna().tolist() == [False, True]
    assert ms_to_datetime(0) == EPOCH
