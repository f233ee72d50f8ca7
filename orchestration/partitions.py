"""Partitions: one per UTC day and symbol for market data, one per day for Fear & Greed.

A ``date|symbol`` partition holds every configured interval; a bar belongs to the UTC date
of its open time (DESIGN 8.1). Dimension names sort as ``date`` < ``symbol``, so a key
reads ``2022-06-01|BTCUSDT``.

The days run from the configuration's ``start_date`` to its ``end_date`` (inclusive; the
shipped sentiment.yaml ends with the bundled replay data, 2022-12-31), or up to yesterday
without one (the live profile): the UI lists only days that can hold data.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from dagster import (
    DailyPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
)

from sentiment.config import Config

#: Run tag of a run that writes one symbol: a range of its partitions, a partition (which
#: Dagster also tags ``dagster/partition/symbol``), the live job of a one-symbol
#: configuration. deploy/dagster/dagster.yaml admits one run per value at a time.
SYMBOL_TAG = "sentiment/symbol"
#: Run tag of a run that writes several symbols (their names, comma-separated): the live
#: and bootstrap jobs, a backfill over several symbols. deploy/dagster/dagster.yaml admits
#: one such run at a time.
SYMBOLS_TAG = "sentiment/symbols"


def symbol_tags(symbols) -> dict[str, str]:
    """The run tag saying which symbols a run writes (:data:`SYMBOL_TAG` or
    :data:`SYMBOLS_TAG`; none for a run that writes no symbol's rows)."""
    names = sorted({s for s in symbols if s})
    if not names:
        return {}
    if len(names) == 1:
        return {SYMBOL_TAG: names[0]}
    return {SYMBOLS_TAG: ",".join(names)}


def daily_partitions(config: Config) -> DailyPartitionsDefinition:
    end = config.end_date + dt.timedelta(days=1) if config.end_date else None  # exclusive
    return DailyPartitionsDefinition(start_date=config.start_date.isoformat(),
                                     end_date=end.isoformat() if end else None)


def in_partitions(config: Config, date: str) -> bool:
    """Whether the day ``date`` (YYYY-MM-DD) is one of the configured partitions' days."""
    day = dt.date.fromisoformat(date)
    return config.start_date <= day and (config.end_date is None or day <= config.end_date)


def market_data_partitions(config: Config) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition(
        {
            "date": daily_partitions(config),
            "symbol": StaticPartitionsDefinition(list(config.symbols)),
        }
    )


@dataclass(frozen=True)
class DateRun:
    """A contiguous run of days ``[start, end)`` for one symbol (or for no symbol)."""

    symbol: str | None
    start: dt.datetime
    end: dt.datetime

    @property
    def days(self) -> int:
        return (self.end - self.start).days


def _day(key: str) -> dt.datetime:
    return dt.datetime.strptime(key, "%Y-%m-%d")


def group_partition_keys(keys: list[str]) -> list[DateRun]:
    """Collapse partition keys into contiguous day runs per symbol.

    A single-run backfill hands an asset hundreds of partitions; fetching them as a few
    contiguous ranges costs one paged request series per range instead of one per day.
    Accepts ``date|symbol`` multi-partition keys and plain ``date`` keys.
    """
    by_symbol: dict[str | None, list[dt.datetime]] = defaultdict(list)
    for key in keys:
        if isinstance(key, MultiPartitionKey):
            dims = key.keys_by_dimension
            by_symbol[dims["symbol"]].append(_day(dims["date"]))
        elif "|" in key:
            date_key, symbol = key.split("|", 1)
            by_symbol[symbol].append(_day(date_key))
        else:
            by_symbol[None].append(_day(key))
    runs: list[DateRun] = []
    one_day = dt.timedelta(days=1)
    for symbol in sorted(by_symbol, key=lambda s: s or ""):
        days = sorted(set(by_symbol[symbol]))
        start = prev = days[0]
        for day in days[1:]:
            if day != prev + one_day:
                runs.append(DateRun(symbol, start, prev + one_day))
                start = day
            prev = day
        runs.append(DateRun(symbol, start, prev + one_day))
    return runs
