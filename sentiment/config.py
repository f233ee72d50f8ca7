"""Load and validate ``sentiment.yaml``.

Every problem is reported at load, as a :class:`~sentiment.errors.ConfigError` naming the
file and the dotted key (``sentiment.weights.trend: expected a number, got 'abc'``), so a
typo never surfaces as a wrong score hours later. Unknown keys are errors too: a misspelt
``confirmaton_bars`` would otherwise be silently ignored. Keys that were once accepted but
had no effect (:data:`REMOVED_KEYS`) are errors that say what to use instead.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from sentiment.errors import ConfigError
from sentiment.models import INTERVAL_MINUTES, PERIOD_MINUTES

DEFAULT_CONFIG_PATH = "sentiment.yaml"

#: The first date a history may start: the Bitcoin genesis block.
FIRST_START_DATE = dt.date(2009, 1, 3)
_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}$")

#: Keys that used to be accepted but never changed anything, and what to do instead. They
#: are rejected at load rather than ignored, so nobody tunes a setting that does nothing.
REMOVED_KEYS: dict[str, str] = {
    "sentiment.enabled": "delete the key (to stop the pipeline, turn off its Dagster "
    "schedules and sensors)",
    "sentiment.exchange_data.long_short_poll_interval": "delete the key; the live job "
    "(live_update_job) fetches the long/short ratio with every new bar, at "
    "exchange_data.long_short_period",
    "sentiment.external_data.fear_greed_refresh_interval": "delete the key; the fear_greed "
    "asset is refreshed by fear_greed_daily_schedule (fear_greed_job, daily at 00:15 UTC; "
    "stopped until turned on in the Dagster UI) and the live job (live_update_job) fetches "
    "the newest day with every new bar; external_data.fear_greed turns it off",
    "sentiment.history.persist_to_db": "delete the key; sentiment_history is always written "
    "to DuckDB, query it with SQL",
}


@dataclass(frozen=True)
class Weights:
    trend: float = 0.25
    momentum: float = 0.20
    volatility: float = 0.15
    volume_flow: float = 0.15
    exchange: float = 0.15
    macro: float = 0.10

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class RegimeConfig:
    confirmation_bars: int = 6
    cooldown_bars: int = 24
    confidence_threshold: float = 0.5
    adx_trend_threshold: float = 25.0
    adx_range_threshold: float = 20.0
    atr_high_vol_percentile: float = 90.0
    atr_lookback: int = 90
    smoothing_bars: int = 72
    switch_margin: float = 0.35
    expire_below: float = 0.35
    shock_move_pct: float = 6.0
    event_bars: int = 6


@dataclass(frozen=True)
class ExchangeDataConfig:
    funding_rate: bool = True
    open_interest: bool = True
    open_interest_interval: str = "1h"
    long_short_ratio: bool = True
    long_short_period: str = "1h"
    liquidations: bool = True
    orderbook_imbalance: bool = True
    orderbook_depth: int = 50


@dataclass(frozen=True)
class ExternalDataConfig:
    fear_greed: bool = True


@dataclass(frozen=True)
class HistoryConfig:
    buffer_size: int = 500
    # Bars a tracker checkpoint keeps to reopen its TA-Lib handles on restore.
    checkpoint_bars: int = 2000


@dataclass(frozen=True)
class LiveConfig:
    # How often the sensor asks the exchange for a newly closed bar.
    sensor_interval_seconds: int = 30
    # When the next bar closes within this many seconds of an evaluation, the sensor waits
    # for it instead of leaving it to the next evaluation (0 turns the wait off).
    sensor_wait_seconds: float = 4.0


@dataclass(frozen=True)
class HMMConfig:
    enabled: bool = True
    # Training window: the last window_bars bars closed by each weekly boundary; fewer than
    # min_bars complete bars and that boundary has no model.
    window_bars: int = 1000
    min_bars: int = 500
    n_states: tuple[int, ...] = (2, 3, 4)
    restarts: int = 3
    n_iter: int = 100
    tol: float = 1e-4
    random_state: int = 0
    volatility_window: int = 24
    volume_window: int = 20
    # How far the HMM moves the rule-based regime confidence (0: not at all).
    ensemble_weight: float = 0.3
    # hmm_retrain_schedule (wall clock, UTC).
    retrain_cron: str = "0 1 * * 1"


@dataclass(frozen=True)
class DashboardConfig:
    # How often an open page re-reads the database.
    refresh_seconds: int = 10
    # The history shown when no range is chosen: the last default_days of stored data.
    default_days: int = 30
    # A symbol's latest row is flagged stale once its bar closed more than this many
    # intervals before the exchange's clock.
    stale_after_bars: int = 2
    # How long a read waits for a writer to commit before the page shows its last good
    # view with a "database busy" note.
    lock_wait_seconds: float = 10.0


@dataclass(frozen=True)
class StreamConfig:
    # One order-book imbalance sample per this many seconds of exchange time.
    sample_seconds: float = 1.0
    # One ticker row per this many seconds.
    ticker_seconds: float = 10.0
    # What was received is staged (Parquet) this often.
    flush_seconds: float = 2.0
    # Heartbeat ping to the exchange; a silent connection is dropped after dead_seconds.
    ping_seconds: float = 20.0
    dead_seconds: float = 45.0
    max_backoff_seconds: float = 30.0
    # Liquidation pressure window (cascade, squeeze) inside the rolling hour.
    liquidation_window_seconds: int = 300
    # While the stream's newest staged message is at most this old, the live job treats
    # bars the stream has not covered yet as provisional.
    alive_seconds: int = 120


@dataclass(frozen=True)
class SourcesConfig:
    timeout_seconds: float = 10.0
    max_retries: int = 5
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0


@dataclass(frozen=True)
class Config:
    """The validated configuration (the ``sentiment:`` section of ``sentiment.yaml``)."""

    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    intervals: tuple[str, ...] = ("60", "240")
    start_date: dt.date = dt.date(2022, 1, 1)
    weights: Weights = field(default_factory=Weights)
    regime: RegimeConfig = field(default_factory=RegimeConfig)
    exchange_data: ExchangeDataConfig = field(default_factory=ExchangeDataConfig)
    external_data: ExternalDataConfig = field(default_factory=ExternalDataConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    hmm: HMMConfig = field(default_factory=HMMConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    path: str | None = None

    def interval_minutes(self, interval: str) -> int:
        return INTERVAL_MINUTES[interval]


# --------------------------------------------------------------------------- validation


def _fail(key: str, message: str, path: str | None) -> ConfigError:
    return ConfigError(message, key=key, path=path)


def _typename(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _as_bool(value: Any, key: str, path: str | None) -> bool:
    if isinstance(value, bool):
        return value
    raise _fail(key, f"expected true or false, got {_typename(value)}", path)


def _as_int(value: Any, key: str, path: str | None, *, minimum: int | None = None,
            maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(key, f"expected an integer, got {_typename(value)}", path)
    if minimum is not None and value < minimum:
        raise _fail(key, f"must be >= {minimum}, got {value}", path)
    if maximum is not None and value > maximum:
        raise _fail(key, f"must be <= {maximum:,}, got {value:,}", path)
    return value


def _as_float(
    value: Any,
    key: str,
    path: str | None,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(key, f"expected a number, got {_typename(value)}", path)
    value = float(value)
    if not math.isfinite(value):
        raise _fail(key, f"expected a finite number, got {value}", path)
    if minimum is not None and value < minimum:
        raise _fail(key, f"must be >= {minimum}, got {value}", path)
    if maximum is not None and value > maximum:
        raise _fail(key, f"must be <= {maximum}, got {value}", path)
    return value


def _as_choice(value: Any, key: str, path: str | None, choices: dict[str, int]) -> str:
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(choices)
        raise _fail(key, f"expected one of {allowed}; got {_typename(value)}", path)
    return value


def _depth(value: Any, key: str, path: str | None) -> int:
    # API limit: the linear order-book stream offers depths 1, 50, 200 and 500.
    depth = _as_int(value, key, path, minimum=1)
    if depth not in (1, 50, 200, 500):
        raise _fail(key, f"expected one of 1, 50, 200, 500; got {depth}", path)
    return depth


def _mapping(raw: Any, key: str, path: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _fail(key, f"expected a mapping, got {_typename(raw)}", path)
    return raw


def _check_keys(raw: dict[str, Any], allowed: set[str], key: str, path: str | None) -> None:
    for name in sorted(raw, key=str):
        hint = REMOVED_KEYS.get(f"{key}.{name}")
        if hint is not None:
            raise _fail(
                f"{key}.{name}",
                f"removed because it had no effect (got {_typename(raw[name])}); {hint}",
                path,
            )
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise _fail(
            f"{key}.{unknown[0]}",
            f"unknown key (allowed: {', '.join(sorted(allowed))})",
            path,
        )


def _section(raw: Any, cls: type, key: str, path: str | None, checks: dict[str, Any]):
    """Build dataclass ``cls`` from ``raw``: defaults for absent keys, ``checks`` per key."""
    data = _mapping(raw, key, path)
    names = {f.name for f in fields(cls)}
    _check_keys(data, names, key, path)
    values = {}
    for name, value in data.items():
        values[name] = checks[name](value, f"{key}.{name}", path)
    return cls(**values)


def _validate(raw: Any, path: str | None) -> Config:
    top = _mapping(raw, "sentiment", path)
    if "sentiment" not in top:
        raise _fail("sentiment", "missing top-level 'sentiment:' section", path)
    extra = sorted(set(top) - {"sentiment"})
    if extra:
        raise _fail(extra[0], "unknown top-level key (only 'sentiment:' is read)", path)
    data = _mapping(top["sentiment"], "sentiment", path)
    config_fields = {f.name for f in fields(Config)} - {"path"}
    _check_keys(data, config_fields, "sentiment", path)
    k = "sentiment"
    out: dict[str, Any] = {"path": path}

    if "symbols" in data:
        symbols = data["symbols"]
        if isinstance(symbols, str):
            symbols = [symbols]
        if not isinstance(symbols, list) or not symbols:
            raise _fail(f"{k}.symbols", "expected a non-empty list of symbols", path)
        for i, s in enumerate(symbols):
            if not isinstance(s, str) or not _SYMBOL_RE.match(s):
                raise _fail(
                    f"{k}.symbols[{i}]",
                    f"expected an upper-case Bybit symbol like BTCUSDT, got {_typename(s)}",
                    path,
                )
        if len(set(symbols)) != len(symbols):
            raise _fail(f"{k}.symbols", "symbols must be unique", path)
        out["symbols"] = tuple(symbols)

    if "intervals" in data:
        intervals = data["intervals"]
        if isinstance(intervals, str | int):
            intervals = [intervals]
        if not isinstance(intervals, list) or not intervals:
            raise _fail(f"{k}.intervals", "expected a non-empty list of kline codes", path)
        codes = []
        for i, code in enumerate(intervals):
            # YAML reads an unquoted 60 as an int; accept it, the code is the string.
            code = str(code) if isinstance(code, int) and not isinstance(code, bool) else code
            codes.append(_as_choice(code, f"{k}.intervals[{i}]", path, INTERVAL_MINUTES))
        if len(set(codes)) != len(codes):
            raise _fail(f"{k}.intervals", "intervals must be unique", path)
        out["intervals"] = tuple(codes)

    if "start_date" in data:
        value = data["start_date"]
        if isinstance(value, dt.datetime):
            value = value.date()
        elif isinstance(value, str):
            try:
                value = dt.date.fromisoformat(value)
            except ValueError:
                raise _fail(
                    f"{k}.start_date", f"expected a date YYYY-MM-DD, got {value!r}", path
                ) from None
        if not isinstance(value, dt.date):
            raise _fail(f"{k}.start_date", f"expected a date, got {_typename(value)}", path)
        today = dt.datetime.now(dt.UTC).date()
        if not FIRST_START_DATE <= value <= today:
            raise _fail(f"{k}.start_date", f"must be between {FIRST_START_DATE} (no crypto "
                        f"market data before) and today ({today}), got {value}", path)
        out["start_date"] = value

    def unit(v, key, p):
        return _as_float(v, key, p, minimum=0.0, maximum=1.0)

    weights = _section(
        data.get("weights"), Weights, f"{k}.weights", path,
        {f.name: unit for f in fields(Weights)},
    )
    total = sum(weights.as_dict().values())
    if abs(total - 1.0) > 1e-6:
        raise _fail(f"{k}.weights", f"weights must sum to 1.0, got {total:.6g}", path)
    out["weights"] = weights

    def pos_int(v, key, p):
        return _as_int(v, key, p, minimum=1)

    def nonneg_int(v, key, p):
        return _as_int(v, key, p, minimum=0)

    def adx(v, key, p):
        return _as_float(v, key, p, minimum=0.0, maximum=100.0)

    regime = _section(
        data.get("regime"), RegimeConfig, f"{k}.regime", path,
        {
            "confirmation_bars": pos_int,
            "cooldown_bars": nonneg_int,
            "confidence_threshold": unit,
            "adx_trend_threshold": adx,
            "adx_range_threshold": adx,
            "atr_high_vol_percentile": adx,
            "atr_lookback": lambda v, key, p: _as_int(v, key, p, minimum=2),
            "smoothing_bars": pos_int,
            "switch_margin": unit,
            "expire_below": unit,
            "shock_move_pct": lambda v, key, p: _as_float(v, key, p, minimum=0.1,
                                                          maximum=100.0),
            "event_bars": pos_int,
        },
    )
    if regime.adx_range_threshold > regime.adx_trend_threshold:
        raise _fail(
            f"{k}.regime.adx_range_threshold",
            f"must be <= adx_trend_threshold ({regime.adx_trend_threshold}), "
            f"got {regime.adx_range_threshold}",
            path,
        )
    out["regime"] = regime

    out["exchange_data"] = _section(
        data.get("exchange_data"), ExchangeDataConfig, f"{k}.exchange_data", path,
        {
            "funding_rate": _as_bool,
            "open_interest": _as_bool,
            "open_interest_interval": lambda v, key, p: _as_choice(v, key, p, PERIOD_MINUTES),
            "long_short_ratio": _as_bool,
            "long_short_period": lambda v, key, p: _as_choice(v, key, p, PERIOD_MINUTES),
            "liquidations": _as_bool,
            "orderbook_imbalance": _as_bool,
            "orderbook_depth": _depth,
        },
    )
    out["external_data"] = _section(
        data.get("external_data"), ExternalDataConfig, f"{k}.external_data", path,
        {"fear_greed": _as_bool},
    )
    out["history"] = _section(
        data.get("history"), HistoryConfig, f"{k}.history", path,
        {
            "buffer_size": lambda v, key, p: _as_int(v, key, p, minimum=1, maximum=1_000_000),
            # SMA 200 must be able to reopen from the stored bars.
            "checkpoint_bars": lambda v, key, p: _as_int(v, key, p, minimum=250),
        },
    )

    def positive(v, key, p):
        value = _as_float(v, key, p, minimum=0.0)
        if value <= 0:
            raise _fail(key, f"must be > 0, got {value}", p)
        return value

    sources = _section(
        data.get("sources"), SourcesConfig, f"{k}.sources", path,
        {
            "timeout_seconds": lambda v, key, p: _bounded(v, key, p, 300.0),
            "max_retries": lambda v, key, p: _as_int(v, key, p, minimum=0, maximum=20),
            "backoff_base_seconds": positive,
            "backoff_max_seconds": lambda v, key, p: _bounded(v, key, p, 600.0),
        },
    )
    if sources.backoff_max_seconds < sources.backoff_base_seconds:
        raise _fail(
            f"{k}.sources.backoff_max_seconds", "must be >= backoff_base_seconds", path
        )
    out["sources"] = sources
    out["live"] = _section(
        data.get("live"), LiveConfig, f"{k}.live", path,
        {"sensor_interval_seconds": lambda v, key, p: _as_int(v, key, p, minimum=1,
                                                              maximum=86_400),
         "sensor_wait_seconds": lambda v, key, p: _as_float(v, key, p, minimum=0.0,
                                                            maximum=30.0)},
    )
    out["hmm"] = _hmm_section(data.get("hmm"), f"{k}.hmm", path)
    out["dashboard"] = _section(
        data.get("dashboard"), DashboardConfig, f"{k}.dashboard", path,
        {"refresh_seconds": pos_int, "default_days": pos_int, "stale_after_bars": pos_int,
         "lock_wait_seconds": lambda v, key, p: _bounded(v, key, p, 120.0)},
    )
    stream = _section(
        data.get("stream"), StreamConfig, f"{k}.stream", path,
        {name: positive for name in ("ticker_seconds", "flush_seconds",
                                     "ping_seconds", "dead_seconds", "max_backoff_seconds")}
        # The stream samples the book in whole milliseconds; faster than 10 a second
        # gives no more information and below 1 ms there is no slot at all.
        | {"sample_seconds": lambda v, key, p: _as_float(v, key, p, minimum=0.1,
                                                         maximum=60.0)}
        | {"liquidation_window_seconds": pos_int, "alive_seconds": pos_int},
    )
    if stream.dead_seconds <= stream.ping_seconds:
        raise _fail(f"{k}.stream.dead_seconds", "must be longer than ping_seconds", path)
    if not 0 < stream.liquidation_window_seconds <= 3600:
        raise _fail(f"{k}.stream.liquidation_window_seconds",
                    "must be within the rolling hour (1 .. 3600)", path)
    out["stream"] = stream
    return Config(**out)


#: Fields of a cron string: name, lowest and highest value (day of week 7 is Sunday too).
_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31),
                ("month", 1, 12), ("day of week", 0, 7))


def cron_problem(text: Any) -> str | None:
    """What is wrong with a standard 5-field cron string (numbers, ``*``, ``a-b``, ``/n``
    steps and lists), or None. Names (``mon``) are not accepted: write numbers."""
    if not isinstance(text, str) or len(text.split()) != 5:
        return "five fields separated by spaces are needed"
    for part, (name, lo, hi) in zip(text.split(), _CRON_FIELDS, strict=True):
        for item in part.split(","):
            base, _, step = item.partition("/")
            if step and not (step.isdigit() and int(step) >= 1):
                return f"bad step in the {name} field"
            if base == "*":
                continue
            a, _, b = base.partition("-")
            for number in (a, b) if b else (a,):
                if not number.isdigit() or not lo <= int(number) <= hi:
                    return f"the {name} field takes {lo}-{hi}, got {base!r}"
            if b and int(a) > int(b):
                return f"an empty range in the {name} field"
    return None


def _bounded(value: Any, key: str, path: str | None, maximum: float) -> float:
    value = _as_float(value, key, path, maximum=maximum)
    if value <= 0:
        raise _fail(key, f"must be > 0, got {value}", path)
    return value


def _hmm_section(raw: Any, key: str, path: str | None) -> HMMConfig:
    def n_states(v, k, p):
        if isinstance(v, int) and not isinstance(v, bool):
            v = [v]
        if not isinstance(v, list) or not v:
            raise _fail(k, "expected a non-empty list of state counts", p)
        out = [_as_int(x, f"{k}[{i}]", p, minimum=2) for i, x in enumerate(v)]
        if max(out) > 8:
            raise _fail(k, f"at most 8 states, got {max(out)}", p)
        return tuple(sorted(set(out)))

    def cron(v, k, p):
        problem = cron_problem(v)
        if problem:
            raise _fail(k, f"expected a 5-field cron string: {problem}, got {v!r}", p)
        return v

    hmm = _section(raw, HMMConfig, key, path, {
        "enabled": _as_bool,
        "window_bars": lambda v, k, p: _as_int(v, k, p, minimum=50, maximum=100_000),
        "min_bars": lambda v, k, p: _as_int(v, k, p, minimum=20),
        "n_states": n_states,
        "restarts": lambda v, k, p: _as_int(v, k, p, minimum=1, maximum=50),
        "n_iter": lambda v, k, p: _as_int(v, k, p, minimum=1, maximum=10_000),
        "tol": lambda v, k, p: _as_float(v, k, p, minimum=0.0),
        "random_state": lambda v, k, p: _as_int(v, k, p, minimum=0),
        "volatility_window": lambda v, k, p: _as_int(v, k, p, minimum=2),
        "volume_window": lambda v, k, p: _as_int(v, k, p, minimum=1),
        "ensemble_weight": lambda v, k, p: _as_float(v, k, p, minimum=0.0, maximum=1.0),
        "retrain_cron": cron,
    })
    if hmm.min_bars > hmm.window_bars:
        raise _fail(f"{key}.min_bars", f"must be <= window_bars ({hmm.window_bars})", path)
    return hmm


def parse_config(text: str, path: str | None = None) -> Config:
    """Validate configuration given as YAML text (``path`` only labels the errors)."""
    try:
        raw = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:
        # PyYAML raises a bare ValueError for impossible dates such as 2022-13-01.
        raise ConfigError(f"not valid YAML: {exc}", path=path) from None
    return _validate(raw, path)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate the configuration.

    Parameters
    ----------
    path
        The YAML file. ``None`` means ``$SENTIMENT_CONFIG``, else ``sentiment.yaml`` in the
        working directory, else the one at the repository root.
    """
    if path is None:
        path = os.environ.get("SENTIMENT_CONFIG") or DEFAULT_CONFIG_PATH
        candidate = Path(path)
        if not candidate.exists() and not os.environ.get("SENTIMENT_CONFIG"):
            candidate = Path(__file__).resolve().parent.parent / DEFAULT_CONFIG_PATH
        path = candidate
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("configuration file not found", path=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file: {exc}", path=str(path)) from None
    return parse_config(text, str(path))
