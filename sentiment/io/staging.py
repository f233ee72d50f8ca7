"""Staging of the live stream's output, between the stream and the database.

DuckDB lets one process write a file, and the pipeline's Dagster runs are that writer
(DESIGN invariant 5). The stream (``sentiment stream``) therefore never opens the database:
every few seconds it writes what it received to small Parquet files in a staging directory,
each written under a temporary name and renamed into place, so a reader sees whole files
only. A loader run (the ``stream_load_job``, and the live job before it computes) upserts
every staged file into ``liquidations``, ``orderbook_imbalance``, ``tickers`` and
``stream_state`` in one transaction, then deletes the files it loaded. Loading is
idempotent: the rows are keyed, so a file loaded twice (a crash between the commit and the
delete) leaves the same rows.

File names sort in time order: ``{kind}.{first exchange ms}.{writer pid}.{counter}.parquet``.
A file that cannot be read (or lacks a column) is moved to ``rejected/`` and named in the
error; the good files are still loaded. The loader is the second line behind the stream's
own checks: a row with an impossible value (an empty key, a liquidation side other than
Buy/Sell, a liquidation price or size not finite or outside the stream's bounds, an OBI
outside [-1, 1], a ticker value not finite or beyond 1e15) is set aside, not the file: a staged
file is one flush of one kind, its rows independent keyed upserts, so the bad rows go to
``rejected/`` under the file's name, the error names the file, symbol and field, and the
file's good rows load with the rest.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sentiment.core.liquidations import SIDES
from sentiment.core.timeutil import epoch_ms, ms_to_timestamps
from sentiment.errors import SourceError
from sentiment.io.tables import BIGINT, INTEGER, TABLES, TEXT, TIMESTAMP
from sentiment.models import MAX_PRICE, MAX_SIZE

#: What the stream stages: the tables' columns (``loaded_at`` is set when it is loaded).
KINDS: dict[str, tuple[str, ...]] = {
    kind: tuple(c for c in TABLES[kind].all_columns if c != "loaded_at")
    for kind in ("liquidations", "orderbook_imbalance", "tickers", "stream_state")
}
_STAGED = {column: TABLES[kind].types()[column] for kind in KINDS for column in KINDS[kind]}
_TIMES = {column for column, type_ in _STAGED.items() if type_ == TIMESTAMP}
_TEXT = {column for column, type_ in _STAGED.items() if type_ == TEXT}
_INTEGERS = {column for column, type_ in _STAGED.items() if type_ in (INTEGER, BIGINT)}
_counter = itertools.count()


class StagingError(SourceError):
    """A staged file could not be loaded; it was moved aside to ``rejected/``."""


def _frame(kind: str, rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(KINDS[kind]))
    for column in frame.columns:
        if column in _TIMES:
            frame[column] = ms_to_timestamps(frame[column]) \
                if frame[column].dtype.kind in "iuf" else pd.to_datetime(frame[column])
        elif column in _INTEGERS:
            frame[column] = frame[column].astype("Int64")
        elif column not in _TEXT:
            frame[column] = pd.to_numeric(frame[column]).astype(np.float64)
    return frame


@dataclass
class Staging:
    """One staging directory (created on first use)."""

    directory: Path

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)

    @property
    def rejected(self) -> Path:
        return self.directory / "rejected"

    def write(self, rows: dict[str, list[dict] | pd.DataFrame]) -> list[Path]:
        """Stage rows (dicts with ms times, or frames) by kind; one file per non-empty kind,
        each complete on disk (fsync) before it appears under its final name."""
        self.directory.mkdir(parents=True, exist_ok=True)
        written = []
        for kind, items in rows.items():
            if kind not in KINDS:
                raise ValueError(f"unknown staging kind {kind!r}")
            if len(items) == 0:
                continue
            frame = _frame(kind, items)
            first = epoch_ms(frame[TABLES[kind].time_column].min())
            name = f"{kind}.{first:013d}.{os.getpid()}.{next(_counter):08d}.parquet"
            final = self.directory / name
            temporary = self.directory / f".{name}.tmp"
            table = pa.Table.from_pandas(frame, preserve_index=False)
            try:
                with open(temporary, "wb") as handle:
                    pq.write_table(table, handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, final)
            except BaseException:
                temporary.unlink(missing_ok=True)
                for path in written:  # all kinds of one flush, or none: it will be retried
                    path.unlink(missing_ok=True)
                raise
            written.append(final)
        return written

    def pending(self) -> list[Path]:
        """Staged files not loaded yet, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.glob("*.parquet") if p.name.split(".")[0]
                      in KINDS)

    def reject(self, path: Path) -> Path:
        self.rejected.mkdir(parents=True, exist_ok=True)
        target = self.rejected / path.name
        os.replace(path, target)
        return target

    def reject_rows(self, path: Path, rows: pd.DataFrame) -> Path:
        """Keep the rows set aside from the staged file ``path`` in ``rejected/`` under its
        name (written whole, then renamed; a second load of the file writes the same)."""
        self.rejected.mkdir(parents=True, exist_ok=True)
        target = self.rejected / path.name
        temporary = self.rejected / f".{path.name}.tmp"
        try:
            pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), temporary)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
        return target


def _outside(values: pd.Series, low: float, high: float, low_excluded: bool = False
             ) -> pd.Series:
    """True where a value is not in its range (NaN and infinities included)."""
    above_low = values > low if low_excluded else values >= low
    return ~(above_low & (values <= high))


def _bad_rows(kind: str, frame: pd.DataFrame) -> list[tuple[str, pd.Series, str]]:
    """(field, rows where it is bad, what is wrong) for each check of the kind's rows."""
    checks = [(column, frame[column].isna(), "empty") for column in
              ("symbol", "ts", "through") if column in frame.columns]
    if kind == "orderbook_imbalance":
        checks.append(("obi", _outside(frame["obi"], -1.0, 1.0), "outside [-1, 1]"))
    elif kind == "liquidations":
        checks += [
            ("side", ~frame["side"].isin(SIDES), "not Buy or Sell"),
            ("price", _outside(frame["price"], 0.0, MAX_PRICE, True),
             f"outside (0, {MAX_PRICE:g}]"),
            ("size", _outside(frame["size"], 0.0, MAX_SIZE, True),
             f"outside (0, {MAX_SIZE:g}]"),
        ]
    elif kind == "tickers":
        for column in KINDS[kind]:
            if column not in _TIMES and column not in _TEXT:
                values = frame[column]
                checks.append((column, values.notna() & _outside(values.abs(), 0.0, MAX_SIZE),
                               f"not finite or beyond {MAX_SIZE:g}"))
    return checks


def _check(kind: str, frame: pd.DataFrame, path: Path
           ) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """(good rows, bad rows, what is wrong with the first bad one) of a staged file;
    :class:`StagingError` if it lacks a column."""
    missing = [c for c in KINDS[kind] if c not in frame.columns]
    if missing:
        raise StagingError("stream", f"staged file {path.name} lacks {', '.join(missing)}",
                           endpoint=kind, field=missing[0])
    frame = _frame(kind, frame[list(KINDS[kind])])
    checks = [c for c in _bad_rows(kind, frame) if c[1].any()]
    if not checks:
        return frame, frame.iloc[:0], None
    bad = checks[0][1].copy()
    for _, wrong, _ in checks[1:]:
        bad |= wrong
    column, wrong, what = checks[0]
    row = frame[wrong].iloc[0]
    value = row[column]
    shown = repr(value) if column in _TEXT or column in _TIMES or value != value \
        else f"{float(value):g}"
    symbols = frame.loc[bad, "symbol"].dropna().unique()
    why = StagingError(
        "stream", f"staged file {path.name}: {int(bad.sum())} of {len(frame)} row(s) set "
        f"aside; the first with {'OBI' if column == 'obi' else column} {shown} {what}",
        endpoint=kind, symbol=",".join(map(str, symbols)) or None,
        field=",".join(c for c, _, _ in checks))
    return frame[~bad], frame[bad], str(why)


@dataclass
class LoadResult:
    files: list[Path] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    rejected: list[tuple[Path, str]] = field(default_factory=list)


def read_staged(staging: Staging, paths: Iterable[Path] | None = None
                ) -> tuple[dict[str, pd.DataFrame], LoadResult]:
    """The staged files' rows by table (``stream_state`` reduced to each symbol's furthest
    point), with the files read; unreadable or bad files are moved to ``rejected/``."""
    result = LoadResult()
    parts: dict[str, list[pd.DataFrame]] = {kind: [] for kind in KINDS}
    for path in (staging.pending() if paths is None else paths):
        kind = path.name.split(".")[0]
        try:
            frame, bad, why = _check(kind, pd.read_parquet(path), path)
        except FileNotFoundError:
            continue  # loaded and deleted by another loader meanwhile
        except StagingError as exc:
            result.rejected.append((staging.reject(path), str(exc)))
            continue
        except Exception as exc:  # not Parquet, truncated, wrong types
            message = f"staged file {path.name} is unreadable: {exc}"
            result.rejected.append((staging.reject(path), message))
            continue
        if len(bad):  # set aside; the file's good rows load, then the file goes
            result.rejected.append((staging.reject_rows(path, bad), why))
        parts[kind].append(frame)
        result.files.append(path)
    frames = {kind: pd.concat(p, ignore_index=True) for kind, p in parts.items() if p}
    for kind, frame in frames.items():
        if kind == "stream_state":
            frame = frame.sort_values("through")  # the furthest point of each symbol last
        frames[kind] = frame.drop_duplicates(list(TABLES[kind].key), keep="last"
                                             ).reset_index(drop=True)
    if "stream_state" in frames:
        frames["stream_state"]["loaded_at"] = pd.Timestamp(
            dt.datetime.now(dt.UTC).replace(tzinfo=None))
    result.rows = {kind: len(frame) for kind, frame in frames.items()}
    return frames, result


def load_staged(store, staging: Staging) -> LoadResult:
    """Upsert every staged file into the database in one transaction, then delete them.
    Raises :class:`StagingError` naming the rejected files, after loading the good ones."""
    frames, result = read_staged(staging)
    if frames:
        if "stream_state" in frames:
            frames["stream_state"] = _furthest(store, frames["stream_state"])
        store.write(upsert=frames)
    for path in result.files:
        path.unlink(missing_ok=True)
    if result.rejected:
        names = "; ".join(message for _, message in result.rejected)
        raise StagingError("stream", f"{len(result.rejected)} staged file(s) moved to "
                           f"{staging.rejected}: {names}")
    return result


def _furthest(store, state: pd.DataFrame) -> pd.DataFrame:
    """Never move a symbol's ``through`` back (an old file loaded after a newer one)."""
    stored = store.read("stream_state")
    if stored.empty:
        return state
    before = dict(zip(stored["symbol"], pd.to_datetime(stored["through"]), strict=True))
    state = state.copy()
    state["through"] = [max(t, before.get(s, t)) for s, t in
                        zip(state["symbol"], pd.to_datetime(state["through"]), strict=True)]
    return state
