"""sentiment.yaml is validated at load and every error names its key."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from sentiment.config import load_config, parse_config
from sentiment.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_repository_config_loads_with_brief_defaults():
    config = load_config(REPO / "sentiment.yaml")
    assert config.symbols == ("BTCUSDT", "ETHUSDT")
    assert config.intervals == ("60", "240")
    assert config.start_date == dt.date(2022, 1, 1)
    assert config.weights.as_dict() == pytest.approx(
        {"trend": 0.25, "momentum": 0.20, "volatility": 0.15, "volume_flow": 0.15,
         "exchange": 0.15, "macro": 0.10}
    )
    assert config.regime.confirmation_bars == 6  # tuned with `sentiment evaluate`
    assert config.regime.cooldown_bars == 24
    assert config.exchange_data.orderbook_depth == 50


def test_environment_variable_selects_the_file(tmp_path, monkeypatch):
    path = tmp_path / "alt.yaml"
    path.write_text("sentiment:\n  symbols: [SOLUSDT]\n  intervals: [\"D\"]\n")
    monkeypatch.setenv("SENTIMENT_CONFIG", str(path))
    config = load_config()
    assert config.symbols == ("SOLUSDT",)
    assert config.intervals == ("D",)
    assert config.path == str(path)


def test_unquoted_interval_is_read_as_its_code():
    assert parse_config("sentiment:\n  intervals: [60, 240]\n").intervals == ("60", "240")


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("sentiment:\n  weights: {trend: abc}\n", "sentiment.weights.trend", "expected a number"),
        ("sentiment:\n  weights: {trend: 0.5}\n", "sentiment.weights", "sum to 1.0"),
        ("sentiment:\n  regime: {confirmaton_bars: 3}\n", "sentiment.regime.confirmaton_bars",
         "unknown key"),
        ("sentiment:\n  regime: {cooldown_bars: -1}\n", "sentiment.regime.cooldown_bars", ">= 0"),
        ("sentiment:\n  regime: {adx_range_threshold: 30}\n",
         "sentiment.regime.adx_range_threshold", "adx_trend_threshold"),
        ("sentiment:\n  intervals: [\"7\"]\n", "sentiment.intervals[0]", "expected one of"),
        ("sentiment:\n  symbols: [btc-usdt]\n", "sentiment.symbols[0]", "Bybit symbol"),
        ("sentiment:\n  symbols: [BTCUSDT, BTCUSDT]\n", "sentiment.symbols", "unique"),
        ("sentiment:\n  start_date: \"2022-13-01\"\n", "sentiment.start_date", "YYYY-MM-DD"),
        ("sentiment:\n  exchange_data: {open_interest_interval: 2h}\n",
         "sentiment.exchange_data.open_interest_interval", "1h"),
        ("sentiment:\n  exchange_data: {orderbook_depth: 40}\n",
         "sentiment.exchange_data.orderbook_depth", "50"),
        ("sentiment:\n  exchange_data: {funding_rate: yes please}\n",
         "sentiment.exchange_data.funding_rate", "true or false"),
        ("sentiment:\n  sources: {timeout_seconds: 0}\n", "sentiment.sources.timeout_seconds",
         "> 0"),
        ("sentiment:\n  weights: [1, 2]\n", "sentiment.weights", "mapping"),
        ("sentiment:\n  dashboard: {refresh_seconds: 0}\n",
         "sentiment.dashboard.refresh_seconds", ">= 1"),
        ("sentiment:\n  dashboard: {refresh: 5}\n", "sentiment.dashboard.refresh",
         "unknown key"),
        ("sentiment:\n  stream: {sample_seconds: 0}\n", "sentiment.stream.sample_seconds",
         ">= 0.1"),
        # Values a hostile or careless file brought in unnoticed (each used to load):
        ("sentiment:\n  weights: {trend: .nan}\n", "sentiment.weights.trend", "finite"),
        ("sentiment:\n  regime: {switch_margin: .inf}\n", "sentiment.regime.switch_margin",
         "finite"),
        ("sentiment:\n  stream: {sample_seconds: 0.0001}\n", "sentiment.stream.sample_seconds",
         ">= 0.1"),
        ("sentiment:\n  hmm: {retrain_cron: '61 1 * * 1'}\n", "sentiment.hmm.retrain_cron",
         "minute field takes 0-59"),
        ("sentiment:\n  hmm: {retrain_cron: 'every monday'}\n", "sentiment.hmm.retrain_cron",
         "five fields"),
        ("sentiment:\n  hmm: {retrain_cron: '0 1 * * 5-1'}\n", "sentiment.hmm.retrain_cron",
         "empty range"),
        ("sentiment:\n  sources: {max_retries: 100000000}\n", "sentiment.sources.max_retries",
         "<= 20"),
        ("sentiment:\n  sources: {timeout_seconds: 1.0e+9}\n",
         "sentiment.sources.timeout_seconds", "<= 300"),
        ("sentiment:\n  hmm: {window_bars: 1000000000000}\n", "sentiment.hmm.window_bars",
         "<= 100,000"),
        ("sentiment:\n  start_date: '1900-01-01'\n", "sentiment.start_date", "between 2009"),
        ("sentiment:\n  start_date: '2999-01-01'\n", "sentiment.start_date", "and today"),
        ("sentiment:\n  stream: {ping_seconds: 30, dead_seconds: 20}\n",
         "sentiment.stream.dead_seconds", "longer than ping_seconds"),
        ("sentiment:\n  stream: {liquidation_window_seconds: 7200}\n",
         "sentiment.stream.liquidation_window_seconds", "within the rolling hour"),
        ("sentiment:\n  stream: {flush_every: 2}\n", "sentiment.stream.flush_every",
         "unknown key"),
        ("other: 1\n", "sentiment", "missing"),
    ],
)
def test_invalid_values_name_the_key(text, key, fragment):
    with pytest.raises(ConfigError) as info:
        parse_config(text, "bad.yaml")
    assert info.value.key == key
    message = str(info.value)
    assert message.startswith(f"bad.yaml: {key}: ")
    assert fragment in message


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("sentiment:\n  enabled: true\n", "sentiment.enabled", "delete the key"),
        ("sentiment:\n  exchange_data: {long_short_poll_interval: 300}\n",
         "sentiment.exchange_data.long_short_poll_interval", "with every new bar"),
        ("sentiment:\n  external_data: {fear_greed_refresh_interval: 3600}\n",
         "sentiment.external_data.fear_greed_refresh_interval", "fear_greed_daily_schedule"),
        ("sentiment:\n  history: {persist_to_db: true}\n",
         "sentiment.history.persist_to_db", "always written"),
    ],
)
def test_removed_keys_are_rejected_with_what_to_use_instead(text, key, fragment):
    with pytest.raises(ConfigError) as info:
        parse_config(text, "old.yaml")
    assert info.value.key == key
    message = str(info.value)
    assert message.startswith(f"old.yaml: {key}: removed because it had no effect (got ")
    assert fragment in message


def test_removed_key_is_reported_before_an_unknown_one():
    # A removed key is named as removed, not as a typo, whatever else the section holds.
    with pytest.raises(ConfigError, match="removed because it had no effect") as info:
        parse_config("sentiment:\n  history: {aaa: 1, persist_to_db: false}\n")
    assert info.value.key == "sentiment.history.persist_to_db"


def test_repository_config_has_no_removed_keys():
    config = load_config(REPO / "sentiment.yaml")
    assert not hasattr(config, "enabled")
    assert not hasattr(config.exchange_data, "long_short_poll_interval")
    assert not hasattr(config.external_data, "fear_greed_refresh_interval")
    assert not hasattr(config.history, "persist_to_db")


def test_missing_file_and_broken_yaml_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("sentiment: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config(broken)
    assert str(broken) in str(info.value)


@pytest.mark.parametrize("text", ["0 1 * * 1", "*/15 * * * *", "0 0,12 1-15 * 0-6",
                                  "30 23 31 12 7"])
def test_valid_cron_strings_load(text):
    assert parse_config(f"sentiment:\n  hmm: {{retrain_cron: '{text}'}}\n").hmm.retrain_cron \
        == text


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        # A value of the wrong kind is refused, never converted.
        ("sentiment:\n  weights: {trend: true}\n", "sentiment.weights.trend", "got bool True"),
        ("sentiment:\n  weights: {trend: '0.25'}\n", "sentiment.weights.trend",
         "got str '0.25'"),
        ("sentiment:\n  regime: {confirmation_bars: 6.0}\n",
         "sentiment.regime.confirmation_bars", "expected an integer, got float 6.0"),
        ("sentiment:\n  regime: {confirmation_bars: true}\n",
         "sentiment.regime.confirmation_bars", "expected an integer, got bool True"),
        ("sentiment:\n  hmm: {enabled: 1}\n", "sentiment.hmm.enabled",
         "expected true or false, got int 1"),
        ("sentiment:\n  start_date: 20220101\n", "sentiment.start_date",
         "expected a date, got int 20220101"),
        ("sentiment:\n  exchange_data: {orderbook_depth: true}\n",
         "sentiment.exchange_data.orderbook_depth", "expected an integer"),
        ("sentiment:\n  symbols: [\"BTCUSDT\\n\"]\n", "sentiment.symbols[0]", "Bybit symbol"),
        ("sentiment:\n  hmm: {n_states: [2, 9]}\n", "sentiment.hmm.n_states", "at most 8"),
        ("sentiment:\n  hmm: {n_states: [2, 1]}\n", "sentiment.hmm.n_states[1]", ">= 2, got 1"),
        ("sentiment:\n  hmm: {min_bars: 2000}\n", "sentiment.hmm.min_bars", "window_bars"),
        ("sentiment:\n  sources: {backoff_base_seconds: 10, backoff_max_seconds: 5}\n",
         "sentiment.sources.backoff_max_seconds", ">= backoff_base_seconds"),
        # The loader records where the file was read; the file cannot say so itself.
        ("sentiment:\n  path: other.yaml\n", "sentiment.path", "unknown key"),
        ("sentiment:\n  weights: {1: 0.5}\n", "sentiment.weights.1", "unknown key"),
    ],
)
def test_values_of_the_wrong_kind_are_refused(text, key, fragment):
    with pytest.raises(ConfigError) as info:
        parse_config(text, "bad.yaml")
    assert info.value.key == key
    assert str(info.value).startswith(f"bad.yaml: {key}: ")
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        # Sections in the order Config declares them, whatever the file's order.
        ("sentiment:\n  stream: {ping_seconds: x}\n  weights: {trend: x}\n",
         "sentiment.weights.trend"),
        # Inside a section, the keys in the file's order.
        ("sentiment:\n  regime: {event_bars: x, confirmation_bars: x}\n",
         "sentiment.regime.event_bars"),
        ("sentiment:\n  regime: {confirmation_bars: x, event_bars: x}\n",
         "sentiment.regime.confirmation_bars"),
        # An unknown key before the values of its section, the first by name ...
        ("sentiment:\n  regime: {confirmation_bars: x, zzz: 1, bbb: 1}\n",
         "sentiment.regime.bbb"),
        ("sentiment:\n  weights: {trend: x}\n  zzz: 1\n", "sentiment.zzz"),
        # ... but not before an earlier section's values.
        ("sentiment:\n  weights: {trend: x}\n  stream: {zzz: 1}\n", "sentiment.weights.trend"),
        ("sentiment:\n  weights: {trend: x}\n  history: {persist_to_db: true}\n",
         "sentiment.weights.trend"),
        # A section-wide rule only once its values are valid.
        ("sentiment:\n  regime: {adx_range_threshold: 30, confirmation_bars: 0}\n",
         "sentiment.regime.confirmation_bars"),
        ("sentiment:\n  path: x\n  enabled: true\n", "sentiment.enabled"),
        ("sentiment:\n  path: x\n  aaa: 1\n", "sentiment.aaa"),
    ],
)
def test_the_first_problem_in_reading_order_is_reported(text, key):
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.key == key


def test_replace_keeps_the_path_and_validates_again():
    config = load_config(REPO / "sentiment.yaml")
    moved = dataclasses.replace(config, start_date=dt.date(2022, 3, 8))
    assert moved.start_date == dt.date(2022, 3, 8)
    assert moved.path == config.path
    assert moved.regime == config.regime
    assert dataclasses.replace(config.hmm, n_states=[4, 2, 4]).n_states == (2, 4)
    with pytest.raises(ValueError, match="adx_trend_threshold"):
        dataclasses.replace(config.regime, adx_range_threshold=40.0)
    with pytest.raises(ValueError, match="expected a date YYYY-MM-DD"):
        dataclasses.replace(config, start_date="March")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.stream.flush_seconds = 1.0  # type: ignore[misc]


def test_numbers_keep_their_types():
    config = parse_config("sentiment:\n  stream: {flush_seconds: 3}\n  history: "
                          "{buffer_size: 600}\n  intervals: [D, 60]\n")
    assert config.stream.flush_seconds == 3.0
    assert type(config.stream.flush_seconds) is float
    assert type(config.history.buffer_size) is int
    assert config.intervals == ("D", "60")
