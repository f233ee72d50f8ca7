"""The PostgreSQL side of the store (``SENTIMENT_DB=postgresql://...``, DESIGN 7 and 9.5).

:class:`sentiment.io.store.Store` keeps every rule of a write (one transaction, the shrink
guard, the slice checks, the error messages); this module only speaks PostgreSQL for it:

* :class:`PgConnection` wraps a psycopg connection with the small part of DuckDB's
  connection API the store and its callers use (``execute(sql, params)`` then ``df()``,
  ``fetchall()`` or ``fetchone()``), so the same SQL text runs on both: DuckDB's ``?`` and
  ``$n`` placeholders are bound as psycopg parameters, and a named query that has a
  PostgreSQL variant in ``sentiment/sql/postgresql/`` runs as that variant.
* Frames reach the server with ``COPY ... FROM STDIN`` into a temporary table typed from the
  table's definition (:mod:`sentiment.io.tables`); ``INSERT ... SELECT`` from it then does a
  plain insert (slice replace) or ``ON CONFLICT ... DO UPDATE`` (upsert).
* Results come back with the dtypes DuckDB's ``df()`` gives, so callers see the same frames
  from either backend.
* There is no file and no single-writer lock: PostgreSQL's MVCC lets readers and writers of
  different symbols run at once, so the store's lock waiting is skipped entirely.
"""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql as pgsql

from sentiment.io.tables import DIALECT_TYPES, Table

DIALECT = "postgresql"
URL_PREFIXES = ("postgresql://", "postgres://")

#: PostgreSQL type oids whose values come back as Python numbers or times.
_FLOAT_OIDS = {700, 701, 1700}  # float4, float8, numeric
_INT32_OIDS = {21, 23}  # int2, int4
_INT64_OIDS = {20}  # int8
_TIMESTAMP_OIDS = {1114}  # timestamp without time zone
_TIMESTAMPTZ_OIDS = {1184}
_BOOL_OIDS = {16}


def is_url(path: object) -> bool:
    """Whether ``SENTIMENT_DB`` names a PostgreSQL database rather than a DuckDB file."""
    return str(path).strip().lower().startswith(URL_PREFIXES)


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


# ---------------------------------------------------------------------------- placeholders

_TOKEN = re.compile(
    r"""('(?:[^']|'')*')        # a string literal
      | ("(?:[^"]|"")*")        # a quoted identifier
      | (--[^\n]*)              # a comment
      | (\$\d+)                 # $n
      | (\?)                    # ?
      | (%)                     # a literal percent sign (psycopg's escape)
    """,
    re.VERBOSE,
)


def bind(sql: str, params: Any) -> tuple[str, dict[str, Any] | None]:
    """DuckDB's placeholders (``?`` in order, ``$n`` by position) as psycopg's named ones."""
    values = list(params or [])
    counter = iter(range(1, 10_000))
    used: set[int] = set()

    def swap(match: re.Match[str]) -> str:
        if match.group(4):
            n = int(match.group(4)[1:])
        elif match.group(5):
            n = next(counter)
        elif match.group(6):
            return "%%"
        else:
            return match.group(0)
        used.add(n)
        return f"%(p{n})s"

    text = _TOKEN.sub(swap, sql)
    if not used and not values:
        return sql, None  # no parameters: psycopg runs it as written (several statements too)
    missing = [n for n in used if n > len(values)]
    if missing:
        raise ValueError(f"query has placeholder ${max(missing)} but {len(values)} value(s)")
    return text, {f"p{n}": _adapt(values[n - 1]) for n in used}


def _adapt(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


# ---------------------------------------------------------------------------- dialect variants

#: DuckDB query text -> its PostgreSQL variant (filled by ``named_queries``).
VARIANTS: dict[str, str] = {}


def register_variant(duckdb_text: str, postgres_text: str) -> None:
    VARIANTS[duckdb_text.strip()] = postgres_text


# ---------------------------------------------------------------------------- results


def _column(values: list[Any], oid: int) -> Any:
    """One result column with the dtype DuckDB's ``df()`` gives its type (pandas 3: text
    as ``str`` once it holds a value, integers with NULLs as the nullable ``Int32/Int64``)."""
    nulls = any(v is None for v in values)
    if oid in _FLOAT_OIDS:
        return np.array([np.nan if v is None else float(v) for v in values], dtype="float64")
    if oid in _INT32_OIDS or oid in _INT64_OIDS:
        wide = oid in _INT64_OIDS
        if nulls:
            return pd.array(values, dtype="Int64" if wide else "Int32")
        return np.array(values, dtype="int64" if wide else "int32")
    if oid in _TIMESTAMP_OIDS:
        return pd.to_datetime(pd.Series(values, dtype="object")).astype("datetime64[us]")
    if oid in _TIMESTAMPTZ_OIDS:
        series = pd.to_datetime(pd.Series(values, dtype="object"), utc=True)
        return series.astype("datetime64[us, UTC]")
    if oid in _BOOL_OIDS and not nulls:
        return np.array(values, dtype="bool")
    if all(isinstance(v, str) or v is None for v in values) and not all(
            v is None for v in values):
        return pd.array(values, dtype="str")
    return np.array(values, dtype="object")


class PgResult:
    """The answer to one statement, read like a DuckDB result."""

    def __init__(self, cursor: psycopg.Cursor):
        self._columns = [(c.name, c.type_code) for c in cursor.description or []]
        self._rows = cursor.fetchall() if cursor.description else []

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._rows)

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def df(self) -> pd.DataFrame:
        data = {name: _column([r[i] for r in self._rows], oid)
                for i, (name, oid) in enumerate(self._columns)}
        return pd.DataFrame(data, columns=[name for name, _ in self._columns])


class PgConnection:
    """A psycopg connection that runs the store's (DuckDB-flavoured) SQL.

    Autocommit is on: ``BEGIN TRANSACTION`` ... ``COMMIT`` / ``ROLLBACK`` issued by the
    store delimit the transaction, exactly as on DuckDB.
    """

    def __init__(self, conn: psycopg.Connection):
        self.raw = conn

    def execute(self, sql: str, params: Any = None) -> PgResult:
        text, bound = bind(VARIANTS.get(sql.strip(), sql), params)
        with self.raw.cursor() as cur:
            cur.execute(text.encode() if bound is None else text, bound)
            return PgResult(cur)

    def close(self) -> None:
        self.raw.close()

    # -- what the store needs beyond DuckDB's API

    def stage(self, name: str, spec: Table, frame: pd.DataFrame) -> None:
        """``frame`` (a subset of ``spec``'s columns) as the temporary table ``name``, sent
        with ``COPY``: one round trip however many rows."""
        types = DIALECT_TYPES[DIALECT]
        column_types = spec.types()
        cols = list(frame.columns)
        definition = pgsql.SQL(", ").join(
            pgsql.SQL("{} {}").format(pgsql.Identifier(c), pgsql.SQL(types[column_types[c]]))
            for c in cols)
        with self.raw.cursor() as cur:
            cur.execute(pgsql.SQL("DROP TABLE IF EXISTS {}").format(pgsql.Identifier(name)))
            cur.execute(pgsql.SQL("CREATE TEMP TABLE {} ({})").format(
                pgsql.Identifier(name), definition))
            if frame.empty:
                return
            copy = pgsql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, NULL '\\N')").format(
                pgsql.Identifier(name), pgsql.SQL(", ").join(map(pgsql.Identifier, cols)))
            with cur.copy(copy) as sink:
                sink.write(_csv(frame))

    def unstage(self, name: str) -> None:
        with self.raw.cursor() as cur:
            cur.execute(pgsql.SQL("DROP TABLE IF EXISTS {}").format(pgsql.Identifier(name)))


def _csv(frame: pd.DataFrame) -> str:
    """The frame as COPY's CSV: times as naive UTC, floats with 17 significant digits (they
    read back to the same double), NULL as ``\\N``."""
    out = frame.copy(deep=False)
    for column in out.columns:
        values = out[column]
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            out[column] = values.dt.tz_convert("UTC").dt.tz_localize(None)
    buffer = io.StringIO()
    out.to_csv(buffer, header=False, index=False, na_rep="\\N", float_format="%.17g")
    return buffer.getvalue()


def upsert_sql(spec: Table, columns: list[str], staged: str) -> str:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` from a staged table: what DuckDB's
    ``INSERT OR REPLACE`` does (the given columns of an existing key are overwritten)."""
    cols = ", ".join(f'"{c}"' for c in columns)
    updates = [c for c in columns if c not in spec.key]
    action = ("DO UPDATE SET " + ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in updates)
              if updates else "DO NOTHING")
    keys = ", ".join(f'"{c}"' for c in spec.key)
    return (f'INSERT INTO "{spec.name}" ({cols}) SELECT {cols} FROM "{staged}" '
            f"ON CONFLICT ({keys}) {action}")


def connect(url: str, *, read_only: bool) -> PgConnection:
    """A connection in autocommit mode (the store opens its own transactions); a reader's
    sessions are read-only, so a read can never write by mistake."""
    options = "-c default_transaction_read_only=on" if read_only else None
    kwargs: dict[str, Any] = {"autocommit": True}
    if options:
        kwargs["options"] = options
    return PgConnection(psycopg.connect(url, **kwargs))


#: Errors a write reports as a refused frame (a duplicate key, a NULL in a required column).
CONSTRAINT_ERRORS: tuple[type[BaseException], ...] = (psycopg.errors.IntegrityError,)
#: A query named a table that does not exist (yet).
MISSING_TABLE_ERRORS: tuple[type[BaseException], ...] = (psycopg.errors.UndefinedTable,)
