"""The PostgreSQL side's SQL plumbing, without a server: placeholders, URLs and variants."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from sentiment.io import postgres
from sentiment.io.store import SQL_DIR, Store, StoreError, named_queries
from sentiment.io.tables import TABLES


def test_duckdb_placeholders_become_psycopg_parameters():
    text, params = postgres.bind("SELECT * FROM t WHERE a = ? AND b = ? AND c LIKE 'x%'",
                                 ["A", np.int64(2)])
    assert text == "SELECT * FROM t WHERE a = %(p1)s AND b = %(p2)s AND c LIKE 'x%%'"
    assert params == {"p1": "A", "p2": 2} and type(params["p2"]) is int
    text, params = postgres.bind("WHERE ($2::TIMESTAMP IS NULL OR ts <= $2) AND s = $1",
                                 ["BTC", pd.Timestamp("2022-03-01")])
    assert text == "WHERE (%(p2)s::TIMESTAMP IS NULL OR ts <= %(p2)s) AND s = %(p1)s"
    assert params["p2"].isoformat() == "2022-03-01T00:00:00"


def test_question_marks_in_literals_and_comments_stay():
    sql = "SELECT '?' AS q, \"a?\" -- what?\nFROM t WHERE x = ?"
    text, params = postgres.bind(sql, [1])
    assert text == "SELECT '?' AS q, \"a?\" -- what?\nFROM t WHERE x = %(p1)s"
    assert params == {"p1": 1}
    assert postgres.bind("SELECT 1; SELECT 2", None) == ("SELECT 1; SELECT 2", None)
    with pytest.raises(ValueError, match=r"\$3"):
        postgres.bind("SELECT $3", [1])


def test_a_postgresql_url_selects_the_postgresql_store():
    store = Store("postgresql://me:secret@127.0.0.1:5432/sentiment")
    assert store.dialect == "postgresql" and store.identity is None
    assert "secret" not in str(store.path)
    store.check_file()  # no file to pin: never refuses
    assert Store("postgres://me@db/x").dialect == "postgresql"
    assert Store("data/sentiment.duckdb").dialect == "duckdb"


def test_every_postgresql_variant_replaces_a_query_of_the_same_name():
    for path in sorted((SQL_DIR / "postgresql").glob("*.sql")):
        if path.name == "views.sql":
            continue
        queries = named_queries(path.name)
        for name in re.findall(r"^-- name: (\w+)", path.read_text(), re.M):
            assert postgres.VARIANTS[queries[name].strip()] != queries[name], name


def test_the_postgresql_views_are_the_duckdb_views():
    def views(path):
        return re.findall(r"CREATE OR REPLACE VIEW (\w+)", path.read_text())

    assert views(SQL_DIR / "postgresql" / "views.sql") == views(SQL_DIR / "views.sql")


def test_a_variant_of_an_unknown_query_is_refused(tmp_path, monkeypatch):
    import sentiment.io.store as store_module

    (tmp_path / "postgresql").mkdir()
    (tmp_path / "q.sql").write_text("-- name: a\nSELECT 1;\n")
    (tmp_path / "postgresql" / "q.sql").write_text("-- name: b\nSELECT 2;\n")
    monkeypatch.setattr(store_module, "SQL_DIR", tmp_path)
    with pytest.raises(StoreError, match="'b' varies no query of q.sql"):
        named_queries("q.sql")


def _parse_binary(data: bytes, ncols: int) -> list[list[bytes | None]]:
    """COPY's binary format back into fields (the inverse of what the store sends)."""
    assert data.startswith(b"PGCOPY\n\xff\r\n\x00") and data.endswith(b"\xff\xff")
    at, rows = 19, []
    while at < len(data) - 2:
        assert int.from_bytes(data[at:at + 2], "big") == ncols
        at += 2
        row = []
        for _ in range(ncols):
            n = int.from_bytes(data[at:at + 4], "big", signed=True)
            at += 4
            row.append(None if n < 0 else data[at:at + n])
            at += max(n, 0)
        rows.append(row)
    return rows


@pytest.mark.parametrize("nulls", [False, True])
def test_binary_copy_holds_every_value_exactly(nulls):
    frame = pd.DataFrame({
        "symbol": ["BTCUSDT", "ETHUSDT" if nulls else "BTCUSDT"],
        "interval": ["60", "60"],
        "timestamp": [pd.Timestamp("2022-03-01 01:00"),
                      pd.Timestamp("2000-01-01 00:00:00.000001")],
        "sentiment_score": [0.1 + 0.2, np.nan if nulls else -1e-300],
        "regime_duration_bars": pd.array([7, None if nulls else 8], dtype="Int32"),
        "regime": ["ré'gime", None if nulls else "ranging"],
    })
    rows = _parse_binary(postgres._binary(frame, TABLES["sentiment_history"]), 6)
    first, second = rows
    assert first[0] == b"BTCUSDT" and first[5] == "ré'gime".encode()
    assert np.frombuffer(first[3], ">f8")[0] == 0.1 + 0.2
    assert int.from_bytes(first[4], "big") == 7
    us = int.from_bytes(first[2], "big", signed=True)
    assert us == (pd.Timestamp("2022-03-01 01:00") - pd.Timestamp("2000-01-01")) // (
        pd.Timedelta(microseconds=1))
    assert int.from_bytes(second[2], "big") == 1
    if nulls:
        assert second[0] == b"ETHUSDT" and second[3] is None and second[4] is None
        assert second[5] is None
    else:
        assert np.frombuffer(second[3], ">f8")[0] == -1e-300

