"""The one definition of every table: the DDL made from it, and everything derived from it."""

from __future__ import annotations

import dataclasses

import duckdb
import pytest

from sentiment.io import staging
from sentiment.io.sources import bybit, fear_greed
from sentiment.io.sources.bybit_fields import FIELD_OF_TICKER_COLUMN, TICKER_FIELDS
from sentiment.io.store import Store
from sentiment.io.tables import (
    COLUMN_TYPES,
    DIALECT_TYPES,
    DOUBLE,
    TABLES,
    Column,
    Table,
    create_statements,
)
from sentiment.models import HISTORY_COLUMNS, HISTORY_FLOAT_COLUMNS, SentimentSnapshot
from sentiment.services import stream

#: DuckDB's name of each type in information_schema.
DUCKDB_INFO_TYPES = {"text": "VARCHAR", "double": "DOUBLE", "integer": "INTEGER",
                     "bigint": "BIGINT", "timestamp": "TIMESTAMP"}


def _described(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str, bool]]]:
    rows = conn.execute(
        "SELECT table_name, column_name, data_type, is_nullable = 'YES' "
        "FROM information_schema.columns WHERE table_schema = 'main' "
        "AND table_name IN (SELECT table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE') ORDER BY table_name, ordinal_position").fetchall()
    out: dict[str, list[tuple[str, str, bool]]] = {}
    for table, column, type_, nullable in rows:
        out.setdefault(table, []).append((column, type_, nullable))
    return out


def test_the_store_creates_exactly_the_defined_tables(tmp_path):
    store = Store(tmp_path / "t.duckdb", lock_timeout=5)
    store.init()
    with store.connect(read_only=True) as conn:
        described = _described(conn)
        keys = {table: tuple(columns) for table, columns in conn.execute(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE constraint_type = 'PRIMARY KEY'").fetchall()}
    assert set(described) == set(TABLES)
    for name, table in TABLES.items():
        assert described[name] == [
            (c.name, DUCKDB_INFO_TYPES[c.type], c.nullable) for c in table.definition], name
        assert keys[name] == table.key, name


def test_a_key_column_is_never_null_and_comes_first():
    for table in TABLES.values():
        assert table.all_columns[: len(table.key)] == table.key
        assert table.all_columns == table.key + table.columns
        for column in table.definition:
            if column.name in table.key:
                assert not column.nullable, (table.name, column.name)


def test_every_dialect_names_every_type():
    for dialect, names in DIALECT_TYPES.items():
        assert set(names) == set(COLUMN_TYPES), dialect
        ddl = create_statements(dialect)
        assert ddl.count("CREATE TABLE IF NOT EXISTS") == len(TABLES)
    assert "DOUBLE PRECISION" in create_statements("postgresql")
    assert "VARCHAR" not in create_statements("postgresql")
    with pytest.raises(ValueError, match="unknown SQL dialect"):
        create_statements("oracle")


def test_a_bad_definition_is_refused():
    with pytest.raises(ValueError, match="unknown type"):
        Column("x", "float")
    with pytest.raises(ValueError, match="key columns must come first"):
        Table("t", (Column("a", DOUBLE), Column("k", "text", nullable=False)), ("k",), None)
    with pytest.raises(ValueError, match="defined twice"):
        Table("t", (Column("k", "text"), Column("k", "text")), ("k",), None)
    with pytest.raises(ValueError, match="no time column"):
        Table("t", (Column("k", "text"),), ("k",), "ts")


def test_history_columns_are_the_tables_and_the_snapshots():
    assert HISTORY_COLUMNS == TABLES["sentiment_history"].all_columns
    assert HISTORY_FLOAT_COLUMNS == tuple(
        c.name for c in TABLES["sentiment_history"].definition if c.type == DOUBLE)
    assert "fear_greed_index" in HISTORY_FLOAT_COLUMNS
    assert "regime_duration_bars" not in HISTORY_FLOAT_COLUMNS  # INTEGER
    snapshot_fields = {f.name for f in dataclasses.fields(SentimentSnapshot)}
    renamed = {"exchange_sentiment": "exchange_sentiment_score",
               "macro_sentiment": "macro_sentiment_score"}
    assert {renamed.get(c, c) for c in HISTORY_COLUMNS} == snapshot_fields


def test_sources_and_staging_shape_frames_like_their_tables():
    assert bybit.KLINE_COLUMNS == list(TABLES["candles"].all_columns)
    assert bybit.FUNDING_COLUMNS == list(TABLES["funding_rates"].all_columns)
    assert bybit.OPEN_INTEREST_COLUMNS == list(TABLES["open_interest"].all_columns)
    assert bybit.LONG_SHORT_COLUMNS == list(TABLES["long_short_ratio"].all_columns)
    assert bybit.TICKER_COLUMNS == list(TABLES["tickers"].all_columns)
    assert fear_greed.COLUMNS == list(TABLES["fear_greed"].all_columns)
    assert staging.KINDS["stream_state"] == ("symbol", "through")
    assert staging.KINDS["liquidations"] == TABLES["liquidations"].all_columns
    assert set(stream.StreamRecorder(["BTCUSDT"]).pending) | {"stream_state"} == set(
        staging.KINDS)


def test_one_ticker_map_both_ways_covers_the_tickers_table():
    assert tuple(TICKER_FIELDS.values()) == TABLES["tickers"].columns
    assert {FIELD_OF_TICKER_COLUMN[c]: c for c in FIELD_OF_TICKER_COLUMN} == TICKER_FIELDS
    assert set(stream.TICKER_RANGES) | {"nextFundingTime"} == set(TICKER_FIELDS)
    assert set(bybit.TICKER_RANGES) | {"next_funding_time"} == set(TICKER_FIELDS.values())
