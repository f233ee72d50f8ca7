"""Recorded Bybit V5 and alternative.me responses through the clients' parsing functions.

The fixtures are copied byte for byte: the official examples of the Bybit V5 docs
(``kline.json``, ``funding_history.json``, ``open_interest.json``, ``account_ratio.json``,
``tickers_inverse_docs.json``, ``error_rate_limit.json``), real responses recorded in ccxt's
static test data (``*_ccxt*.json``, ``tickers.json``; ccxt stringifies ``retCode`` and
``time``), and a published sample of the Fear & Greed API (``fng/fng.json``).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentiment.errors import SourceError, TransientSourceError
from sentiment.io.sources import bybit, fear_greed
from sentiment.io.sources.bybit import (
    parse_funding,
    parse_klines,
    parse_long_short,
    parse_open_interest,
    parse_tickers,
)
from sentiment.io.sources.fear_greed import parse_fear_greed
from sentiment.io.sources.http import RateLimit, TokenBucket, to_epoch_ms, to_utc
from sentiment.settings import DEFAULTS, get_settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NS = np.dtype("datetime64[ns]")
F64 = np.dtype("float64")


def load(name: str) -> dict:
    folder = "fng" if name.startswith("fng") else "bybit"
    return json.loads((FIXTURES / folder / name).read_text())


def ms(value: int) -> pd.Timestamp:
    return pd.Timestamp(value, unit="ms")


def assert_shape(frame: pd.DataFrame, columns: list[str], time_column: str) -> None:
    assert list(frame.columns) == columns
    for column in columns:
        if column == time_column or column in ("ts", "next_funding_time"):
            assert frame[column].dtype == NS, column
        elif column in ("symbol", "interval", "period", "classification"):
            assert pd.api.types.is_string_dtype(frame[column]), column
        else:
            assert frame[column].dtype == F64, column
    assert frame[time_column].is_monotonic_increasing
    assert not frame[time_column].duplicated().any()


# -- klines ----------------------------------------------------------------------------------


def test_kline_docs_example_is_ascending_with_float_columns():
    frame = parse_klines(load("kline.json"), interval="60")
    assert_shape(frame, bybit.KLINE_COLUMNS, "open_time")
    assert frame["open_time"].tolist() == [ms(1670601600000), ms(1670605200000),
                                           ms(1670608800000)]
    first = frame.iloc[0]
    assert (first.symbol, first.interval) == ("BTCUSD", "60")
    assert (first.open, first.high, first.low, first.close) == (17086.5, 17088.0, 16978.0,
                                                                17071.5)
    assert (first.volume, first.turnover) == (6356.0, 0.37288112)


def test_kline_ccxt_recording_accepts_string_ret_code_and_time():
    payload = load("kline_linear_BTCUSDT_1h_ccxt.json")
    assert payload["retCode"] == "0" and payload["time"] == "1706803708087"
    frame = parse_klines(payload, interval="60", symbol="BTCUSDT")
    assert_shape(frame, bybit.KLINE_COLUMNS, "open_time")
    assert len(frame) == 3
    newest = frame.iloc[-1]
    assert newest.open_time == pd.Timestamp("2024-01-30 18:00")
    assert newest.close == 43352.8 and newest.turnover == 68345898.1407


def test_kline_bar_in_progress_is_dropped_only_when_closed_only():
    payload = load("kline_linear_BTCUSDT_1h_ccxt.json")
    # Server clock 30 minutes into the newest bar (18:00-19:00 UTC).
    payload["time"] = 1706637600000 + 30 * 60_000
    closed = parse_klines(payload, interval="60")
    assert closed["open_time"].max() == pd.Timestamp("2024-01-30 17:00")
    assert len(parse_klines(payload, interval="60", closed_only=False)) == 3
    # A bar that closes exactly at the server's time is closed.
    payload["time"] = 1706637600000 + 60 * 60_000
    assert len(parse_klines(payload, interval="60")) == 3


def test_kline_integer_and_string_ret_code_give_the_same_rows():
    payload = load("kline_linear_BTCUSDT_1h_ccxt.json")
    as_ints = copy.deepcopy(payload)
    as_ints["retCode"], as_ints["time"] = 0, int(payload["time"])
    pd.testing.assert_frame_equal(parse_klines(payload, interval="60"),
                                  parse_klines(as_ints, interval="60"))


@pytest.mark.parametrize("interval", ["M", "2", "1h", 0])
def test_unsupported_kline_interval_is_a_value_error(interval):
    with pytest.raises(ValueError, match="interval"):
        parse_klines(load("kline.json"), interval=interval)


def test_every_supported_interval_has_a_length():
    codes = ["1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W"]
    assert [bybit.kline_interval_ms(c)[1] // 60_000 for c in codes] == [
        1, 3, 5, 15, 30, 60, 120, 240, 360, 720, 1440, 10080]
    assert bybit.kline_interval_ms(60) == ("60", 3_600_000)


def test_kline_short_row_names_the_missing_field():
    payload = load("kline.json")
    payload["result"]["list"][1] = payload["result"]["list"][1][:6]
    with pytest.raises(SourceError) as info:
        parse_klines(payload, interval="60", symbol="BTCUSD")
    err = info.value
    assert (err.field, err.endpoint, err.symbol) == ("turnover", "/v5/market/kline", "BTCUSD")


def test_kline_non_numeric_price_names_field_and_value():
    payload = load("kline.json")
    payload["result"]["list"][2][3] = "n/a"
    with pytest.raises(SourceError, match="lowPrice is not a number: 'n/a'") as info:
        parse_klines(payload, interval="60")
    assert info.value.field == "lowPrice"
    assert not info.value.transient


def test_kline_for_another_symbol_is_rejected():
    with pytest.raises(SourceError, match="asked for ETHUSDT") as info:
        parse_klines(load("kline_linear_BTCUSDT_1h_ccxt.json"), interval="60", symbol="ETHUSDT")
    assert info.value.field == "symbol"


# -- funding, open interest, account ratio -----------------------------------------------------


def test_funding_docs_example():
    frame = parse_funding(load("funding_history.json"))
    assert_shape(frame, bybit.FUNDING_COLUMNS, "funding_time")
    assert frame.to_dict("records") == [
        {"symbol": "ETHPERP", "funding_time": pd.Timestamp("2022-12-26 08:00"),
         "funding_rate": 0.0001}]


def test_funding_missing_rate_names_the_field():
    payload = load("funding_history.json")
    del payload["result"]["list"][0]["fundingRate"]
    with pytest.raises(SourceError, match="lacks field 'fundingRate'") as info:
        parse_funding(payload, symbol="ETHPERP")
    assert (info.value.field, info.value.symbol) == ("fundingRate", "ETHPERP")


def test_funding_timestamp_must_be_whole_milliseconds():
    payload = load("funding_history.json")
    payload["result"]["list"][0]["fundingRateTimestamp"] = "2022-12-26"
    with pytest.raises(SourceError) as info:
        parse_funding(payload)
    assert info.value.field == "fundingRateTimestamp"
    payload["result"]["list"][0]["fundingRateTimestamp"] = "1672041600000.5"
    with pytest.raises(SourceError, match="not a Unix time"):
        parse_funding(payload)


def test_open_interest_docs_example_with_cursor_and_extra_field():
    frame = parse_open_interest(load("open_interest.json"), interval_time="1d")
    assert_shape(frame, bybit.OPEN_INTEREST_COLUMNS, "ts")
    assert len(frame) == 5
    assert frame["ts"].iloc[0] == ms(1780617600000)
    assert frame["open_interest"].tolist() == [63942311.0, 63942311.0, 63910691.0, 63910691.0,
                                               63910691.0]
    assert set(frame["interval"]) == {"1d"}


def test_open_interest_linear_recording():
    frame = parse_open_interest(load("open_interest_linear_BTCUSDT_ccxt.json"),
                                interval_time="1h", symbol="BTCUSDT")
    assert frame.to_dict("records") == [
        {"symbol": "BTCUSDT", "interval": "1h", "ts": pd.Timestamp("2025-02-16 17:00"),
         "open_interest": 62129.455}]


def test_open_interest_bad_number_names_the_field():
    payload = load("open_interest.json")
    payload["result"]["list"][3]["openInterest"] = "lots"
    with pytest.raises(SourceError, match="'lots' \\(row 3\\)") as info:
        parse_open_interest(payload, interval_time="1d")
    assert info.value.field == "openInterest"


def test_account_ratio_docs_example():
    frame = parse_long_short(load("account_ratio.json"), period="1h")
    assert_shape(frame, bybit.LONG_SHORT_COLUMNS, "ts")
    assert frame["ts"].tolist() == [ms(1696258800000), ms(1696262400000)]
    assert frame["buy_ratio"].tolist() == [0.4927, 0.49]
    assert frame["sell_ratio"].tolist() == [0.5073, 0.51]
    assert set(frame["period"]) == {"1h"} and set(frame["symbol"]) == {"BTCUSDT"}


def test_empty_list_gives_typed_empty_frame():
    payload = load("account_ratio.json")
    payload["result"]["list"] = []
    frame = parse_long_short(payload, period="1h", symbol="BTCUSDT")
    assert_shape(frame, bybit.LONG_SHORT_COLUMNS, "ts")
    assert frame.empty


# -- tickers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, symbol, time_ms",
    [
        ("tickers.json", "BTCUSDT", 1707905549267),
        ("tickers_linear_BTCUSDT_2024-11_ccxt.json", "BTCUSDT", 1730729903941),
        ("tickers_inverse_docs.json", "BTCUSD", 1760352369814),
    ],
)
def test_tickers_samples(name, symbol, time_ms):
    payload = load(name)
    frame = parse_tickers(payload)
    assert list(frame.columns) == bybit.TICKER_COLUMNS
    assert len(frame) == 1
    row = frame.iloc[0]
    item = payload["result"]["list"][0]
    assert row.symbol == symbol
    assert row.ts == ms(time_ms)
    assert row.last_price == float(item["lastPrice"])
    assert row.funding_rate == float(item["fundingRate"])
    assert row.next_funding_time == ms(int(item["nextFundingTime"]))
    assert row.ask1_size == float(item["ask1Size"])
    assert frame["ts"].dtype == NS and frame["next_funding_time"].dtype == NS
    numeric = [c for c in bybit.TICKER_COLUMNS if c not in ("symbol", "ts", "next_funding_time")]
    assert (frame[numeric].dtypes == F64).all()


def test_tickers_empty_strings_become_missing_values():
    payload = load("tickers.json")
    payload["result"]["list"][0].update(markPrice="", nextFundingTime="", fundingRate="")
    row = parse_tickers(payload).iloc[0]
    assert np.isnan(row.mark_price) and np.isnan(row.funding_rate)
    assert row.next_funding_time is pd.NaT


def test_tickers_non_numeric_value_names_the_field():
    payload = load("tickers.json")
    payload["result"]["list"][0]["bid1Price"] = "51,444.30"
    with pytest.raises(SourceError) as info:
        parse_tickers(payload, symbol="BTCUSDT")
    assert info.value.field == "bid1Price"
    assert "51,444.30" in str(info.value)


# -- envelopes and errors --------------------------------------------------------------------


def test_rate_limit_answer_is_transient():
    with pytest.raises(TransientSourceError, match="10006") as info:
        parse_funding(load("error_rate_limit.json"), symbol="BTCUSDT")
    assert info.value.transient and info.value.field == "retCode"


def test_params_error_is_fatal_and_quotes_ret_msg():
    with pytest.raises(SourceError) as info:
        parse_klines(load("error_params_10001_ccxt_comment.json"), interval="60",
                     symbol="BTCUSDT")
    err = info.value
    assert not isinstance(err, TransientSourceError)
    assert "retCode 10001" in str(err) and "openapi sign params error!" in str(err)
    assert (err.endpoint, err.symbol, err.field) == ("/v5/market/kline", "BTCUSDT", "retCode")


@pytest.mark.parametrize("ret_code", ["x", None, True])
def test_ret_code_must_be_an_integer(ret_code):
    payload = load("funding_history.json")
    payload["retCode"] = ret_code
    with pytest.raises(SourceError) as info:
        parse_funding(payload)
    assert info.value.field == "retCode"


def test_missing_result_list_is_named():
    payload = load("funding_history.json")
    del payload["result"]["list"]
    with pytest.raises(SourceError) as info:
        parse_funding(payload)
    assert info.value.field == "list"


# -- Fear & Greed ----------------------------------------------------------------------------


def test_fear_greed_sample():
    frame = parse_fear_greed(load("fng.json"))
    assert_shape(frame, ["ts", "value", "classification"], "ts")
    assert frame.to_dict("records") == [
        {"ts": pd.Timestamp("2026-04-26"), "value": 33.0, "classification": "Fear"},
        {"ts": pd.Timestamp("2026-04-27"), "value": 47.0, "classification": "Neutral"},
    ]


def test_fear_greed_metadata_error():
    payload = load("fng.json")
    payload["metadata"]["error"] = "Invalid limit"
    with pytest.raises(SourceError, match="Invalid limit") as info:
        parse_fear_greed(payload)
    assert info.value.field == "metadata.error" and info.value.source == "fear_greed"


@pytest.mark.parametrize("value", ["101", "-1", "high", ""])
def test_fear_greed_value_must_be_a_number_in_range(value):
    payload = load("fng.json")
    payload["data"][1]["value"] = value
    with pytest.raises(SourceError) as info:
        parse_fear_greed(payload)
    assert info.value.field == "value"


def test_fear_greed_timestamp_is_unix_seconds():
    payload = load("fng.json")
    payload["data"][0]["timestamp"] = "27-04-2026"
    with pytest.raises(SourceError) as info:
        parse_fear_greed(payload)
    assert info.value.field == "timestamp"


def test_fear_greed_exact_duplicate_day_is_kept_once():
    payload = load("fng.json")
    payload["data"].append(dict(payload["data"][1]))
    frame = parse_fear_greed(payload)
    assert frame["value"].tolist() == [33.0, 47.0]


# -- impossible values: the whole answer is rejected, naming the field -------------------------

KLINE_FIXTURE = "kline_linear_BTCUSDT_1h_ccxt.json"


def _set(index, key, value):
    def edit(rows):
        rows[index][key] = value

    return edit


def _same_key(index, key, **changes):
    """Row ``index`` takes row 0's key and other values: a conflicting duplicate."""

    def edit(rows):
        rows[index].update({key: rows[0][key], **changes})

    return edit


def _kline_same_start(rows):
    rows[2] = list(rows[1])
    rows[2][5] = str(float(rows[1][5]) + 1)  # the volume


def _kline_swap_high_low(rows):
    rows[1][2], rows[1][3] = rows[1][3], rows[1][2]


def _kline_late(rows):
    rows[0][0] = "1806637600000"  # 2027, the response's time is 2024-02-01


def _funding_late(rows):
    rows[0]["fundingRateTimestamp"] = "1672151897447"  # a day after the response


def _parse(name):
    return {
        KLINE_FIXTURE: lambda p: parse_klines(p, interval="60", symbol="BTCUSDT",
                                              closed_only=False),
        "funding_history.json": lambda p: parse_funding(p, symbol="ETHPERP"),
        "open_interest.json": lambda p: parse_open_interest(p, interval_time="1d"),
        "account_ratio.json": lambda p: parse_long_short(p, period="1h"),
        "tickers.json": lambda p: parse_tickers(p, symbol="BTCUSDT"),
    }[name]


HOSTILE = [
    ("kline_negative_open", KLINE_FIXTURE, _set(1, 1, "-43488"), "openPrice"),
    ("kline_zero_low", KLINE_FIXTURE, _set(1, 3, "0"), "lowPrice"),
    ("kline_high_below_low", KLINE_FIXTURE, _kline_swap_high_low, "highPrice"),
    ("kline_close_above_high", KLINE_FIXTURE, _set(1, 4, "99999"), "closePrice"),
    ("kline_negative_volume", KLINE_FIXTURE, _set(1, 5, "-1"), "volume"),
    ("kline_negative_turnover", KLINE_FIXTURE, _set(1, 6, "-0.5"), "turnover"),
    ("kline_price_1e308", KLINE_FIXTURE, _set(1, 2, "1e308"), "highPrice"),
    ("kline_price_above_1e12", KLINE_FIXTURE, _set(1, 2, "2e12"), "highPrice"),
    ("kline_volume_1e308", KLINE_FIXTURE, _set(1, 5, "1e308"), "volume"),
    ("kline_after_response_time", KLINE_FIXTURE, _kline_late, "startTime"),
    ("kline_conflicting_duplicate", KLINE_FIXTURE, _kline_same_start, "startTime"),
    ("funding_90_percent", "funding_history.json", _set(0, "fundingRate", "0.9"),
     "fundingRate"),
    ("funding_minus_6_percent", "funding_history.json", _set(0, "fundingRate", "-0.06"),
     "fundingRate"),
    ("funding_after_response_time", "funding_history.json", _funding_late,
     "fundingRateTimestamp"),
    ("open_interest_negative", "open_interest.json", _set(2, "openInterest", "-1"),
     "openInterest"),
    ("open_interest_1e308", "open_interest.json", _set(2, "openInterest", "1e308"),
     "openInterest"),
    ("open_interest_conflicting_duplicate", "open_interest.json",
     _same_key(2, "timestamp", openInterest="1"), "timestamp"),
    ("buy_ratio_above_1", "account_ratio.json", _set(0, "buyRatio", "1.2"), "buyRatio"),
    ("sell_ratio_negative", "account_ratio.json", _set(1, "sellRatio", "-0.5"), "sellRatio"),
    ("ratios_far_from_summing_to_1", "account_ratio.json", _set(1, "buyRatio", "0.9"),
     "buyRatio"),
    ("ratio_conflicting_duplicate", "account_ratio.json",
     _same_key(1, "timestamp", buyRatio="0.6", sellRatio="0.4"), "timestamp"),
    ("ticker_zero_mark_price", "tickers.json", _set(0, "markPrice", "0"), "markPrice"),
    ("ticker_negative_volume", "tickers.json", _set(0, "volume24h", "-1"), "volume24h"),
    ("ticker_funding_90_percent", "tickers.json", _set(0, "fundingRate", "0.9"),
     "fundingRate"),
]


@pytest.mark.parametrize(("case", "name", "edit", "field"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_an_impossible_value_rejects_the_answer(case, name, edit, field):
    payload = load(name)
    edit(payload["result"]["list"])
    with pytest.raises(SourceError) as info:
        _parse(name)(payload)
    err = info.value
    assert err.field == field and err.source == "bybit" and not err.transient
    assert str(err).startswith(("rows ", "a row ", field)) and "(row " in str(err)


def test_an_exact_duplicate_row_is_kept_once():
    payload = load(KLINE_FIXTURE)
    rows = payload["result"]["list"]
    rows.insert(1, list(rows[1]))
    pd.testing.assert_frame_equal(_parse(KLINE_FIXTURE)(payload),
                                  _parse(KLINE_FIXTURE)(load(KLINE_FIXTURE)))


def test_ratios_rounded_to_four_decimals_are_accepted():
    payload = load("account_ratio.json")
    payload["result"]["list"][0].update(buyRatio="0.3334", sellRatio="0.6667")
    assert parse_long_short(payload, period="1h")["buy_ratio"].iloc[-1] == 0.3334


def test_a_bar_in_progress_stamped_before_the_response_is_accepted():
    payload = load(KLINE_FIXTURE)
    payload["time"] = str(1706637600000 + 1)  # a millisecond into the newest bar
    assert len(parse_klines(payload, interval="60", closed_only=False)) == 3


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (_set(0, "value", "50.5"), "value"),
        (_set(0, "value", "1e308"), "value"),
        (_same_key(1, "timestamp"), "timestamp"),
        (_same_key(1, "timestamp", value_classification="Greed", value="47"), "timestamp"),
    ],
    ids=["fractional", "huge", "same_day_other_value", "same_day_other_label"],
)
def test_fear_greed_impossible_answers_are_named(edit, field):
    payload = load("fng.json")
    edit(payload["data"])
    with pytest.raises(SourceError) as info:
        parse_fear_greed(payload)
    assert (info.value.source, info.value.field) == ("fear_greed", field)


def test_fear_greed_same_day_stamped_twice_with_other_values_is_named():
    payload = load("fng.json")
    payload["data"].append(dict(payload["data"][0], value="12",
                                timestamp=str(int(payload["data"][0]["timestamp"]) + 3600)))
    with pytest.raises(SourceError, match="different values") as info:
        parse_fear_greed(payload)
    assert info.value.field == "timestamp"


# -- helpers ---------------------------------------------------------------------------------


def test_to_utc_reads_naive_as_utc_and_converts_aware():
    expected = pd.Timestamp("2022-06-01 12:00")
    assert to_utc("2022-06-01T12:00:00") == expected
    assert to_utc("2022-06-01T14:00:00+02:00") == expected
    assert to_utc(dt.datetime(2022, 6, 1, 12)) == expected
    assert to_utc(dt.datetime(2022, 6, 1, 7, tzinfo=dt.timezone(dt.timedelta(hours=-5)))) \
        == expected
    assert to_utc(pd.Timestamp("2022-06-01 12:00", tz="UTC")) == expected
    assert to_utc(dt.date(2022, 6, 1)) == pd.Timestamp("2022-06-01")
    assert to_utc("2022-06-01").tzinfo is None
    with pytest.raises(TypeError):
        to_utc(1654084800)
    with pytest.raises(ValueError):
        to_utc("not a date")


def test_epoch_ms_rounds_sub_millisecond_up():
    assert to_epoch_ms(pd.Timestamp("2022-01-01")) == 1640995200000
    assert to_epoch_ms(pd.Timestamp("2022-01-01 00:00:00.0000001")) == 1640995200001


def test_token_bucket_allows_a_burst_then_spaces_requests():
    clock = [0.0]
    waits: list[float] = []
    bucket = TokenBucket(3, 2.0, clock=lambda: clock[0], sleep=waits.append)
    assert [bucket.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.acquire() == pytest.approx(0.5)
    assert bucket.acquire() == pytest.approx(1.0)
    assert waits == pytest.approx([0.5, 1.0])
    clock[0] = 10.0  # idle: refilled to capacity, no more
    assert [bucket.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.acquire() > 0


def test_token_bucket_hands_out_each_slot_once_across_threads():
    waits: list[float] = []
    bucket = TokenBucket(5, 10.0, clock=lambda: 0.0, sleep=lambda _: None)
    lock = threading.Lock()

    def worker():
        for _ in range(25):
            wait = bucket.reserve()
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # The clock stands still: 5 free tokens, then one slot every 0.1 s, none given twice.
    assert sorted(waits) == pytest.approx([0.0] * 5 + [k / 10 for k in range(1, 96)])


def test_bybit_bucket_stays_within_the_published_limit():
    bucket = bybit.RATE_LIMIT.bucket()
    # Worst case over any 5 s window: a full burst plus 5 s of refill.
    assert bucket.capacity + 5.0 * bucket.rate <= 600
    assert RateLimit(60, 60.0).bucket().capacity >= 1


def test_fear_greed_bucket_stays_within_the_published_limit():
    bucket = fear_greed.RATE_LIMIT.bucket()
    # alternative.me: 60 requests per minute.
    assert bucket.capacity + 60.0 * bucket.rate <= 60
    assert bucket.capacity >= 10  # a test session or a backfill never waits for a few calls


def test_settings_defaults_and_overrides():
    assert get_settings({}) == get_settings({"BYBIT_BASE_URL": ""})
    defaults = get_settings({})
    assert defaults.config_path == "sentiment.yaml"
    assert defaults.db_path == "data/sentiment.duckdb"
    assert defaults.bybit_base_url == "https://api.bybit.com"
    assert defaults.bybit_ws_url == "wss://stream.bybit.com/v5/public/linear"
    assert defaults.fear_greed_url == "https://api.alternative.me/fng/"
    custom = get_settings({"BYBIT_BASE_URL": "http://127.0.0.1:8765",
                           "FEAR_GREED_URL": "http://127.0.0.1:8765/fng/",
                           "SENTIMENT_DB": "x.duckdb"})
    assert (custom.bybit_base_url, custom.fear_greed_url, custom.db_path) == (
        "http://127.0.0.1:8765", "http://127.0.0.1:8765/fng/", "x.duckdb")
    assert set(DEFAULTS) == {"SENTIMENT_CONFIG", "SENTIMENT_DB", "BYBIT_BASE_URL",
                             "BYBIT_WS_URL", "FEAR_GREED_URL", "SENTIMENT_STREAM_DIR"}
    # The stream stages beside the database unless told otherwise.
    assert defaults.stream_dir == "data/stream"
    assert custom.stream_dir == "./stream"
    assert get_settings({"SENTIMENT_DB": "/srv/s.duckdb"}).stream_dir == "/srv/stream"
    assert get_settings({"SENTIMENT_STREAM_DIR": "/tmp/st"}).stream_dir == "/tmp/st"
