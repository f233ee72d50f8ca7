"""Bybit V5 public market data over REST: candles, funding, open interest, long/short, tickers.

Built on :mod:`requests` through :class:`~sentiment.io.sources.http.HttpTransport`, not pybit:
pybit's HTTP client sleeps on retCode 10006 by itself, does not retry non-200 answers and
hides a body that is not JSON behind a generic error (DESIGN 8.16).

Every method takes a half-open range ``[start, end)`` on the row's key time (``start`` and
``end`` as ``datetime``, ``pd.Timestamp`` or ISO string; naive means UTC) and returns a
DataFrame shaped like its DuckDB table: ascending by time, de-duplicated on the key, times as
naive-UTC ``datetime64[ns]``, numbers as float64.

Bybit lists come newest first and each endpoint caps its page size, so ranges are read
backwards page by page; every row of every page is validated, and any unusable value raises a
:class:`~sentiment.errors.SourceError` naming the endpoint, the symbol and the API field. An
impossible value (a price <= 0, high < low, a negative size, a ratio outside [0, 1], a funding
rate beyond any exchange cap, a row stamped after the response, two rows with one key and
different values) rejects the whole answer: nothing of it reaches storage (DESIGN 9.3).

The ``parse_*`` functions turn one decoded response into rows without any I/O, so recorded
responses can be checked directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import requests

from sentiment.core.timeutil import MINUTE_MS
from sentiment.errors import TransientSourceError
from sentiment.io.sources.bybit_fields import FIELD_OF_TICKER_COLUMN, TICKER_FIELDS
from sentiment.io.sources.http import (
    MAX_EPOCH_MS,
    Range,
    RateLimit,
    ResponseContext,
    RestClient,
    Retry,
    check_rows,
    dict_column,
    float_column,
    ms_column,
    to_epoch_ms,
    to_utc,
)
from sentiment.io.tables import TABLES
from sentiment.models import INTERVAL_MINUTES, MAX_PRICE, MAX_SIZE, PERIOD_MINUTES

log = logging.getLogger(__name__)

SOURCE = "bybit"

#: API limit: 600 requests per 5 s per IP for all of /v5/market (HTTP 403 beyond it).
RATE_LIMIT = RateLimit(requests=600, per_seconds=5.0)

#: Kline interval codes and their length in milliseconds. Monthly bars ("M") vary in length,
#: so "is this bar closed" cannot be answered from the code alone: they are not supported.
INTERVAL_MS: dict[str, int] = {code: minutes * MINUTE_MS
                               for code, minutes in INTERVAL_MINUTES.items()}
#: ``intervalTime`` (open interest) and ``period`` (account ratio) codes.
PERIODS = tuple(PERIOD_MINUTES)

#: API limits: rows per page.
KLINE_PAGE = 1000
FUNDING_PAGE = 200
OPEN_INTEREST_PAGE = 200
ACCOUNT_RATIO_PAGE = 500

#: retCodes worth retrying: 10006 is Bybit's "Too many visits!" rate limit; 10000 (server
#: timeout) and 10016 (server error) are the exchange's own 5xx answers sent with HTTP 200.
TRANSIENT_RET_CODES = {10006: "rate limit", 10000: "server timeout", 10016: "server error"}

#: Kline rows are arrays; these are Bybit's names for the positions, used in errors.
KLINE_FIELDS = ("startTime", "openPrice", "highPrice", "lowPrice", "closePrice", "volume",
                "turnover")

#: Plausible values (the bounds every source shares, sentiment.models): a price > 0, a size
#: (volume, turnover, open interest) >= 0.
PRICE = Range(0.0, MAX_PRICE, open_low=True)
SIZE = Range(0.0, MAX_SIZE)
RATIO = Range(0.0, 1.0)
#: Funding per settlement, as a fraction. Exchanges cap it per contract: Bybit's
#: ``upperFundingRate`` is 0.375 % to a few % (Binance's widened caps stop at 3 %), so 5 % is
#: above any real settled or predicted rate and far below the 90 % of a broken answer.
FUNDING = Range(-0.05, 0.05)
#: buyRatio + sellRatio is 1 up to rounding (Bybit sends 4 decimals; 2 in some answers).
RATIO_SUM_TOLERANCE = 0.01
#: A row's key column -> its name in Bybit's answers, for errors.
KEY_FIELDS = {"open_time": "startTime", "funding_time": "fundingRateTimestamp",
              "ts": "timestamp", "symbol": "symbol"}

#: Each endpoint's frame has its table's columns (sentiment.io.tables), in table order.
KLINE_COLUMNS = list(TABLES["candles"].all_columns)
FUNDING_COLUMNS = list(TABLES["funding_rates"].all_columns)
OPEN_INTEREST_COLUMNS = list(TABLES["open_interest"].all_columns)
LONG_SHORT_COLUMNS = list(TABLES["long_short_ratio"].all_columns)
#: Ticker columns; every one but ``symbol`` may be "" (NaN / NaT). Bybit's field of each
#: column: :data:`~sentiment.io.sources.bybit_fields.FIELD_OF_TICKER_COLUMN`.
TICKER_COLUMNS = list(TABLES["tickers"].all_columns)
TICKER_RANGES = {
    **dict.fromkeys(["last_price", "mark_price", "index_price", "prev_price_24h",
                     "high_price_24h", "low_price_24h", "prev_price_1h", "bid1_price",
                     "ask1_price"], PRICE),
    **dict.fromkeys(["open_interest", "open_interest_value", "turnover_24h", "volume_24h",
                     "bid1_size", "ask1_size"], SIZE),
    "price_24h_pcnt": Range(-1.0, PRICE.high),
    "funding_rate": FUNDING,
}

KLINE_PATH = "/v5/market/kline"
FUNDING_PATH = "/v5/market/funding/history"
OPEN_INTEREST_PATH = "/v5/market/open-interest"
ACCOUNT_RATIO_PATH = "/v5/market/account-ratio"
TICKERS_PATH = "/v5/market/tickers"
TIME_PATH = "/v5/market/time"


# --------------------------------------------------------------------------------------------
# Parsing one response


def kline_interval_ms(interval: str | int) -> tuple[str, int]:
    """The canonical code of a kline interval and its length in ms; ValueError if unknown."""
    code = str(interval)
    if code == "M":
        raise ValueError(
            "kline interval 'M' (monthly) is not supported: a month has no fixed length, so "
            "closed bars cannot be told from the bar in progress"
        )
    if code not in INTERVAL_MS:
        raise ValueError(f"unknown kline interval {interval!r}; use one of {list(INTERVAL_MS)}")
    return code, INTERVAL_MS[code]


def _check_period(value: str, name: str) -> str:
    if value not in PERIODS:
        raise ValueError(f"unknown {name} {value!r}; use one of {list(PERIODS)}")
    return value


def check_ret_code(payload: Any, ctx: ResponseContext) -> int:
    """Validate the V5 envelope's ``retCode``; return it when it is 0.

    ``retCode`` arrives as an integer on the wire and as a numeric string in ccxt's
    recordings; both are accepted.

    Raises
    ------
    TransientSourceError
        A retryable code (10006 rate limit, 10000/10016 server faults).
    SourceError
        Any other non-zero code (e.g. 10001 params error), with ``retMsg``.
    """
    if not isinstance(payload, dict):
        raise ctx.error("response is not a JSON object", field="body")
    code = ctx.integer(ctx.require(payload, "retCode"), "retCode")
    if code == 0:
        return code
    message = f"retCode {code}: {payload.get('retMsg')!r}"
    if code in TRANSIENT_RET_CODES:
        raise TransientSourceError(ctx.source, f"{message} ({TRANSIENT_RET_CODES[code]})",
                                   endpoint=ctx.endpoint, symbol=ctx.symbol, field="retCode")
    raise ctx.error(message, field="retCode")


def response_time(payload: Any, ctx: ResponseContext) -> pd.Timestamp:
    """The envelope's ``time`` (server time, ms; an integer or a numeric string)."""
    value = ctx.require(payload, "time")
    return pd.Timestamp(ms_column([value], "time", ctx)[0])


def _result(payload: Any, ctx: ResponseContext) -> dict:
    check_ret_code(payload, ctx)
    result = ctx.require(payload, "result")
    if not isinstance(result, dict):
        raise ctx.error("response field 'result' is not an object", field="result")
    return result


def _rows(result: dict, ctx: ResponseContext) -> list:
    return ctx.require_list(result, "list", where="result")


def _check_symbol(found: Any, symbol: str | None, ctx: ResponseContext) -> str:
    if not isinstance(found, str) or not found:
        raise ctx.error(f"symbol is not a name: {found!r}", field="symbol")
    if symbol is not None and found != symbol:
        raise ctx.error(f"asked for {symbol}, the response is for {found}", field="symbol")
    return found


def _symbol_column(rows: list, symbol: str | None, ctx: ResponseContext) -> str | None:
    """Per-row ``symbol`` fields must all name the requested symbol (or agree with each other)."""
    names = set(dict_column(rows, "symbol", ctx))
    if len(names) > 1:
        raise ctx.error(f"rows for several symbols: {sorted(map(str, names))}", field="symbol")
    return _check_symbol(names.pop(), symbol, ctx) if names else symbol


def _frame(columns: list[str], data: dict[str, Any], n: int) -> pd.DataFrame:
    out = {}
    for column in columns:
        value = data[column]
        if isinstance(value, str):
            value = pd.Series([value] * n, dtype=str)
        out[column] = value
    return pd.DataFrame(out, columns=columns)


def _kline_page(
    payload: Any, ctx: ResponseContext, symbol: str | None, interval: str
) -> tuple[pd.DataFrame, pd.Timestamp | None]:
    """Every row of one kline response (in-progress bar included) and the response time."""
    result = _result(payload, ctx)
    rows = _rows(result, ctx)
    if "symbol" in result:
        symbol = _check_symbol(result["symbol"], symbol, ctx)
    server_time = response_time(payload, ctx) if "time" in payload else None
    matrix = _kline_matrix(rows)
    if matrix is not None:
        data = {
            "open_time": (matrix[:, 0].astype(np.int64) * 1_000_000).view("datetime64[ns]"),
            **{name: matrix[:, j] for j, name in enumerate(KLINE_COLUMNS[3:], start=1)},
        }
    else:
        data = _kline_columns(rows, ctx)
    frame = _frame(KLINE_COLUMNS, {"symbol": symbol or "", "interval": interval, **data},
                   len(rows))
    # The whole page, the bar in progress included: one impossible row spoils the answer.
    high, low = frame["high"], frame["low"]
    check_rows(
        frame, ctx, key="open_time", key_field="startTime", not_after=server_time,
        ranges={c: (f, PRICE if "Price" in f else SIZE)
                for c, f in zip(KLINE_COLUMNS[3:], KLINE_FIELDS[1:], strict=True)},
        rules=[("highPrice", high < low, "highPrice {high} is below lowPrice {low}")] + [
            (f"{c}Price", (frame[c] < low) | (frame[c] > high),
             f"{c}Price {{{c}}} is outside [lowPrice {{low}}, highPrice {{high}}]")
            for c in ("open", "close")
        ],
    )
    return frame, server_time


def _kline_matrix(rows: list) -> np.ndarray | None:
    """Every row as one float64 matrix when all are well-formed (the usual page), else None:
    :func:`_kline_columns` then finds and names the bad value."""
    if not rows or any(type(row) is not list or len(row) != len(KLINE_FIELDS) for row in rows):
        return None
    # Strings only: numpy would also read a JSON true as 1.0.
    if {type(value) for row in rows for value in row} != {str}:
        return None
    try:
        matrix = np.array(rows, dtype=np.float64)
    except ValueError:
        return None
    start = matrix[:, 0]
    if not np.isfinite(matrix).all() or (
        (start != np.floor(start)) | (start < 0) | (start > MAX_EPOCH_MS)
    ).any():
        return None
    return matrix


def _kline_columns(rows: list, ctx: ResponseContext) -> dict[str, np.ndarray]:
    """Kline rows column by column, naming the first missing or unusable value."""
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise ctx.error(f"kline row {i} is not an array: {row!r}", field="list")
        if len(row) < len(KLINE_FIELDS):
            missing = KLINE_FIELDS[len(row)]
            raise ctx.error(f"kline row {i} lacks field {missing!r} (has {len(row)} of 7)",
                            field=missing)
    columns = []
    for j, name in enumerate(KLINE_FIELDS):
        values = [row[j] for row in rows]
        for i, value in enumerate(values):
            if value is None:
                raise ctx.error(f"kline row {i} lacks field {name!r}", field=name)
        columns.append(values)
    return {
        "open_time": ms_column(columns[0], KLINE_FIELDS[0], ctx),
        **{
            name: float_column(values, field, ctx)
            for name, values, field in zip(
                KLINE_COLUMNS[3:], columns[1:], KLINE_FIELDS[1:], strict=True
            )
        },
    }


def _closed(frame: pd.DataFrame, interval_ms: int, server_time: pd.Timestamp | None,
            ctx: ResponseContext) -> pd.DataFrame:
    if server_time is None:
        raise ctx.error("response lacks field 'time', needed to drop the bar in progress",
                        field="time")
    # The exchange serves the bar still in progress as the newest row: keep only bars whose
    # close (open + interval) is not after the server's clock.
    closes = frame["open_time"] + pd.Timedelta(milliseconds=interval_ms)
    return frame.loc[closes <= server_time]


def _tidy(frame: pd.DataFrame, key: str, ctx: ResponseContext, payload: Any = None,
          **checks: Any) -> pd.DataFrame:
    """Validate the rows (:func:`~sentiment.io.sources.http.check_rows` with ``checks``; the
    response's ``time``, when ``payload`` carries one, bounds the keys), then sort them by
    ``key`` and keep one of each exact duplicate."""
    has_time = isinstance(payload, dict) and "time" in payload
    check_rows(frame, ctx, key=key, key_field=KEY_FIELDS[key],
               not_after=response_time(payload, ctx) if has_time else None, **checks)
    return (
        frame.sort_values(key, kind="stable")
        .drop_duplicates(subset=[key], keep="first")
        .reset_index(drop=True)
    )


def parse_klines(
    payload: Any,
    *,
    interval: str | int,
    symbol: str | None = None,
    closed_only: bool = True,
    ctx: ResponseContext | None = None,
) -> pd.DataFrame:
    """Rows of one GET /v5/market/kline response, ascending by ``open_time``.

    ``closed_only`` drops a bar that has not closed by the response's ``time``.
    """
    code, length = kline_interval_ms(interval)
    ctx = ctx or ResponseContext(SOURCE, KLINE_PATH, symbol)
    frame, server_time = _kline_page(payload, ctx, symbol, code)
    if closed_only:
        frame = _closed(frame, length, server_time, ctx)
    return _tidy(frame, "open_time", ctx)


def parse_funding(
    payload: Any, *, symbol: str | None = None, ctx: ResponseContext | None = None
) -> pd.DataFrame:
    """Rows of one GET /v5/market/funding/history response, ascending by ``funding_time``."""
    ctx = ctx or ResponseContext(SOURCE, FUNDING_PATH, symbol)
    rows = _rows(_result(payload, ctx), ctx)
    symbol = _symbol_column(rows, symbol, ctx)
    frame = _frame(
        FUNDING_COLUMNS,
        {
            "symbol": symbol or "",
            "funding_time": ms_column(
                dict_column(rows, "fundingRateTimestamp", ctx), "fundingRateTimestamp", ctx
            ),
            "funding_rate": float_column(
                dict_column(rows, "fundingRate", ctx), "fundingRate", ctx
            ),
        },
        len(rows),
    )
    return _tidy(frame, "funding_time", ctx, payload,
                 ranges={"funding_rate": ("fundingRate", FUNDING)})


def parse_open_interest(
    payload: Any,
    *,
    interval_time: str,
    symbol: str | None = None,
    ctx: ResponseContext | None = None,
) -> pd.DataFrame:
    """Rows of one GET /v5/market/open-interest response, ascending by ``ts``."""
    ctx = ctx or ResponseContext(SOURCE, OPEN_INTEREST_PATH, symbol)
    result = _result(payload, ctx)
    rows = _rows(result, ctx)
    if "symbol" in result:
        symbol = _check_symbol(result["symbol"], symbol, ctx)
    frame = _frame(
        OPEN_INTEREST_COLUMNS,
        {
            "symbol": symbol or "",
            "interval": interval_time,
            "ts": ms_column(dict_column(rows, "timestamp", ctx), "timestamp", ctx),
            "open_interest": float_column(
                dict_column(rows, "openInterest", ctx), "openInterest", ctx
            ),
        },
        len(rows),
    )
    return _tidy(frame, "ts", ctx, payload, ranges={"open_interest": ("openInterest", SIZE)})


def parse_long_short(
    payload: Any,
    *,
    period: str,
    symbol: str | None = None,
    ctx: ResponseContext | None = None,
) -> pd.DataFrame:
    """Rows of one GET /v5/market/account-ratio response, ascending by ``ts``."""
    ctx = ctx or ResponseContext(SOURCE, ACCOUNT_RATIO_PATH, symbol)
    rows = _rows(_result(payload, ctx), ctx)
    symbol = _symbol_column(rows, symbol, ctx)
    frame = _frame(
        LONG_SHORT_COLUMNS,
        {
            "symbol": symbol or "",
            "period": period,
            "ts": ms_column(dict_column(rows, "timestamp", ctx), "timestamp", ctx),
            "buy_ratio": float_column(dict_column(rows, "buyRatio", ctx), "buyRatio", ctx),
            "sell_ratio": float_column(dict_column(rows, "sellRatio", ctx), "sellRatio", ctx),
        },
        len(rows),
    )
    return _tidy(
        frame, "ts", ctx, payload,
        ranges={"buy_ratio": ("buyRatio", RATIO), "sell_ratio": ("sellRatio", RATIO)},
        rules=[("buyRatio",
                (frame["buy_ratio"] + frame["sell_ratio"] - 1).abs() > RATIO_SUM_TOLERANCE,
                "buyRatio {buy_ratio} + sellRatio {sell_ratio} is not 1")],
    )


def parse_tickers(
    payload: Any, *, symbol: str | None = None, ctx: ResponseContext | None = None
) -> pd.DataFrame:
    """Rows of one GET /v5/market/tickers response, one per symbol, sorted by symbol.

    ``ts`` is the response's ``time``. Fields that do not apply arrive as ``""`` and become
    NaN / NaT (a ``nextFundingTime`` of ``"0"`` too); a field absent altogether (a spot ticker
    has no mark price) is NaN as well. ``symbol`` and ``lastPrice`` are required.
    """
    ctx = ctx or ResponseContext(SOURCE, TICKERS_PATH, symbol)
    rows = _rows(_result(payload, ctx), ctx)
    ts = response_time(payload, ctx)
    names = dict_column(rows, "symbol", ctx)
    for name in names:
        _check_symbol(name, symbol, ctx)
    dict_column(rows, "lastPrice", ctx)
    data: dict[str, Any] = {
        "symbol": pd.Series(names, dtype=str),
        "ts": np.full(len(rows), ts.to_datetime64(), dtype="datetime64[ns]"),
    }
    for field, column in TICKER_FIELDS.items():
        values = dict_column(rows, field, ctx, optional=True)
        if column == "next_funding_time":
            values = [None if str(v).strip() == "0" else v for v in values]
            data[column] = ms_column(values, field, ctx, allow_empty=True)
        else:
            data[column] = float_column(values, field, ctx, allow_empty=True)
    frame = _frame(TICKER_COLUMNS, data, len(rows))
    return _tidy(
        frame, "symbol", ctx,
        ranges={c: (FIELD_OF_TICKER_COLUMN[c], r) for c, r in TICKER_RANGES.items()},
        rules=[("highPrice24h", frame["high_price_24h"] < frame["low_price_24h"],
                "highPrice24h {high_price_24h} is below lowPrice24h {low_price_24h}")],
    )


# --------------------------------------------------------------------------------------------
# Client


class BybitClient(RestClient):
    """Bybit V5 public market-data client (one ``requests.Session``).

    Parameters
    ----------
    base_url : str
        ``https://api.bybit.com`` or the replay exchange's URL (``BYBIT_BASE_URL``).
    category : str
        Product category: ``linear`` (USDT perpetuals), ``inverse`` or ``spot``.
    timeout : float
        Seconds to connect and for each read.
    max_retries, backoff_base, backoff_max : int, float, float
        Retries of transient faults and their jittered exponential backoff (seconds).
    sleep, rng : callable
        ``time.sleep`` and ``random.random``; tests pass fakes so they never wait.
    """

    SOURCE = SOURCE
    DISPLAY_NAME = "Bybit"
    RATE_LIMIT = RATE_LIMIT

    def __init__(self, base_url: str, *, category: str = "linear", **retry: Any):
        super().__init__(base_url.rstrip("/"), **retry)
        self.category = category

    # -- transport -------------------------------------------------------------------------

    def _check(
        self, payload: Any, response: requests.Response, ctx: ResponseContext
    ) -> Retry | None:
        try:
            check_ret_code(payload, ctx)
        except TransientSourceError as exc:
            hint = None
            reset = response.headers.get("X-Bapi-Limit-Reset-Timestamp")
            if reset:
                try:
                    hint = self.transport.seconds_until(float(reset))
                except ValueError:
                    hint = None
            return Retry(exc.reason, hint)
        return None

    def _get(self, path: str, params: dict[str, Any], symbol: str | None) -> Any:
        return self.transport.get_json(
            self.base_url + path,
            {"category": self.category, **params},
            endpoint=path,
            symbol=symbol,
            check=self._check,
        )

    # -- endpoints -------------------------------------------------------------------------

    def server_time(self) -> pd.Timestamp:
        """The exchange's clock (GET /v5/market/time), naive UTC."""
        ctx = ResponseContext(SOURCE, TIME_PATH)
        payload = self.transport.get_json(
            self.base_url + TIME_PATH, None, endpoint=TIME_PATH, check=self._check
        )
        result = _result(payload, ctx)
        nanos = result.get("timeNano")
        if nanos is not None:
            return pd.Timestamp(ctx.integer(nanos, "timeNano"), unit="ns")
        return response_time(payload, ctx)

    def klines(
        self,
        symbol: str,
        interval: str | int,
        start: Any,
        end: Any,
        *,
        closed_only: bool = True,
    ) -> pd.DataFrame:
        """Candles with ``start <= open_time < end`` (GET /v5/market/kline).

        ``closed_only`` drops the bar still in progress at the exchange's clock.
        """
        code, length = kline_interval_ms(interval)
        start_ts, end_ts = _range(start, end)
        ctx = ResponseContext(SOURCE, KLINE_PATH, symbol)
        frames: list[pd.DataFrame] = []

        def fetch(page_start: int, page_end: int) -> pd.DataFrame:
            # API limit: 1000 candles per page; the range is inclusive [start, end] in ms.
            payload = self._get(
                KLINE_PATH,
                {"symbol": symbol, "interval": code, "start": page_start, "end": page_end,
                 "limit": KLINE_PAGE},
                symbol,
            )
            page, server_time = _kline_page(payload, ctx, symbol, code)
            frames.append(_closed(page, length, server_time, ctx) if closed_only else page)
            return page

        if start_ts < end_ts:
            _page_by_end(fetch, start_ts, end_ts, KLINE_PAGE, "open_time", ctx)
        return _assemble(frames, KLINE_COLUMNS, "open_time", start_ts, end_ts,
                         {"symbol": symbol, "interval": code}, ctx)

    def funding_history(self, symbol: str, start: Any, end: Any) -> pd.DataFrame:
        """Settled funding rates with ``start <= funding_time < end``."""
        start_ts, end_ts = _range(start, end)
        ctx = ResponseContext(SOURCE, FUNDING_PATH, symbol)
        frames: list[pd.DataFrame] = []

        def fetch(page_start: int, page_end: int) -> pd.DataFrame:
            # API limit: 200 rows per page; startTime alone is an error, so always send both.
            payload = self._get(
                FUNDING_PATH,
                {"symbol": symbol, "startTime": page_start, "endTime": page_end,
                 "limit": FUNDING_PAGE},
                symbol,
            )
            page = parse_funding(payload, symbol=symbol, ctx=ctx)
            frames.append(page)
            return page

        if start_ts < end_ts:
            _page_by_end(fetch, start_ts, end_ts, FUNDING_PAGE, "funding_time", ctx)
        return _assemble(frames, FUNDING_COLUMNS, "funding_time", start_ts, end_ts,
                         {"symbol": symbol}, ctx)

    def open_interest(self, symbol: str, interval_time: str, start: Any, end: Any
                      ) -> pd.DataFrame:
        """Open interest (base coin) per ``interval_time`` with ``start <= ts < end``."""
        interval_time = _check_period(interval_time, "intervalTime")
        start_ts, end_ts = _range(start, end)
        ctx = ResponseContext(SOURCE, OPEN_INTEREST_PATH, symbol)
        frames: list[pd.DataFrame] = []
        if start_ts < end_ts:
            # API limit: 200 rows per page, further pages through cursor/nextPageCursor.
            self._page_by_cursor(
                OPEN_INTEREST_PATH,
                {"symbol": symbol, "intervalTime": interval_time},
                OPEN_INTEREST_PAGE,
                lambda payload: parse_open_interest(
                    payload, interval_time=interval_time, symbol=symbol, ctx=ctx
                ),
                frames, start_ts, end_ts, ctx,
            )
        return _assemble(frames, OPEN_INTEREST_COLUMNS, "ts", start_ts, end_ts,
                         {"symbol": symbol, "interval": interval_time}, ctx)

    def long_short_ratio(self, symbol: str, period: str, start: Any, end: Any) -> pd.DataFrame:
        """Share of accounts long / short per ``period`` with ``start <= ts < end``."""
        period = _check_period(period, "period")
        start_ts, end_ts = _range(start, end)
        ctx = ResponseContext(SOURCE, ACCOUNT_RATIO_PATH, symbol)
        frames: list[pd.DataFrame] = []
        if start_ts < end_ts:
            # API limit: 500 rows per page, further pages through cursor/nextPageCursor;
            # startTime/endTime are accepted too and keep the cursor inside the range.
            self._page_by_cursor(
                ACCOUNT_RATIO_PATH,
                {"symbol": symbol, "period": period},
                ACCOUNT_RATIO_PAGE,
                lambda payload: parse_long_short(payload, period=period, symbol=symbol,
                                                 ctx=ctx),
                frames, start_ts, end_ts, ctx,
            )
        return _assemble(frames, LONG_SHORT_COLUMNS, "ts", start_ts, end_ts,
                         {"symbol": symbol, "period": period}, ctx)

    def tickers(self, symbol: str | None = None) -> pd.DataFrame:
        """Latest ticker of ``symbol``, or of every symbol of the category when ``None``."""
        ctx = ResponseContext(SOURCE, TICKERS_PATH, symbol)
        params = {"symbol": symbol} if symbol else {}
        payload = self._get(TICKERS_PATH, params, symbol)
        return parse_tickers(payload, symbol=symbol, ctx=ctx)

    # -- paging ----------------------------------------------------------------------------

    def _page_by_cursor(
        self,
        path: str,
        params: dict[str, Any],
        limit: int,
        parse: Callable[[Any], pd.DataFrame],
        frames: list[pd.DataFrame],
        start: pd.Timestamp,
        end: pd.Timestamp,
        ctx: ResponseContext,
    ) -> None:
        """Follow ``nextPageCursor`` backwards until the pages reach ``start``."""
        base = {**params, "startTime": to_epoch_ms(start), "endTime": to_epoch_ms(end) - 1,
                "limit": limit}
        cursor: str | None = None
        oldest_seen: pd.Timestamp | None = None
        while True:
            payload = self._get(path, {**base, **({"cursor": cursor} if cursor else {})},
                                ctx.symbol)
            page = parse(payload)
            frames.append(page)
            cursor = payload["result"].get("nextPageCursor") or None
            if page.empty or len(page) < limit or not cursor:
                return
            oldest = page["ts"].iloc[0]
            if oldest <= start:
                return
            if oldest_seen is not None and oldest >= oldest_seen:
                log.warning("%s %s %s: cursor %r brought no older row; stopping",
                            ctx.source, path, ctx.symbol, cursor)
                return
            oldest_seen = oldest


def _range(start: Any, end: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    return to_utc(start, name="start"), to_utc(end, name="end")


def _page_by_end(
    fetch: Callable[[int, int], pd.DataFrame],
    start: pd.Timestamp,
    end: pd.Timestamp,
    limit: int,
    key: str,
    ctx: ResponseContext,
) -> None:
    """Read ``[start, end)`` backwards: each full page asks again up to its oldest row - 1 ms."""
    start_ms = to_epoch_ms(start)
    page_end = to_epoch_ms(end) - 1
    oldest_seen: pd.Timestamp | None = None
    while page_end >= start_ms:
        page = fetch(start_ms, page_end)
        if len(page) < limit:
            return
        oldest = page[key].min()
        if oldest <= start:
            return
        if oldest_seen is not None and oldest >= oldest_seen:
            log.warning("%s %s %s: page ending %d brought no older row; stopping",
                        ctx.source, ctx.endpoint, ctx.symbol, page_end)
            return
        oldest_seen = oldest
        page_end = to_epoch_ms(oldest) - 1


def _assemble(
    frames: list[pd.DataFrame],
    columns: list[str],
    key: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    labels: dict[str, str],
    ctx: ResponseContext,
) -> pd.DataFrame:
    """Concatenate pages, keep ``[start, end)``, sort ascending, de-duplicate on the key
    (rows of two pages with one key and different values are an error too)."""
    frames = [f for f in frames if not f.empty]
    if not frames:
        return _empty(columns, labels)
    frame = pd.concat(frames, ignore_index=True)
    frame = frame.loc[(frame[key] >= start) & (frame[key] < end)]
    if frame.empty:
        return _empty(columns, labels)
    return _tidy(frame, key, ctx)[columns]


def _empty(columns: list[str], labels: dict[str, str]) -> pd.DataFrame:
    data: dict[str, Any] = {}
    for column in columns:
        if column in labels or column in ("symbol", "interval", "period"):
            data[column] = pd.Series([], dtype=str)
        elif column in ("open_time", "funding_time", "ts", "next_funding_time"):
            data[column] = np.empty(0, dtype="datetime64[ns]")
        else:
            data[column] = np.empty(0, dtype=np.float64)
    return pd.DataFrame(data, columns=columns)
