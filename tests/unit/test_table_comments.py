"""Every table and column carries a comment in the database (``COMMENT ON``), from its one
definition in sentiment/io/tables.py, so ``duckdb_columns()`` (and psql's ``\\d+``) explain
them; the names they use are the ones the CLI, the dashboard and docs/scores.md use."""

from __future__ import annotations

import duckdb

from sentiment.core.scores import SUBSCORE_COLUMNS
from sentiment.io.store import Store
from sentiment.io.tables import TABLES, comment_statements, comments


def _stored(path) -> dict:
    with duckdb.connect(str(path), read_only=True) as conn:
        tables = conn.execute("SELECT table_name, comment FROM duckdb_tables()").fetchall()
        columns = conn.execute(
            "SELECT table_name, column_name, comment FROM duckdb_columns() "
            "WHERE table_name IN (SELECT table_name FROM duckdb_tables())").fetchall()
    return {(t, None): c for t, c in tables} | {(t, col): c for t, col, c in columns}


def test_every_table_and_column_is_described():
    for table in TABLES.values():
        assert table.comment.strip(), table.name
        for column in table.definition:
            assert column.comment.strip(), (table.name, column.name)


def test_the_database_keeps_every_comment(tmp_path):
    path = tmp_path / "c.duckdb"
    Store(path).init()
    stored = _stored(path)
    assert {k for k in stored if k[0] in TABLES} == set(comments())
    for key, text in comments().items():
        assert stored[key] == text, key
    assert "\n" not in stored[("stream_state", None)]  # a table's comment on one line


def test_only_missing_or_changed_comments_are_written(tmp_path):
    path = tmp_path / "c.duckdb"
    Store(path).init()
    assert comment_statements("duckdb", _stored(path)) == []
    # A database made before the comments existed (or with an older wording) gets them.
    with duckdb.connect(str(path)) as conn:
        conn.execute("COMMENT ON COLUMN candles.volume IS 'old words'")
        conn.execute("COMMENT ON TABLE fear_greed IS NULL")
    assert comment_statements("duckdb", _stored(path)) == [
        "COMMENT ON COLUMN candles.\"volume\" IS 'traded, in base coin'",
        "COMMENT ON TABLE fear_greed IS 'The alternative.me Crypto Fear & Greed Index, one "
        "value per day.'"]
    Store._schema_applied.clear()
    Store(path).init()
    assert comment_statements("duckdb", _stored(path)) == []


def test_a_quote_in_a_comment_is_escaped():
    statements = comment_statements("postgresql")
    funding = next(s for s in statements if s.startswith("COMMENT ON TABLE funding_rates"))
    assert funding == ("COMMENT ON TABLE funding_rates IS 'Settled funding rates (never the "
                       "ticker''s predicted rate).'")


def test_long_short_columns_say_they_hold_the_share_of_accounts_long():
    ratio = {c.name: c.comment for c in TABLES["long_short_ratio"].definition}
    assert ratio["buy_ratio"].startswith("share of accounts holding a long position, 0..1")
    assert ratio["sell_ratio"].startswith("share of accounts holding a short position")
    history = {c.name: c.comment for c in TABLES["sentiment_history"].definition}
    assert history["long_short_ratio"].startswith("share of accounts long")
    assert "not a long/short quotient" in history["long_short_ratio"]


def test_sub_score_columns_are_described_by_their_one_name():
    """The weight names of sentiment.yaml are the sub-scores' names; each column's comment
    starts with it, as the dashboard's bars and docs/scores.md name them."""
    history = {c.name: c.comment for c in TABLES["sentiment_history"].definition}
    for name, column in SUBSCORE_COLUMNS.items():
        assert history[column].startswith(f"sub-score {name}"), column
    table = " ".join(TABLES["sentiment_history"].comment.split())
    assert f"({', '.join(SUBSCORE_COLUMNS)})" in table
