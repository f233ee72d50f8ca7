"""Asset checks: no gaps and no duplicate keys in candles, values in range, freshness.

The queries live in ``sentiment/sql/checks.sql``; each returns the offending rows. Freshness is
measured against the source's clock (the exchange's server time), not the wall clock, so
the checks mean the same thing against the replay exchange as against Bybit (DESIGN 8.18).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    MetadataValue,
    asset_check,
)

from orchestration.resources import BybitResource, StoreResource
from sentiment.config import INTERVAL_MINUTES, Config
from sentiment.errors import SourceError
from sentiment.io.store import named_queries

QUERIES = named_queries("checks.sql")


def _offenders(store: StoreResource, query: str) -> pd.DataFrame:
    try:
        return store.store().query(QUERIES[query], read_only=False)
    except FileNotFoundError:
        return pd.DataFrame()


def _rows_result(frame: pd.DataFrame, what: str) -> AssetCheckResult:
    sample = frame.head(5).astype(str).to_dict("records") if not frame.empty else []
    return AssetCheckResult(
        passed=frame.empty,
        severity=AssetCheckSeverity.ERROR,
        description=f"{len(frame)} {what}" if not frame.empty else f"no {what}",
        metadata={
            "offending_rows": MetadataValue.int(len(frame)),
            "sample": MetadataValue.json(sample),
        },
    )


def _latest(frame: pd.DataFrame, keys: list[str]) -> dict[tuple, pd.Timestamp]:
    if frame.empty:
        return {}
    return {
        tuple(row[k] for k in keys): pd.Timestamp(row["latest"])
        for row in frame.to_dict("records")
        if not pd.isna(row["latest"])
    }


def _source_now(bybit: BybitResource) -> dt.datetime | None:
    try:
        return bybit.client().server_time().to_pydatetime().replace(tzinfo=None)
    except SourceError:
        return None


def build_market_data_checks(config: Config) -> list[AssetChecksDefinition]:
    """The checks of the ingestion assets."""

    @asset_check(asset="candles", description="Consecutive bars are exactly one interval apart.")
    def candles_no_gaps(store: StoreResource) -> AssetCheckResult:
        return _rows_result(_offenders(store, "candles_gaps"), "gap(s) between candles")

    @asset_check(asset="candles", description="No two candles share (symbol, interval, open_time).")
    def candles_unique_keys(store: StoreResource) -> AssetCheckResult:
        return _rows_result(_offenders(store, "candles_duplicates"), "duplicated candle key(s)")

    @asset_check(asset="candles", description="Prices > 0, low <= open/close <= high, volume >= 0.")
    def candles_values_in_range(store: StoreResource) -> AssetCheckResult:
        return _rows_result(_offenders(store, "candles_out_of_range"), "candle(s) out of range")

    @asset_check(
        asset="candles",
        description="The newest closed bar of every symbol and interval is at most two "
        "intervals old by the exchange's clock.",
    )
    def candles_freshness(store: StoreResource, bybit: BybitResource) -> AssetCheckResult:
        now = _source_now(bybit)
        latest = _offenders(store, "candles_latest")
        if now is None:
            return AssetCheckResult(
                passed=False,
                severity=AssetCheckSeverity.WARN,
                description="exchange clock unavailable",
            )
        newest_by_key = _latest(latest, ["symbol", "interval"])
        stale = {}
        for symbol in config.symbols:
            for interval in config.intervals:
                minutes = INTERVAL_MINUTES[interval]
                newest = newest_by_key.get((symbol, interval))
                close = None if newest is None else newest + pd.Timedelta(minutes=minutes)
                if close is None or pd.Timestamp(now) - close > pd.Timedelta(minutes=2 * minutes):
                    stale[f"{symbol}/{interval}"] = None if close is None else str(close)
        return AssetCheckResult(
            passed=not stale,
            severity=AssetCheckSeverity.WARN,
            description=f"stale: {', '.join(stale)}" if stale else "fresh",
            metadata={
                "source_now": MetadataValue.text(str(now)),
                "stale_last_close": MetadataValue.json(stale),
            },
        )

    @asset_check(asset="funding_rates", description="Funding is a number within +/-5 %.")
    def funding_rates_values_in_range(store: StoreResource) -> AssetCheckResult:
        return _rows_result(
            _offenders(store, "funding_rates_out_of_range"), "funding rate(s) out of range"
        )

    @asset_check(
        asset="funding_rates",
        description="A settlement no older than 9 h (8 h funding interval + 1 h grace) "
        "by the exchange's clock, per symbol.",
    )
    def funding_rates_freshness(store: StoreResource, bybit: BybitResource) -> AssetCheckResult:
        now = _source_now(bybit)
        latest = _offenders(store, "funding_rates_latest")
        if now is None:
            return AssetCheckResult(
                passed=False, severity=AssetCheckSeverity.WARN,
                description="exchange clock unavailable",
            )
        newest_by_key = _latest(latest, ["symbol"])
        stale = {}
        for symbol in config.symbols:
            newest = newest_by_key.get((symbol,))
            if newest is None or pd.Timestamp(now) - newest > pd.Timedelta(hours=9):
                stale[symbol] = None if newest is None else str(newest)
        return AssetCheckResult(
            passed=not stale,
            severity=AssetCheckSeverity.WARN,
            description=f"stale: {', '.join(stale)}" if stale else "fresh",
            metadata={"source_now": MetadataValue.text(str(now)),
                      "stale_latest": MetadataValue.json(stale)},
        )

    @asset_check(asset="open_interest", description="Open interest is a number >= 0.")
    def open_interest_values_in_range(store: StoreResource) -> AssetCheckResult:
        return _rows_result(
            _offenders(store, "open_interest_out_of_range"), "open-interest row(s) out of range"
        )

    @asset_check(
        asset="long_short_ratio",
        description="buy_ratio and sell_ratio in [0, 1] and summing to 1.",
    )
    def long_short_ratio_values_in_range(store: StoreResource) -> AssetCheckResult:
        return _rows_result(
            _offenders(store, "long_short_ratio_out_of_range"), "ratio row(s) out of range"
        )

    @asset_check(asset="fear_greed", description="Fear & Greed values in [0, 100].")
    def fear_greed_values_in_range(store: StoreResource) -> AssetCheckResult:
        return _rows_result(_offenders(store, "fear_greed_out_of_range"), "value(s) out of range")

    @asset_check(
        asset="fear_greed",
        description="The newest daily value is at most two days old by the exchange's clock.",
    )
    def fear_greed_freshness(store: StoreResource, bybit: BybitResource) -> AssetCheckResult:
        now = _source_now(bybit)
        latest = _offenders(store, "fear_greed_latest")
        newest = None if latest.empty else latest["latest"].iloc[0]
        newest = None if newest is None or pd.isna(newest) else pd.Timestamp(newest)
        if now is None:
            return AssetCheckResult(
                passed=False, severity=AssetCheckSeverity.WARN,
                description="exchange clock unavailable",
            )
        fresh = newest is not None and pd.Timestamp(now) - newest <= pd.Timedelta(days=2)
        return AssetCheckResult(
            passed=fresh,
            severity=AssetCheckSeverity.WARN,
            description=f"newest day {newest}" if newest is not None else "no data",
            metadata={"source_now": MetadataValue.text(str(now))},
        )

    return [
        candles_no_gaps,
        candles_unique_keys,
        candles_values_in_range,
        candles_freshness,
        funding_rates_values_in_range,
        funding_rates_freshness,
        open_interest_values_in_range,
        long_short_ratio_values_in_range,
        fear_greed_values_in_range,
        fear_greed_freshness,
    ]


def build_sentiment_checks() -> list[AssetChecksDefinition]:
    """The checks of ``sentiment_history``."""

    @asset_check(asset="sentiment_history",
                 description="Scores in [-1, 1]; confidences and volatility in [0, 1].")
    def sentiment_history_values_in_range(store: StoreResource) -> AssetCheckResult:
        return _rows_result(_offenders(store, "sentiment_history_out_of_range"),
                            "row(s) out of range")

    @asset_check(asset="sentiment_history",
                 description="Every stored candle in the computed span has its row.")
    def sentiment_history_no_gaps(store: StoreResource) -> AssetCheckResult:
        return _rows_result(_offenders(store, "sentiment_history_gaps"),
                            "candle(s) without a sentiment row")

    @asset_check(asset="sentiment_history",
                 description="Regimes are one of the seven names, set exactly when scores are.")
    def sentiment_history_regimes_valid(store: StoreResource) -> AssetCheckResult:
        return _rows_result(_offenders(store, "sentiment_history_bad_regimes"),
                            "row(s) with a bad regime")

    return [sentiment_history_values_in_range, sentiment_history_no_gaps,
            sentiment_history_regimes_valid]
