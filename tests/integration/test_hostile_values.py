"""Impossible values and conflicting duplicates served by the replay exchange are rejected at
the parser with an error naming source, endpoint, symbol and field, and never reach storage.

The replay exchange has no fault kind for "this exact value", so :func:`serve_edited` wraps
one of its routes (``replay.ROUTES``): the real server answers over HTTP as usual, with the
rows of its answer edited the way a hostile or broken exchange would send them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pandas as pd
import pytest
from dagster import DagsterInstance

import replay.server as replay_module
from orchestration.definitions import build_definitions
from sentiment.config import load_config
from sentiment.errors import SourceError
from sentiment.io.sources.bybit import BybitClient
from sentiment.io.sources.fear_greed import FearGreedClient
from sentiment.io.store import Store
from sentiment.settings import get_settings

pytestmark = pytest.mark.integration

KLINE = "/v5/market/kline"
FUNDING = "/v5/market/funding/history"
OPEN_INTEREST = "/v5/market/open-interest"
ACCOUNT_RATIO = "/v5/market/account-ratio"
TICKERS = "/v5/market/tickers"
FNG = "/fng"
LO = pd.Timestamp("2022-03-01 08:00")
HI = pd.Timestamp("2022-03-03 16:00")
HOUR_MS = 3_600_000
# Kline rows are arrays: startTime, open, high, low, close, volume, turnover.
START, OPEN, HIGH, LOW, CLOSE, VOLUME, TURNOVER = range(7)


@pytest.fixture
def serve_edited(clean_replay, monkeypatch):
    """``serve_edited(path, edit, symbol=None, min_rows=3)``: answers to ``path`` (for
    ``symbol`` only, when given) with at least ``min_rows`` rows carry their rows after
    ``edit(rows, now_ms)``. Returns a function that stops editing; undone after the test."""

    def install(path, edit, symbol=None, min_rows=3):
        route = replay_module.ROUTES[path]

        def edited(market, query, now):
            reply = route(market, query, now)
            if reply.status != 200 or (symbol and query.get("symbol") != symbol):
                return reply
            payload = json.loads(reply.body)
            rows = payload["data"] if path == FNG else payload["result"]["list"]
            if len(rows) >= min_rows:
                edit(rows, now)
            return dataclasses.replace(reply, body=json.dumps(payload).encode(),
                                       payload=payload)

        monkeypatch.setitem(replay_module.ROUTES, path, edited)
        return lambda: monkeypatch.setitem(replay_module.ROUTES, path, route)

    return install


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(clean_replay, sleeps):
    with BybitClient(clean_replay.base_url, sleep=sleeps.append) as bybit:
        yield bybit


@pytest.fixture
def fng(clean_replay, sleeps):
    with FearGreedClient(clean_replay.fear_greed_url, sleep=sleeps.append) as client:
        yield client


def put(index, key, value):
    """An edit setting ``rows[index][key]`` (``value`` may be a function of the row)."""

    def edit(rows, now):
        rows[index][key] = value(rows[index]) if callable(value) else value

    return edit


def swap(index, a, b):
    def edit(rows, now):
        rows[index][a], rows[index][b] = rows[index][b], rows[index][a]

    return edit


def clash(key, changed):
    """Row 1 takes row 0's key with a different ``changed`` value: a conflicting duplicate."""

    def edit(rows, now):
        rows[1][key] = rows[0][key]
        rows[1][changed] = str(float(rows[0][changed]) * 1.5 + 0.01)

    return edit


def kline_clash(rows, now):
    """Row 1 becomes row 2 with another volume: same startTime, different values."""
    rows[1] = list(rows[2])
    rows[1][VOLUME] = str(float(rows[2][VOLUME]) + 1)


def ratio_clash(rows, now):
    rows[1].update(timestamp=rows[0]["timestamp"], buyRatio="0.2", sellRatio="0.8")


def future(key, ms_after):
    def edit(rows, now):
        rows[0][key] = str(now + ms_after)

    return edit


def ratios(buy, sell):
    def edit(rows, now):
        rows[0].update(buyRatio=buy, sellRatio=sell)

    return edit


KLINES = (KLINE, "klines", ("BTCUSDT", "60"))
FUNDINGS = (FUNDING, "funding_history", ("BTCUSDT",))
OIS = (OPEN_INTEREST, "open_interest", ("BTCUSDT", "1h"))
RATIOS = (ACCOUNT_RATIO, "long_short_ratio", ("BTCUSDT", "1h"))

CASES = [
    ("negative_open", KLINES, put(1, OPEN, "-1"), "openPrice"),
    ("zero_close", KLINES, put(1, CLOSE, "0"), "closePrice"),
    ("high_below_low", KLINES, swap(1, HIGH, LOW), "highPrice"),
    ("open_above_high", KLINES, put(1, OPEN, lambda r: str(float(r[HIGH]) * 2)), "openPrice"),
    ("negative_volume", KLINES, put(1, VOLUME, "-3"), "volume"),
    ("negative_turnover", KLINES, put(1, TURNOVER, "-1"), "turnover"),
    ("price_1e308", KLINES, put(1, HIGH, "1e308"), "highPrice"),
    ("volume_1e308", KLINES, put(1, VOLUME, "1e308"), "volume"),
    ("bar_after_the_clock", KLINES, future(START, 2 * HOUR_MS), "startTime"),
    ("kline_conflicting_duplicate", KLINES, kline_clash, "startTime"),
    ("funding_90_percent", FUNDINGS, put(0, "fundingRate", "0.9"), "fundingRate"),
    ("funding_minus_6_percent", FUNDINGS, put(0, "fundingRate", "-0.06"), "fundingRate"),
    ("funding_after_the_clock", FUNDINGS, future("fundingRateTimestamp", 8 * HOUR_MS),
     "fundingRateTimestamp"),
    ("funding_conflicting_duplicate", FUNDINGS, clash("fundingRateTimestamp", "fundingRate"),
     "fundingRateTimestamp"),
    ("negative_open_interest", OIS, put(0, "openInterest", "-1"), "openInterest"),
    ("open_interest_1e308", OIS, put(0, "openInterest", "1e308"), "openInterest"),
    ("open_interest_conflicting_duplicate", OIS, clash("timestamp", "openInterest"),
     "timestamp"),
    ("buy_ratio_above_1", RATIOS, ratios("1.5", "-0.5"), "buyRatio"),
    ("sell_ratio_below_0", RATIOS, ratios("0.5", "-0.1"), "sellRatio"),
    ("ratios_not_summing_to_1", RATIOS, ratios("0.3", "0.3"), "buyRatio"),
    ("long_short_conflicting_duplicate", RATIOS, ratio_clash, "timestamp"),
]


@pytest.mark.parametrize(("case", "target", "edit", "field"), CASES,
                         ids=[c[0] for c in CASES])
def test_an_impossible_value_is_named_and_nothing_is_returned(client, serve_edited, sleeps,
                                                              case, target, edit, field):
    path, method, args = target
    serve_edited(path, edit)
    with pytest.raises(SourceError) as info:
        getattr(client, method)(*args, LO, HI)
    err = info.value
    assert (err.source, err.endpoint, err.symbol, err.field) == ("bybit", path, "BTCUSDT",
                                                                 field)
    assert not err.transient and sleeps == []
    assert field in str(err) and "BTCUSDT" in str(err)


def test_an_exact_duplicate_row_is_collapsed(client, serve_edited):
    expected = client.klines("BTCUSDT", "60", LO, HI)
    serve_edited(KLINE, lambda rows, now: rows.insert(1, list(rows[1])))
    pd.testing.assert_frame_equal(client.klines("BTCUSDT", "60", LO, HI), expected)


TICKER_CASES = [
    ("negative_last_price", put(0, "lastPrice", "-1"), "lastPrice"),
    ("funding_90_percent", put(0, "fundingRate", "0.9"), "fundingRate"),
    ("high_24h_below_low_24h", swap(0, "highPrice24h", "lowPrice24h"), "highPrice24h"),
    ("negative_open_interest", put(0, "openInterest", "-5"), "openInterest"),
]


@pytest.mark.parametrize(("case", "edit", "field"), TICKER_CASES,
                         ids=[c[0] for c in TICKER_CASES])
def test_an_impossible_ticker_is_named(client, serve_edited, case, edit, field):
    serve_edited(TICKERS, edit, min_rows=1)
    with pytest.raises(SourceError) as info:
        client.tickers("BTCUSDT")
    err = info.value
    assert (err.endpoint, err.symbol, err.field) == (TICKERS, "BTCUSDT", field)


def fng_clash(offset_s):
    def edit(rows, now):
        rows[1]["timestamp"] = str(int(rows[0]["timestamp"]) + offset_s)
        rows[1]["value"] = str((int(rows[0]["value"]) + 10) % 100)

    return edit


FNG_CASES = [
    ("fractional_value", put(0, "value", "50.5"), "value"),
    ("same_day_different_values", fng_clash(0), "timestamp"),
    ("same_day_later_stamp_different_value", fng_clash(12 * 3600), "timestamp"),
]


@pytest.mark.parametrize(("case", "edit", "field"), FNG_CASES, ids=[c[0] for c in FNG_CASES])
def test_an_impossible_fear_greed_answer_is_named(fng, serve_edited, sleeps, case, edit, field):
    serve_edited(FNG, edit)
    with pytest.raises(SourceError) as info:
        fng.history()
    err = info.value
    assert (err.source, err.field) == ("fear_greed", field)
    assert field in str(err) and "fear_greed" in str(err)
    assert sleeps == []


def test_an_exact_duplicate_fear_greed_day_is_collapsed(fng, serve_edited):
    expected = fng.history()
    serve_edited(FNG, lambda rows, now: rows.insert(1, dict(rows[1])))
    pd.testing.assert_frame_equal(fng.history(), expected)


# -- the Dagster ingestion jobs ----------------------------------------------------------------

RANGE_TAGS = {
    "dagster/asset_partition_range_start": "2022-06-01|BTCUSDT",
    "dagster/asset_partition_range_end": "2022-06-03|ETHUSDT",
}
MARKET_TABLES = ("candles", "funding_rates", "open_interest", "long_short_ratio")


@pytest.fixture
def defs(clean_replay, db_path):
    settings = dataclasses.replace(get_settings(), db_path=db_path,
                                   bybit_base_url=clean_replay.base_url,
                                   fear_greed_url=clean_replay.fear_greed_url)
    config = load_config()
    config = dataclasses.replace(config, sources=dataclasses.replace(
        config.sources, max_retries=2, backoff_base_seconds=0.01, backoff_max_seconds=0.05))
    return build_definitions(config, settings)


def run(defs, job, tags):
    return defs.resolve_job_def(job).execute_in_process(
        tags=tags, raise_on_error=False, instance=DagsterInstance.ephemeral())


def failures(result):
    return [str(e.step_failure_data.error) for e in result.all_events if e.is_step_failure]


JOB_CASES = [
    ("price_1e308", KLINE, put(1, HIGH, "1e308"), "highPrice"),
    ("funding_90_percent", FUNDING, put(0, "fundingRate", "0.9"), "fundingRate"),
    ("open_interest_conflicting_duplicate", OPEN_INTEREST, clash("timestamp", "openInterest"),
     "timestamp"),
    ("buy_ratio_above_1", ACCOUNT_RATIO, ratios("1.5", "-0.5"), "buyRatio"),
]


@pytest.mark.parametrize(("case", "path", "edit", "field"), JOB_CASES,
                         ids=[c[0] for c in JOB_CASES])
def test_the_market_data_job_fails_with_the_named_error_and_keeps_stored_rows(
        defs, db_path, serve_edited, seeded, case, path, edit, field):
    seeded(defs, db_path, ("market_data_job", {"tags": RANGE_TAGS}))
    before = {t: Store(db_path).read(t) for t in MARKET_TABLES}
    # The first symbol is served clean, the second hostile: nothing of the run is written.
    serve_edited(path, edit, symbol="ETHUSDT")
    result = run(defs, "market_data_job", RANGE_TAGS)
    assert not result.success
    messages = failures(result)
    assert len(messages) == 1
    assert all(s in messages[0] for s in (f"field={field}", "symbol=ETHUSDT", "source=bybit",
                                          f"endpoint={path}"))
    for table, frame in before.items():
        pd.testing.assert_frame_equal(Store(db_path).read(table), frame, obj=table)


def test_the_fear_greed_job_fails_with_the_named_error_and_keeps_stored_rows(
        defs, db_path, serve_edited):
    tags = {"dagster/asset_partition_range_start": "2022-06-01",
            "dagster/asset_partition_range_end": "2022-06-30"}
    assert run(defs, "fear_greed_job", tags).success
    before = Store(db_path).read("fear_greed")
    serve_edited(FNG, fng_clash(0))
    result = run(defs, "fear_greed_job", tags)
    assert not result.success
    assert any("source=fear_greed" in m and "field=timestamp" in m for m in failures(result))
    pd.testing.assert_frame_equal(Store(db_path).read("fear_greed"), before)


def test_a_1e308_close_fails_the_live_update_and_later_scores_stay_numbers(
        clean_replay, serve_edited, tmp_path):
    from sentiment.services.live import live_update

    store = Store(str(tmp_path / "live.duckdb"))
    config = dataclasses.replace(load_config(), start_date=dt.date(2022, 3, 1))
    clients = (BybitClient(clean_replay.base_url), FearGreedClient(clean_replay.fear_greed_url))
    clean_replay.set_clock(dt.datetime(2022, 3, 10))
    live_update(store, config, *clients)
    tables = ["candles", "sentiment_history", "tracker_state"]
    before = {t: store.read(t) for t in tables}
    clean_replay.set_clock(dt.datetime(2022, 3, 10, 6, 0, 30))
    stop = serve_edited(KLINE, put(1, CLOSE, "1e308"), symbol="ETHUSDT")
    with pytest.raises(SourceError) as info:
        live_update(store, config, *clients)
    assert (info.value.symbol, info.value.field) == ("ETHUSDT", "closePrice")
    for table, frame in before.items():
        pd.testing.assert_frame_equal(store.read(table), frame, obj=table)
    # Served clean again, the update stores the bars and scores them.
    stop()
    live_update(store, config, *clients)
    history = store.read("sentiment_history")
    eth = history[(history.symbol == "ETHUSDT") & (history.interval == "60")]
    newest = eth.sort_values("timestamp").iloc[-1]
    assert newest["timestamp"] == pd.Timestamp("2022-03-10 06:00")
    assert pd.notna(newest["sentiment_score"])
