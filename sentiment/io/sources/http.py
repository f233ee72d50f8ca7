"""Shared HTTP transport and response-parsing helpers for the REST clients.

The clients use :mod:`requests` rather than pybit's HTTP client because pybit sleeps on a
Bybit rate-limit answer (retCode 10006) by itself, does not retry non-200 answers (HTTP 429,
5xx) and hides a body that is not JSON behind a generic error. Here every fault is either
retried with jittered exponential backoff or raised as a :class:`~sentiment.errors.SourceError`
that names the source, endpoint, symbol and field.

What lives here:

* :class:`TokenBucket` and :func:`bucket_for` -- a client-side rate limiter shared by every
  client of the same source and host within the process, thread-safe;
* :class:`HttpTransport` -- one ``requests.Session`` per client, with :meth:`~HttpTransport.
  get_json` doing the rate limiting, the retries and the JSON decoding;
* :class:`ResponseContext` and the column converters -- turn the strings the APIs send into
  float64 / ``datetime64[ns]`` columns, or say exactly which value is wrong;
* :func:`to_utc` -- the one way the clients read a ``start`` / ``end`` argument.

Nothing here imports Dagster, Streamlit or DuckDB.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Self
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import requests
import urllib3

from sentiment.core.timeutil import naive_utc
from sentiment.errors import SourceBlockedError, SourceError, TransientSourceError
from sentiment.io.retry import SOURCES

log = logging.getLogger(__name__)

#: First characters of an unusable body quoted in an error message.
BODY_EXCERPT_CHARS = 100
#: The largest response body read (Bybit's biggest page, 1000 klines, is about 100 kB; the
#: full Fear & Greed history about 300 kB). A larger one is refused, never held in memory.
MAX_BODY_BYTES = 16 * 1024 * 1024
_CHUNK = 64 * 1024

#: Largest Unix time in milliseconds that ``datetime64[ns]`` can hold (year 2262).
MAX_EPOCH_MS = np.iinfo(np.int64).max // 1_000_000


# --------------------------------------------------------------------------------------------
# Rate limiting


class TokenBucket:
    """Thread-safe token bucket: ``capacity`` requests at once, refilled at ``rate`` per second.

    :meth:`acquire` reserves a token and sleeps until it is due, outside the lock, so threads
    that share a bucket wait their turn without holding each other up.

    Parameters
    ----------
    capacity : float
        Largest burst (tokens available after an idle period).
    rate : float
        Tokens added per second.
    clock, sleep : callable
        Monotonic clock and sleep; injectable for tests.
    """

    def __init__(
        self,
        capacity: float,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
    ):
        if capacity < 1 or rate <= 0:
            raise ValueError(f"token bucket needs capacity >= 1 and rate > 0: {capacity}, {rate}")
        self.capacity = float(capacity)
        self.rate = float(rate)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(capacity)
        self._updated = clock()

    def reserve(self) -> float:
        """Take one token and return how many seconds the caller must wait before using it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1.0
            # A negative balance is a queue of reservations: each waits for its own token.
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> float:
        """Wait for a token; return the time waited (seconds)."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


@dataclass(frozen=True)
class RateLimit:
    """A server's published request limit, and how this process spends it.

    The bucket refills at ``headroom * requests / per_seconds`` per second and holds
    ``burst`` tokens (default: one second of refill). A bucket of capacity C refilled at r/s
    lets through at most C + r*T requests in any window of T seconds: choose both so that
    stays under the published limit.
    """

    requests: int
    per_seconds: float
    headroom: float = 0.8
    burst: int | None = None

    @property
    def rate(self) -> float:
        return self.requests * self.headroom / self.per_seconds

    def bucket(self) -> TokenBucket:
        capacity = self.burst if self.burst is not None else max(1.0, self.rate)
        return TokenBucket(capacity=capacity, rate=self.rate)


_BUCKETS: dict[tuple[str, str], TokenBucket] = {}
_BUCKETS_LOCK = threading.Lock()


def bucket_for(source: str, url: str, limit: RateLimit) -> TokenBucket:
    """The process-wide bucket of ``source`` at the host of ``url`` (created on first use).

    Limits are per IP on the server side, so every client of the same host shares one bucket.
    The source is part of the key because the replay exchange serves Bybit and Fear & Greed
    from one loopback host, and the two real services have different limits.
    """
    key = (source, urlsplit(url).netloc.lower())
    with _BUCKETS_LOCK:
        bucket = _BUCKETS.get(key)
        if bucket is None:
            bucket = _BUCKETS[key] = limit.bucket()
        return bucket


# --------------------------------------------------------------------------------------------
# Transport


@dataclass(frozen=True)
class Retry:
    """Returned by a response check: the answer is a transient fault worth retrying.

    ``delay`` is the server's own hint (seconds), used when it is longer than the backoff.
    """

    cause: str
    delay: float | None = None


#: A response check: inspects the decoded body, raises SourceError for a fatal answer,
#: returns a :class:`Retry` for a transient one, ``None`` when the body is usable.
Check = Callable[[Any, requests.Response, "ResponseContext"], "Retry | None"]


class HttpTransport:
    """GET-and-decode with rate limiting and retries; one ``requests.Session`` per client.

    Parameters
    ----------
    source : str
        Source name used in errors (``bybit``, ``fear_greed``).
    display_name : str
        How users know the service, for the HTTP 403 message ("Bybit", "alternative.me").
    rate_limit : RateLimit
        The service's published limit; the bucket is shared per host within the process.
    timeout : float
        Seconds for connecting and for each read.
    max_retries : int
        Retries after the first attempt (so at most ``max_retries + 1`` requests).
    backoff_base, backoff_max : float
        Backoff before retry ``n`` (0-based) is drawn from
        ``[b/2, b]`` with ``b = min(backoff_max, backoff_base * 2**n)``: it grows with every
        retry, and the jitter keeps clients that failed together from retrying together.
    sleep, rng, now : callable
        ``time.sleep``, ``random.random`` and ``time.time``; injectable so tests never wait.
    """

    def __init__(
        self,
        source: str,
        *,
        display_name: str,
        rate_limit: RateLimit,
        timeout: float = SOURCES.timeout_seconds,
        max_retries: int = SOURCES.max_retries,
        backoff_base: float = SOURCES.backoff_base_seconds,
        backoff_max: float = SOURCES.backoff_max_seconds,
        sleep: Callable[[float], Any] = time.sleep,
        rng: Callable[[], float] = random.random,
        now: Callable[[], float] = time.time,
        session: requests.Session | None = None,
    ):
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if timeout <= 0 or backoff_base < 0 or backoff_max < 0:
            raise ValueError("timeout must be > 0 and backoff times >= 0")
        self.source = source
        self.display_name = display_name
        self.rate_limit = rate_limit
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep
        self._rng = rng
        self._now = now
        self.session = session or requests.Session()
        self.session.headers.setdefault("Accept", "application/json")
        self.session.headers["User-Agent"] = "market-sentiment-tracker/0.1"

    def close(self) -> None:
        self.session.close()

    def backoff(self, retry: int) -> float:
        """Jittered exponential delay before retry number ``retry`` (0-based)."""
        ceiling = min(self.backoff_max, self.backoff_base * (2.0**retry))
        return ceiling / 2.0 + self._rng() * ceiling / 2.0

    def get_json(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        *,
        source: str | None = None,
        endpoint: str,
        symbol: str | None = None,
        check: Check | None = None,
    ) -> Any:
        """GET ``url`` and return the decoded JSON body.

        Retries HTTP 429 and 5xx, timeouts and connection errors, and whatever ``check``
        reports as transient. HTTP 403 raises :class:`SourceBlockedError` at once: the
        server refuses this IP, and retrying would only lengthen a ban.

        Raises
        ------
        SourceBlockedError
            HTTP 403.
        TransientSourceError
            Every attempt failed with a transient fault; names the last cause.
        SourceError
            Any other HTTP status, a body that is not JSON (``field="body"``) or a fatal
            answer reported by ``check``.
        """
        ctx = ResponseContext(source or self.source, endpoint, symbol)
        bucket = bucket_for(ctx.source, url, self.rate_limit)
        cause = "no attempt made"
        hint: float | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._sleep(self._retry_delay(attempt - 1, hint))
                hint = None
            bucket.acquire()
            # ``timeout`` is the attempt's total deadline: connect, headers and the whole
            # body (requests' own timeout only bounds each socket read, so a peer trickling
            # one byte at a time could keep an attempt alive for minutes).
            deadline = time.monotonic() + self.timeout
            try:
                response = self.session.get(url, params=params, timeout=self.timeout,
                                            stream=True)
                try:
                    # requests' own cache of the body (what .content and .text return), filled
                    # here under the deadline and the cap instead of by requests.
                    response._content = _read_body(response, deadline, ctx)
                finally:
                    response.close()
            except (requests.Timeout, urllib3.exceptions.TimeoutError, _DeadlineError) as exc:
                cause = f"timed out after {self.timeout:g} s ({type(exc).__name__})"
                self._log_retry(ctx, attempt, cause)
                continue
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                    urllib3.exceptions.HTTPError) as exc:
                # ChunkedEncodingError: the connection dropped while the body was being read.
                cause = f"connection failed ({type(exc).__name__}: {exc})"
                self._log_retry(ctx, attempt, cause)
                continue
            status = response.status_code
            if status == 403:
                raise SourceBlockedError(
                    ctx.source,
                    f"{self.display_name} refused this IP (HTTP 403): rate-limit ban or region "
                    "block; stopping",
                    endpoint=endpoint,
                    symbol=symbol,
                )
            if status == 429 or 500 <= status <= 599:
                cause = f"HTTP {status}: {_excerpt(response.text)}"
                hint = _retry_after(response)
                self._log_retry(ctx, attempt, cause)
                continue
            if status != 200:
                raise ctx.error(f"unexpected HTTP {status}: {_excerpt(response.text)}")
            payload = _decode(response, ctx)
            if check is not None:
                verdict = check(payload, response, ctx)
                if verdict is not None:
                    cause, hint = verdict.cause, verdict.delay
                    self._log_retry(ctx, attempt, cause)
                    continue
            return payload
        raise TransientSourceError(
            ctx.source,
            f"gave up after {self.max_retries + 1} attempt(s); last cause: {cause}",
            endpoint=endpoint,
            symbol=symbol,
        )

    def _retry_delay(self, retry: int, hint: float | None) -> float:
        delay = self.backoff(retry)
        if hint is not None and hint > delay:
            # The server said when to come back: wait that long, but never beyond the cap.
            delay = min(hint, self.backoff_max)
        return delay

    def _log_retry(self, ctx: ResponseContext, attempt: int, cause: str) -> None:
        if attempt < self.max_retries:
            log.warning(
                "%s %s%s: %s; retry %d of %d",
                ctx.source,
                ctx.endpoint,
                f" {ctx.symbol}" if ctx.symbol else "",
                cause,
                attempt + 1,
                self.max_retries,
            )

    def seconds_until(self, epoch_ms: float) -> float:
        """Seconds from now until a Unix time in milliseconds (negative when past)."""
        return epoch_ms / 1000.0 - self._now()


class RestClient:
    """What every REST client shares: one :class:`HttpTransport` built from the retry
    settings, closed with the client (``with`` works). Subclasses name the service."""

    SOURCE: str
    DISPLAY_NAME: str
    RATE_LIMIT: RateLimit

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = SOURCES.timeout_seconds,
        max_retries: int = SOURCES.max_retries,
        backoff_base: float = SOURCES.backoff_base_seconds,
        backoff_max: float = SOURCES.backoff_max_seconds,
        sleep: Callable[[float], Any] = time.sleep,
        rng: Callable[[], float] = random.random,
    ):
        self.base_url = base_url
        self.transport = HttpTransport(
            self.SOURCE,
            display_name=self.DISPLAY_NAME,
            rate_limit=self.RATE_LIMIT,
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            sleep=sleep,
            rng=rng,
        )

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _DeadlineError(Exception):
    """An attempt's total deadline passed while its body was still arriving."""


def _read_body(response: requests.Response, deadline: float, ctx: ResponseContext) -> bytes:
    """The whole (decoded) body before ``deadline``, at most :data:`MAX_BODY_BYTES`.

    Each socket read may wait only until the deadline, so the attempt ends on time however
    slowly the peer sends.
    """
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ctx.error(f"response body of {int(declared):,} bytes is over the "
                        f"{MAX_BODY_BYTES:,}-byte cap", field="body")
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _DeadlineError(f"body still arriving after {size:,} bytes")
        if sock is not None:
            sock.settimeout(remaining)
        # read1: whatever has arrived (read() would wait to fill the whole chunk).
        chunk = response.raw.read1(_CHUNK, decode_content=True)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ctx.error(f"response body over the {MAX_BODY_BYTES:,}-byte cap",
                            field="body")
        chunks.append(chunk)


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > BODY_EXCERPT_CHARS:
        text = text[:BODY_EXCERPT_CHARS] + "..."
    return repr(text)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _decode(response: requests.Response, ctx: ResponseContext) -> Any:
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        raise ctx.error(
            f"response is not JSON: {_excerpt(response.text)}", field="body"
        ) from None
    except RecursionError:  # json's recursive decoder on a hostile nesting depth
        raise ctx.error("response JSON is nested too deeply to decode", field="body") from None


# --------------------------------------------------------------------------------------------
# Parsing


@dataclass(frozen=True)
class ResponseContext:
    """Where a response came from, so every error can say so."""

    source: str
    endpoint: str
    symbol: str | None = None

    def error(self, message: str, *, field: str | None = None) -> SourceError:
        return SourceError(
            self.source, message, endpoint=self.endpoint, symbol=self.symbol, field=field
        )

    def require(self, mapping: Any, key: str, *, where: str = "response") -> Any:
        """``mapping[key]``, or a SourceError naming ``key`` when it is absent or null."""
        if not isinstance(mapping, Mapping):
            raise self.error(f"{where} is not an object: {_excerpt(repr(mapping))}", field=key)
        value = mapping.get(key)
        if value is None:
            raise self.error(f"{where} lacks field {key!r}", field=key)
        return value

    def require_list(self, mapping: Any, key: str, *, where: str = "response") -> list:
        value = self.require(mapping, key, where=where)
        if not isinstance(value, list):
            raise self.error(f"{where} field {key!r} is not a list", field=key)
        return value

    def integer(self, value: Any, field: str) -> int:
        """An integer sent as a JSON number or a numeric string (ccxt recordings do that)."""
        if isinstance(value, bool):
            raise self.error(f"{field} is not an integer: {value!r}", field=field)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise self.error(f"{field} is not an integer: {value!r}", field=field)


def dict_column(rows: Sequence[Any], key: str, ctx: ResponseContext, *, optional=False) -> list:
    """The values of ``key`` in every row; a missing or null value is an error naming ``key``.

    With ``optional=True`` a missing key gives ``None`` (read as NaN/NaT by the converters).
    """
    values = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ctx.error(f"row {i} is not an object: {_excerpt(repr(row))}", field=key)
        value = row.get(key)
        if value is None and not optional:
            raise ctx.error(f"row {i} lacks field {key!r}", field=key)
        values.append(value)
    return values


def float_column(
    values: Sequence[Any], field: str, ctx: ResponseContext, *, allow_empty: bool = False
) -> np.ndarray:
    """Numbers sent as strings (or JSON numbers) -> float64; the first bad value is an error.

    ``allow_empty`` reads ``""`` and ``None`` as NaN (Bybit sends ``""`` for fields that do not
    apply, e.g. a perpetual's delivery price). NaN and infinities are never accepted.
    """
    out = None
    if all(type(v) is str for v in values):
        # Fast path for the usual page of decimal strings: one C-level conversion.
        try:
            out = np.array(values, dtype=np.float64)
        except ValueError:
            out = None
    if out is None:
        out = np.empty(len(values), dtype=np.float64)
        for i, value in enumerate(values):
            if allow_empty and (value is None or value == ""):
                out[i] = np.nan
                continue
            try:
                if isinstance(value, bool):
                    raise TypeError
                out[i] = float(value)
            except (TypeError, ValueError):
                raise ctx.error(
                    f"{field} is not a number: {value!r} (row {i})", field=field
                ) from None
    bad = ~np.isfinite(out)
    if allow_empty:
        bad &= np.array([not (v is None or v == "") for v in values], dtype=bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ctx.error(f"{field} is not a number: {values[i]!r} (row {i})", field=field)
    return out


def ms_column(
    values: Sequence[Any], field: str, ctx: ResponseContext, *, allow_empty: bool = False
) -> np.ndarray:
    """Unix times in milliseconds (strings or numbers) -> naive-UTC ``datetime64[ns]``."""
    return _epoch_column(values, field, ctx, unit_ms=1, allow_empty=allow_empty)


def seconds_column(values: Sequence[Any], field: str, ctx: ResponseContext) -> np.ndarray:
    """Unix times in seconds (strings or numbers) -> naive-UTC ``datetime64[ns]``."""
    return _epoch_column(values, field, ctx, unit_ms=1000, allow_empty=False)


def _epoch_column(
    values: Sequence[Any], field: str, ctx: ResponseContext, *, unit_ms: int, allow_empty: bool
) -> np.ndarray:
    numbers = float_column(values, field, ctx, allow_empty=allow_empty)
    # Exact integer parsing: float64 holds every integer below 2**53, far beyond any ms time.
    present = np.isfinite(numbers)
    ms = np.where(present, numbers, 0.0) * unit_ms
    bad = present & ((ms != np.floor(ms)) | (ms < 0) | (ms > MAX_EPOCH_MS))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ctx.error(f"{field} is not a Unix time: {values[i]!r} (row {i})", field=field)
    ns = ms.astype(np.int64) * 1_000_000
    out = ns.view("datetime64[ns]").copy()
    out[~present] = np.datetime64("NaT")
    return out


class Range(NamedTuple):
    """The values a column may take: ``low <= x <= high``, or ``low < x`` when ``open_low``."""

    low: float
    high: float
    open_low: bool = False

    def __str__(self) -> str:
        return f"{'(' if self.open_low else '['}{self.low:g}, {self.high:g}]"


#: A row stamped later than the response's own ``time`` by more than this is impossible: a
#: row carries the start of its bar or period (or its settlement), never a time ahead of the
#: clock serving it; the margin only absorbs skew between the exchange's own servers.
MAX_CLOCK_SKEW = pd.Timedelta(minutes=5)


def check_rows(
    frame: pd.DataFrame,
    ctx: ResponseContext,
    *,
    key: str,
    key_field: str,
    ranges: Mapping[str, tuple[str, Range]] | None = None,
    rules: Sequence[tuple[str, Any, str]] = (),
    not_after: pd.Timestamp | None = None,
) -> None:
    """Reject a whole answer that holds an impossible value, before any of it is stored.

    ``frame`` holds the parsed rows in response order (row ``i`` is the answer's ``i``-th
    item). Checked in this order, the first failure raising a :class:`SourceError` that names
    the API field, the row and its key:

    * ``ranges``: column -> (API field, :class:`Range`). NaN reads as "absent" and passes
      (tickers send ``""`` for fields that do not apply; required fields never get here as
      NaN, :func:`float_column` refuses them); an infinity is outside every range.
    * ``rules``: (API field, bad-row mask, message) for relations between columns; the
      message is formatted with the offending row's columns, e.g. ``"{high} < {low}"``.
    * ``not_after``: the response's time; a key later than it (+ :data:`MAX_CLOCK_SKEW`).
    * Rows sharing the key (``key_field`` on the wire) must be identical: exact duplicates
      pass (the caller keeps one), conflicting ones raise.
    """

    def fail(i: int, field: str, text: str) -> None:
        raise ctx.error(f"{text} (row {i}, {key_field} {frame[key].iloc[i]})", field=field)

    for column, (field, bound) in (ranges or {}).items():
        values = frame[column].to_numpy(np.float64)
        above = values > bound.low if bound.open_low else values >= bound.low
        bad = ~(above & (values <= bound.high)) & ~np.isnan(values)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            fail(i, field, f"{field} {float(values[i])!r} is outside {bound}")
    for field, mask, text in rules:
        bad = np.asarray(mask, dtype=bool)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            fail(i, field, text.format(**frame.iloc[i].to_dict()))
    if not_after is not None:
        late = (frame[key] > not_after + MAX_CLOCK_SKEW).to_numpy()
        if late.any():
            i = int(np.flatnonzero(late)[0])
            fail(i, key_field, f"a row is stamped after the response's time {not_after}")
    shared = frame.duplicated(subset=[key], keep=False).to_numpy()
    if shared.any():
        distinct = frame.iloc[np.flatnonzero(shared)].drop_duplicates()
        clash = distinct.duplicated(subset=[key], keep=False).to_numpy()
        if clash.any():
            value = distinct[key].iloc[int(np.flatnonzero(clash)[0])]
            rows = np.flatnonzero((frame[key] == value).to_numpy()).tolist()
            fail(rows[-1], key_field, f"rows {rows} have one {key_field} but different values")


def to_utc(value: Any, *, name: str = "time") -> pd.Timestamp:
    """A ``datetime`` / ``date`` / ``pd.Timestamp`` / ISO string as a naive-UTC Timestamp.

    Naive input is taken as UTC; aware input is converted to UTC.
    """
    if isinstance(value, bool) or not isinstance(value, (str, dt.datetime, dt.date, pd.Timestamp)):
        raise TypeError(
            f"{name} must be a datetime, date, pandas Timestamp or ISO string, got {value!r}"
        )
    try:
        ts = naive_utc(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} is not a time: {value!r}") from exc
    if ts is pd.NaT:
        raise ValueError(f"{name} is not a time: {value!r}")
    return ts.as_unit("ns")


def to_epoch_ms(ts: pd.Timestamp) -> int:
    """Unix milliseconds of a naive-UTC Timestamp (sub-millisecond parts rounded up).

    Rounding up keeps a half-open range half-open: no row strictly before ``ts`` is asked for.
    """
    ns = ts.as_unit("ns").value
    return -(-ns // 1_000_000)
