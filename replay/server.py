"""Replay exchange: recorded Bybit V5 and alternative.me data served on 127.0.0.1.

An HTTP server (stdlib :class:`http.server.ThreadingHTTPServer`, in a daemon thread) that
answers the public endpoints the project uses in exactly the response formats of Bybit V5
(``/v5/market/...``) and of alternative.me (``/fng/``), from a small bundle of recorded real
data in ``data/`` (see its README.md for provenance):

* **recorded**: Bybit linear BTCUSDT and ETHUSDT 1h candles and funding rates over
  [:data:`BUNDLE_START`, :data:`BUNDLE_END`) and the daily Fear & Greed index from 2021-12-01;
* **derived**: candle turnover, volume x close rounded to 4 decimals (the recording lacks it),
  and candles of 2h .. 1W aggregated from the 1h bars;
* **SYNTHETIC**: open interest and the long/short account ratio (:data:`SYNTHETIC_SERIES`).
  No public recording of their history exists, so they are generated deterministically from
  the hourly candles (:func:`synthetic_open_interest`, :func:`synthetic_long_short`). They have
  plausible dynamics and ranges, nothing more: never read them as market facts.

A replay clock decides "now" (``clock_start + wall seconds since set * speed``; by default the
end of the bundle, frozen): nothing stamped after it is served, like a real exchange that has
not seen the future yet. As on Bybit, the bar in progress at "now" is served (with its full
recorded values); clients must drop it themselves.

Faults (rate limits, HTTP errors, slow or truncated bodies, bad fields) can be queued through
:meth:`ReplayExchange.inject` or the control API under ``/__replay/`` so tests can check how
clients handle them. Every served request is logged (``/__replay/requests``).

Typical use::

    with ReplayExchange() as ex:             # free port on 127.0.0.1
        client = BybitClient(ex.base_url)
        ex.inject("/v5/market/kline", "rate_limit", count=2)
        ...
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import math
import signal
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import numpy as np
import pandas as pd

from replay.ws import PRICE_TICK, MarketSource, ReplayStream
from sentiment.core.timeutil import DAY_MS, HOUR_MS, MINUTE_MS, epoch_ms
from sentiment.models import INTERVAL_MINUTES, PERIOD_MINUTES, fear_greed_class

BUNDLE_DIR = Path(__file__).with_name("data")

#: Candles, funding and the synthetic series cover [BUNDLE_START, BUNDLE_END) (naive UTC).
BUNDLE_START = dt.datetime(2022, 1, 1)
BUNDLE_END = dt.datetime(2023, 1, 1)
BUNDLED_SYMBOLS = ("BTCUSDT", "ETHUSDT")
#: Series generated from the candles, not recorded: label them wherever they are shown.
SYNTHETIC_SERIES = ("open_interest", "long_short_ratio")

CATEGORY = "linear"
WEEK_MS = 7 * DAY_MS
#: 1970-01-05 00:00 UTC was a Monday: weekly bars start on Mondays, as Bybit's do.
WEEK_ANCHOR_MS = 4 * DAY_MS
#: Bybit settles USDT perpetual funding every 8 h, at 00:00, 08:00 and 16:00 UTC.
FUNDING_PERIOD_MS = 8 * HOUR_MS

#: Kline intervals served (all built from the recorded 1h bars) and their length in ms.
KLINE_INTERVALS = {code: minutes * MINUTE_MS for code, minutes in INTERVAL_MINUTES.items()
                   if minutes * MINUTE_MS >= HOUR_MS}
#: Valid Bybit intervals finer than the recording.
MINUTE_INTERVALS = tuple(code for code, minutes in INTERVAL_MINUTES.items()
                         if minutes * MINUTE_MS < HOUR_MS)
#: ``intervalTime`` (open interest) and ``period`` (account ratio) codes and their length.
PERIODS = {code: minutes * MINUTE_MS for code, minutes in PERIOD_MINUTES.items()}

#: API limits (rows per page): (min, max, default).
KLINE_LIMIT = (1, 1000, 200)
FUNDING_LIMIT = (1, 200, 200)
OPEN_INTEREST_LIMIT = (1, 200, 50)
ACCOUNT_RATIO_LIMIT = (1, 500, 50)

#: Synthetic open interest, in base coin: (floor, centre, ceiling) per symbol. Bybit's
#: 2022 BTCUSDT/ETHUSDT open interest was of this order.
OPEN_INTEREST_RANGE = {
    "BTCUSDT": (40_000.0, 55_000.0, 80_000.0),
    "ETHUSDT": (400_000.0, 600_000.0, 900_000.0),
}
LONG_SHORT_RANGE = (0.30, 0.70)

FAULT_KINDS = (
    "rate_limit",
    "http_429",
    "http_500",
    "http_502",
    "http_403",
    "slow",
    "malformed",
    "retcode",
    "missing_field",
    "bad_number",
    "drop_item",
)

KLINE_PATH = "/v5/market/kline"
FNG_PATH = "/fng/"
CONTROL_PREFIX = "/__replay/"
#: The largest control request body read (a fault or clock setting is a few hundred bytes).
MAX_CONTROL_BODY = 64 * 1024
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})

#: Kline rows are arrays: positions by Bybit's names (and short names) for field faults.
KLINE_FIELD_INDEX = {
    "startTime": 0, "start": 0, "timestamp": 0,
    "openPrice": 1, "open": 1,
    "highPrice": 2, "high": 2,
    "lowPrice": 3, "low": 3,
    "closePrice": 4, "close": 4,
    "volume": 5,
    "turnover": 6,
}
#: Field that ``missing_field`` / ``bad_number`` faults hit when none is named.
DEFAULT_FAULT_FIELD = {
    "/v5/market/time": "timeSecond",
    "/v5/market/funding/history": "fundingRate",
    "/v5/market/open-interest": "openInterest",
    "/v5/market/account-ratio": "buyRatio",
    "/v5/market/tickers": "lastPrice",
    "/fng": "value",
}

FNG_NAME = "Fear and Greed Index"
#: Body of Bybit's HTTP 403 when an IP exceeds 600 requests per 5 s.
BAN_MESSAGE = "access too frequent"

JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"


# --------------------------------------------------------------------------------------------
# Times


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms").strftime("%Y-%m-%dT%H:%M:%S") + "Z"


BUNDLE_START_MS = epoch_ms(BUNDLE_START)
BUNDLE_END_MS = epoch_ms(BUNDLE_END)


# --------------------------------------------------------------------------------------------
# Bundle


def _read_raw(directory: Path) -> dict[str, pd.DataFrame]:
    """The bundle's CSV files with every column as the recorded string."""

    def read(name: str) -> pd.DataFrame:
        return pd.read_csv(directory / name, dtype=str, keep_default_na=False,
                           compression="gzip")

    raw = {
        "candles": read("candles_60.csv.gz"),
        "funding": read("funding.csv.gz"),
        "fear_greed": read("fear_greed.csv.gz"),
    }
    # Pre-sort once: every lookup below is a searchsorted on these orders.
    raw["candles"]["_t"] = raw["candles"]["open_time_ms"].astype(np.int64)
    raw["candles"] = raw["candles"].sort_values(["symbol", "_t"], kind="stable")
    raw["funding"]["_t"] = raw["funding"]["funding_time_ms"].astype(np.int64)
    raw["funding"] = raw["funding"].sort_values(["symbol", "_t"], kind="stable")
    raw["fear_greed"]["_t"] = raw["fear_greed"]["ts_s"].astype(np.int64)
    raw["fear_greed"] = raw["fear_greed"].sort_values("_t", kind="stable")
    return {k: v.reset_index(drop=True) for k, v in raw.items()}


def _turnover_units(volume: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Turnover (volume x close) in units of 0.0001 quote coin, as exact integers.

    The recording has no turnover; integers keep sums over aggregated bars exact.
    """
    return np.rint(volume * close * 10_000.0).astype(np.int64)


def _ms_to_datetime(ms: Any) -> np.ndarray:
    return np.asarray(ms, dtype=np.int64).astype("datetime64[ms]").astype("datetime64[ns]")


def _pseudo_noise(ts_ms: np.ndarray, salt: str) -> np.ndarray:
    """Deterministic pseudo-noise in [-1, 1): the splitmix64 hash of (time stamp, salt).

    A closed form of the time stamp instead of a random generator: a value never depends on
    which rows were generated before it, on the platform or on a seed.
    """
    with np.errstate(over="ignore"):
        z = np.asarray(ts_ms, dtype=np.int64).astype(np.uint64)
        z = z + np.uint64(zlib.crc32(salt.encode("utf-8"))) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 52) - 1.0


def _hourly_drivers(close: np.ndarray, open_: np.ndarray, volume: np.ndarray):
    """Per-bar return, trailing 24 h log return and volume relative to its weekly mean."""
    ret = np.log(close / open_)
    trend = pd.Series(ret).rolling(24, min_periods=1).sum().to_numpy()
    weekly = pd.Series(volume).ewm(span=168, adjust=False).mean().to_numpy()
    return ret, trend, volume / weekly


def synthetic_open_interest(candles: pd.DataFrame) -> pd.DataFrame:
    """SYNTHETIC hourly open interest (base coin) generated from hourly candles.

    A pure function of the candles (columns ``symbol, open_time, open, close, volume``),
    causal: the value at hour ``t`` uses only bars that closed by ``t``. Per hour, the log of
    open interest

    * grows with relative volume while price trends (positions are opened in a trend),
    * drops by several percent after a large negative hourly return (forced deleveraging:
      -3 % in an hour removes about 4 % of open interest),
    * reverts slowly (half-life about a week) to the symbol's centre, plus a little
      hash-based pseudo-noise,

    and stays within :data:`OPEN_INTEREST_RANGE` (BTC 40k-80k, ETH 400k-900k; other symbols
    get a range from their median volume). Values are rounded to 3 decimals.

    Returns
    -------
    DataFrame with ``symbol, ts, open_interest``; ``ts`` are the candles' open times.
    """
    frames = []
    for symbol, bars in candles.groupby("symbol", sort=True):
        bars = bars.sort_values("open_time")
        close = bars["close"].to_numpy(np.float64)
        volume = bars["volume"].to_numpy(np.float64)
        ret, trend, rel_volume = _hourly_drivers(close, bars["open"].to_numpy(np.float64),
                                                 volume)
        ts_ms = bars["open_time"].to_numpy("datetime64[ms]").astype(np.int64)
        noise = _pseudo_noise(ts_ms, f"{symbol}:open_interest")
        floor, centre, ceiling = OPEN_INTEREST_RANGE.get(
            str(symbol), _default_oi_range(float(np.median(volume)))
        )
        lo, mu, hi = math.log(floor * 1.01), math.log(centre), math.log(ceiling * 0.99)
        level = mu + 0.05 * noise[0]
        out = np.empty(len(bars))
        for i in range(len(bars)):
            out[i] = level
            # The bar that opened at ts[i] closes at ts[i+1]: it drives the next value.
            build_up = 0.0025 * math.tanh(abs(trend[i]) / 0.04) * min(rel_volume[i], 3.0)
            fade = 0.0005 * max(0.0, 1.0 - rel_volume[i])
            level += build_up - fade - 0.004 * (level - mu) + 0.003 * noise[i]
            if ret[i] < -0.01:
                level += math.log(1.0 - min(0.15, 2.0 * (-ret[i] - 0.01)))
            level = min(max(level, lo), hi)
        frames.append(pd.DataFrame({
            "symbol": symbol,
            "ts": bars["open_time"].to_numpy("datetime64[ns]"),
            "open_interest": np.round(np.exp(out), 3),
        }))
    return _concat(frames, ["symbol", "ts", "open_interest"])


def _default_oi_range(median_volume: float) -> tuple[float, float, float]:
    centre = 20.0 * median_volume
    return 0.7 * centre, centre, 1.45 * centre


def synthetic_long_short(candles: pd.DataFrame) -> pd.DataFrame:
    """SYNTHETIC hourly long/short account ratio generated from hourly candles.

    A pure, causal function of the candles: ``buy_ratio`` mean-reverts (about 8 % of the gap
    per hour) to a target that leans against the trailing 24 h return (accounts buy the dip
    and short the rally, as retail long/short ratios tend to), plus hash-based pseudo-noise;
    it stays in [0.30, 0.70]. ``sell_ratio = 1 - buy_ratio``; both have 4 decimals.

    Returns
    -------
    DataFrame with ``symbol, ts, buy_ratio, sell_ratio``; ``ts`` are the candles' open times.
    """
    frames = []
    low, high = LONG_SHORT_RANGE
    for symbol, bars in candles.groupby("symbol", sort=True):
        bars = bars.sort_values("open_time")
        close = bars["close"].to_numpy(np.float64)
        _, trend, _ = _hourly_drivers(close, bars["open"].to_numpy(np.float64),
                                      bars["volume"].to_numpy(np.float64))
        ts_ms = bars["open_time"].to_numpy("datetime64[ms]").astype(np.int64)
        noise = _pseudo_noise(ts_ms, f"{symbol}:long_short_ratio")
        target = 0.5 - 0.14 * np.tanh(trend / 0.05)
        ratio = 0.5 + 0.02 * noise[0]
        out = np.empty(len(bars))
        for i in range(len(bars)):
            out[i] = ratio
            ratio += 0.08 * (target[i] - ratio) + 0.012 * noise[i]
            ratio = min(max(ratio, low), high)
        buy = np.round(out, 4)
        frames.append(pd.DataFrame({
            "symbol": symbol,
            "ts": bars["open_time"].to_numpy("datetime64[ns]"),
            "buy_ratio": buy,
            "sell_ratio": np.round(1.0 - buy, 4),
        }))
    return _concat(frames, ["symbol", "ts", "buy_ratio", "sell_ratio"])


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame({c: [] for c in columns})
    return pd.concat(frames, ignore_index=True)[columns]


def _typed(raw: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    c = raw["candles"]
    volume = c["volume"].to_numpy(np.float64)
    close = c["close"].to_numpy(np.float64)
    candles = pd.DataFrame({
        "symbol": c["symbol"].to_numpy(object),
        "open_time": _ms_to_datetime(c["_t"]),
        "open": c["open"].to_numpy(np.float64),
        "high": c["high"].to_numpy(np.float64),
        "low": c["low"].to_numpy(np.float64),
        "close": close,
        "volume": volume,
        "turnover": _turnover_units(volume, close) / 10_000.0,
    })
    f = raw["funding"]
    funding = pd.DataFrame({
        "symbol": f["symbol"].to_numpy(object),
        "funding_time": _ms_to_datetime(f["_t"]),
        "funding_rate": f["funding_rate"].to_numpy(np.float64),
    })
    g = raw["fear_greed"]
    fear_greed = pd.DataFrame({
        "ts": _ms_to_datetime(g["_t"].to_numpy(np.int64) * 1000),
        "value": g["value"].to_numpy(np.int64),
        "classification": g["classification"].to_numpy(object),
    })
    return {
        "candles": candles,
        "funding": funding,
        "fear_greed": fear_greed,
        "open_interest": synthetic_open_interest(candles),
        "long_short": synthetic_long_short(candles),
    }


def load_bundle(directory: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """The bundled data as DataFrames, sorted by symbol and time; times naive-UTC ``ns``.

    Returns
    -------
    dict
        ``candles`` (symbol, open_time, open, high, low, close, volume, turnover; 1h; the
        turnover is derived), ``funding`` (symbol, funding_time, funding_rate),
        ``fear_greed`` (ts, value, classification), and the SYNTHETIC hourly
        ``open_interest`` (symbol, ts, open_interest) and ``long_short`` (symbol, ts,
        buy_ratio, sell_ratio).
    """
    return _typed(_read_raw(Path(directory) if directory else BUNDLE_DIR))


# --------------------------------------------------------------------------------------------
# Market state: pre-sorted arrays and pre-encoded rows


def _volume_text(units: np.ndarray, scale: int) -> list[str]:
    # Exact decimal sums printed like the recording (shortest round-trip form).
    return [repr(u / scale) for u in units.tolist()]


def _units_text(units: np.ndarray) -> list[str]:
    return [f"{q}.{r:04d}" for q, r in (divmod(u, 10_000) for u in units.tolist())]


def _first_of_groups(mask: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Index of the first True of each group (every group has one)."""
    idx = np.flatnonzero(mask)
    g = group[idx]
    return idx[np.r_[True, g[1:] != g[:-1]]]


@dataclass
class _Series:
    """One symbol's bars of one interval: open times and pre-encoded JSON rows."""

    open_ms: np.ndarray
    rows: list[str]


@dataclass
class _Symbol:
    name: str
    hour_ms: np.ndarray
    open: np.ndarray
    close_text: np.ndarray
    open_text: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume_units: np.ndarray
    volume_scale: int
    turnover_units: np.ndarray
    klines: dict[str, _Series]
    funding_ms: np.ndarray
    funding_rate: np.ndarray
    open_interest: np.ndarray
    buy_ratio: np.ndarray
    sell_ratio: np.ndarray

    def aggregate(self, code: str, text: dict[str, np.ndarray]) -> _Series:
        """Bars of ``code`` from the 1h bars: open first, high max, low min, close last,
        volume and turnover summed. Bars are aligned to 00:00 UTC (weeks: Monday 00:00)."""
        length = KLINE_INTERVALS[code]
        anchor = WEEK_ANCHOR_MS if code == "W" else 0
        t = self.hour_ms
        bucket = (t - anchor) // length * length + anchor
        starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
        ends = np.r_[starts[1:], len(t)]
        group = np.repeat(np.arange(len(starts)), ends - starts)
        high_idx = _first_of_groups(self.high == np.maximum.reduceat(self.high, starts)[group],
                                    group)
        low_idx = _first_of_groups(self.low == np.minimum.reduceat(self.low, starts)[group],
                                   group)
        single = (ends - starts) == 1
        volume = np.where(single, text["volume"][starts],
                          _volume_text(np.add.reduceat(self.volume_units, starts),
                                       self.volume_scale))
        turnover = _units_text(np.add.reduceat(self.turnover_units, starts))
        rows = [
            f'["{s}","{o}","{h}","{lo}","{c}","{v}","{tv}"]'
            for s, o, h, lo, c, v, tv in zip(
                bucket[starts].tolist(), text["open"][starts], text["high"][high_idx],
                text["low"][low_idx], text["close"][ends - 1], volume, turnover, strict=True,
            )
        ]
        return _Series(bucket[starts].astype(np.int64), rows)


class _Market:
    """Everything the server answers from, built once from the bundle."""

    def __init__(self, directory: Path):
        raw = _read_raw(directory)
        typed = _typed(raw)
        self.symbols: dict[str, _Symbol] = {}
        candles, funding = raw["candles"], raw["funding"]
        oi, ls = typed["open_interest"], typed["long_short"]
        for name in sorted(candles["symbol"].unique()):
            c = candles[candles["symbol"] == name]
            text = {k: c[k].to_numpy(object) for k in ("open", "high", "low", "close", "volume")}
            volume = c["volume"].to_numpy(np.float64)
            decimals = max((len(v.partition(".")[2]) for v in text["volume"]), default=0)
            scale = 10**decimals
            f = funding[funding["symbol"] == name]
            sym = _Symbol(
                name=name,
                hour_ms=c["_t"].to_numpy(np.int64),
                open=c["open"].to_numpy(np.float64),
                open_text=text["open"],
                close_text=text["close"],
                high=c["high"].to_numpy(np.float64),
                low=c["low"].to_numpy(np.float64),
                close=c["close"].to_numpy(np.float64),
                volume_units=np.rint(volume * scale).astype(np.int64),
                volume_scale=scale,
                turnover_units=_turnover_units(volume, c["close"].to_numpy(np.float64)),
                klines={},
                funding_ms=f["_t"].to_numpy(np.int64),
                funding_rate=f["funding_rate"].to_numpy(object),
                open_interest=oi.loc[oi["symbol"] == name, "open_interest"].to_numpy(),
                buy_ratio=ls.loc[ls["symbol"] == name, "buy_ratio"].to_numpy(),
                sell_ratio=ls.loc[ls["symbol"] == name, "sell_ratio"].to_numpy(),
            )
            sym.klines = {code: sym.aggregate(code, text) for code in KLINE_INTERVALS}
            self.symbols[name] = sym
        g = raw["fear_greed"]
        self.fng_ms = g["_t"].to_numpy(np.int64) * 1000
        self.fng_value = g["value"].to_numpy(object)
        # alternative.me derives the label from the value; so does the replay, with the one
        # definition of the bands (the recording's labels agree on every day).
        self.fng_class = np.array([fear_greed_class(int(v)) for v in self.fng_value], object)


@functools.lru_cache(maxsize=4)
def _market(directory: Path) -> _Market:
    # Read-only once built, so every exchange in the process shares it.
    return _Market(directory)


# --------------------------------------------------------------------------------------------
# Request handling


class _ParamsError(Exception):
    """A request Bybit would answer with retCode 10001."""


@dataclass
class _Reply:
    """One HTTP answer."""

    status: int
    body: bytes
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    content_type: str = JSON_TYPE
    payload: Any = None  # decoded JSON when a fault may need to edit it


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _trim(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass
class _Fault:
    """A queued fault: applies to the next ``remaining`` requests matching path and query."""

    path: str
    kind: str
    remaining: int = 1
    delay_s: float | None = None
    ret_code: int | None = None
    ret_msg: str | None = None
    field: str | int | None = None
    match: dict[str, str] = dataclasses.field(default_factory=dict)

    def matches(self, path: str, query: dict[str, str]) -> bool:
        if self.path != "*" and _norm_path(self.path) != _norm_path(path):
            return False
        return all(query.get(k) == v for k, v in self.match.items())

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.path, "kind": self.kind, "count": self.remaining,
            "delay_s": self.delay_s, "ret_code": self.ret_code, "ret_msg": self.ret_msg,
            "field": self.field, "match": dict(self.match),
        }


def _norm_path(path: str) -> str:
    return path.rstrip("/") or "/"


class _State:
    """Clock, fault queue and request log, shared by the handler threads."""

    def __init__(self, market: _Market, now: Any, speed: float):
        self.market = market
        self.lock = threading.Lock()
        self.faults: list[_Fault] = []
        self.log: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        self.set_clock(now, speed)

    # -- clock --------------------------------------------------------------------------

    def set_clock(self, now: Any, speed: float = 0.0) -> None:
        start = BUNDLE_END_MS if now is None else epoch_ms(now)
        speed = float(speed)
        if not math.isfinite(speed) or speed < 0:
            raise ValueError(f"speed must be a finite number >= 0, got {speed!r}")
        with self.lock:
            self.clock_start, self.clock_wall, self.speed = start, time.monotonic(), speed

    def now_ms(self) -> int:
        with self.lock:
            start, wall, speed = self.clock_start, self.clock_wall, self.speed
        if speed == 0:
            return start
        return start + int((time.monotonic() - wall) * 1000.0 * speed)

    # -- faults -------------------------------------------------------------------------

    def inject(self, path: str, kind: str, count: int = 1, *, delay_s: float | None = None,
               ret_code: int | None = None, ret_msg: str | None = None,
               field: str | int | None = None, match: dict[str, Any] | None = None) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {list(FAULT_KINDS)}")
        if not isinstance(path, str) or not (path == "*" or path.startswith("/")):
            raise ValueError(f"fault path must be '*' or start with '/', got {path!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be an integer >= 1, got {count!r}")
        if delay_s is not None and not (float(delay_s) >= 0):
            raise ValueError(f"delay_s must be >= 0, got {delay_s!r}")
        if match is not None and not isinstance(match, dict):
            raise ValueError(f"match must be an object of query parameters, got {match!r}")
        fault = _Fault(path, kind, count, None if delay_s is None else float(delay_s),
                      None if ret_code is None else int(ret_code), ret_msg, field,
                      {str(k): str(v) for k, v in (match or {}).items()})
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, path: str, query: dict[str, str]) -> _Fault | None:
        with self.lock:
            for i, fault in enumerate(self.faults):
                if fault.matches(path, query):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        del self.faults[i]
                    return fault
        return None

    def pending_faults(self) -> list[dict[str, Any]]:
        with self.lock:
            return [f.describe() for f in self.faults]

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    # -- request log --------------------------------------------------------------------

    def record(self, path: str, query: dict[str, str], status: int, fault: str | None) -> None:
        with self.lock:
            self.log.append({"path": path, "query": dict(query), "status": status,
                             "fault": fault})

    def requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r, query=dict(r["query"])) for r in self.log]

    def clear_requests(self) -> None:
        with self.lock:
            self.log.clear()


# -- Bybit endpoints ----------------------------------------------------------------------


def _bybit(result: Any, now: int, *, ret_code: int = 0, ret_msg: str = "OK") -> _Reply:
    payload = {"retCode": ret_code, "retMsg": ret_msg, "result": result, "retExtInfo": {},
               "time": now}
    return _Reply(200, _dumps(payload).encode(), payload=payload)


def _bybit_raw(result_json: str, now: int) -> _Reply:
    # Kline pages are joined from pre-encoded rows: a 1000-row page costs one str.join.
    body = f'{{"retCode":0,"retMsg":"OK","result":{result_json},"retExtInfo":{{}},"time":{now}}}'
    return _Reply(200, body.encode())


def _param(query: dict[str, str], name: str, *, required: bool = False) -> str | None:
    value = query.get(name)
    if value is None or value == "":
        if required:
            raise _ParamsError(f"{name} is required")
        return None
    return value


def _int_param(query: dict[str, str], name: str, *, required: bool = False) -> int | None:
    value = _param(query, name, required=required)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise _ParamsError(f"{name} must be an integer, got {value!r}") from None


def _limit(query: dict[str, str], bounds: tuple[int, int, int]) -> int:
    low, high, default = bounds
    limit = _int_param(query, "limit")
    if limit is None:
        return default
    if not low <= limit <= high:
        raise _ParamsError(f"limit must be between {low} and {high}, got {limit}")
    return limit


def _category(query: dict[str, str], *, required: bool = True) -> None:
    # API: category is optional for kline (linear by default), required elsewhere.
    value = _param(query, "category", required=required) or CATEGORY
    if value != CATEGORY:
        raise _ParamsError(f"category {value!r} is not available in replay data (only linear)")


def _symbol(market: _Market, query: dict[str, str]) -> _Symbol:
    name = _param(query, "symbol", required=True)
    if name not in market.symbols:
        raise _ParamsError(f"symbol {name!r} is not available in replay data; "
                           f"use one of {sorted(market.symbols)}")
    return market.symbols[name]


def _window(times: np.ndarray, start: int | None, end: int | None, now: int) -> tuple[int, int]:
    """Index range [lo, hi) of sorted ``times`` with start <= t <= min(end, now)."""
    upper = now if end is None else min(end, now)
    lo = 0 if start is None else int(np.searchsorted(times, start, side="left"))
    hi = int(np.searchsorted(times, upper, side="right"))
    return lo, max(lo, hi)


def _time(market: _Market, query: dict[str, str], now: int) -> _Reply:
    return _bybit({"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}, now)


def _kline(market: _Market, query: dict[str, str], now: int) -> _Reply:
    _category(query, required=False)
    sym = _symbol(market, query)
    interval = _param(query, "interval", required=True)
    if interval in MINUTE_INTERVALS:
        raise _ParamsError("interval not available in replay data")
    if interval not in KLINE_INTERVALS:
        raise _ParamsError(f"interval {interval!r} is invalid; use one of "
                           f"{list(MINUTE_INTERVALS) + list(KLINE_INTERVALS)}")
    start, end = _int_param(query, "start"), _int_param(query, "end")
    limit = _limit(query, KLINE_LIMIT)
    series = sym.klines[interval]
    lo, hi = _window(series.open_ms, start, end, now)
    # The newest `limit` bars of the range, newest first.
    rows = series.rows[max(lo, hi - limit):hi]
    rows.reverse()
    result = f'{{"symbol":"{sym.name}","category":"linear","list":[{",".join(rows)}]}}'
    return _bybit_raw(result, now)


def _funding(market: _Market, query: dict[str, str], now: int) -> _Reply:
    _category(query)
    sym = _symbol(market, query)
    start, end = _int_param(query, "startTime"), _int_param(query, "endTime")
    if start is not None and end is None:
        # API: startTime alone is rejected; endTime alone (or neither) is fine.
        raise _ParamsError("endTime is required when startTime is given")
    limit = _limit(query, FUNDING_LIMIT)
    lo, hi = _window(sym.funding_ms, start, end, now)
    rows = [
        {"symbol": sym.name, "fundingRate": sym.funding_rate[i],
         "fundingRateTimestamp": str(sym.funding_ms[i])}
        for i in range(hi - 1, max(lo, hi - limit) - 1, -1)
    ]
    return _bybit({"category": CATEGORY, "list": rows}, now)


def _encode_cursor(slot: int, ts_ms: int) -> str:
    # Shaped like Bybit's (url-encoded "lastid=...&lasttime=<seconds>"); self-contained:
    # the next page is every row of the same query older than `lasttime`.
    return quote(f"lastid={slot}&lasttime={ts_ms // 1000}", safe="")


def _decode_cursor(cursor: str) -> int:
    """The exclusive upper bound (ms) a cursor continues below."""
    fields = parse_qs(unquote(cursor), strict_parsing=False)
    try:
        return int(fields["lasttime"][0]) * 1000
    except (KeyError, ValueError, IndexError):
        raise _ParamsError(f"cursor {cursor!r} is invalid") from None


def _slot_page(sym: _Symbol, query: dict[str, str], now: int, period_name: str,
               bounds: tuple[int, int, int]) -> tuple[list[tuple[int, int]], str]:
    """Slots (slot time, hourly index) of one page of a period series, newest first, and
    the cursor of the next page ("" when none).

    The synthetic series are hourly: finer periods step (each slot takes the value of the
    hour at or before it), coarser ones sample the hourly series at the slot starts.
    """
    period = _param(query, period_name, required=True)
    if period not in PERIODS:
        raise _ParamsError(f"{period_name} {period!r} is invalid; use one of {list(PERIODS)}")
    step = PERIODS[period]
    start, end = _int_param(query, "startTime"), _int_param(query, "endTime")
    limit = _limit(query, bounds)
    cursor = _param(query, "cursor")
    first = int(sym.hour_ms[0])
    count = -(-len(sym.hour_ms) * HOUR_MS // step)
    upper = now if end is None else min(end, now)
    if cursor is not None:
        upper = min(upper, _decode_cursor(cursor) - 1)
    k_hi = min(count - 1, (upper - first) // step) if upper >= first else -1
    k_lo = 0 if start is None else max(0, -(-(start - first) // step))
    if k_hi < k_lo:
        return [], ""
    k_end = max(k_lo, k_hi - limit + 1)
    slots = [(first + k * step, (k * step) // HOUR_MS) for k in range(k_hi, k_end - 1, -1)]
    more = k_end > k_lo
    return slots, _encode_cursor(k_end, slots[-1][0]) if more else ""


def _open_interest(market: _Market, query: dict[str, str], now: int) -> _Reply:
    _category(query)
    sym = _symbol(market, query)
    slots, cursor = _slot_page(sym, query, now, "intervalTime", OPEN_INTEREST_LIMIT)
    rows = [{"openInterest": f"{sym.open_interest[h]:.8f}", "timestamp": str(t)}
            for t, h in slots]
    return _bybit({"symbol": sym.name, "category": CATEGORY, "list": rows,
                   "nextPageCursor": cursor}, now)


def _account_ratio(market: _Market, query: dict[str, str], now: int) -> _Reply:
    _category(query)
    sym = _symbol(market, query)
    slots, cursor = _slot_page(sym, query, now, "period", ACCOUNT_RATIO_LIMIT)
    rows = [{"symbol": sym.name, "buyRatio": _trim(sym.buy_ratio[h], 4),
             "sellRatio": _trim(sym.sell_ratio[h], 4), "timestamp": str(t)}
            for t, h in slots]
    return _bybit({"list": rows, "nextPageCursor": cursor}, now)


def _ticker(sym: _Symbol, now: int) -> dict[str, str] | None:
    """The ticker at ``now`` derived from the bars (the latest bar's full recorded values)."""
    i = int(np.searchsorted(sym.hour_ms, now, side="right")) - 1
    if i < 0:
        return None
    day = max(0, i - 23)
    last = float(sym.close[i])
    hour_noise = _pseudo_noise(sym.hour_ms[i] + np.arange(4), sym.name + ":ticker")
    tick = PRICE_TICK.get(sym.name, 0.01)
    prev_24h = float(sym.open[day])
    oi = float(sym.open_interest[i])
    f = int(np.searchsorted(sym.funding_ms, now, side="right")) - 1
    volume_24h = int(sym.volume_units[day:i + 1].sum())
    return {
        "symbol": sym.name,
        "lastPrice": str(sym.close_text[i]),
        "indexPrice": f"{last * (1 + 0.0003 * hour_noise[0]):.2f}",
        "markPrice": f"{last * (1 + 0.0002 * hour_noise[1]):.2f}",
        "prevPrice24h": str(sym.open_text[day]),
        "price24hPcnt": f"{last / prev_24h - 1:.6f}",
        "highPrice24h": repr(float(sym.high[day:i + 1].max())),
        "lowPrice24h": repr(float(sym.low[day:i + 1].min())),
        "prevPrice1h": str(sym.open_text[i]),
        "openInterest": f"{oi:.3f}",
        "openInterestValue": f"{oi * last:.2f}",
        "turnover24h": _units_text(np.array([sym.turnover_units[day:i + 1].sum()]))[0],
        "volume24h": repr(volume_24h / sym.volume_scale),
        # The latest settled rate stands in for the predicted one.
        "fundingRate": str(sym.funding_rate[f]) if f >= 0 else "",
        "nextFundingTime": str((now // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS),
        "predictedDeliveryPrice": "",
        "basisRate": "",
        "deliveryFeeRate": "",
        "deliveryTime": "0",
        "ask1Size": f"{0.5 + 15 * (hour_noise[2] + 1):.3f}",
        "bid1Price": f"{last - tick:.2f}",
        "ask1Price": f"{last:.2f}",
        "bid1Size": f"{0.5 + 15 * (hour_noise[3] + 1):.3f}",
        "basis": "",
        "preOpenPrice": "",
        "preQty": "",
        "curPreListingPhase": "",
    }


def _tickers(market: _Market, query: dict[str, str], now: int) -> _Reply:
    _category(query)
    symbols = [_symbol(market, query)] if _param(query, "symbol") else market.symbols.values()
    rows = [t for t in (_ticker(s, now) for s in symbols) if t is not None]
    return _bybit({"category": CATEGORY, "list": rows}, now)


# -- alternative.me -------------------------------------------------------------------------


def _fng(market: _Market, query: dict[str, str], now: int) -> _Reply:
    def error(message: str) -> _Reply:
        payload = {"name": FNG_NAME, "data": [], "metadata": {"error": message}}
        return _Reply(200, _dumps(payload).encode(), payload=payload)

    limit_text = query.get("limit", "1") or "1"
    fmt = query.get("format", "json") or "json"
    if fmt != "json":
        return error(f"format {fmt!r} is not available in replay data (only json)")
    try:
        limit = int(limit_text)
    except ValueError:
        return error(f"limit must be an integer, got {limit_text!r}")
    if limit < 0:
        return error(f"limit must be >= 0, got {limit}")
    hi = int(np.searchsorted(market.fng_ms, now, side="right"))
    lo = 0 if limit == 0 else max(0, hi - limit)
    data = [
        {"value": market.fng_value[i], "value_classification": market.fng_class[i],
         "timestamp": str(market.fng_ms[i] // 1000)}
        for i in range(hi - 1, lo - 1, -1)
    ]
    if data:
        data[0]["time_until_update"] = str((DAY_MS - now % DAY_MS) // 1000)
    payload = {"name": FNG_NAME, "data": data, "metadata": {"error": None}}
    return _Reply(200, _dumps(payload).encode(), payload=payload)


Route = Callable[[_Market, dict[str, str], int], _Reply]

ROUTES: dict[str, Route] = {
    "/v5/market/time": _time,
    "/v5/market/kline": _kline,
    "/v5/market/funding/history": _funding,
    "/v5/market/open-interest": _open_interest,
    "/v5/market/account-ratio": _account_ratio,
    "/v5/market/tickers": _tickers,
    "/fng": _fng,
}


def _answer(market: _Market, path: str, query: dict[str, str], now: int) -> _Reply:
    route = ROUTES.get(_norm_path(path))
    if route is None:
        return _Reply(404, _dumps({"error": "not found", "path": path}).encode())
    try:
        return route(market, query, now)
    except _ParamsError as exc:
        return _bybit({}, now, ret_code=10001, ret_msg=f"params error: {exc}")


# -- faults -------------------------------------------------------------------------------


def _is_fng(path: str) -> bool:
    return _norm_path(path) == "/fng"


def _apply_fault(fault: _Fault, path: str, reply: _Reply | None, now: int) -> _Reply:
    """The answer to a request hit by ``fault``; ``reply`` is the normal answer (``None`` for
    kinds that replace it without looking at it)."""
    kind = fault.kind
    if kind == "rate_limit" and _is_fng(path):
        kind = "http_429"  # alternative.me has no retCode: its limit is an HTTP 429
    if kind == "rate_limit":
        # API: Bybit answers its rate limit with HTTP 200, retCode 10006 and the
        # X-Bapi-Limit-* headers; the reset time is wall-clock ms, like the real one.
        reset = int(time.time() * 1000) + int(1000 * (fault.delay_s or 1.0))
        out = _bybit({}, now, ret_code=10006, ret_msg="Too many visits!")
        out.headers.update({"X-Bapi-Limit-Status": "0", "X-Bapi-Limit": "600",
                            "X-Bapi-Limit-Reset-Timestamp": str(reset)})
        return out
    if kind == "http_429":
        return _Reply(429, b"Too Many Requests", {"Retry-After": "1"}, TEXT_TYPE)
    if kind == "http_500":
        return _Reply(500, b"500 Internal Server Error", content_type=TEXT_TYPE)
    if kind == "http_502":
        return _Reply(502, b"<html><head><title>502 Bad Gateway</title></head><body>"
                          b"<center><h1>502 Bad Gateway</h1></center></body></html>",
                     content_type="text/html")
    if kind == "http_403":
        return _Reply(403, BAN_MESSAGE.encode(), content_type=TEXT_TYPE)
    if kind == "retcode":
        code = 10001 if fault.ret_code is None else fault.ret_code
        message = fault.ret_msg if fault.ret_msg is not None else "params error: injected"
        if _is_fng(path):
            payload = {"name": FNG_NAME, "data": [], "metadata": {"error": message}}
            return _Reply(200, _dumps(payload).encode(), payload=payload)
        return _bybit({}, now, ret_code=code, ret_msg=message)
    assert reply is not None
    if kind == "slow":
        return reply
    if kind == "malformed":
        return _Reply(reply.status, reply.body[: max(1, len(reply.body) // 2)], reply.headers,
                     reply.content_type)
    payload = reply.payload if reply.payload is not None else json.loads(reply.body)
    _edit_items(payload, path, kind, fault.field)
    return _Reply(reply.status, _dumps(payload).encode(), reply.headers, reply.content_type)


def _edit_items(payload: Any, path: str, kind: str, name: str | int | None) -> None:
    """``missing_field``: drop the field from every list item; ``bad_number``: put "abc" in
    the first item's field; ``drop_item``: leave out the list item at index ``field`` (1 by
    default: for klines, newest first, the bar before the newest). Kline rows are arrays:
    ``missing_field`` cuts each row before the field's position (the row then lacks it, as a
    short row would), the close by default."""
    if not isinstance(payload, dict):
        return
    if _is_fng(path):
        items = payload.get("data")
    else:
        result = payload.get("result")
        if not isinstance(result, dict):
            return
        # Lists are edited item by item; a result without a list (server time) as one item.
        items = result["list"] if "list" in result else ([result] if result else [])
    if not isinstance(items, list):
        return
    if kind == "drop_item":
        index = name if isinstance(name, int) else 1
        if 0 <= index < len(items):
            del items[index]
        return
    if _norm_path(path) == KLINE_PATH:
        index = name if isinstance(name, int) else KLINE_FIELD_INDEX.get(str(name), 4)
        if kind == "missing_field":
            for i, row in enumerate(items):
                items[i] = row[:index]
        elif items:
            items[0][index] = "abc"
        return
    key = str(name) if name is not None else DEFAULT_FAULT_FIELD.get(_norm_path(path), "")
    if kind == "missing_field":
        for item in items:
            if isinstance(item, dict):
                item.pop(key, None)
    elif items and isinstance(items[0], dict):
        items[0][key] = "abc"


# --------------------------------------------------------------------------------------------
# HTTP server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Several clients (Dagster runs several steps at once) may connect together.
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], state: _State):
        self.state = state
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request, client_address):
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        # A client that gave up (e.g. timed out during a "slow" fault) or a stop() that cut a
        # connection is not a server error worth a traceback.
        error = sys.exc_info()[1]
        if self.state.stopping.is_set() or isinstance(error, ConnectionError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        # Keep-alive connections would otherwise outlive the server in their threads.
        with self.connections_lock:
            connections = list(self.connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive, as requests.Session expects.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every small answer.
    disable_nagle_algorithm = True
    server_version = "replay-exchange"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is /__replay/requests

    def _split(self) -> tuple[str, dict[str, str]]:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        return parts.path, query

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def _json(self, status: int, value: Any) -> None:
        self._send(_Reply(status, _dumps(value).encode()))

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 <= length <= MAX_CONTROL_BODY:
            raise _Refused(413, f"request body over {MAX_CONTROL_BODY} bytes")
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw.strip() else {}

    def _check_caller(self) -> None:
        """Control requests come from this machine's programs, never from a web page: the
        Host must be a loopback name (a page using DNS rebinding names its own host) and
        an Origin, which browsers send and our clients do not, must be this server's."""
        host = (self.headers.get("Host") or "").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in _LOOPBACK_HOSTS:
            raise _Refused(403, f"control requests must name a loopback host, not {host!r}")
        origin = self.headers.get("Origin")
        if origin is not None:
            mine = {f"http://{h}:{self.server.server_address[1]}" for h in _LOOPBACK_HOSTS}
            if origin.strip().lower() not in mine:
                raise _Refused(403, f"control requests from the web page {origin!r} refused")

    def do_GET(self) -> None:
        path, query = self._split()
        if path.startswith(CONTROL_PREFIX):
            self._control("GET", path)
            return
        state = self.server.state
        fault = state.take_fault(path, query)
        kind = fault.kind if fault else None
        now = state.now_ms()
        replaces = kind in {"rate_limit", "http_429", "http_500", "http_502", "http_403",
                            "retcode"}
        reply = None if replaces else _answer(state.market, path, query, now)
        if fault is not None and (reply is None or reply.status == 200):
            reply = _apply_fault(fault, path, reply, now)
        elif kind != "slow":
            kind = None  # consumed by a request with no body to spoil (a 404)
        assert reply is not None
        # Logged on arrival, before any delay: once a client has its answer (or gave up on a
        # slow one), the log already shows the request.
        state.record(path, query, reply.status, kind)
        if kind == "slow":
            # The answer as of arrival, delivered late. Interruptible, so stop() does not
            # wait for a long injected delay.
            state.stopping.wait(2.0 if fault.delay_s is None else fault.delay_s)
        self._send(reply)

    def do_POST(self) -> None:
        self._control("POST", self._split()[0])

    def do_DELETE(self) -> None:
        self._control("DELETE", self._split()[0])

    def _control(self, method: str, path: str) -> None:
        state = self.server.state
        name = _norm_path(path)[len(CONTROL_PREFIX):]
        try:
            self._check_caller()
            body = self._body() if method == "POST" else {}
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            if (name, method) == ("faults", "POST"):
                args = dict(body)
                state.inject(args.pop("path", "*"), args.pop("kind", ""),
                             args.pop("count", 1), **args)
                self._json(200, {"faults": state.pending_faults()})
            elif (name, method) == ("faults", "GET"):
                self._json(200, {"faults": state.pending_faults()})
            elif (name, method) == ("faults", "DELETE"):
                state.clear_faults()
                self._json(200, {"faults": []})
            elif (name, method) == ("requests", "GET"):
                self._json(200, state.requests())
            elif (name, method) == ("requests", "DELETE"):
                state.clear_requests()
                self._json(200, [])
            elif (name, method) == ("clock", "POST"):
                state.set_clock(body.get("now", state.now_ms()), body.get("speed", 0.0))
                self._json(200, {"now": state.now_ms(), "speed": state.speed})
            elif (name, method) == ("clock", "GET"):
                self._json(200, {"now": state.now_ms(), "speed": state.speed})
            elif name in {"faults", "requests", "clock"}:
                self._json(405, {"error": f"{method} not allowed on {path}"})
            else:
                self._json(404, {"error": "not found", "path": path})
        except _Refused as exc:
            # The body was not read: close the connection (and say so) rather than take the
            # rest of it for the next request.
            self.close_connection = True
            self._send(_Reply(exc.status, _dumps({"error": str(exc)}).encode(),
                              headers={"Connection": "close"}))
        except (ValueError, TypeError) as exc:
            self._json(400, {"error": str(exc)})


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ReplayExchange:
    """The replay exchange: an HTTP server on ``host:port`` in a daemon thread.

    Parameters
    ----------
    host : str
        Interface to bind; loopback by default.
    port : int
        0 picks a free port (read it back from :attr:`base_url`).
    now : datetime, int (ms), str (ISO-8601 or ms) or None
        Replay clock start; ``None`` is :data:`BUNDLE_END`.
    speed : float
        Replay milliseconds per wall millisecond; 0 freezes the clock.
    bundle_dir : path, optional
        Another bundle directory (tests); the package's ``data/`` by default.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, now: Any = None,
                 speed: float = 0.0, *, bundle_dir: str | Path | None = None,
                 ws_port: int | None = None, ws_gap_every: int = 0):
        self.host = host
        self._port = port
        directory = Path(bundle_dir).resolve() if bundle_dir else BUNDLE_DIR
        self._state = _State(_market(directory), now, speed)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.stream = None
        if ws_port is not None:  # the public WebSocket too, with pushes derived from the bundle
            market = self._state.market
            self.stream = ReplayStream(host, ws_port, symbols=market.symbols,
                                       source=MarketSource(market, gap_every=ws_gap_every),
                                       clock=self._state.now_ms)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> ReplayExchange:
        """Bind and serve in a daemon thread; returns ``self``."""
        if self._server is not None:
            return self
        self._state.stopping.clear()
        self._server = _Server((self.host, self._port), self._state)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"replay-exchange:{self.port}", daemon=True)
        self._thread.start()
        if self.stream is not None:
            self.stream.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and release the port."""
        if self.stream is not None:
            self.stream.stop()
        server, thread = self._server, self._thread
        if server is None:
            return
        self._state.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> ReplayExchange:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            return self._port
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """Bybit base URL, e.g. ``http://127.0.0.1:8765``."""
        if self._server is None:
            raise RuntimeError("the replay exchange is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """The public WebSocket, e.g. ``ws://127.0.0.1:8766/v5/public/linear``."""
        if self.stream is None:
            raise RuntimeError("this replay exchange serves no WebSocket (ws_port=None)")
        return self.stream.url

    @property
    def fear_greed_url(self) -> str:
        """alternative.me index URL, e.g. ``http://127.0.0.1:8765/fng/``."""
        return self.base_url + FNG_PATH

    # -- faults, log, clock -----------------------------------------------------------

    def inject(self, path: str, kind: str, count: int = 1, **kw: Any) -> None:
        """Queue a fault for the next ``count`` requests to ``path`` (``"*"``: any path).

        Keyword arguments: ``delay_s`` (``slow``: seconds, default 2; ``rate_limit``: seconds
        until the reset time in the headers, default 1), ``ret_code``/``ret_msg``
        (``retcode``), ``field`` (``missing_field``/``bad_number``), ``match`` (a dict of
        query parameters the request must carry, e.g. ``{"symbol": "ETHUSDT"}``).
        Kinds: see :data:`FAULT_KINDS`.
        """
        self._state.inject(path, kind, count, **kw)

    def faults(self) -> list[dict[str, Any]]:
        """Faults still queued."""
        return self._state.pending_faults()

    def clear_faults(self) -> None:
        self._state.clear_faults()

    def requests(self) -> list[dict[str, Any]]:
        """Served requests, oldest first: ``{"path", "query", "status", "fault"}``."""
        return self._state.requests()

    def clear_requests(self) -> None:
        self._state.clear_requests()

    def set_clock(self, now: Any, speed: float = 0.0) -> None:
        """Set the replay clock (``now``: datetime, ms or ISO-8601; ``None``: bundle end)."""
        self._state.set_clock(now, speed)

    def now_ms(self) -> int:
        """The replay clock, Unix ms."""
        return self._state.now_ms()


def run_server(host: str = "127.0.0.1", port: int = 8765, now: Any = None,
               speed: float = 0.0, ws_port: int | None = None, gap_every: int = 0) -> None:
    """Serve until SIGINT or SIGTERM (the ``sentiment replay-server`` command)."""
    done = threading.Event()
    exchange = ReplayExchange(host=host, port=port, now=now, speed=speed, ws_port=ws_port,
                              ws_gap_every=gap_every).start()
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[sig] = signal.signal(sig, lambda *_: done.set())
            except ValueError:  # not the main thread: KeyboardInterrupt still ends the wait
                pass
        print(  # noqa: T201
            f"replay exchange on {exchange.base_url} (clock {_iso(exchange.now_ms())}, "
            f"speed {speed:g}, synthetic: {', '.join(SYNTHETIC_SERIES)})",
            flush=True,
        )
        if exchange.stream is not None:
            print(f"replay WebSocket on {exchange.ws_url} (derived book, ticker and "  # noqa: T201
                  "liquidation pushes)", flush=True)
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        exchange.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
