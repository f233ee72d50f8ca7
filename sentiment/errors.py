"""Error types shared by the core, the clients and the pipeline.

Every error that reaches a user names where it came from: the source (``bybit``,
``fear_greed``, ``config``), the endpoint or key, the symbol and the field.
"""

from __future__ import annotations


class SentimentError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(SentimentError):
    """The configuration file is missing, unreadable or invalid.

    ``key`` is the dotted path of the offending key, e.g. ``sentiment.weights.trend``.
    """

    def __init__(self, message: str, *, key: str | None = None, path: str | None = None):
        self.key = key
        self.path = path
        where = ": ".join(p for p in (path, key) if p)
        super().__init__(f"{where}: {message}" if where else message)


class SourceError(SentimentError):
    """A data source answered with something we cannot use.

    Attributes name the source (``bybit`` / ``fear_greed``), the endpoint, the symbol and
    the field, so a log line is enough to find the problem.
    """

    transient = False

    def __init__(
        self,
        source: str,
        message: str,
        *,
        endpoint: str | None = None,
        symbol: str | None = None,
        field: str | None = None,
    ):
        self.source = source
        self.endpoint = endpoint
        self.symbol = symbol
        self.field = field
        self.reason = message
        parts = [f"source={source}"]
        if endpoint:
            parts.append(f"endpoint={endpoint}")
        if symbol:
            parts.append(f"symbol={symbol}")
        if field:
            parts.append(f"field={field}")
        super().__init__(f"{message} [{', '.join(parts)}]")


class TransientSourceError(SourceError):
    """A fault worth retrying (rate limit, HTTP 429/5xx, timeout, connection reset).

    Raised to the caller only once the retries are exhausted.
    """

    transient = True


class SourceBlockedError(SourceError):
    """HTTP 403: the exchange refuses this IP (Bybit's rate-limit ban or a geo block).

    Retrying makes a ban longer, so the client stops at once and says so.
    """


class UsageError(SentimentError, ValueError):
    """A command-line value that names nothing there is (a symbol or interval that is not
    configured); the message lists the valid values."""


class InputError(SentimentError, ValueError):
    """Data handed to the core cannot be used (a NaN price, bars out of order, ...).

    Names the input (``candles``, ``funding``, ...), the symbol and the field; the object
    that raised it is left exactly as it was.
    """

    def __init__(self, source: str, message: str, *, symbol: str | None = None,
                 field: str | None = None):
        self.source = source
        self.symbol = symbol
        self.field = field
        where = " ".join(p for p in (source, symbol, field and f"field {field}") if p)
        super().__init__(f"{where}: {message}")


class CheckpointMismatch(InputError):
    """A tracker checkpoint made by another version of the engine or another configuration:
    it cannot continue, the history must be computed again from the stored bars."""
