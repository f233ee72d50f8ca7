"""The tables of the database: one definition of each (name, columns with their types, key).

Everything that names a table's columns derives them from here: the ``CREATE TABLE``
statements (:func:`create_statements`), the comments the database keeps on every table and
column (:func:`comment_statements`; ``duckdb_columns()`` and psql's ``\\d+`` show them), the
store's checks of a frame, the stream's staged files, ``sentiment_history``'s columns in
:mod:`sentiment.models`. A column's type is one of
:data:`COLUMN_TYPES`, which :data:`DIALECT_TYPES` maps to DuckDB and PostgreSQL, so one
definition serves both backends. All times are naive-UTC ``TIMESTAMP``; the primary key makes
every write an idempotent upsert.

Pure Python: no database library is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: The column types a table may use, dialect-neutral.
TEXT = "text"
DOUBLE = "double"
INTEGER = "integer"
BIGINT = "bigint"
TIMESTAMP = "timestamp"
COLUMN_TYPES: tuple[str, ...] = (TEXT, DOUBLE, INTEGER, BIGINT, TIMESTAMP)

#: Each type's name in each SQL dialect. ``TIMESTAMP`` is without time zone in both: every
#: stored time is naive UTC.
DIALECT_TYPES: dict[str, dict[str, str]] = {
    "duckdb": {TEXT: "VARCHAR", DOUBLE: "DOUBLE", INTEGER: "INTEGER", BIGINT: "BIGINT",
               TIMESTAMP: "TIMESTAMP"},
    "postgresql": {TEXT: "TEXT", DOUBLE: "DOUBLE PRECISION", INTEGER: "INTEGER",
                   BIGINT: "BIGINT", TIMESTAMP: "TIMESTAMP"},
}


@dataclass(frozen=True)
class Column:
    """One column: its name, type (one of :data:`COLUMN_TYPES`), whether it may be NULL, and
    what a SQL user should know about it (written into the DDL and kept by the database as
    its comment)."""

    name: str
    type: str
    nullable: bool = True
    comment: str = ""

    def __post_init__(self) -> None:
        if self.type not in COLUMN_TYPES:
            raise ValueError(f"column {self.name}: unknown type {self.type!r}")


def _required(name: str, type_: str, comment: str = "") -> Column:
    return Column(name, type_, nullable=False, comment=comment)


@dataclass(frozen=True)
class Table:
    """Name, columns (in table order), primary key and time column of one table.

    ``key`` lists the primary-key columns; they come first in table order. ``columns``
    (the name kept from the store's first table spec) are the other columns' names;
    :attr:`all_columns` every column's name in table order.
    """

    name: str
    definition: tuple[Column, ...]
    key: tuple[str, ...]
    #: The column a range ``[start, end)`` of the table is taken on.
    time_column: str | None
    #: Ingested market data: a replace may not leave fewer rows in a slice than it found.
    never_shrink: bool = False
    #: Said above the table's DDL and kept by the database (``COMMENT ON TABLE``).
    comment: str = ""

    def __post_init__(self) -> None:
        names = [c.name for c in self.definition]
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name}: a column is defined twice")
        if tuple(names[: len(self.key)]) != self.key:
            raise ValueError(f"table {self.name}: the key columns must come first")
        if self.time_column is not None and self.time_column not in names:
            raise ValueError(f"table {self.name}: no time column {self.time_column!r}")

    @property
    def all_columns(self) -> tuple[str, ...]:
        """Every column's name, in table order."""
        return tuple(c.name for c in self.definition)

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns outside the key, in table order."""
        return self.all_columns[len(self.key):]

    def columns_of_type(self, *types: str) -> tuple[str, ...]:
        """The names of the columns of the given types, in table order."""
        return tuple(c.name for c in self.definition if c.type in types)

    def types(self) -> dict[str, str]:
        """Column name -> type."""
        return {c.name: c.type for c in self.definition}

    def create_sql(self, dialect: str = "duckdb") -> str:
        """``CREATE TABLE IF NOT EXISTS`` for ``dialect`` (a key of :data:`DIALECT_TYPES`)."""
        names = DIALECT_TYPES[dialect]
        width = max(len(c.name) for c in self.definition)
        type_width = max(len(names[c.type]) for c in self.definition)
        lines = [f"-- {line}" if line else "--" for line in self.comment.splitlines()]
        lines.append(f"CREATE TABLE IF NOT EXISTS {self.name} (")
        for c in self.definition:
            text = f"    {c.name:<{width}} {names[c.type]:<{type_width}}"
            text += " NOT NULL," if not c.nullable else ","
            if c.comment:
                text += f"  -- {c.comment}"
            lines.append(text.rstrip())
        lines.append(f"    PRIMARY KEY ({', '.join(self.key)})")
        lines.append(");")
        return "\n".join(lines)


#: Said of every column ``symbol``: which market.
_SYMBOL = "Bybit linear perpetual, e.g. BTCUSDT"
#: Said of every price.
_PRICE = "price in quote coin (USDT)"
#: A sub-score's range and what its sign means.
_SIGNED = "-1 (bearish) .. +1 (bullish); NULL during warm-up"

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "candles",
            (
                _required("symbol", TEXT, _SYMBOL),
                _required("interval", TEXT, 'Bybit kline code: "1" .. "720" minutes, "D", '
                          '"W" (60 = 1h, 240 = 4h)'),
                _required("open_time", TIMESTAMP, "bar open (UTC); the bar closes one "
                          "interval later"),
                _required("open", DOUBLE, _PRICE),
                _required("high", DOUBLE, _PRICE),
                _required("low", DOUBLE, _PRICE),
                _required("close", DOUBLE, _PRICE),
                _required("volume", DOUBLE, "traded, in base coin"),
                _required("turnover", DOUBLE, "traded, in quote coin (the replay exchange "
                          "derives it as volume x close)"),
            ),
            ("symbol", "interval", "open_time"),
            "open_time",
            never_shrink=True,
            comment="Closed OHLCV bars of Bybit V5 linear perpetuals, one row per symbol, "
            "interval and bar.",
        ),
        Table(
            "funding_rates",
            (
                _required("symbol", TEXT, _SYMBOL),
                _required("funding_time", TIMESTAMP, "settlement time (UTC), every 8 h"),
                _required("funding_rate", DOUBLE, "settled rate, fraction per settlement "
                          "(0.0001 = 0.01 %); positive: longs pay shorts"),
            ),
            ("symbol", "funding_time"),
            "funding_time",
            never_shrink=True,
            comment="Settled funding rates (never the ticker's predicted rate).",
        ),
        Table(
            "open_interest",
            (
                _required("symbol", TEXT, _SYMBOL),
                _required("interval", TEXT, 'Bybit intervalTime of the series: "5min" .. '
                          '"1d"'),
                _required("ts", TIMESTAMP, "start of the period (UTC); usable from ts + "
                          "period"),
                _required("open_interest", DOUBLE, "open contracts, in base coin"),
            ),
            ("symbol", "interval", "ts"),
            "ts",
            never_shrink=True,
            comment="Open interest per period (SYNTHETIC in the offline demo bundle: the "
            "replay exchange generates it from the candles).",
        ),
        Table(
            "long_short_ratio",
            (
                _required("symbol", TEXT, _SYMBOL),
                _required("period", TEXT, 'Bybit period: "5min" .. "1d"'),
                _required("ts", TIMESTAMP, "start of the period (UTC); usable from ts + "
                          "period"),
                _required("buy_ratio", DOUBLE, "share of accounts holding a long position, "
                          "0..1 (0.60 = 60 % long); sentiment_history.long_short_ratio"),
                _required("sell_ratio", DOUBLE, "share of accounts holding a short "
                          "position, 0..1; buy_ratio + sell_ratio = 1"),
            ),
            ("symbol", "period", "ts"),
            "ts",
            never_shrink=True,
            comment="Bybit's account ratio: the shares of accounts long and short, not a "
            "long/short quotient (SYNTHETIC in the offline demo bundle: the replay "
            "exchange generates it from the candles).",
        ),
        Table(
            "fear_greed",
            (
                _required("ts", TIMESTAMP, "the day (00:00 UTC)"),
                _required("value", DOUBLE, "0 (extreme fear) .. 100 (extreme greed)"),
                _required("classification", TEXT, "alternative.me's band: Extreme Fear "
                          "(0-25), Fear, Neutral, Greed, Extreme Greed (76-100)"),
            ),
            ("ts",),
            "ts",
            never_shrink=True,
            comment="The alternative.me Crypto Fear & Greed Index, one value per day.",
        ),
        Table(
            "tickers",
            (
                _required("symbol", TEXT, _SYMBOL),
                _required("ts", TIMESTAMP, "exchange time of the ticker (UTC)"),
                Column("last_price", DOUBLE, comment=_PRICE),
                Column("mark_price", DOUBLE, comment=_PRICE),
                Column("index_price", DOUBLE, comment=_PRICE),
                Column("prev_price_24h", DOUBLE, comment="price 24 h before ts"),
                Column("price_24h_pcnt", DOUBLE, comment="change over 24 h, a fraction "
                       "(0.01 = 1 %)"),
                Column("high_price_24h", DOUBLE, comment="highest price of the last 24 h"),
                Column("low_price_24h", DOUBLE, comment="lowest price of the last 24 h"),
                Column("prev_price_1h", DOUBLE, comment="price 1 h before ts"),
                Column("open_interest", DOUBLE, comment="open contracts, in base coin"),
                Column("open_interest_value", DOUBLE, comment="open interest, in quote coin"),
                Column("turnover_24h", DOUBLE, comment="traded in 24 h, in quote coin"),
                Column("volume_24h", DOUBLE, comment="traded in 24 h, in base coin"),
                Column("funding_rate", DOUBLE, comment="predicted rate: never used as a "
                       "settled rate"),
                Column("next_funding_time", TIMESTAMP, comment="next settlement (UTC)"),
                Column("bid1_price", DOUBLE, comment="best bid"),
                Column("bid1_size", DOUBLE, comment="size at the best bid, in base coin"),
                Column("ask1_price", DOUBLE, comment="best ask"),
                Column("ask1_size", DOUBLE, comment="size at the best ask, in base coin"),
            ),
            ("symbol", "ts"),
            "ts",
            comment="The live stream's merged ticker (`sentiment stream`), one row per "
            "symbol every 10 s; DERIVED from the candles when it streams from the replay "
            "exchange.",
        ),
        Table(
            "liquidations",
            (
                _required("symbol", TEXT, _SYMBOL),
                _required("ts", TIMESTAMP, "exchange time of the liquidation (UTC)"),
                _required("side", TEXT, "Buy: a long position liquidated; Sell: a short one "
                          "(Bybit's allLiquidation side)"),
                _required("price", DOUBLE, _PRICE),
                _required("size", DOUBLE, "in base coin"),
                Column("seq", BIGINT, comment="message sequence number, for ordering within "
                       "a ts"),
            ),
            ("symbol", "ts", "side", "price", "size"),
            "ts",
            comment="Every liquidation the live stream received; DERIVED from the candles "
            "when it streams from the replay exchange.",
        ),
        Table(
            "orderbook_imbalance",
            (
                _required("symbol", TEXT, _SYMBOL),
                _required("ts", TIMESTAMP, "exchange time of the sample (UTC)"),
                _required("obi", DOUBLE, "-1 (all asks) .. +1 (all bids), top 5 levels "
                          "weighted 1, 1/2, 1/4, 1/8, 1/16"),
            ),
            ("symbol", "ts"),
            "ts",
            comment="Order-book imbalance sampled by the live stream once per second; "
            "DERIVED from the candles when it streams from the replay exchange.",
        ),
        Table(
            "stream_state",
            (
                _required("symbol", TEXT, _SYMBOL),
                _required("through", TIMESTAMP, "every message stamped at or before it "
                          "(exchange time) is loaded"),
                _required("loaded_at", TIMESTAMP, "this machine's clock when it was loaded"),
            ),
            ("symbol",),
            "through",
            comment="How far the live stream (`sentiment stream`) got: every message it "
            "received stamped at or\nbefore `through` (exchange time) is in the tables above. "
            "Bars that close after it are\nprovisional for the live job while the stream runs.",
        ),
        Table(
            "sentiment_history",
            (
                _required("symbol", TEXT, _SYMBOL),
                _required("interval", TEXT, "Bybit kline code of the bars (60 = 1h)"),
                _required("timestamp", TIMESTAMP, "the bar's close: when it became knowable"),
                Column("close", DOUBLE, comment="the bar's close price"),
                Column("sentiment_score", DOUBLE, comment="composite of the six sub-scores, "
                       "-1 (very bearish) .. +1 (very bullish); NULL during warm-up"),
                Column("confidence", DOUBLE, comment="0..1: lower with high volatility and "
                       "for each sub-score without data"),
                Column("regime", TEXT, comment="confirmed regime: trending_up, "
                       "trending_down, ranging, high_volatility, squeeze, breakout, "
                       "capitulation"),
                Column("regime_duration_bars", INTEGER, comment="bars in the regime, 1 on "
                       "the bar it starts"),
                Column("regime_confidence", DOUBLE, comment="0..1: the evidence left for the "
                       "regime, moved by the HMM's agreement"),
                Column("trend_score", DOUBLE, comment=f"sub-score trend: {_SIGNED}"),
                Column("momentum_score", DOUBLE, comment=f"sub-score momentum: {_SIGNED}"),
                Column("volatility_score", DOUBLE, comment="sub-score volatility: ATR "
                       "percentile rank, 0 (calm) .. 1 (extreme); NULL during warm-up"),
                Column("volume_flow_score", DOUBLE, comment="sub-score volume_flow: "
                       f"{_SIGNED}"),
                Column("exchange_sentiment", DOUBLE, comment="sub-score exchange (funding, "
                       f"OI, long share, liquidations, order book): {_SIGNED} or no data"),
                Column("macro_sentiment", DOUBLE, comment="sub-score macro (Fear & Greed): "
                       f"{_SIGNED} or no data"),
                Column("funding_rate", DOUBLE, comment="settled rate as of the close, "
                       "fraction per settlement (0.0001 = 0.01 %)"),
                Column("open_interest", DOUBLE, comment="as of the close, in base coin"),
                Column("open_interest_delta_pct", DOUBLE, comment="open-interest change "
                       "over the last 4 h, in percent"),
                Column("long_short_ratio", DOUBLE, comment="share of accounts long "
                       "(long_short_ratio.buy_ratio) as of the close, 0..1 (0.60 = 60 % "
                       "long), not a long/short quotient"),
                Column("liquidation_intensity", DOUBLE, comment="the bar's liquidated "
                       "notional / its mean per bar over the last 24 or more bars with "
                       "stream data; NULL without stream data"),
                Column("order_book_imbalance", DOUBLE, comment="mean of the bar's OBI "
                       "samples, -1 (asks) .. +1 (bids); NULL without stream data"),
                Column("fear_greed_index", DOUBLE, comment="Fear & Greed as of the close, "
                       "0..100"),
                Column("hmm_regime", TEXT, comment="the HMM's most likely label: bull, bear, "
                       "calm, high_volatility; NULL before its first model"),
                Column("hmm_probability", DOUBLE, comment="probability of hmm_regime, "
                       "forward-filtered (no look-ahead)"),
                Column("hmm_model_id", TEXT, comment="the hmm_models row used"),
                Column("hmm_state_probabilities", TEXT, comment="JSON: {label: probability}"),
            ),
            ("symbol", "interval", "timestamp"),
            "timestamp",
            comment="One snapshot per closed bar: the composite sentiment, its six sub-scores "
            "(trend, momentum,\nvolatility, volume_flow, exchange, macro), the regime, the "
            "slower inputs as of the close and\nthe HMM layer. Formulas: docs/scores.md.",
        ),
        Table(
            "regime_transitions",
            (
                _required("symbol", TEXT, _SYMBOL),
                _required("interval", TEXT, "Bybit kline code of the bars"),
                _required("timestamp", TIMESTAMP, "close of the bar the new regime starts on"),
                Column("from_regime", TEXT, comment="the regime left"),
                _required("to_regime", TEXT, "the regime entered"),
            ),
            ("symbol", "interval", "timestamp"),
            "timestamp",
            comment="Every confirmed regime change of sentiment_history.",
        ),
        Table(
            "hmm_models",
            (
                _required("model_id", TEXT, "symbol-interval-training end-K, e.g. "
                          "BTCUSDT-60-20221226T0000-K4"),
                _required("symbol", TEXT, _SYMBOL),
                _required("interval", TEXT, "Bybit kline code of the bars"),
                _required("trained_at", TIMESTAMP, "wall clock, metadata only"),
                _required("train_start", TIMESTAMP, "close of the first training bar"),
                _required("train_end", TIMESTAMP, "close of the last training bar, at or "
                          "before its weekly boundary (Monday 00:00 UTC)"),
                _required("n_states", INTEGER, "K, the number of hidden states (2-4, by BIC)"),
                Column("bic", DOUBLE, comment="Bayesian information criterion of the chosen "
                       "K"),
                Column("log_likelihood", DOUBLE, comment="of the training window"),
                _required("params", TEXT, "JSON parameters (never pickle)"),
                _required("labels", TEXT, "JSON list: one label per state"),
            ),
            ("model_id",),
            "train_end",
            comment="The walk-forward Gaussian HMMs, one per symbol, interval and weekly "
            "boundary.",
        ),
        Table(
            "tracker_state",
            (
                _required("symbol", TEXT, _SYMBOL),
                _required("interval", TEXT, "Bybit kline code of the bars"),
                _required("last_timestamp", TIMESTAMP, "close of the last bar it holds"),
                _required("state", TEXT, "JSON checkpoint of the live tracker"),
            ),
            ("symbol", "interval"),
            "last_timestamp",
            comment="The live job's checkpoint: the engine state after the last final bar.",
        ),
    )
}


def _check_dialect(dialect: str) -> None:
    if dialect not in DIALECT_TYPES:
        raise ValueError(f"unknown SQL dialect {dialect!r}; known: {', '.join(DIALECT_TYPES)}")


def create_statements(dialect: str = "duckdb") -> str:
    """The DDL of every table for ``dialect``: idempotent ``CREATE TABLE IF NOT EXISTS``
    statements, applied at every start by the store."""
    _check_dialect(dialect)
    head = (
        "-- Market Sentiment Tracker: schema, generated from sentiment/io/tables.py.\n"
        "-- All times are UTC TIMESTAMP. Primary keys make every write an idempotent upsert."
    )
    return "\n\n".join([head, *(t.create_sql(dialect) for t in TABLES.values())]) + "\n"


def comments() -> dict[tuple[str, str | None], str]:
    """What the database says of each table (key ``(table, None)``) and column (``(table,
    column)``): the definitions' comments, a table's on one line."""
    out: dict[tuple[str, str | None], str] = {}
    for table in TABLES.values():
        out[(table.name, None)] = " ".join(table.comment.split())
        for column in table.definition:
            out[(table.name, column.name)] = column.comment
    return out


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def comment_statements(dialect: str = "duckdb",
                       stored: Mapping[tuple[str, str | None], str | None] | None = None
                       ) -> list[str]:
    """``COMMENT ON TABLE`` / ``COMMENT ON COLUMN`` statements (the same text on DuckDB and
    PostgreSQL) for every table and column whose comment in ``stored`` (keyed like
    :func:`comments`, as the database holds them) differs from its definition; for all of
    them when ``stored`` is None. Only what changed is written: a comment is a catalog
    write, and the schema is applied at every start."""
    _check_dialect(dialect)
    out = []
    for (table, column), text in comments().items():
        if stored is not None and (stored.get((table, column)) or "") == text:
            continue
        target = f"TABLE {table}" if column is None else f'COLUMN {table}."{column}"'
        out.append(f"COMMENT ON {target} IS {_literal(text)}")
    return out
