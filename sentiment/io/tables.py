"""The tables of the database: one definition of each (name, columns with their types, key).

Everything that names a table's columns derives them from here: the ``CREATE TABLE``
statements (:func:`create_statements`), the store's checks of a frame, the stream's staged
files, ``sentiment_history``'s columns in :mod:`sentiment.models`. A column's type is one of
:data:`COLUMN_TYPES`, which :data:`DIALECT_TYPES` maps to DuckDB and PostgreSQL, so one
definition serves both backends (DESIGN 9.5). All times are naive-UTC ``TIMESTAMP``; the
primary key makes every write an idempotent upsert (DESIGN section 4).

Pure Python: no database library is imported here.
"""

from __future__ import annotations

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
    what a SQL user should know about it (written into the DDL as a comment)."""

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
    #: Said above the table's DDL.
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


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "candles",
            (
                _required("symbol", TEXT),
                _required("interval", TEXT, 'Bybit kline code: "60", "240", "D"'),
                _required("open_time", TIMESTAMP),
                _required("open", DOUBLE),
                _required("high", DOUBLE),
                _required("low", DOUBLE),
                _required("close", DOUBLE),
                _required("volume", DOUBLE, "base coin"),
                _required("turnover", DOUBLE, "quote coin"),
            ),
            ("symbol", "interval", "open_time"),
            "open_time",
            never_shrink=True,
        ),
        Table(
            "funding_rates",
            (
                _required("symbol", TEXT),
                _required("funding_time", TIMESTAMP, "settlement time"),
                _required("funding_rate", DOUBLE, "fraction per settlement (0.0001 = 0.01 %)"),
            ),
            ("symbol", "funding_time"),
            "funding_time",
            never_shrink=True,
        ),
        Table(
            "open_interest",
            (
                _required("symbol", TEXT),
                _required("interval", TEXT, 'Bybit intervalTime: "5min" ... "1d"'),
                _required("ts", TIMESTAMP),
                _required("open_interest", DOUBLE, "base coin"),
            ),
            ("symbol", "interval", "ts"),
            "ts",
            never_shrink=True,
        ),
        Table(
            "long_short_ratio",
            (
                _required("symbol", TEXT),
                _required("period", TEXT, 'Bybit period: "5min" ... "1d"'),
                _required("ts", TIMESTAMP),
                _required("buy_ratio", DOUBLE, "share of accounts net long, 0..1"),
                _required("sell_ratio", DOUBLE),
            ),
            ("symbol", "period", "ts"),
            "ts",
            never_shrink=True,
        ),
        Table(
            "fear_greed",
            (
                _required("ts", TIMESTAMP, "the day (00:00 UTC)"),
                _required("value", DOUBLE, "0..100"),
                _required("classification", TEXT),
            ),
            ("ts",),
            "ts",
            never_shrink=True,
        ),
        Table(
            "tickers",
            (
                _required("symbol", TEXT),
                _required("ts", TIMESTAMP),
                Column("last_price", DOUBLE),
                Column("mark_price", DOUBLE),
                Column("index_price", DOUBLE),
                Column("prev_price_24h", DOUBLE),
                Column("price_24h_pcnt", DOUBLE),
                Column("high_price_24h", DOUBLE),
                Column("low_price_24h", DOUBLE),
                Column("prev_price_1h", DOUBLE),
                Column("open_interest", DOUBLE),
                Column("open_interest_value", DOUBLE),
                Column("turnover_24h", DOUBLE),
                Column("volume_24h", DOUBLE),
                Column("funding_rate", DOUBLE, comment="predicted rate: never used as a "
                       "settled rate"),
                Column("next_funding_time", TIMESTAMP),
                Column("bid1_price", DOUBLE),
                Column("bid1_size", DOUBLE),
                Column("ask1_price", DOUBLE),
                Column("ask1_size", DOUBLE),
            ),
            ("symbol", "ts"),
            "ts",
        ),
        Table(
            "liquidations",
            (
                _required("symbol", TEXT),
                _required("ts", TIMESTAMP),
                _required("side", TEXT, "Bybit's side of the liquidated position's order"),
                _required("price", DOUBLE),
                _required("size", DOUBLE),
                Column("seq", BIGINT, comment="message sequence number, for ordering within "
                       "a ts"),
            ),
            ("symbol", "ts", "side", "price", "size"),
            "ts",
        ),
        Table(
            "orderbook_imbalance",
            (
                _required("symbol", TEXT),
                _required("ts", TIMESTAMP),
                _required("obi", DOUBLE, "-1 (all asks) .. +1 (all bids), top 5 levels "
                          "weighted"),
            ),
            ("symbol", "ts"),
            "ts",
        ),
        Table(
            "stream_state",
            (
                _required("symbol", TEXT),
                _required("through", TIMESTAMP),
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
                _required("symbol", TEXT),
                _required("interval", TEXT),
                _required("timestamp", TIMESTAMP, "the bar's close: when it became knowable"),
                Column("close", DOUBLE),
                Column("sentiment_score", DOUBLE),
                Column("confidence", DOUBLE),
                Column("regime", TEXT),
                Column("regime_duration_bars", INTEGER),
                Column("regime_confidence", DOUBLE),
                Column("trend_score", DOUBLE),
                Column("momentum_score", DOUBLE),
                Column("volatility_score", DOUBLE),
                Column("volume_flow_score", DOUBLE),
                Column("exchange_sentiment", DOUBLE),
                Column("macro_sentiment", DOUBLE),
                Column("funding_rate", DOUBLE),
                Column("open_interest", DOUBLE),
                Column("open_interest_delta_pct", DOUBLE),
                Column("long_short_ratio", DOUBLE),
                Column("liquidation_intensity", DOUBLE),
                Column("order_book_imbalance", DOUBLE),
                Column("fear_greed_index", DOUBLE),
                Column("hmm_regime", TEXT),
                Column("hmm_probability", DOUBLE),
                Column("hmm_model_id", TEXT),
                Column("hmm_state_probabilities", TEXT, comment="JSON: {label: probability}"),
            ),
            ("symbol", "interval", "timestamp"),
            "timestamp",
        ),
        Table(
            "regime_transitions",
            (
                _required("symbol", TEXT),
                _required("interval", TEXT),
                _required("timestamp", TIMESTAMP),
                Column("from_regime", TEXT),
                _required("to_regime", TEXT),
            ),
            ("symbol", "interval", "timestamp"),
            "timestamp",
        ),
        Table(
            "hmm_models",
            (
                _required("model_id", TEXT),
                _required("symbol", TEXT),
                _required("interval", TEXT),
                _required("trained_at", TIMESTAMP, "wall clock, metadata only"),
                _required("train_start", TIMESTAMP),
                _required("train_end", TIMESTAMP),
                _required("n_states", INTEGER),
                Column("bic", DOUBLE),
                Column("log_likelihood", DOUBLE),
                _required("params", TEXT, "JSON parameters (never pickle)"),
                _required("labels", TEXT, "JSON list: one label per state"),
            ),
            ("model_id",),
            "train_end",
        ),
        Table(
            "tracker_state",
            (
                _required("symbol", TEXT),
                _required("interval", TEXT),
                _required("last_timestamp", TIMESTAMP),
                _required("state", TEXT, "JSON checkpoint of the live tracker"),
            ),
            ("symbol", "interval"),
            "last_timestamp",
        ),
    )
}


def create_statements(dialect: str = "duckdb") -> str:
    """The DDL of every table for ``dialect``: idempotent ``CREATE TABLE IF NOT EXISTS``
    statements, applied at every start by the store."""
    if dialect not in DIALECT_TYPES:
        raise ValueError(f"unknown SQL dialect {dialect!r}; known: {', '.join(DIALECT_TYPES)}")
    head = (
        "-- Market Sentiment Tracker: schema (DESIGN section 4), generated from\n"
        "-- sentiment/io/tables.py. All times are UTC TIMESTAMP. Primary keys make every\n"
        "-- write an idempotent upsert."
    )
    return "\n\n".join([head, *(t.create_sql(dialect) for t in TABLES.values())]) + "\n"
