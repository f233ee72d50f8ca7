"""Bybit V5's names for the ticker fields the ``tickers`` table keeps, in one map.

The REST client (``/v5/market/tickers``) and the stream (``tickers.{symbol}`` pushes) read the
same ticker object; both take the names from here. Pure: nothing is imported.
"""

from __future__ import annotations

#: Bybit field -> ``tickers`` column, in table order; every one is a number sent as text
#: ("" where it does not apply) except ``nextFundingTime``, Unix milliseconds.
TICKER_FIELDS: dict[str, str] = {
    "lastPrice": "last_price",
    "markPrice": "mark_price",
    "indexPrice": "index_price",
    "prevPrice24h": "prev_price_24h",
    "price24hPcnt": "price_24h_pcnt",
    "highPrice24h": "high_price_24h",
    "lowPrice24h": "low_price_24h",
    "prevPrice1h": "prev_price_1h",
    "openInterest": "open_interest",
    "openInterestValue": "open_interest_value",
    "turnover24h": "turnover_24h",
    "volume24h": "volume_24h",
    "fundingRate": "funding_rate",
    "nextFundingTime": "next_funding_time",
    "bid1Price": "bid1_price",
    "bid1Size": "bid1_size",
    "ask1Price": "ask1_price",
    "ask1Size": "ask1_size",
}
#: ``tickers`` column -> Bybit field (for errors that name the field as sent).
FIELD_OF_TICKER_COLUMN: dict[str, str] = {column: name for name, column in TICKER_FIELDS.items()}
