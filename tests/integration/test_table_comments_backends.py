"""The comments of every table and column are in the database on both backends: what
``duckdb_columns()`` and psql's ``\\d+`` show a SQL user."""

from __future__ import annotations

import pytest

from sentiment.io.store import Store, named_queries
from sentiment.io.tables import TABLES, comments

pytestmark = pytest.mark.integration


def test_every_table_and_column_has_its_comment(any_db):
    store = Store(any_db, lock_timeout=30)
    store.init()
    with store.connect(read_only=True) as conn:
        rows = conn.execute(named_queries("catalog.sql")["comments"]).fetchall()
    stored = {(table, column): text for table, column, text in rows if table in TABLES}
    assert stored == comments()
    assert all(stored.values())
    # A second start writes nothing: every comment is there already.
    Store._schema_applied.clear()
    store.init()
    with store.connect(read_only=True) as conn:
        again = conn.execute(named_queries("catalog.sql")["comments"]).fetchall()
    assert sorted(map(str, again)) == sorted(map(str, rows))


def test_psql_describes_a_column(pg_url):
    """What psql's \\d+ reads: col_description on the table's column."""
    Store(pg_url, lock_timeout=30).init()
    import psycopg

    with psycopg.connect(pg_url) as conn:
        text = conn.execute(
            "SELECT col_description('long_short_ratio'::regclass, attnum) FROM pg_attribute "
            "WHERE attrelid = 'long_short_ratio'::regclass AND attname = 'buy_ratio'"
        ).fetchone()[0]
        table = conn.execute(
            "SELECT obj_description('sentiment_history'::regclass, 'pg_class')").fetchone()[0]
    assert text.startswith("share of accounts holding a long position")
    assert table.startswith("One snapshot per closed bar")
