"""Load and validate ``sentiment.yaml``.

Every problem is reported at load, as a :class:`~sentiment.errors.ConfigError` naming the
file and the dotted key (``sentiment.weights.trend: expected a number, got 'abc'``), so a
typo never surfaces as a wrong score hours later. Unknown keys are errors too: a misspelt
``confirmaton_bars`` would otherwise be silently ignored. Keys that were once accepted but
had no effect (:data:`REMOVED_KEYS`) are errors that say what to use instead.

The sections are pydantic dataclasses: the types, bounds and cross-field rules below are
the whole validation, and :func:`_config_error` words pydantic's first error the way this
module always has. They stay real frozen dataclasses, so ``dataclasses.replace`` works on
them (and validates the new values again).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import field, fields
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    AllowInfNan,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from sentiment.errors import ConfigError
from sentiment.io import retry
from sentiment.models import INTERVAL_MINUTES, PERIOD_MINUTES

DEFAULT_CONFIG_PATH = "sentiment.yaml"

#: The first date a history may start: the Bitcoin genesis block.
FIRST_START_DATE = dt.date(2009, 1, 3)
_SYMBOL_PATTERN = r"^[A-Z0-9]{2,20}$"

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

# ------------------------------------------------------------------------------ value types
# Strict: YAML reads `yes please`, `"0.5"` and `true` as they are written, and none of them
# is a number (nor 1 a boolean, nor 5.0 a count).
Flag = Annotated[bool, Strict()]
Integer = Annotated[int, Strict()]
Number = Annotated[float, Strict(), AllowInfNan(False)]
PositiveInt = Annotated[Integer, Field(ge=1)]
Unit = Annotated[Number, Field(ge=0.0, le=1.0)]
Percent = Annotated[Number, Field(ge=0.0, le=100.0)]
Positive = Annotated[Number, Field(ge=0.0, gt=0.0)]
Symbol = Annotated[str, Strict(), StringConstraints(pattern=_SYMBOL_PATTERN)]
IntervalCode = Literal[tuple(INTERVAL_MINUTES)]
PeriodCode = Literal[tuple(PERIOD_MINUTES)]


def _problem(message: str, key: str | None = None, kind: str = "config"
             ) -> PydanticCustomError:
    """A failed rule, worded as it is shown; ``key`` names a key below the error's place."""
    return PydanticCustomError(kind, "{message}", {"message": message, "key": key})


def _typename(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _book_depth(depth: int) -> int:
    # API limit: the linear order-book stream offers depths 1, 50, 200 and 500.
    if depth not in (1, 50, 200, 500):
        raise _problem(f"expected one of 1, 50, 200, 500; got {depth}")
    return depth


def _non_empty_list(value: Any, what: str, single: bool) -> Any:
    """``value`` as a list: a lone ``single`` item is a list of one."""
    value = [value] if single else value
    if not isinstance(value, list | tuple) or not value:
        raise _problem(f"expected a non-empty list of {what}")
    return value


# ------------------------------------------------------------------------------- sections

_section = dataclass(frozen=True, config=ConfigDict(extra="forbid"))


@_section
class _Section:
    @model_validator(mode="before")
    @classmethod
    def _read(cls, data: Any) -> Any:
        """An empty section means its defaults; a removed key is named before anything
        else in its section. (Built in code, ``data`` is pydantic's ``ArgsKwargs``.)"""
        if data is None:
            return {}
        if isinstance(data, dict):
            prefix = _SECTION_KEYS[cls]
            for name in sorted(data, key=str):
                hint = REMOVED_KEYS.get(f"{prefix}.{name}")
                if hint is not None:
                    raise _problem(f"removed because it had no effect (got "
                                   f"{_typename(data[name])}); {hint}", str(name), "removed_key")
        return data


@_section
class Weights(_Section):
    trend: Unit = 0.25
    momentum: Unit = 0.20
    volatility: Unit = 0.15
    volume_flow: Unit = 0.15
    exchange: Unit = 0.15
    macro: Unit = 0.10

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @model_validator(mode="after")
    def _sum_to_one(self) -> Weights:
        total = sum(self.as_dict().values())
        if abs(total - 1.0) > 1e-6:
            raise _problem(f"weights must sum to 1.0, got {total:.6g}")
        return self


@_section
class RegimeConfig(_Section):
    confirmation_bars: PositiveInt = 6
    cooldown_bars: Annotated[Integer, Field(ge=0)] = 24
    confidence_threshold: Unit = 0.5
    adx_trend_threshold: Percent = 25.0
    adx_range_threshold: Percent = 20.0
    atr_high_vol_percentile: Percent = 90.0
    atr_lookback: Annotated[Integer, Field(ge=2)] = 90
    smoothing_bars: PositiveInt = 72
    switch_margin: Unit = 0.35
    expire_below: Unit = 0.35
    shock_move_pct: Annotated[Number, Field(ge=0.1, le=100.0)] = 6.0
    event_bars: PositiveInt = 6

    @model_validator(mode="after")
    def _range_below_trend(self) -> RegimeConfig:
        if self.adx_range_threshold > self.adx_trend_threshold:
            raise _problem(f"must be <= adx_trend_threshold ({self.adx_trend_threshold}), "
                           f"got {self.adx_range_threshold}", "adx_range_threshold")
        return self


@_section
class ExchangeDataConfig(_Section):
    funding_rate: Flag = True
    open_interest: Flag = True
    open_interest_interval: PeriodCode = "1h"
    long_short_ratio: Flag = True
    long_short_period: PeriodCode = "1h"
    liquidations: Flag = True
    orderbook_imbalance: Flag = True
    orderbook_depth: Annotated[PositiveInt, AfterValidator(_book_depth)] = 50


@_section
class ExternalDataConfig(_Section):
    fear_greed: Flag = True


@_section
class HistoryConfig(_Section):
    buffer_size: Annotated[Integer, Field(ge=1, le=1_000_000)] = 500
    # Bars a tracker checkpoint keeps to reopen its TA-Lib handles on restore (SMA 200
    # must be able to reopen from the stored bars).
    checkpoint_bars: Annotated[Integer, Field(ge=250)] = 2000


@_section
class LiveConfig(_Section):
    # How often the sensor asks the exchange for a newly closed bar.
    sensor_interval_seconds: Annotated[Integer, Field(ge=1, le=86_400)] = 30
    # When the next bar closes within this many seconds of an evaluation, the sensor waits
    # for it instead of leaving it to the next evaluation (0 turns the wait off).
    sensor_wait_seconds: Annotated[Number, Field(ge=0.0, le=30.0)] = 4.0


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


@_section
class HMMConfig(_Section):
    enabled: Flag = True
    # Training window: the last window_bars bars closed by each weekly boundary; fewer than
    # min_bars complete bars and that boundary has no model.
    window_bars: Annotated[Integer, Field(ge=50, le=100_000)] = 1000
    min_bars: Annotated[Integer, Field(ge=20)] = 500
    n_states: tuple[Annotated[Integer, Field(ge=2)], ...] = (2, 3, 4)
    restarts: Annotated[Integer, Field(ge=1, le=50)] = 3
    n_iter: Annotated[Integer, Field(ge=1, le=10_000)] = 100
    tol: Annotated[Number, Field(ge=0.0)] = 1e-4
    random_state: Annotated[Integer, Field(ge=0)] = 0
    volatility_window: Annotated[Integer, Field(ge=2)] = 24
    volume_window: PositiveInt = 20
    # How far the HMM moves the rule-based regime confidence (0: not at all).
    ensemble_weight: Unit = 0.3
    # hmm_retrain_schedule (wall clock, UTC).
    retrain_cron: str = "0 1 * * 1"

    @field_validator("n_states", mode="before")
    @classmethod
    def _state_list(cls, value: Any) -> Any:
        return _non_empty_list(value, "state counts",
                               isinstance(value, int) and not isinstance(value, bool))

    @field_validator("n_states")
    @classmethod
    def _few_states(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if max(value) > 8:
            raise _problem(f"at most 8 states, got {max(value)}")
        return tuple(sorted(set(value)))

    @field_validator("retrain_cron", mode="before")
    @classmethod
    def _cron(cls, value: Any) -> Any:
        problem = cron_problem(value)
        if problem:
            raise _problem(f"expected a 5-field cron string: {problem}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _enough_bars(self) -> HMMConfig:
        if self.min_bars > self.window_bars:
            raise _problem(f"must be <= window_bars ({self.window_bars})", "min_bars")
        return self


@_section
class DashboardConfig(_Section):
    # How often an open page re-reads the database.
    refresh_seconds: PositiveInt = 10
    # The history shown when no range is chosen: the last default_days of stored data.
    default_days: PositiveInt = 30
    # A symbol's latest row is flagged stale once its bar closed more than this many
    # intervals before the exchange's clock.
    stale_after_bars: PositiveInt = 2
    # How long a read waits for a writer to commit before the page shows its last good
    # view with a "database busy" note.
    lock_wait_seconds: Annotated[Number, Field(le=120.0, gt=0.0)] = (
        retry.DASHBOARD_LOCK_WAIT_SECONDS)


@_section
class StreamConfig(_Section):
    # One order-book imbalance sample per this many seconds of exchange time. The stream
    # samples the book in whole milliseconds; faster than 10 a second gives no more
    # information and below 1 ms there is no slot at all.
    sample_seconds: Annotated[Number, Field(ge=0.1, le=60.0)] = 1.0
    # One ticker row per this many seconds.
    ticker_seconds: Positive = 10.0
    # What was received is staged (Parquet) this often.
    flush_seconds: Positive = 2.0
    # Heartbeat ping to the exchange; a silent connection is dropped after dead_seconds.
    ping_seconds: Positive = retry.STREAM.ping_seconds
    dead_seconds: Positive = retry.STREAM.dead_seconds
    max_backoff_seconds: Positive = retry.STREAM.max_backoff_seconds
    # Liquidation pressure window (cascade, squeeze) inside the rolling hour.
    liquidation_window_seconds: PositiveInt = 300
    # While the stream's newest staged message is at most this old, the live job treats
    # bars the stream has not covered yet as provisional.
    alive_seconds: PositiveInt = 120

    @model_validator(mode="after")
    def _windows(self) -> StreamConfig:
        if self.dead_seconds <= self.ping_seconds:
            raise _problem("must be longer than ping_seconds", "dead_seconds")
        if self.liquidation_window_seconds > 3600:
            raise _problem("must be within the rolling hour (1 .. 3600)",
                           "liquidation_window_seconds")
        return self


@_section
class SourcesConfig(_Section):
    timeout_seconds: Annotated[Number, Field(le=300.0, gt=0.0)] = retry.SOURCES.timeout_seconds
    max_retries: Annotated[Integer, Field(ge=0, le=20)] = retry.SOURCES.max_retries
    backoff_base_seconds: Positive = retry.SOURCES.backoff_base_seconds
    backoff_max_seconds: Annotated[Number, Field(le=600.0, gt=0.0)] = (
        retry.SOURCES.backoff_max_seconds)

    @model_validator(mode="after")
    def _backoff_order(self) -> SourcesConfig:
        if self.backoff_max_seconds < self.backoff_base_seconds:
            raise _problem("must be >= backoff_base_seconds", "backoff_max_seconds")
        return self


@_section
class Config(_Section):
    """The validated configuration (the ``sentiment:`` section of ``sentiment.yaml``)."""

    symbols: tuple[Symbol, ...] = ("BTCUSDT", "ETHUSDT")
    intervals: tuple[IntervalCode, ...] = ("60", "240")
    start_date: Annotated[dt.date, Strict()] = dt.date(2022, 1, 1)
    #: The last day of the daily partitions (inclusive); None: they run up to today.
    end_date: Annotated[dt.date, Strict()] | None = None
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
    # The file it was read from (set by the loader, not a key of the file).
    path: str | None = None

    def interval_minutes(self, interval: str) -> int:
        return INTERVAL_MINUTES[interval]

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbol_list(cls, value: Any) -> Any:
        return _non_empty_list(value, "symbols", isinstance(value, str))

    @field_validator("intervals", mode="before")
    @classmethod
    def _interval_list(cls, value: Any) -> Any:
        codes = _non_empty_list(value, "kline codes", isinstance(value, str | int))
        # YAML reads an unquoted 60 as an int; accept it, the code is the string.
        return [str(c) if isinstance(c, int) and not isinstance(c, bool) else c for c in codes]

    @field_validator("symbols", "intervals")
    @classmethod
    def _unique(cls, value: tuple[str, ...], info: Any) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise _problem(f"{info.field_name} must be unique")
        return value

    @field_validator("start_date", "end_date", mode="before")
    @classmethod
    def _date(cls, value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                raise _problem(f"expected a date YYYY-MM-DD, got {value!r}") from None
        return value

    @field_validator("start_date")
    @classmethod
    def _date_range(cls, value: dt.date) -> dt.date:
        today = dt.datetime.now(dt.UTC).date()
        if not FIRST_START_DATE <= value <= today:
            raise _problem(f"must be between {FIRST_START_DATE} (no crypto market data "
                           f"before) and today ({today}), got {value}")
        return value

    @model_validator(mode="after")
    def _end_after_start(self) -> Config:
        if self.end_date is not None and self.end_date < self.start_date:
            raise _problem(f"must be on or after start_date ({self.start_date}), got "
                           f"{self.end_date}", "end_date")
        return self


#: The dotted key of each section, for :data:`REMOVED_KEYS`.
_SECTION_KEYS: dict[type, str] = {Config: "sentiment"} | {
    info.annotation: f"sentiment.{name}"
    for name, info in Config.__pydantic_fields__.items()
    if isinstance(info.annotation, type) and issubclass(info.annotation, _Section)
}
_CONFIG = TypeAdapter(Config)

# --------------------------------------------------------------------------- error wording

_UNKNOWN_KEY = ("unexpected_keyword_argument", "invalid_key")
_KEY_ERRORS = ("removed_key", *_UNKNOWN_KEY)
_GOT = {
    "int_type": "expected an integer",
    "float_type": "expected a number",
    "bool_type": "expected true or false",
    "date_type": "expected a date",
    "dataclass_type": "expected a mapping",
    # The only free strings of the file are symbols (a cron string is checked before).
    "string_type": "expected an upper-case Bybit symbol like BTCUSDT",
    "string_pattern_mismatch": "expected an upper-case Bybit symbol like BTCUSDT",
}
_BOUNDS = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">"}


def _loc(error: dict[str, Any]) -> tuple[Any, ...]:
    """Where an error is, down to the key a section-wide rule names."""
    key = (error.get("ctx") or {}).get("key")
    return error["loc"] + ((key,) if key is not None else ())


def _first(errors: list[dict[str, Any]], data: dict[str, Any]) -> dict[str, Any]:
    """The error shown: the first one met reading the sections in declared order and each
    section's keys as the file writes them, except that a removed or unknown key comes
    before the values of its section (the typo may explain them), outermost first, then by
    name. (pydantic lists a section's values in declared order, unknown keys last.)"""
    sections = list(Config.__pydantic_fields__)

    def written(error: dict[str, Any]) -> tuple[int, int]:
        loc = error["loc"] + (None, None)
        keys = list(data[loc[0]]) if isinstance(data.get(loc[0]), dict) else []
        return (sections.index(loc[0]) if loc[0] in sections else -1,
                keys.index(loc[1]) if loc[1] in keys else -1)

    first = min(errors, key=written)
    keys = [e for e in errors if e["type"] in _KEY_ERRORS
            and _loc(first)[:len(_loc(e)) - 1] == _loc(e)[:-1]]
    return min(keys, key=lambda e: (len(_loc(e)), e["type"] != "removed_key",
                                    str(_loc(e)[-1])), default=first)


def _annotation(loc: tuple[Any, ...]) -> Any:
    """The declared type at ``loc`` (field names and list positions below Config)."""
    tp: Any = Config
    for part in loc:
        tp = get_args(tp)[0] if isinstance(part, int) else tp.__pydantic_fields__[part].annotation
    return tp


def _message(error: dict[str, Any]) -> str:
    kind, value, ctx = error["type"], error["input"], error.get("ctx") or {}
    if kind in _UNKNOWN_KEY:
        names = (f.name for f in fields(_annotation(error["loc"][:-1])) if f.name != "path")
        return f"unknown key (allowed: {', '.join(sorted(names))})"
    if kind in _GOT:
        return f"{_GOT[kind]}, got {_typename(value)}"
    if kind == "literal_error":
        allowed = ", ".join(get_args(_annotation(error["loc"])))
        return f"expected one of {allowed}; got {_typename(value)}"
    if kind == "finite_number":
        return f"expected a finite number, got {float(value)}"
    if kind in _BOUNDS:
        limit = next(iter(ctx.values()))
        if isinstance(limit, float):  # a float field: the value as the number it became
            shown = f"{limit:g}" if kind == "greater_than" else f"{limit}"
            return f"must be {_BOUNDS[kind]} {shown}, got {float(value)}"
        if kind == "less_than_equal":
            return f"must be <= {limit:,}, got {value:,}"
        return f"must be {_BOUNDS[kind]} {limit}, got {value}"
    return error["msg"]


def _config_error(error: dict[str, Any], path: str | None) -> ConfigError:
    key = "sentiment"
    loc = _loc(error)
    for i, part in enumerate(loc):
        last_key = i == len(loc) - 1 and error["type"] in _KEY_ERRORS
        key += f"[{part}]" if isinstance(part, int) and not last_key else f".{part}"
    return ConfigError(_message(error), key=key, path=path)


def _validate(raw: Any, path: str | None) -> Config:
    # The document itself: one mapping with one key.
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping, got {_typename(raw)}", key="sentiment",
                          path=path)
    if "sentiment" not in raw:
        raise ConfigError("missing top-level 'sentiment:' section", key="sentiment", path=path)
    extra = sorted(set(raw) - {"sentiment"})
    if extra:
        raise ConfigError("unknown top-level key (only 'sentiment:' is read)", key=extra[0],
                          path=path)
    data = {} if raw["sentiment"] is None else raw["sentiment"]
    errors: list[dict[str, Any]] = []
    if isinstance(data, dict) and "path" in data:
        # ``path`` is where the file was read from, never a key of the file.
        errors.append({"type": "unexpected_keyword_argument", "loc": ("path",),
                       "input": data["path"], "msg": "unknown key"})
    try:
        config = _CONFIG.validate_python({**data, "path": path} if isinstance(data, dict)
                                         else data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False) + errors
    if errors:
        raise _config_error(_first(errors, data if isinstance(data, dict) else {}), path)
    return config


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
