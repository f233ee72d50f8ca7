"""Times between their three shapes: Unix milliseconds, naive-UTC ``datetime`` and pandas.

The exchanges speak Unix milliseconds; the tables hold naive-UTC ``TIMESTAMP`` values; frames
hold ``datetime64[ns]``. Every conversion between them goes through here, with one rule
throughout: a naive time is UTC, an aware one is converted to UTC, and milliseconds are the
floor of the nanoseconds (only a request's range bound is rounded up, by
``sentiment.io.sources.http.to_epoch_ms``, to keep the range half-open).

Pure: numpy and pandas only.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
#: The Unix epoch as a naive-UTC datetime.
EPOCH = dt.datetime(1970, 1, 1)

_TIME_TYPES = (str, dt.datetime, dt.date, np.datetime64, pd.Timestamp)


def naive_utc(value: Any) -> pd.Timestamp:
    """``value`` (``datetime``, ``date``, ``pd.Timestamp``, ``np.datetime64``, ISO text) as a
    naive-UTC Timestamp: naive input is taken as UTC, aware input converted to UTC."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def naive_utc_datetime(value: Any) -> dt.datetime:
    """:func:`naive_utc` as a plain ``datetime`` (what DuckDB binds as a ``TIMESTAMP``)."""
    return naive_utc(value).to_pydatetime()


def naive_utc_series(values: Any) -> pd.Series:
    """A column of times as naive-UTC ``datetime64``: aware times converted to UTC, naive
    ones taken as UTC."""
    ts = pd.to_datetime(pd.Series(values))
    if ts.dt.tz is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    return ts


def epoch_ms(value: Any) -> int:
    """Unix milliseconds of one time: a number (int, float or numeric text) is already
    milliseconds; a ``datetime``, ``date``, ``pd.Timestamp``, ``np.datetime64`` or ISO text
    is read by :func:`naive_utc` and floored to the millisecond.

    Raises
    ------
    TypeError
        A bool or anything that is not a time.
    ValueError
        Text that is not a time, NaT, or a number that is not finite.
    """
    if isinstance(value, pd.Timestamp):  # the common case (frame rows): no conversion
        return int(value.value // 1_000_000)  # UTC nanoseconds, naive or aware
    if isinstance(value, bool):
        raise TypeError(f"not a time: {value!r}")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            raise ValueError(f"not a time: {value!r}")
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    if isinstance(value, _TIME_TYPES):
        try:
            ts = naive_utc(value)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a time: {value!r}") from exc
        if ts is pd.NaT:
            raise ValueError(f"not a time: {value!r}")
        return int(ts.as_unit("ns").value // 1_000_000)
    raise TypeError(f"not a time: {value!r}")


def epoch_ms_array(values: Any) -> np.ndarray:
    """Many times as int64 Unix milliseconds: ``datetime64`` of any unit, pandas or
    ``datetime`` values (naive = UTC), or plain numbers, which are already milliseconds."""
    series = pd.Series(values)
    if series.dtype.kind in "iuf":
        return series.to_numpy(dtype=np.float64).astype(np.int64)
    ts = pd.to_datetime(series, utc=True).dt.tz_convert(None)
    return ts.to_numpy().astype("datetime64[ms]").astype(np.int64)


def ms_to_datetime(ms: int) -> dt.datetime:
    """The naive-UTC ``datetime`` of Unix milliseconds ``ms``."""
    return EPOCH + dt.timedelta(milliseconds=int(ms))


def ms_to_timestamps(values: Any) -> pd.Series:
    """Unix milliseconds (numbers) as a naive-UTC ``datetime64`` column (pandas picks the
    unit); missing values become NaT."""
    return pd.to_datetime(pd.Series(values), unit="ms")
