"""Interval codes and retry defaults: defined once, the same wherever they are used."""

from __future__ import annotations

import dataclasses
import inspect

from dashboard.controls import INTERVAL_NAMES
from replay import server
from sentiment import config
from sentiment.io import retry
from sentiment.io.sources import bybit, bybit_ws, fear_greed, http
from sentiment.io.store import Store
from sentiment.models import INTERVAL_MINUTES, PERIOD_MINUTES


def test_interval_codes_have_one_definition():
    assert config.INTERVAL_MINUTES is INTERVAL_MINUTES
    assert config.PERIOD_MINUTES is PERIOD_MINUTES
    assert bybit.INTERVAL_MS == {c: m * 60_000 for c, m in INTERVAL_MINUTES.items()}
    assert bybit.INTERVAL_MS["W"] == 7 * 86_400_000
    assert bybit.PERIODS == ("5min", "15min", "30min", "1h", "4h", "1d")
    assert server.PERIODS == {c: m * 60_000 for c, m in PERIOD_MINUTES.items()}
    assert server.MINUTE_INTERVALS == ("1", "3", "5", "15", "30")
    assert list(server.KLINE_INTERVALS) == ["60", "120", "240", "360", "720", "D", "W"]
    assert server.KLINE_INTERVALS["720"] == 12 * 3_600_000
    assert INTERVAL_NAMES == {"1": "1m", "3": "3m", "5": "5m", "15": "15m", "30": "30m",
                              "60": "1h", "120": "2h", "240": "4h", "360": "6h", "720": "12h",
                              "D": "1d", "W": "1w"}


def _defaults(function) -> dict:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


def test_every_rest_client_and_the_config_share_the_retry_defaults():
    wanted = {"timeout": 10.0, "max_retries": 5, "backoff_base": 0.5, "backoff_max": 30.0}
    # Both clients take their retry settings through the one REST client base.
    assert issubclass(bybit.BybitClient, http.RestClient)
    assert issubclass(fear_greed.FearGreedClient, http.RestClient)
    for function in (http.HttpTransport.__init__, http.RestClient.__init__,
                     fear_greed.FearGreedClient.__init__):
        got = _defaults(function)
        assert {k: got[k] for k in wanted} == wanted, function
    keys = {"timeout": "timeout_seconds", "max_retries": "max_retries",
            "backoff_base": "backoff_base_seconds", "backoff_max": "backoff_max_seconds"}
    assert {keys[k]: v for k, v in wanted.items()} == dataclasses.asdict(retry.SOURCES)
    assert dataclasses.asdict(config.SourcesConfig()) == dataclasses.asdict(retry.SOURCES)


def test_the_stream_store_and_dashboard_waits_come_from_one_place():
    ws = _defaults(bybit_ws.BybitStream.__init__)
    assert (ws["ping_seconds"], ws["dead_seconds"], ws["backoff_seconds"],
            ws["max_backoff_seconds"], ws["connect_timeout"]) == (20.0, 45.0, 0.5, 30.0, 10.0)
    assert ws["ping_seconds"] == retry.STREAM.ping_seconds
    stream = config.StreamConfig()
    assert (stream.ping_seconds, stream.dead_seconds, stream.max_backoff_seconds) == (
        retry.STREAM.ping_seconds, retry.STREAM.dead_seconds, retry.STREAM.max_backoff_seconds)
    assert _defaults(Store.__init__)["lock_timeout"] == retry.STORE_LOCK.timeout_seconds == 60.0
    assert config.DashboardConfig().lock_wait_seconds == retry.DASHBOARD_LOCK_WAIT_SECONDS
