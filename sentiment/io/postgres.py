"""The PostgreSQL side of the store (``SENTIMENT_DB=postgresql://...``, DESIGN 7 and 9.5).

:class:`sentiment.io.store.Store` keeps every rule of a write (one transaction, the shrink
guard, the slice checks, the error messages); this module only speaks PostgreSQL for it:

* :class:`PgConnection` wraps a psycopg connection with the small part of DuckDB's
  connection API the store and its callers use (``execute(sql, params)`` then ``df()``,
  ``fetchall()`` or ``fetchone()``), so the same SQL text runs on both: DuckDB's ``?`` and
  ``$n`` placeholders are bound as psycopg parameters, and a named query that has a
  PostgreSQL variant in ``sentiment/sql/postgresql/`` runs as that variant.
* Frames reach the server with binary ``COPY ... FROM STDIN`` into a temporary table typed from the
  table's definition (:mod:`sentiment.io.tables`); ``INSERT ... SELECT`` from it then does a
  plain insert (slice replace) or ``ON CONFLICT ... DO UPDATE`` (upsert).
* Results come back with the dtypes DuckDB's ``df()`` gives, so callers see the same frames
  from either backend.
* There is no file and no single-writer lock: PostgreSQL's MVCC lets readers and writers of
  different symbols run at once, so the store's lock waiting is skipped entirely.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql as pgsql

from sentiment.io.tables import BIGINT, DIALECT_TYPES, DOUBLE, INTEGER, TIMESTAMP, Table

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
        else:  # psycopg reads % everywhere, inside literals and comments too
            return match.group(0).replace("%", "%%")
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
        definition = pgsql.SQL(", ").join(
            pgsql.SQL("{} {}").format(pgsql.Identifier(c), pgsql.SQL(types[column_types[c]]))
            for c in frame.columns)
        with self.raw.cursor() as cur:
            cur.execute(pgsql.SQL("DROP TABLE IF EXISTS {}").format(pgsql.Identifier(name)))
            cur.execute(pgsql.SQL("CREATE TEMP TABLE {} ({})").format(
                pgsql.Identifier(name), definition))
        if frame.empty:
            return
        self.copy_into(name, spec, frame)
        with self.raw.cursor() as cur:
            # Temporary tables are never analysed automatically: without row counts the
            # planner joins a million staged keys by nested loop (minutes, not a second).
            cur.execute(pgsql.SQL("ANALYZE {}").format(pgsql.Identifier(name)))

    def copy_into(self, table: str, spec: Table, frame: pd.DataFrame) -> None:
        """The rows of ``frame`` into ``table`` with one binary ``COPY``."""
        copy = pgsql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(
            pgsql.Identifier(table), pgsql.SQL(", ").join(map(pgsql.Identifier, frame.columns)))
        with self.raw.cursor() as cur, cur.copy(copy) as sink:
            sink.write(_binary(frame, spec))

    def unstage(self, name: str) -> None:
        with self.raw.cursor() as cur:
            cur.execute(pgsql.SQL("DROP TABLE IF EXISTS {}").format(pgsql.Identifier(name)))


#: COPY's binary format: signature, flags, header extension length (PostgreSQL docs, "COPY",
#: "Binary Format"); then each row: int16 field count, each field an int32 length (-1: NULL)
#: and its bytes, all big-endian; and an int16 -1 at the end.
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_BINARY_TRAILER = b"\xff\xff"
#: PostgreSQL counts timestamps in microseconds from 2000-01-01.
_PG_EPOCH_US = 946_684_800_000_000
_FIXED = {DOUBLE: ">f8", INTEGER: ">i4", BIGINT: ">i8", TIMESTAMP: ">i8"}


def _field(values: pd.Series, kind: str) -> tuple[np.ndarray, np.ndarray, int]:
    """One column as (bytes per row as a 2-D uint8 array, length per row with -1 for NULL,
    width): big-endian numbers, microseconds for times, UTF-8 for text."""
    n = len(values)
    if kind == TIMESTAMP:
        times = pd.to_datetime(values)
        if isinstance(times.dtype, pd.DatetimeTZDtype):
            times = times.dt.tz_convert("UTC").dt.tz_localize(None)
        null = times.isna().to_numpy()
        us = times.to_numpy(dtype="datetime64[us]").astype("int64") - _PG_EPOCH_US
        data = us.astype(">i8")
    elif kind == DOUBLE:
        numbers = pd.to_numeric(values).to_numpy(dtype="float64", na_value=np.nan)
        null = np.isnan(numbers)  # NaN is stored as NULL, as DuckDB does with a frame's NaN
        data = numbers.astype(">f8")
    elif kind in _FIXED:
        numbers = pd.to_numeric(values)
        null = numbers.isna().to_numpy()
        whole = numbers.fillna(0).to_numpy().astype("int64")  # exact: never through float
        limit = 2**31 - 1 if kind == INTEGER else 2**63 - 1
        if len(whole) and np.abs(whole).max() > limit:
            raise ValueError(f"{values.name}: a value does not fit the {kind} column")
        data = whole.astype(_FIXED[kind])
    else:
        # Encoded once per distinct value: a slice repeats its symbol and interval.
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        encoded = [str(u).encode() for u in uniques]
        width = max((len(b) for b in encoded), default=0)
        table = np.zeros((len(encoded) + 1, max(width, 1)), dtype="uint8")
        for i, b in enumerate(encoded):
            table[i, : len(b)] = np.frombuffer(b, "uint8")
        sizes = np.array([len(b) for b in encoded] + [-1], dtype="int64")
        # code -1 (NULL) picks the last row of the table: length -1, no bytes
        return table[codes, :width], sizes[codes], width
    width = data.dtype.itemsize
    raw = np.frombuffer(data.tobytes(), dtype="uint8").reshape(n, width)
    return raw, np.where(null, -1, width), width


def _binary(frame: pd.DataFrame, spec: Table) -> bytes:
    """The frame as COPY's binary format, built with numpy a column at a time (a million
    rows in well under a second; CSV spends about a second per float column formatting)."""
    types = spec.types()
    n, ncols = len(frame), len(frame.columns)
    fields = [_field(frame[c], types[c]) for c in frame.columns]
    if all(n and (lengths == lengths[0]).all() and lengths[0] >= 0 for _, lengths, _ in fields):
        # Every row has the same layout (no NULLs, text of one length: the usual slice):
        # one structured array, filled a column at a time.
        layout = [("count", ">i2")]
        for i, (_, lengths, _) in enumerate(fields):
            layout += [(f"l{i}", ">i4"), (f"d{i}", "u1", (int(lengths[0]),))]
        rows = np.empty(n, dtype=np.dtype(layout))
        rows["count"] = ncols
        for i, (raw, lengths, _) in enumerate(fields):
            rows[f"l{i}"] = lengths[0]
            rows[f"d{i}"] = raw[:, : int(lengths[0])]
        return _BINARY_HEADER + rows.tobytes() + _BINARY_TRAILER
    # Each row: 2 bytes of field count, then per field 4 bytes of length and its data.
    sizes = 2 + sum(4 + np.maximum(lengths, 0) for _, lengths, _ in fields)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype("int64") + len(_BINARY_HEADER)
    out = np.zeros(len(_BINARY_HEADER) + int(sizes.sum()) + len(_BINARY_TRAILER), "uint8")
    out[: len(_BINARY_HEADER)] = np.frombuffer(_BINARY_HEADER, "uint8")
    out[len(out) - 2:] = 0xFF
    count = np.frombuffer(np.array(ncols, ">i2").tobytes(), "uint8")
    out[starts[:, None] + np.arange(2)] = count
    at = starts + 2
    for raw, lengths, width in fields:
        header = np.frombuffer(lengths.astype(">i4").tobytes(), "uint8").reshape(n, 4)
        out[at[:, None] + np.arange(4)] = header
        if width:
            offsets = at[:, None] + 4 + np.arange(width)
            keep = np.arange(width)[None, :] < np.maximum(lengths, 0)[:, None]
            out[offsets[keep]] = raw[keep]
        at = at + 4 + np.maximum(lengths, 0)
    return out.tobytes()


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
