"""A user's own CSV files, read into the shapes of the tables (``sentiment evaluate
--candles``).

Column names are matched without regard to case, with the common aliases below; times may
be epoch milliseconds, epoch seconds or ISO-8601 text, and are UTC (a time with an offset is
converted). Candle times are bar **open** times, as Bybit stamps them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sentiment.errors import InputError
from sentiment.models import fear_greed_class

_CANDLE_TIME = ("open_time", "timestamp", "time", "date", "datetime", "start", "starttime",
                "open_time_ms")
_FUNDING_TIME = ("funding_time", "fundingratetimestamp", "timestamp", "time", "date",
                 "funding_time_ms")
_FUNDING_RATE = ("funding_rate", "fundingrate", "funding rate", "rate")
_FNG_TIME = ("ts", "timestamp", "date", "time", "ts_s")
_FNG_VALUE = ("value", "fng_value", "fear_greed", "index")
_FNG_CLASS = ("classification", "value_classification", "fng_class")


def _read(path: str | Path, source: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise InputError(source, f"no such file: {path}", field="path") from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(source, f"{path} is not a readable CSV file: {exc}",
                         field="path") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    return frame


def _column(frame: pd.DataFrame, names: tuple[str, ...], source: str, what: str) -> str:
    for name in names:
        if name in frame.columns:
            return name
    raise InputError(source, f"no {what} column (one of {', '.join(names)}); columns are "
                     f"{', '.join(frame.columns)}", field=what)


def parse_times(values: pd.Series, source: str, field: str) -> pd.Series:
    """UTC naive timestamps from epoch ms / s numbers or ISO text."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all() and len(numeric):
        unit = "ms" if numeric.abs().max() > 1e11 else "s"
        return pd.to_datetime(numeric.astype("int64"), unit=unit)
    try:
        ts = pd.to_datetime(values.astype(str), utc=True, format="mixed")
    except (ValueError, TypeError) as exc:
        raise InputError(source, f"times are neither epoch numbers nor ISO text: {exc}",
                         field=field) from None
    return ts.dt.tz_localize(None)


def _numbers(frame: pd.DataFrame, column: str, source: str, symbol=None) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raise InputError(source, f"row {int(np.flatnonzero(bad)[0]) + 2} is not a finite "
                         f"number: {frame[column].iloc[int(np.flatnonzero(bad)[0])]!r}",
                         symbol=symbol, field=column)
    return values


def read_candles(path: str | Path, symbol: str, interval: str) -> pd.DataFrame:
    """Candles shaped like the ``candles`` table (turnover derived as volume x close when
    the file has none)."""
    frame = _read(path, "candles")
    when = _column(frame, _CANDLE_TIME, "candles", "open_time")
    out = pd.DataFrame({"symbol": symbol, "interval": str(interval),
                        "open_time": parse_times(frame[when], "candles", when)})
    for name in ("open", "high", "low", "close", "volume"):
        out[name] = _numbers(frame, _column(frame, (name,), "candles", name), "candles",
                             symbol)
    out["turnover"] = (_numbers(frame, "turnover", "candles", symbol)
                       if "turnover" in frame.columns else out["volume"] * out["close"])
    return out.sort_values("open_time", kind="stable").reset_index(drop=True)


def read_funding(path: str | Path, symbol: str, *, shift_hours: float = 0.0) -> pd.DataFrame:
    """Settled funding rates shaped like ``funding_rates``. ``shift_hours`` is subtracted
    from every time (for a recording stamped in local time)."""
    frame = _read(path, "funding")
    when = _column(frame, _FUNDING_TIME, "funding", "funding_time")
    rate = _column(frame, _FUNDING_RATE, "funding", "funding_rate")
    if "symbol" in frame.columns:
        mine = frame["symbol"].astype(str).str.replace("-", "", regex=False).str.upper()
        if (mine == symbol.upper()).any():
            frame = frame[mine == symbol.upper()]
    ts = parse_times(frame[when], "funding", when) - pd.Timedelta(hours=shift_hours)
    return pd.DataFrame({"symbol": symbol, "funding_time": ts.to_numpy(),
                         "funding_rate": _numbers(frame, rate, "funding", symbol)})


def read_fear_greed(path: str | Path) -> pd.DataFrame:
    """Daily Fear & Greed values shaped like ``fear_greed``; a file without a classification
    column gets alternative.me's label for each value (:func:`fear_greed_class`)."""
    frame = _read(path, "fear_greed")
    when = _column(frame, _FNG_TIME, "fear_greed", "ts")
    value = _column(frame, _FNG_VALUE, "fear_greed", "value")
    cls = next((c for c in _FNG_CLASS if c in frame.columns), None)
    ts = parse_times(frame[when], "fear_greed", when).dt.normalize()
    values = _numbers(frame, value, "fear_greed")
    if ((values < 0) | (values > 100)).any():
        raise InputError("fear_greed", "a value outside 0..100", field=value)
    labels = (frame[cls].astype(str).to_numpy() if cls
              else np.array([fear_greed_class(v) for v in values], dtype=object))
    return pd.DataFrame({"ts": ts.to_numpy(), "value": values, "classification": labels})
