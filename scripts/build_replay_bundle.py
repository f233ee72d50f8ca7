"""Rebuild the replay exchange's data bundle (``replay/data/``).

Usage::

    python scripts/build_replay_bundle.py SOURCE_DIR [--out DIR]

``SOURCE_DIR`` holds the recorded files described in the bundle's README.md:

* ``klines/bybit_linear_{BTCUSDT,ETHUSDT}_60_full.csv`` - Bybit linear 1h candles,
  ``timestamp,Open,High,Low,Close,Volume`` with ``timestamp`` the UTC open time;
* ``funding/bybit_{BTC,ETH}USDT_funding_2021-2023_supervik.csv`` - Bybit funding rates,
  ``Symbol,Date,Funding Rate`` with ``Date`` in UTC+3;
* ``fng/fear_greed_index_2018-02-01_2026-02-24_vipwzw.csv`` - alternative.me Fear & Greed,
  ``Date,fng_value,fng_class``.

The output is three gzip CSV files. Prices, volumes and funding rates are copied as the
recorded decimal strings (never parsed and re-printed), so they round-trip exactly. The gzip
header carries no file name and no time stamp, so rebuilding from the same input gives
byte-identical files. Every series is checked for gaps, duplicates and settlement times before
anything is written.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import io
import sys
from pathlib import Path

SYMBOLS = ("BTCUSDT", "ETHUSDT")

#: Bundle window for candles and funding: [start, end) in UTC.
WINDOW_START = dt.datetime(2022, 1, 1)
WINDOW_END = dt.datetime(2023, 1, 1)
#: Fear & Greed days, inclusive (one month of lead-in for indicators that need a history).
FNG_FIRST = dt.date(2021, 12, 1)
FNG_LAST = dt.date(2022, 12, 31)

#: The funding recording stamps settlements in local time UTC+3 (03:00/11:00/19:00), while
#: Bybit settles USDT perpetuals at 00:00/08:00/16:00 UTC.
FUNDING_UTC_OFFSET = dt.timedelta(hours=3)
FUNDING_HOURS = (0, 8, 16)

HOUR = dt.timedelta(hours=1)
EPOCH = dt.datetime(1970, 1, 1)

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "replay" / "data"


def _ms(t: dt.datetime) -> int:
    return (t - EPOCH) // dt.timedelta(milliseconds=1)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _check_decimal(text: str, what: str) -> str:
    """A recorded number, unchanged; it must be a plain positive decimal in shortest form.

    The server formats aggregated highs/lows from floats, which reproduces the recorded
    string exactly only when the recording is in Python's shortest round-trip form.
    """
    value = float(text)
    if not (value > 0 and repr(value) == text):
        raise ValueError(f"{what}: {text!r} is not a positive decimal in shortest form")
    return text


def candles(source: Path) -> list[list[str]]:
    rows = []
    for symbol in SYMBOLS:
        path = source / "klines" / f"bybit_linear_{symbol}_60_full.csv"
        expected = WINDOW_START
        for record in _read_csv(path):
            open_time = dt.datetime.fromisoformat(record["timestamp"])
            if not WINDOW_START <= open_time < WINDOW_END:
                continue
            if open_time != expected:
                raise ValueError(f"{path.name}: expected a bar at {expected}, found {open_time}")
            expected += HOUR
            values = [
                _check_decimal(record[c], f"{path.name} {open_time} {c}")
                for c in ("Open", "High", "Low", "Close", "Volume")
            ]
            o, h, lo, c = map(float, values[:4])
            if not (lo <= min(o, c) and h >= max(o, c)):
                raise ValueError(f"{path.name} {open_time}: inconsistent OHLC {values[:4]}")
            rows.append([symbol, str(_ms(open_time)), *values])
        if expected != WINDOW_END:
            raise ValueError(f"{path.name}: the window ends early, last bar before {expected}")
    return rows


def funding(source: Path) -> list[list[str]]:
    rows = []
    for symbol in SYMBOLS:
        base = symbol.removesuffix("USDT")
        path = source / "funding" / f"bybit_{base}USDT_funding_2021-2023_supervik.csv"
        expected = WINDOW_START
        for record in _read_csv(path):
            if record["Symbol"].replace("-", "") != symbol:
                raise ValueError(f"{path.name}: unexpected symbol {record['Symbol']!r}")
            settled = dt.datetime.fromisoformat(record["Date"]) - FUNDING_UTC_OFFSET
            if not WINDOW_START <= settled < WINDOW_END:
                continue
            if settled != expected or settled.hour not in FUNDING_HOURS:
                raise ValueError(f"{path.name}: expected a settlement at {expected} UTC, "
                                 f"found {settled} UTC")
            expected += dt.timedelta(hours=8)
            rate = record["Funding Rate"]
            float(rate)  # must parse; kept as recorded
            rows.append([symbol, str(_ms(settled)), rate])
        if expected != WINDOW_END:
            raise ValueError(f"{path.name}: the window ends early, last settlement before "
                             f"{expected}")
    return rows


def fear_greed(source: Path) -> list[list[str]]:
    path = source / "fng" / "fear_greed_index_2018-02-01_2026-02-24_vipwzw.csv"
    rows = []
    expected = FNG_FIRST
    for record in _read_csv(path):
        day = dt.date.fromisoformat(record["Date"])
        if not FNG_FIRST <= day <= FNG_LAST:
            continue
        if day != expected:
            raise ValueError(f"{path.name}: expected {expected}, found {day}")
        expected += dt.timedelta(days=1)
        value = int(record["fng_value"])
        if not 0 <= value <= 100 or not record["fng_class"].strip():
            raise ValueError(f"{path.name} {day}: bad row {record}")
        midnight = dt.datetime.combine(day, dt.time())
        rows.append([str(_ms(midnight) // 1000), str(value), record["fng_class"].strip()])
    if expected != FNG_LAST + dt.timedelta(days=1):
        raise ValueError(f"{path.name}: the window ends early, last day before {expected}")
    return rows


def write_gzip_csv(path: Path, header: list[str], rows: list[list[str]]) -> int:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    # No file name and mtime=0 in the gzip header: the same input gives the same bytes.
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                               compresslevel=9, mtime=0) as handle:
        handle.write(text.getvalue().encode("utf-8"))
    return path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="directory with klines/, funding/ and fng/")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="bundle directory (default: the package's data/)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    outputs = [
        ("candles_60.csv.gz",
         ["symbol", "open_time_ms", "open", "high", "low", "close", "volume"],
         candles(args.source)),
        ("funding.csv.gz", ["symbol", "funding_time_ms", "funding_rate"], funding(args.source)),
        ("fear_greed.csv.gz", ["ts_s", "value", "classification"], fear_greed(args.source)),
    ]
    total = 0
    for name, header, rows in outputs:
        size = write_gzip_csv(args.out / name, header, rows)
        total += size
        print(f"{name}: {len(rows)} rows, {size / 1024:.1f} KiB")  # noqa: T201
    print(f"total {total / 1024:.1f} KiB in {args.out.name}/")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
