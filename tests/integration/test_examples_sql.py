"""The example queries for users (sentiment/sql/examples.sql) and their PostgreSQL versions
(sentiment/sql/postgresql/examples.sql) come in the same order under the same headings and
give the same answers on a DuckDB and a PostgreSQL store holding the same data."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from sentiment.io.sources.bybit import BybitClient
from sentiment.io.sources.fear_greed import FearGreedClient
from sentiment.io.store import SQL_DIR, Store
from sentiment.services.live import live_update

from helpers import live_config

pytestmark = pytest.mark.integration

DUCKDB_EXAMPLES = SQL_DIR / "examples.sql"
POSTGRES_EXAMPLES = SQL_DIR / "postgresql" / "examples.sql"
ROOT = SQL_DIR.parent.parent  # where the headers' commands run

#: What splits a script: a comment, a string literal or quoted identifier (which may hold a
#: semicolon or a quote that is no delimiter), a parenthesis or a semicolon.
_TOKEN = re.compile(r"--[^\n]*|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|[();]")


def statements(path: Path) -> list[str]:
    """The statements of a script, each with the comments above it (the file's header
    included in the first one)."""
    text, pieces, start = path.read_text(), [], 0
    for token in _TOKEN.finditer(text):
        if token.group() == ";":
            pieces.append(text[start:token.start()])
            start = token.end()
    pieces.append(text[start:])
    return [p.strip() for p in pieces if _code(p).strip()]


def _code(statement: str) -> str:
    """The statement without its comments."""
    return re.sub(r"--[^\n]*", "", statement)


def heading(statement: str) -> str:
    """The comment lines right above the statement's SQL (not the file's header)."""
    lines = statement.split("\n")
    body = next(i for i, line in enumerate(lines) if not line.startswith("--") and line.strip())
    block: list[str] = []
    for line in reversed(lines[:body]):
        if not line.startswith("--"):
            break
        block.insert(0, line)
    return "\n".join(block)


def ordered(statement: str) -> bool:
    """Whether the outermost query has an ORDER BY (not one inside parentheses)."""
    depth, outer = 0, []
    for token in re.finditer(r"[()]|[^()]+", _code(statement)):
        if token.group() == "(":
            depth += 1
        elif token.group() == ")":
            depth -= 1
        elif depth == 0:
            outer.append(token.group())
    return re.search(r"\bORDER\s+BY\b", " ".join(outer), re.IGNORECASE) is not None


def test_both_files_hold_the_same_examples_in_the_same_order():
    duck, pg = statements(DUCKDB_EXAMPLES), statements(POSTGRES_EXAMPLES)
    assert len(duck) == len(pg) >= 9
    assert [heading(s) for s in pg] == [heading(s) for s in duck]
    assert all(heading(s) for s in duck)  # every example says what it answers
    assert [ordered(s) for s in pg] == [ordered(s) for s in duck]
    # The helpers see through comments, literals and subqueries.
    assert not ordered("SELECT * FROM (SELECT 1 AS x ORDER BY x) -- ORDER BY x")
    assert statements(POSTGRES_EXAMPLES)[0].startswith("-- The example queries")


#: Two weeks of both symbols from the replay exchange (the 7-day returns after the first days
#: of Extreme Fear are complete by then), then a few edits run on both stores so that every
#: example has rows to answer with: two settlements of extreme funding at the same time (the
#: tie the ORDER BY breaks) and two bars relabelled as a breakout and a capitulation (which
#: also split the long trending_down period).
START = dt.date(2022, 3, 1)
EDITS = [
    "UPDATE funding_rates SET funding_rate = 0.0015"
    " WHERE symbol = 'BTCUSDT' AND funding_time = TIMESTAMP '2022-03-02 08:00:00'",
    "UPDATE funding_rates SET funding_rate = -0.0008"
    " WHERE symbol = 'ETHUSDT' AND funding_time = TIMESTAMP '2022-03-02 08:00:00'",
    "UPDATE sentiment_history SET regime = 'breakout' WHERE symbol = 'BTCUSDT'"
    " AND interval = '60' AND timestamp = TIMESTAMP '2022-03-06 12:00:00'",
    "UPDATE sentiment_history SET regime = 'capitulation' WHERE symbol = 'BTCUSDT'"
    " AND interval = '60' AND timestamp = TIMESTAMP '2022-03-07 12:00:00'",
]


def test_every_example_answers_alike_on_duckdb_and_postgresql(clean_replay, tmp_path, pg_url):
    config = live_config(START)
    duck, pg = Store(str(tmp_path / "examples.duckdb")), Store(pg_url)
    clients = (BybitClient(clean_replay.base_url), FearGreedClient(clean_replay.fear_greed_url))
    clean_replay.set_clock(dt.datetime(2022, 3, 15, 5, 0, 30))
    for store in (duck, pg):
        live_update(store, config, *clients)
        with store.connect() as conn:
            for edit in EDITS:
                conn.execute(edit)

    answered = 0
    examples = list(zip(statements(DUCKDB_EXAMPLES), statements(POSTGRES_EXAMPLES), strict=True))
    for number, (duck_sql, pg_sql) in enumerate(examples, start=1):
        name = f"example {number} ({heading(duck_sql).splitlines()[0]})"
        expected, got = duck.query(duck_sql), pg.query(pg_sql)
        assert list(got.columns) == list(expected.columns), name
        if not ordered(duck_sql):
            expected, got = _sorted(expected), _sorted(got)
        pd.testing.assert_frame_equal(
            got.reset_index(drop=True), expected.reset_index(drop=True),
            check_dtype=False, check_exact=False, rtol=1e-9, atol=1e-12, obj=name)
        answered += not expected.empty
    # Two empty answers prove nothing: every example answers with rows on this data (a new
    # example that does not needs an edit above that gives it some).
    assert answered == len(examples)


def test_the_postgresql_examples_run_in_psql_as_their_header_says(pg_url):
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("no psql client")
    Store(pg_url).summary()  # the schema and its views, no rows
    # The command of the header, run from the project's root with the URL in SENTIMENT_DB.
    command = POSTGRES_EXAMPLES.read_text().split("\n")[2].removeprefix("--").split()
    assert command[:3] == ["psql", '"$SENTIMENT_DB"', "-f"]
    result = subprocess.run(
        [psql, pg_url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", command[3]],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ERROR" not in result.stderr
    # One table per example, each closed by its row count: "(0 rows)", "(1 row)".
    counts = re.findall(r"^\((\d+) rows?\)$", result.stdout, re.MULTILINE)
    assert len(counts) == len(statements(POSTGRES_EXAMPLES))


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns), ignore_index=True) if len(frame) else frame
