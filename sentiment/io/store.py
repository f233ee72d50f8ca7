"""The storage adapter: the only module that talks to DuckDB.

Design points (DESIGN sections 4, 5 and 8.13-8.15):

* SQL lives in ``sentiment/sql/``; values are bound as parameters, never formatted into strings.
  Table and column names come from :data:`TABLES` (:mod:`sentiment.io.tables`, which also
  generates the DDL) only, never from user input.
* Bulk data moves as DataFrames/Arrow: ``INSERT ... SELECT`` from a registered frame runs
  at millions of rows per second, ``executemany`` at thousands.
* DuckDB lets one process hold a file read-write, or many read-only, never both. Every
  connection is therefore short-lived, closed in ``finally`` (a lock held by a crashed step
  blocks every other process), and opening a locked file is retried with backoff.
* Every write is one transaction: a failure leaves the table exactly as it was.
* A replace never shrinks ingested market data (DESIGN 9.3): an answer that lacks rows stored
  in its slice is refused with :class:`ShrinkError` unless the caller passes
  ``allow_shrink=True`` on purpose.
* A writer is pinned to the file it found when it was made: if that file is deleted or
  replaced before a write commits, the write fails instead of recreating a database that
  would hold only this run's rows. ``:memory:`` is refused (every short-lived connection
  would get its own empty database and every write would vanish).
* ``SENTIMENT_DB=postgresql://...`` selects a PostgreSQL database behind the same interface
  (DESIGN 7 and 9.5): same tables, keys and transactions, rows sent with ``COPY``
  (:mod:`sentiment.io.postgres` speaks the dialect). There is no file to pin and no
  single-writer lock to wait for there: MVCC lets readers and writers run at once.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from sentiment.core.timeutil import naive_utc_datetime
from sentiment.errors import SentimentError
from sentiment.io import postgres
from sentiment.io.retry import STORE_LOCK
from sentiment.io.tables import TABLES, Table, comment_statements, create_statements

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"
VIEWS_FILE = SQL_DIR / "views.sql"
#: The tables' DDL, generated from their one definition (:mod:`sentiment.io.tables`).
SCHEMA_SQL = create_statements("duckdb")
#: The same tables for ``SENTIMENT_DB=postgresql://...``, and the views in its dialect.
POSTGRES_SCHEMA_SQL = create_statements(postgres.DIALECT)
POSTGRES_VIEWS_FILE = SQL_DIR / postgres.DIALECT / "views.sql"
#: Errors of a write that a frame caused (a duplicate key, a NULL in a required column).
CONSTRAINT_ERRORS = (duckdb.ConstraintException, *postgres.CONSTRAINT_ERRORS)
#: What a read of a table that does not exist yet raises, on either backend.
MISSING_TABLE_ERRORS = (duckdb.CatalogException, *postgres.MISSING_TABLE_ERRORS)


@dataclass(frozen=True)
class Slice:
    """Rows that replace one slice of a table: time in ``[start, end)`` and ``where``."""

    frame: pd.DataFrame
    start: Any
    end: Any
    where: dict[str, Any] = field(default_factory=dict)


class StoreError(SentimentError, RuntimeError):
    """A write was refused (bad frame, shrinking answer, database file gone) or the database
    stayed locked past the timeout."""


class DatabaseMissing(StoreError, FileNotFoundError):
    """A read of a database file that does not exist (a reader never creates one)."""

    def __init__(self, path: Path):
        self.path = path
        super().__init__(f"no database at {path}")

    def __reduce__(self):  # the default would call __init__ with the message
        return (type(self), (self.path,))


class DatabaseBusy(StoreError):
    """Another process held the DuckDB file for longer than this store waits.

    ``holder`` says which process, as far as DuckDB's error names it (the program and its
    process id, with the command line when this machine shows it); ``waited`` is the wait in
    seconds.
    """

    def __init__(self, path: Path, waited: float, holder: str, read_only: bool = True,
                 detail: str = ""):
        self.path = path
        self.waited = waited
        self.holder = holder
        self.read_only = read_only
        self.detail = detail
        # A read-only open fails only while another process has the file open read-write.
        doing = "holds it open for writing" if read_only else "has it open"
        super().__init__(f"the database {path} is busy: {holder} {doing} and kept it locked "
                         f"for {waited:g} s; try again in a moment")

    def __reduce__(self):
        return (type(self), (self.path, self.waited, self.holder, self.read_only, self.detail))


#: DuckDB names the process holding a file: "Conflicting lock is held in <program> (PID n)".
_HOLDER = re.compile(r"lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


def lock_holder(message: str) -> str:
    """Who holds a DuckDB file, from DuckDB's lock error: ``process 123 (python -m
    orchestration.demo)``, the command line read from ``/proc`` where there is one, else the
    program DuckDB names; ``another process`` when the error names none."""
    match = _HOLDER.search(message)
    if match is None:
        return "another process"
    pid, program = match["pid"], match["program"]
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        raw = b""
    words = [w.decode(errors="replace") for w in raw.split(b"\0") if w]
    if words:
        words[0] = Path(words[0]).name
        program = " ".join(" ".join(words).split())
        if len(program) > 80:
            program = program[:77] + "..."
    else:
        program = Path(program).name
    return f"process {pid} ({program})"


@dataclass(frozen=True)
class Shrink:
    """One slice an answer would shrink: what is stored there against what the answer has."""

    table: str
    where: dict[str, Any]
    start: dt.datetime
    end: dt.datetime
    stored: int
    incoming: int
    missing: int
    example: dict[str, Any]

    def describe(self, source: str | None) -> str:
        where = " ".join(
            f"{k}={','.join(map(str, v)) if isinstance(v, list | tuple | set) else v}"
            for k, v in self.where.items()
        )
        return (
            f"{self.table}: refusing to replace {self.stored} stored row(s) with "
            f"{self.incoming} in the answer"
            + (f" from {source}" if source else "")
            + (f" for {where}" if where else "")
            + f" in [{self.start}, {self.end}): {self.missing} stored key(s) are missing "
            f"from it, e.g. {self.example}"
        )


class ShrinkError(StoreError):
    """A replace of ingested market data would leave fewer rows than are stored (an empty or
    partial answer from the exchange). Nothing was written.

    ``shrinks`` lists every offending slice; ``advice`` (set by the caller) says how a user
    accepts the shorter data on purpose.
    """

    def __init__(self, shrinks: Sequence[Shrink], source: str | None = None):
        self.shrinks = list(shrinks)
        self.source = source
        self.advice = ""
        super().__init__(self._message())

    def _message(self) -> str:
        lines = [s.describe(self.source) for s in self.shrinks[:5]]
        if len(self.shrinks) > 5:
            lines.append(f"... and {len(self.shrinks) - 5} more slice(s)")
        return "; ".join(lines) + "; nothing was written"

    def __str__(self) -> str:
        return self._message() + (f". {self.advice}" if self.advice else "")

    def __reduce__(self):  # the default would call __init__ with the message alone
        return (type(self), (self.shrinks, self.source), {"advice": self.advice})


def _file_identity(path: Path) -> str | None:
    """``device:inode`` of the file at ``path`` (None when there is none)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return f"{st.st_dev}:{st.st_ino}"


def _database_path(path: str | Path) -> Path:
    text = str(path).strip()
    if not text or text.startswith(":memory:"):
        raise StoreError(
            f"database {str(path)!r} is in memory: every connection would get its own empty "
            "database and every write would be lost while the job reports success; give a "
            "file path (SENTIMENT_DB, default data/sentiment.duckdb)"
        )
    return Path(path)


#: A writer waiting for the file marks it with this file beside it (touched at every retry).
WRITER_WAITING_SUFFIX = ".writer-waiting"
#: A mark older than this is a writer that gave up or crashed: readers ignore it.
WRITER_WAITING_FRESH_S = 3.0


def _fresh(marker: Path) -> bool:
    try:
        return time.time() - marker.stat().st_mtime < WRITER_WAITING_FRESH_S
    except OSError:
        return False


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    return "lock" in text.lower() or "Conflicting lock" in text


def _spec(table: str) -> Table:
    try:
        return TABLES[table]
    except KeyError:
        raise StoreError(f"unknown table {table!r}; known: {', '.join(TABLES)}") from None


def _parse_queries(path: Path) -> dict[str, str]:
    queries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("-- name:"):
            current = queries.setdefault(line.split(":", 1)[1].strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in queries.items()}


def named_queries(filename: str) -> dict[str, str]:
    """The queries of ``sentiment/sql/<filename>``, keyed by their ``-- name: xxx`` header.

    A query with the same name in ``sentiment/sql/postgresql/<filename>`` is its PostgreSQL
    variant: a PostgreSQL store runs it in place of the text returned here, so callers pass
    one text whatever the backend.
    """
    queries = _parse_queries(SQL_DIR / filename)
    variants = SQL_DIR / postgres.DIALECT / filename
    if variants.exists():
        for name, text in _parse_queries(variants).items():
            if name not in queries:
                raise StoreError(f"{variants}: {name!r} varies no query of {filename}")
            postgres.register_variant(queries[name], text)
    return queries


class Store:
    """A DuckDB file (or a PostgreSQL database) with the project's schema.

    Parameters
    ----------
    path
        The database file (``SENTIMENT_DB``), created with its directory if missing; or a
        ``postgresql://`` URL, whose database must exist (the tables are created).
    lock_timeout
        Seconds to keep retrying a file another process holds before giving up.
    identity
        The file this writer must find (``Store.identity`` of an earlier store, e.g. the one a
        run started with). Default: the file at ``path`` now, if there is one. A write fails
        when the file is gone or another file took its place; a store made before the file
        exists pins the file its first write creates.
    """

    _schema_applied: set[tuple[str, str | None]] = set()

    def __init__(self, path: str | Path, *, lock_timeout: float = STORE_LOCK.timeout_seconds,
                 identity: str | None = None):
        self.lock_timeout = lock_timeout
        self._session: Any = None
        #: ``"duckdb"`` or ``"postgresql"``: which SQL dialect the database speaks.
        self.dialect = postgres.DIALECT if postgres.is_url(path) else "duckdb"
        if self.dialect == postgres.DIALECT:
            self.url = str(path).strip()
            self.path: Any = postgres.redacted(self.url)  # what messages name
            self._identity = None
            return
        self.path = _database_path(path)
        self._identity = identity or _file_identity(self.path)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == postgres.DIALECT

    @property
    def identity(self) -> str | None:
        """``device:inode`` of the database file this store writes to (None: not created)."""
        return self._identity

    def check_file(self) -> None:
        """Raise :class:`StoreError` if the pinned database file was deleted or replaced."""
        if self._identity is None or self.is_postgres:
            return
        current = _file_identity(self.path)
        if current == self._identity:
            return
        what = "deleted" if current is None else "replaced by another file"
        raise StoreError(
            f"database {self.path} was {what} after this writer first found it "
            f"(file {self._identity}); refusing to write: a new database would hold only "
            "this run's rows. Restore the file, or run again to start from the new one"
        )

    @contextmanager
    def session(self) -> Iterator[Store]:
        """Hold one write connection for a series of reads and writes (a live update makes
        dozens; opening the file costs ~15 ms each). Closed at the end, also on error."""
        if self._session is not None:
            yield self
            return
        with self.connect() as conn:
            self._session = conn
            try:
                yield self
            finally:
                self._session = None

    # ------------------------------------------------------------------ connections

    def _open(self, read_only: bool) -> Any:
        if self.is_postgres:
            try:
                return postgres.connect(self.url, read_only=read_only)
            except postgres.psycopg.OperationalError as exc:
                raise StoreError(f"database {self.path}: cannot connect: {exc}") from exc
        if not read_only:
            self.check_file()  # before anything can create a new, empty file
            self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout
        first, longest = STORE_LOCK.first_delay_seconds, STORE_LOCK.max_delay_seconds
        delay = first
        waiting = self.path.with_name(self.path.name + WRITER_WAITING_SUFFIX)
        if read_only:
            # Readers give way to a writer that is waiting: readers polling without pause
            # (several dashboards) would otherwise keep the file shared for ever.
            while _fresh(waiting) and time.monotonic() < deadline:
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, longest)
            delay = first
        try:
            while True:
                try:
                    # Rows carry their own keys and reads ORDER BY them, so DuckDB need not
                    # keep insertion order: that is what lets bulk inserts with a primary key
                    # reach about 1 M rows/s here instead of about 0.6 M.
                    return duckdb.connect(
                        str(self.path),
                        read_only=read_only,
                        config={"preserve_insertion_order": False},
                    )
                except (duckdb.IOException, duckdb.ConnectionException) as exc:
                    # Another process holds the file (one writer or many readers, never both).
                    if not _is_lock_error(exc) or time.monotonic() >= deadline:
                        if _is_lock_error(exc):
                            raise DatabaseBusy(self.path, self.lock_timeout,
                                               lock_holder(str(exc)), read_only=read_only,
                                               detail=str(exc)) from exc
                        raise StoreError(f"cannot open the database {self.path}: {exc}"
                                         ) from exc
                    if not read_only:
                        waiting.touch()  # readers see it and hold back
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, longest)
        finally:
            if not read_only:
                waiting.unlink(missing_ok=True)

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[Any]:
        """A short-lived connection, always closed (also when the body raises).

        A write connection applies the schema first (idempotent ``CREATE ... IF NOT EXISTS``,
        and the comments the tables lack). A read-only connection on a file that does not
        exist yet raises :class:`DatabaseMissing` (a ``FileNotFoundError``); a file another
        process holds past ``lock_timeout`` raises :class:`DatabaseBusy`.
        On PostgreSQL the connection is a :class:`sentiment.io.postgres.PgConnection`, which
        runs the same SQL (``execute(sql, params).df()``).
        """
        if self._session is not None:
            yield self._session
            return
        if read_only and not self.is_postgres and not self.path.exists():
            raise DatabaseMissing(self.path)
        conn = self._open(read_only)
        try:
            if not read_only:
                first = self._identity is None
                if first:
                    self._identity = _file_identity(self.path)  # the file this open found
                self.check_file()  # deleted or replaced between the check and the open
                # A file new to this store always gets the schema: a recreated file may
                # reuse a deleted one's inode, so the cache alone could skip it.
                self._apply_schema(conn, force=first)
            yield conn
        finally:
            conn.close()

    def _apply_schema(self, conn: Any, *, force: bool = False) -> None:
        if self.is_postgres:
            key = (self.url, None)
            if key in Store._schema_applied and not force:
                return
            # Two processes creating the same table at once would collide in the catalog
            # (CREATE ... IF NOT EXISTS is not atomic there): one at a time.
            conn.execute("BEGIN")
            try:
                conn.execute("SELECT pg_advisory_xact_lock(8021527447)")
                conn.execute(POSTGRES_SCHEMA_SQL)
                conn.execute(POSTGRES_VIEWS_FILE.read_text(encoding="utf-8"))
                self._apply_comments(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            Store._schema_applied.add(key)
            return
        # Keyed by the file too: a database recreated at the same path needs its schema.
        key = (str(self.path.resolve()), self._identity)
        if key in Store._schema_applied and not force:
            return
        conn.execute(SCHEMA_SQL)
        conn.execute(VIEWS_FILE.read_text(encoding="utf-8"))
        self._apply_comments(conn)
        Store._schema_applied.add(key)

    def _apply_comments(self, conn: Any) -> None:
        """Write the comments of :mod:`sentiment.io.tables` that the database lacks (or holds
        in an older wording), so ``duckdb_columns()`` and psql's ``\\d+`` explain every table
        and column; nothing when they are all there (a comment is a catalog write)."""
        stored = {(table, column): text for table, column, text in
                  conn.execute(named_queries("catalog.sql")["comments"]).fetchall()}
        statements = comment_statements(self.dialect, stored)
        if statements:
            conn.execute(";\n".join(statements) + ";")

    def init(self) -> None:
        """Create the file and every table of the schema if missing (an explicit request:
        the store then writes to whatever file is at its path)."""
        self._identity = None  # connect() then applies the schema whatever the cache says
        with self.connect():
            pass

    # ------------------------------------------------------------------ writes

    @staticmethod
    def _frame(
        spec: Table, frame: pd.DataFrame, *, check_duplicates: bool = True
    ) -> pd.DataFrame:
        missing = [c for c in spec.key if c not in frame.columns]
        if missing:
            raise StoreError(f"{spec.name}: frame lacks key column(s) {', '.join(missing)}")
        unknown = [c for c in frame.columns if c not in spec.all_columns]
        if unknown:
            raise StoreError(f"{spec.name}: unknown column(s) {', '.join(unknown)}")
        # INSERT OR REPLACE would silently keep one of two rows with the same key; a plain
        # INSERT (the replace path) lets the primary key itself reject them.
        if check_duplicates and frame.duplicated(list(spec.key)).any():
            dup = frame[frame.duplicated(list(spec.key), keep=False)].head(2)
            raise StoreError(
                f"{spec.name}: duplicate primary keys in the frame, e.g. "
                f"{dup[list(spec.key)].to_dict('records')}"
            )
        return frame

    @staticmethod
    def _insert(conn: Any, spec: Table, frame: pd.DataFrame, *, replace: bool) -> int:
        if frame.empty:
            return 0
        if isinstance(conn, postgres.PgConnection):
            if not replace:  # straight into the table: the key rejects a duplicate
                conn.copy_into(spec.name, spec, frame)
                return len(frame)
            conn.stage("_incoming", spec, frame)
            conn.execute(postgres.upsert_sql(spec, list(frame.columns), "_incoming"))
            conn.unstage("_incoming")
            return len(frame)
        cols = ", ".join(f'"{c}"' for c in frame.columns)
        verb = "INSERT OR REPLACE INTO" if replace else "INSERT INTO"
        conn.register("_incoming", frame)
        # No unregister in `finally`: inside an aborted transaction it raises and would hide
        # the real error; the connection is short-lived and closed by `connect` anyway.
        conn.execute(f'{verb} "{spec.name}" ({cols}) SELECT {cols} FROM _incoming')
        conn.unregister("_incoming")
        return len(frame)

    def upsert(self, table: str, frame: pd.DataFrame) -> int:
        """Insert rows, replacing those whose primary key already exists (one transaction).

        Returns the number of rows written.
        """
        spec = _spec(table)
        frame = self._frame(spec, frame)
        with self.connect() as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                n = self._insert(conn, spec, frame, replace=True)
                self.check_file()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return n

    def replace_range(
        self,
        table: str,
        frame: pd.DataFrame,
        *,
        start: Any,
        end: Any,
        where: Mapping[str, Any | Sequence[Any]] | None = None,
        allow_shrink: bool = False,
        source: str | None = None,
    ) -> int:
        """Replace exactly one slice of a table in one transaction.

        Deletes the rows whose time column is in ``[start, end)`` and whose ``where`` columns
        equal the given values (a sequence means any of them), then inserts ``frame``.
        Every row of ``frame`` must fall inside that slice, so a partition write can never
        touch its neighbours. A failure rolls back: the old rows stay. See :meth:`write` for
        ``allow_shrink`` and ``source``.
        """
        return self.replace_slices(table, [Slice(frame, start, end, dict(where or {}))],
                                   allow_shrink=allow_shrink, source=source)

    def replace_slices(self, table: str, slices: Sequence[Slice], *,
                       allow_shrink: bool = False, source: str | None = None) -> int:
        """Replace several slices (e.g. every partition of a backfill run) in one transaction."""
        return self.write(replace={table: slices}, allow_shrink=allow_shrink, source=source)

    def write(
        self,
        *,
        replace: Mapping[str, Sequence[Slice]] | None = None,
        upsert: Mapping[str, pd.DataFrame] | None = None,
        allow_shrink: bool = False,
        source: str | None = None,
    ) -> int:
        """Replace slices of some tables and upsert rows into others, all in one transaction.

        Either everything is committed or nothing is (a failure rolls back). Returns the
        number of rows written.

        On ingested market tables (``Table.never_shrink``) every stored key of a slice
        must be in its new rows: an empty or partial answer raises :class:`ShrinkError`
        naming ``source`` (where the rows came from), the table, the slice and both counts,
        and nothing is written. ``allow_shrink=True`` accepts fewer rows on purpose (the
        exchange really dropped them, e.g. a delisted symbol's history).
        """
        statements = []
        for table, slices in (replace or {}).items():
            spec = _spec(table)
            if spec.time_column is None:
                raise StoreError(f"{table} has no time column to replace a range on")
            for piece in slices:
                statements.append((spec, *self._slice_statement(table, spec, piece)))
        upserts = [(_spec(t), self._frame(_spec(t), f)) for t, f in (upsert or {}).items()]
        written = 0
        writing = ""  # the table being written, for a constraint error's message
        with self.connect() as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                shrinks = [] if allow_shrink else [
                    s for stmt in statements if stmt[0].never_shrink
                    and (s := self._shrink(conn, *stmt)) is not None
                ]
                if shrinks:
                    raise ShrinkError(shrinks, source)
                for spec, condition, params, frame, _ in statements:
                    writing = spec.name
                    conn.execute(f'DELETE FROM "{spec.name}" WHERE {condition}', params)
                    written += self._insert(conn, spec, frame, replace=False)
                for spec, frame in upserts:
                    writing = spec.name
                    written += self._insert(conn, spec, frame, replace=True)
                self.check_file()  # an open handle on a deleted file would commit into nothing
                conn.execute("COMMIT")
            except CONSTRAINT_ERRORS as exc:
                conn.execute("ROLLBACK")
                raise StoreError(f"{writing}: {exc}") from exc
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return written

    def _slice_statement(self, table: str, spec: Table, piece: Slice):
        frame = self._frame(spec, piece.frame, check_duplicates=False)
        start_dt, end_dt = naive_utc_datetime(piece.start), naive_utc_datetime(piece.end)
        conditions = [f'"{spec.time_column}" >= ?', f'"{spec.time_column}" < ?']
        params: list[Any] = [start_dt, end_dt]
        for column, value in piece.where.items():
            if column not in spec.all_columns:
                raise StoreError(f"{table}: unknown column {column!r} in where")
            values = list(value) if isinstance(value, list | tuple | set) else [value]
            conditions.append(f'"{column}" IN ({", ".join("?" for _ in values)})')
            params.extend(values)
            if not frame.empty and not frame[column].isin(values).all():
                raise StoreError(f"{table}: frame has rows outside {column} in {values}")
        if not frame.empty:
            times = pd.to_datetime(frame[spec.time_column])
            if (times < pd.Timestamp(start_dt)).any() or (times >= pd.Timestamp(end_dt)).any():
                raise StoreError(
                    f"{table}: frame has rows outside [{start_dt}, {end_dt}) "
                    f"({times.min()} .. {times.max()})"
                )
        return " AND ".join(conditions), params, frame, piece

    @staticmethod
    def _shrink(conn: Any, spec: Table, condition: str,
                params: list[Any], frame: pd.DataFrame, piece: Slice) -> Shrink | None:
        """The stored keys of one slice that ``frame`` lacks (None when it has them all)."""
        keys = ", ".join(f'"{c}"' for c in spec.key)
        # fetchall: DuckDB 2 refuses further work on a connection with an unfinished result.
        stored = conn.execute(
            f'SELECT count(*) FROM "{spec.name}" WHERE {condition}', params).fetchall()[0][0]
        if stored == 0:
            return None
        lacking = f'SELECT {keys} FROM "{spec.name}" t WHERE {condition}'
        if not frame.empty:
            if isinstance(conn, postgres.PgConnection):
                conn.stage("_answer_keys", spec, frame[list(spec.key)])
                # The same keys as NOT EXISTS below: PostgreSQL has no statistics yet for
                # rows this run just wrote and would plan NOT EXISTS as a nested loop
                # (a million squared); EXCEPT is always hashed or sorted.
                lacking += f" EXCEPT SELECT {keys} FROM _answer_keys"
            else:
                conn.register("_answer_keys", frame[list(spec.key)])
                match = " AND ".join(f'a."{c}" = t."{c}"' for c in spec.key)
                lacking += f" AND NOT EXISTS (SELECT 1 FROM _answer_keys a WHERE {match})"
        missing = conn.execute(f"SELECT count(*) FROM ({lacking}) AS lacking",
                               params).fetchall()[0][0]
        example = (conn.execute(f"{lacking} ORDER BY {keys} LIMIT 1", params).fetchall()
                   if missing else [])
        if not frame.empty:
            if isinstance(conn, postgres.PgConnection):
                conn.unstage("_answer_keys")
            else:
                conn.unregister("_answer_keys")
        if not missing:
            return None
        return Shrink(spec.name, dict(piece.where), naive_utc_datetime(piece.start),
                      naive_utc_datetime(piece.end), int(stored), len(frame), int(missing),
                      {c: str(v) for c, v in zip(spec.key, example[0], strict=True)})

    # ------------------------------------------------------------------ reads

    def read(
        self,
        table: str,
        *,
        start: Any = None,
        end: Any = None,
        where: Mapping[str, Any | Sequence[Any]] | None = None,
        columns: Sequence[str] | None = None,
        read_only: bool = False,
    ) -> pd.DataFrame:
        """Rows of ``table`` with the time column in ``[start, end)``, ordered by key (only
        ``columns`` when given)."""
        spec = _spec(table)
        for column in columns or ():
            if column not in spec.all_columns:
                raise StoreError(f"{table}: unknown column {column!r}")
        conditions: list[str] = []
        params: list[Any] = []
        if start is not None:
            conditions.append(f'"{spec.time_column}" >= ?')
            params.append(naive_utc_datetime(start))
        if end is not None:
            conditions.append(f'"{spec.time_column}" < ?')
            params.append(naive_utc_datetime(end))
        for column, value in (where or {}).items():
            if column not in spec.all_columns:
                raise StoreError(f"{table}: unknown column {column!r} in where")
            values = list(value) if isinstance(value, list | tuple | set) else [value]
            conditions.append(f'"{column}" IN ({", ".join("?" for _ in values)})')
            params.extend(values)
        selected = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        sql = f'SELECT {selected} FROM "{table}"'
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        sql += " ORDER BY " + ", ".join(f'"{c}"' for c in spec.key)
        with self.connect(read_only=read_only) as conn:
            return conn.execute(sql, params).df()

    def query(
        self, sql: str, params: Sequence[Any] = (), *, read_only: bool = True
    ) -> pd.DataFrame:
        """Run a read query (SQL from ``sentiment/sql/`` or the caller's own) and return a frame."""
        with self.connect(read_only=read_only) as conn:
            return conn.execute(sql, list(params)).df()

    def summary(self, tables: Sequence[str] | None = None, *, read_only: bool = False
                ) -> pd.DataFrame:
        """Rows, symbols and time range per table: what ``make demo`` prints.

        ``read_only=True`` (what a reader should use) neither creates the file nor takes the
        write lock; it raises ``FileNotFoundError`` when there is no file, and leaves out the
        tables the file does not hold.
        """
        rows = []
        with self.connect(read_only=read_only) as conn:
            present = {r[0] for r in conn.execute(
                "SELECT table_name FROM information_schema.tables"
                + (" WHERE table_schema = current_schema()" if self.is_postgres else "")
            ).fetchall()}
            for name in tables or TABLES:
                spec = _spec(name)
                if name not in present:
                    continue
                tcol = spec.time_column
                has_symbol = "symbol" in spec.all_columns
                symbols = "count(DISTINCT symbol)" if has_symbol else "NULL"
                n, first, last, nsym = conn.execute(
                    f'SELECT count(*), min("{tcol}"), max("{tcol}"), {symbols} FROM "{name}"'
                ).fetchone()
                rows.append(
                    {"table": name, "rows": n, "symbols": nsym, "first": first, "last": last}
                )
        frame = pd.DataFrame(rows, columns=["table", "rows", "symbols", "first", "last"])
        frame["symbols"] = frame["symbols"].astype("Int64")
        return frame
