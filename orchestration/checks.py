"""Asset checks: no gaps and bars on the UTC grid in candles, values in range, freshness.

Every check is one row of ``CHECKS``, built by one factory. A :class:`RowsCheck` runs a query
of ``sentiment/sql/checks.sql`` that returns the offending rows (none: the check passes). A
:class:`FreshnessCheck` compares the newest stored row of every expected series with the
source's clock (the exchange's server time), not the wall clock, so the checks mean the same
thing against the replay exchange as against Bybit (DESIGN 8.18).

No ``from __future__ import annotations`` here: Dagster reads the check's annotations.
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    MetadataValue,
    asset_check,
)

from orchestration.assets import build_rows_check
from orchestration.resources import BybitResource, StoreResource
from sentiment.config import Config
from sentiment.errors import SourceError
from sentiment.io.store import named_queries
from sentiment.models import INTERVAL_MINUTES

QUERIES = named_queries("checks.sql")
#: The assets whose materializations say which partitions they left empty.
ROWS_CHECKED = ("candles", "funding_rates", "open_interest", "long_short_ratio", "fear_greed",
                "sentiment_history")


def _query(store: StoreResource, query: str) -> pd.DataFrame:
    try:
        return store.store().query(QUERIES[query], read_only=False)
    except FileNotFoundError:
        return pd.DataFrame()


@dataclass(frozen=True)
class RowsCheck:
    """Passes when the query ``query`` finds no offending row."""

    asset: str
    name: str
    description: str
    query: str
    #: What an offending row is, for the result's description ("3 <what>", "no <what>").
    what: str
    resources = frozenset({"store"})

    def evaluate(self, resources: Any, config: Config) -> AssetCheckResult:
        frame = _query(resources.store, self.query)
        sample = frame.head(5).astype(str).to_dict("records") if not frame.empty else []
        return AssetCheckResult(
            passed=frame.empty,
            severity=AssetCheckSeverity.ERROR,
            description=f"{len(frame)} {self.what}" if not frame.empty else f"no {self.what}",
            metadata={
                "offending_rows": MetadataValue.int(len(frame)),
                "sample": MetadataValue.json(sample),
            },
        )


class Series(NamedTuple):
    """One series a freshness check expects: its newest row, plus ``offset`` (a bar's length:
    a bar is complete at its close), may be at most ``max_age`` old by the source's clock."""

    label: str
    key: tuple
    offset: pd.Timedelta
    max_age: pd.Timedelta


@dataclass(frozen=True)
class FreshnessCheck:
    """Warns when an expected series has no row or its newest is too old.

    The query ``<asset>_latest`` returns one ``latest`` time per series, keyed by its other
    columns (no other column: one series for the whole table).
    """

    asset: str
    name: str
    description: str
    series: Callable[[Config], list[Series]]
    resources = frozenset({"store", "bybit"})

    def evaluate(self, resources: Any, config: Config) -> AssetCheckResult:
        now = _source_now(resources.bybit)
        if now is None:
            return AssetCheckResult(passed=False, severity=AssetCheckSeverity.WARN,
                                    description="exchange clock unavailable")
        latest = _query(resources.store, f"{self.asset}_latest")
        keys = [c for c in latest.columns if c != "latest"]
        newest = {tuple(row[k] for k in keys): pd.Timestamp(row["latest"])
                  for row in latest.to_dict("records") if not pd.isna(row["latest"])}
        seen, stale = {}, []
        for s in self.series(config):
            last = newest[s.key] + s.offset if s.key in newest else None
            seen[s.label] = None if last is None else str(last)
            if last is None or pd.Timestamp(now) - last > s.max_age:
                stale.append(s.label)
        return AssetCheckResult(
            passed=not stale,
            severity=AssetCheckSeverity.WARN,
            description=f"stale: {', '.join(stale)}" if stale else "fresh",
            metadata={"source_now": MetadataValue.text(str(now)),
                      "stale": MetadataValue.json(stale),
                      "newest": MetadataValue.json(seen)},
        )


def _source_now(bybit: BybitResource) -> dt.datetime | None:
    try:
        return bybit.client().server_time().to_pydatetime().replace(tzinfo=None)
    except SourceError:
        return None


def _bars(config: Config) -> list[Series]:
    """Every symbol and interval: the newest bar closed at most two intervals ago."""
    length = {i: pd.Timedelta(minutes=INTERVAL_MINUTES[i]) for i in config.intervals}
    return [Series(f"{symbol}/{i}", (symbol, i), length[i], 2 * length[i])
            for symbol in config.symbols for i in config.intervals]


def _settlements(config: Config) -> list[Series]:
    """Every symbol: a settlement within 9 h (8 h funding interval + 1 h grace)."""
    return [Series(symbol, (symbol,), pd.Timedelta(0), pd.Timedelta(hours=9))
            for symbol in config.symbols]


def _days(config: Config) -> list[Series]:
    """The one daily series: its newest day at most two days old."""
    return [Series("fear_greed", (), pd.Timedelta(0), pd.Timedelta(days=2))]


CHECKS: tuple[RowsCheck | FreshnessCheck, ...] = (
    RowsCheck("candles", "candles_no_gaps", "Consecutive bars are exactly one interval apart.",
              "candles_gaps", "gap(s) between candles"),
    RowsCheck("candles", "candles_on_grid",
              "Every bar opens on its interval's UTC grid (minute intervals on multiples of "
              "their length from 00:00 UTC, D at 00:00, W on Monday 00:00): a shifted clock "
              "puts bars into the wrong day and off every chart's bars.",
              "candles_off_grid", "candle(s) off the interval grid"),
    RowsCheck("candles", "candles_values_in_range",
              "Prices > 0, low <= open/close <= high, volume >= 0.",
              "candles_out_of_range", "candle(s) out of range"),
    FreshnessCheck("candles", "candles_freshness",
                   "The newest closed bar of every symbol and interval is at most two "
                   "intervals old by the exchange's clock.", _bars),
    RowsCheck("funding_rates", "funding_rates_values_in_range",
              "Funding is a number within +/-5 %.",
              "funding_rates_out_of_range", "funding rate(s) out of range"),
    FreshnessCheck("funding_rates", "funding_rates_freshness",
                   "A settlement no older than 9 h (8 h funding interval + 1 h grace) by the "
                   "exchange's clock, per symbol.", _settlements),
    RowsCheck("open_interest", "open_interest_values_in_range", "Open interest is a number >= 0.",
              "open_interest_out_of_range", "open-interest row(s) out of range"),
    RowsCheck("long_short_ratio", "long_short_ratio_values_in_range",
              "buy_ratio and sell_ratio in [0, 1] and summing to 1.",
              "long_short_ratio_out_of_range", "ratio row(s) out of range"),
    RowsCheck("fear_greed", "fear_greed_values_in_range", "Fear & Greed values in [0, 100].",
              "fear_greed_out_of_range", "value(s) out of range"),
    FreshnessCheck("fear_greed", "fear_greed_freshness",
                   "The newest daily value is at most two days old by the exchange's clock.",
                   _days),
    RowsCheck("sentiment_history", "sentiment_history_values_in_range",
              "Scores in [-1, 1]; confidences and volatility in [0, 1].",
              "sentiment_history_out_of_range", "row(s) out of range"),
    RowsCheck("sentiment_history", "sentiment_history_no_gaps",
              "Every stored candle in the computed span has its row.",
              "sentiment_history_gaps", "candle(s) without a sentiment row"),
    RowsCheck("sentiment_history", "sentiment_history_regimes_valid",
              "Regimes are one of the seven names, set exactly when scores are.",
              "sentiment_history_bad_regimes", "row(s) with a bad regime"),
)


def build_check(spec: RowsCheck | FreshnessCheck, config: Config) -> AssetChecksDefinition:
    """The Dagster check of ``spec`` under this configuration."""

    @asset_check(asset=spec.asset, name=spec.name, description=spec.description,
                 required_resource_keys=set(spec.resources))
    def check(context: AssetCheckExecutionContext) -> AssetCheckResult:
        return spec.evaluate(context.resources, config)

    return check


def build_asset_checks(config: Config) -> list[AssetChecksDefinition]:
    """Every asset check of the project."""
    return [build_check(spec, config) for spec in CHECKS] + [
        build_rows_check(table) for table in ROWS_CHECKED]
