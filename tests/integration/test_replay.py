"""The replay exchange over real HTTP on 127.0.0.1: response shapes against recorded samples,
paging, limits, the replay clock, aggregation, the synthetic series and every fault kind."""

from __future__ import annotations

import csv
import gzip
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
import requests

from replay.server import (
    BUNDLE_DIR,
    BUNDLE_END,
    BUNDLE_START,
    BUNDLED_SYMBOLS,
    SYNTHETIC_SERIES,
    ReplayExchange,
    load_bundle,
)

from helpers import ms

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
HOUR = 3_600_000
DAY = 24 * HOUR
JUNE_1 = 1_654_041_600_000  # 2022-06-01 00:00 UTC

KLINE = "/v5/market/kline"
FUNDING = "/v5/market/funding/history"
OPEN_INTEREST = "/v5/market/open-interest"
ACCOUNT_RATIO = "/v5/market/account-ratio"
TICKERS = "/v5/market/tickers"
TIME = "/v5/market/time"


def sample(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def ex(clean_replay):
    """The session's replay exchange, with no faults, an empty log and the default clock."""
    return clean_replay


@pytest.fixture(scope="module")
def http():
    with requests.Session() as session:
        yield session


@pytest.fixture(scope="module")
def bundle():
    return load_bundle()


@pytest.fixture
def get(ex, http):
    def _get(path: str, **params) -> requests.Response:
        return http.get(ex.base_url + path, params=params, timeout=10)

    return _get


@pytest.fixture
def ok(get):
    """GET a Bybit endpoint (category=linear) and return its ``result``; retCode must be 0."""

    def _ok(path: str, **params) -> dict:
        response = get(path, category="linear", **params)
        assert response.status_code == 200
        payload = response.json()
        assert payload["retCode"] == 0, payload
        return payload["result"]

    return _ok


def hourly(bundle, symbol: str) -> pd.DataFrame:
    frame = bundle["candles"]
    return frame[frame.symbol == symbol].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Shapes against the recorded samples


def test_module_constants():
    assert BUNDLE_START.isoformat() == "2022-01-01T00:00:00"
    assert BUNDLE_END.isoformat() == "2023-01-01T00:00:00"
    assert BUNDLED_SYMBOLS == ("BTCUSDT", "ETHUSDT")
    assert SYNTHETIC_SERIES == ("open_interest", "long_short_ratio")
    readme = (BUNDLE_DIR / "README.md").read_text()
    assert "SYNTHETIC" in readme and "UTC+3" in readme
    size = sum(p.stat().st_size for p in BUNDLE_DIR.glob("*.csv.gz"))
    assert size < 1_000_000


def test_time_endpoint(get, ex):
    payload = get(TIME).json()
    assert list(payload) == list(sample("bybit/funding_history.json"))
    assert payload["retCode"] == 0 and payload["time"] == ex.now_ms()
    assert payload["result"] == {"timeSecond": str(ex.now_ms() // 1000),
                                 "timeNano": str(ex.now_ms() * 1_000_000)}
    assert get(TIME).headers["Content-Type"].startswith("application/json")


def test_kline_shape_matches_the_recorded_response(get):
    recorded = sample("bybit/kline_linear_BTCUSDT_1h_ccxt.json")
    payload = get(KLINE, category="linear", symbol="BTCUSDT", interval="60", limit=3).json()
    assert list(payload) == list(recorded)
    assert list(payload["result"]) == list(recorded["result"])
    # ccxt stringifies retCode and time; on the wire they are integers.
    assert type(payload["retCode"]) is int and type(payload["time"]) is int
    assert payload["retMsg"] == "OK" and payload["retExtInfo"] == {}
    assert payload["result"]["symbol"] == "BTCUSDT" and payload["result"]["category"] == "linear"
    for row in payload["result"]["list"]:
        assert len(row) == len(recorded["result"]["list"][0]) == 7
        assert all(isinstance(v, str) for v in row)


def test_funding_shape_matches_the_docs_sample(ok):
    recorded = sample("bybit/funding_history.json")
    result = ok(FUNDING, symbol="ETHUSDT", limit=2)
    assert list(result) == list(recorded["result"])
    for item in result["list"]:
        assert list(item) == list(recorded["result"]["list"][0])
        assert all(isinstance(v, str) for v in item.values())


def test_open_interest_shape_matches_the_recorded_response(get):
    recorded = sample("bybit/open_interest_linear_BTCUSDT_ccxt.json")
    payload = get(OPEN_INTEREST, category="linear", symbol="BTCUSDT", intervalTime="1h",
                  limit=2).json()
    assert list(payload) == list(recorded)
    assert list(payload["result"]) == list(recorded["result"])
    for item in payload["result"]["list"]:
        assert list(item) == list(recorded["result"]["list"][0])
        whole, decimals = item["openInterest"].split(".")
        assert len(decimals) == 8
    cursor = unquote(payload["result"]["nextPageCursor"])
    assert cursor.startswith("lastid=") and "&lasttime=" in cursor


def test_account_ratio_shape_matches_the_docs_sample(ok):
    recorded = sample("bybit/account_ratio.json")
    result = ok(ACCOUNT_RATIO, symbol="BTCUSDT", period="1h", limit=2)
    assert list(result) == list(recorded["result"])
    for item in result["list"]:
        assert list(item) == list(recorded["result"]["list"][0])
        assert all(isinstance(v, str) for v in item.values())


def test_tickers_shape_matches_the_recorded_response(ok):
    recorded = sample("bybit/tickers_linear_BTCUSDT_2024-11_ccxt.json")
    keys = [k for k in recorded["result"]["list"][0] if k != "timestamp"]
    result = ok(TICKERS, symbol="BTCUSDT")
    assert list(result) == list(recorded["result"])
    assert [list(item) for item in result["list"]] == [keys]
    assert all(isinstance(v, str) for v in result["list"][0].values())
    both = ok(TICKERS)
    assert [item["symbol"] for item in both["list"]] == list(BUNDLED_SYMBOLS)


def test_fear_greed_shape_matches_the_sample(get, ex):
    recorded = sample("fng/fng.json")
    payload = get("/fng/", limit=3, format="json").json()
    assert list(payload) == list(recorded)
    assert payload["name"] == recorded["name"] and payload["metadata"] == {"error": None}
    newest, *rest = payload["data"]
    keys = list(recorded["data"][0])
    assert list(newest) == [*keys, "time_until_update"]
    assert [list(item) for item in rest] == [keys, keys]
    assert int(newest["time_until_update"]) == (DAY - ex.now_ms() % DAY) // 1000


# --------------------------------------------------------------------------------------------
# Recorded values, ordering, limits, ranges


def test_hourly_klines_are_the_recorded_strings(ok, bundle):
    with gzip.open(BUNDLE_DIR / "candles_60.csv.gz", "rt", newline="") as handle:
        recorded = [r for r in csv.DictReader(handle)
                    if r["symbol"] == "ETHUSDT" and JUNE_1 <= int(r["open_time_ms"]) < JUNE_1 + DAY]
    rows = ok(KLINE, symbol="ETHUSDT", interval="60", start=JUNE_1, end=JUNE_1 + DAY - 1)["list"]
    assert len(rows) == 24
    rows.reverse()
    for row, rec in zip(rows, recorded, strict=True):
        assert row[:6] == [rec["open_time_ms"], rec["open"], rec["high"], rec["low"],
                           rec["close"], rec["volume"]]
        # Turnover is derived: volume x close, 4 decimals.
        assert len(row[6].split(".")[1]) == 4
        assert float(row[6]) == pytest.approx(float(rec["volume"]) * float(rec["close"]),
                                              abs=6e-5)


def test_kline_newest_first_default_and_limits(ok, get):
    result = ok(KLINE, symbol="BTCUSDT", interval="60")
    times = [int(r[0]) for r in result["list"]]
    assert len(times) == 200
    assert times[0] == ms("2022-12-31 23:00")
    assert times == sorted(times, reverse=True) and len(set(times)) == 200
    assert len(ok(KLINE, symbol="BTCUSDT", interval="60", limit=1000)["list"]) == 1000
    assert len(ok(KLINE, symbol="BTCUSDT", interval="60", limit=1)["list"]) == 1
    for bad in (0, 1001):
        payload = get(KLINE, category="linear", symbol="BTCUSDT", interval="60",
                      limit=bad).json()
        assert payload["retCode"] == 10001


def test_kline_start_and_end_are_inclusive_and_the_newest_are_kept(ok):
    start, end = JUNE_1, JUNE_1 + 10 * HOUR
    times = [int(r[0]) for r in ok(KLINE, symbol="BTCUSDT", interval="60", start=start,
                                   end=end)["list"]]
    assert times == list(range(end, start - 1, -HOUR))
    times = [int(r[0]) for r in ok(KLINE, symbol="BTCUSDT", interval="60", start=start + 1,
                                   end=end - 1)["list"]]
    assert times == list(range(end - HOUR, start, -HOUR))
    # More rows than the limit: the newest `limit` of the range.
    times = [int(r[0]) for r in ok(KLINE, symbol="BTCUSDT", interval="60", start=start,
                                   end=end, limit=3)["list"]]
    assert times == [end, end - HOUR, end - 2 * HOUR]
    assert ok(KLINE, symbol="BTCUSDT", interval="60", end=ms("2021-12-31"))["list"] == []


def _expected_bars(bundle, symbol: str, interval: str) -> pd.DataFrame:
    frame = hourly(bundle, symbol)
    t = frame.open_time
    if interval == "W":
        bucket = t.dt.normalize() - pd.to_timedelta(t.dt.day_of_week, unit="D")
    else:
        bucket = t.dt.floor({"240": "4h", "D": "D"}[interval])
    return frame.groupby(bucket).agg(open=("open", "first"), high=("high", "max"),
                                     low=("low", "min"), close=("close", "last"),
                                     volume=("volume", "sum"), turnover=("turnover", "sum"))


@pytest.mark.parametrize("interval", ["240", "D", "W"])
def test_aggregated_klines_equal_aggregating_the_hourly_rows(ok, bundle, interval):
    rows = ok(KLINE, symbol="ETHUSDT", interval=interval, limit=1000)["list"]
    expected = _expected_bars(bundle, "ETHUSDT", interval)
    assert len(rows) == min(1000, len(expected))
    expected = expected.iloc[-len(rows):]  # the newest page
    served = pd.DataFrame([[float(v) for v in r[1:]] for r in reversed(rows)],
                          columns=["open", "high", "low", "close", "volume", "turnover"],
                          index=pd.to_datetime([int(r[0]) for r in reversed(rows)], unit="ms"))
    assert (served.index == expected.index).all()
    for column in ("open", "high", "low", "close"):
        assert served[column].tolist() == expected[column].tolist(), column
    for column in ("volume", "turnover"):
        np.testing.assert_allclose(served[column], expected[column], rtol=1e-12, atol=1e-4)
    if interval == "W":
        assert (served.index.day_of_week == 0).all()
        assert served.index[0] == pd.Timestamp("2021-12-27")  # a partial first week


def test_funding_settles_at_00_08_16_utc(ok, bundle, get):
    funding = bundle["funding"]
    assert sorted(set(funding.funding_time.dt.hour)) == [0, 8, 16]
    assert (funding.groupby("symbol").size() == 3 * 365).all()
    result = ok(FUNDING, symbol="BTCUSDT", startTime=JUNE_1, endTime=JUNE_1 + 16 * HOUR)
    times = [int(r["fundingRateTimestamp"]) for r in result["list"]]
    assert times == [JUNE_1 + 16 * HOUR, JUNE_1 + 8 * HOUR, JUNE_1]  # inclusive, newest first
    expected = funding[(funding.symbol == "BTCUSDT")
                       & funding.funding_time.between("2022-06-01", "2022-06-01 16:00")]
    assert [float(r["fundingRate"]) for r in reversed(result["list"])] == (
        expected.funding_rate.tolist())
    assert len(ok(FUNDING, symbol="BTCUSDT")["list"]) == 200
    assert len(ok(FUNDING, symbol="BTCUSDT", endTime=JUNE_1, limit=5)["list"]) == 5
    assert get(FUNDING, category="linear", symbol="BTCUSDT", limit=201).json()["retCode"] == 10001


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        (KLINE, {"symbol": "DOGEUSDT", "interval": "60"}, "symbol"),
        (KLINE, {"symbol": "BTCUSDT", "interval": "60", "category": "inverse"}, "category"),
        (KLINE, {"symbol": "BTCUSDT", "interval": "5"}, "interval not available in replay data"),
        (KLINE, {"symbol": "BTCUSDT", "interval": "M"}, "interval"),
        (KLINE, {"symbol": "BTCUSDT"}, "interval"),
        (KLINE, {"interval": "60"}, "symbol"),
        (KLINE, {"symbol": "BTCUSDT", "interval": "60", "start": "yesterday"}, "start"),
        (FUNDING, {"category": "linear", "symbol": "BTCUSDT", "startTime": JUNE_1}, "endTime"),
        (FUNDING, {"symbol": "BTCUSDT"}, "category"),
        (OPEN_INTEREST, {"category": "linear", "symbol": "BTCUSDT", "intervalTime": "2h"},
         "intervalTime"),
        (OPEN_INTEREST, {"category": "linear", "symbol": "BTCUSDT"}, "intervalTime"),
        (OPEN_INTEREST, {"category": "linear", "symbol": "BTCUSDT", "intervalTime": "1h",
                         "limit": 201}, "limit"),
        (OPEN_INTEREST, {"category": "linear", "symbol": "BTCUSDT", "intervalTime": "1h",
                         "cursor": "garbage"}, "cursor"),
        (ACCOUNT_RATIO, {"category": "linear", "symbol": "BTCUSDT", "period": "1h",
                         "limit": 501}, "limit"),
        (ACCOUNT_RATIO, {"category": "linear", "symbol": "BTCUSDT", "period": "1w"}, "period"),
        (TICKERS, {"category": "spot"}, "category"),
    ],
)
def test_parameter_errors_are_retcode_10001(get, ex, path, params, message):
    response = get(path, **params)
    assert response.status_code == 200
    payload = response.json()
    assert payload["retCode"] == 10001
    assert payload["retMsg"].startswith("params error: ") and message in payload["retMsg"]
    assert payload["result"] == {} and payload["retExtInfo"] == {}
    assert payload["time"] == ex.now_ms()


def test_unknown_paths_are_404(get):
    assert get("/v5/market/orderbook", category="linear", symbol="BTCUSDT").status_code == 404
    assert get("/v5/market/kline/extra").status_code == 404


# --------------------------------------------------------------------------------------------
# Cursor paging and the synthetic series


def _walk(ok, path: str, **params) -> list[list[dict]]:
    pages, cursor = [], None
    while True:
        result = ok(path, **params, **({"cursor": cursor} if cursor else {}))
        pages.append(result["list"])
        cursor = result["nextPageCursor"]
        if not cursor:
            return pages
        assert len(pages) < 100


def test_open_interest_cursor_returns_every_row_exactly_once(ok, bundle):
    start, end = JUNE_1, JUNE_1 + 10 * DAY - 1
    pages = _walk(ok, OPEN_INTEREST, symbol="BTCUSDT", intervalTime="1h", startTime=start,
                  endTime=end, limit=37)
    assert [len(p) for p in pages] == [37] * 6 + [240 - 6 * 37]
    times = [int(item["timestamp"]) for page in pages for item in page]
    assert times == list(range(start + 239 * HOUR, start - 1, -HOUR))
    oi = bundle["open_interest"]
    expected = oi[(oi.symbol == "BTCUSDT") & (oi.ts >= "2022-06-01") & (oi.ts < "2022-06-11")]
    served = [float(item["openInterest"]) for page in pages for item in page]
    assert served[::-1] == expected.open_interest.tolist()


def test_account_ratio_cursor_walks_five_minute_slots(ok, bundle):
    pages = _walk(ok, ACCOUNT_RATIO, symbol="ETHUSDT", period="5min", startTime=JUNE_1,
                  endTime=JUNE_1 + DAY - 1, limit=100)
    items = [item for page in pages for item in page]
    times = [int(item["timestamp"]) for item in items]
    assert times == list(range(JUNE_1 + DAY - 5 * 60_000, JUNE_1 - 1, -5 * 60_000))
    ls = bundle["long_short"]
    day = ls[(ls.symbol == "ETHUSDT") & (ls.ts >= "2022-06-01")].reset_index(drop=True)
    for item, t in zip(items, times, strict=True):
        # Finer than the hourly series: the value of the hour at or before the slot.
        row = day.iloc[(t - JUNE_1) // HOUR]
        assert float(item["buyRatio"]) == row.buy_ratio
        assert float(item["sellRatio"]) == row.sell_ratio
        assert item["symbol"] == "ETHUSDT"


def test_coarse_periods_sample_the_hourly_series(ok, bundle):
    result = ok(OPEN_INTEREST, symbol="ETHUSDT", intervalTime="4h", startTime=JUNE_1,
                endTime=JUNE_1 + DAY - 1)
    assert result["nextPageCursor"] == ""
    times = [int(item["timestamp"]) for item in result["list"]]
    assert times == list(range(JUNE_1 + 20 * HOUR, JUNE_1 - 1, -4 * HOUR))
    oi = bundle["open_interest"]
    oi = oi[oi.symbol == "ETHUSDT"].set_index("ts").open_interest
    for item in result["list"]:
        at = pd.Timestamp(int(item["timestamp"]), unit="ms")
        assert float(item["openInterest"]) == oi[at]
    daily = ok(ACCOUNT_RATIO, symbol="BTCUSDT", period="1d", limit=500)
    assert len(daily["list"]) == 365 and daily["nextPageCursor"] == ""
    assert ok(OPEN_INTEREST, symbol="BTCUSDT", intervalTime="1h")["list"].__len__() == 50
    assert len(ok(ACCOUNT_RATIO, symbol="BTCUSDT", period="1h")["list"]) == 50


def test_synthetic_series_are_deterministic_and_in_range(bundle):
    again = load_bundle()
    for name in ("open_interest", "long_short"):
        pd.testing.assert_frame_equal(bundle[name], again[name], obj=name)
    oi = bundle["open_interest"]
    assert len(oi) == len(bundle["candles"])
    btc, eth = (oi[oi.symbol == s].open_interest for s in BUNDLED_SYMBOLS)
    assert btc.between(40_000, 80_000).all() and eth.between(400_000, 900_000).all()
    ls = bundle["long_short"]
    assert ls.buy_ratio.between(0.30, 0.70).all()
    assert ((ls.buy_ratio + ls.sell_ratio - 1).abs() < 1e-9).all()
    assert (ls.buy_ratio.round(4) == ls.buy_ratio).all()
    assert abs(ls.buy_ratio.mean() - 0.5) < 0.03


def test_synthetic_series_follow_the_candles(bundle):
    for symbol in BUNDLED_SYMBOLS:
        candles = hourly(bundle, symbol)
        oi = bundle["open_interest"]
        oi = oi[oi.symbol == symbol].open_interest.reset_index(drop=True)
        ls = bundle["long_short"]
        buy = ls[ls.symbol == symbol].buy_ratio.reset_index(drop=True)
        # Deleveraging: the value after the worst hourly return is several percent lower.
        ret = candles.close / candles.open - 1
        worst = int(ret.idxmin())
        assert ret[worst] < -0.05
        assert oi[worst + 1] / oi[worst] - 1 < -0.05
        # Contrarian: the buy ratio leans against the trailing 24 h return (known at ts).
        trailing = np.log(candles.close.shift(1) / candles.open.shift(24))
        assert np.corrcoef(buy[24:], trailing[24:])[0, 1] < -0.3
        # Mean-reverting, not a random walk: a week apart the ratio is nearly independent.
        assert abs(buy.autocorr(24 * 7)) < 0.3


# --------------------------------------------------------------------------------------------
# The replay clock


def test_the_clock_hides_the_future_and_serves_the_bar_in_progress(ok, get, ex, bundle):
    ex.set_clock("2022-06-01T10:30:00Z")
    now = JUNE_1 + 10 * HOUR + 30 * 60_000
    assert ex.now_ms() == now
    assert get(TIME).json()["time"] == now
    bars = ok(KLINE, symbol="BTCUSDT", interval="60", limit=2)["list"]
    assert [int(b[0]) for b in bars] == [JUNE_1 + 10 * HOUR, JUNE_1 + 9 * HOUR]
    in_progress = hourly(bundle, "BTCUSDT").set_index("open_time").loc["2022-06-01 10:00"]
    assert float(bars[0][4]) == in_progress.close  # full recorded values
    assert int(ok(KLINE, symbol="BTCUSDT", interval="240", limit=1)["list"][0][0]) == (
        JUNE_1 + 8 * HOUR)
    assert int(ok(KLINE, symbol="BTCUSDT", interval="D", limit=1)["list"][0][0]) == JUNE_1
    assert ok(KLINE, symbol="BTCUSDT", interval="60", start=now)["list"] == []
    funding = ok(FUNDING, symbol="BTCUSDT", limit=1)["list"]
    assert int(funding[0]["fundingRateTimestamp"]) == JUNE_1 + 8 * HOUR
    oi = ok(OPEN_INTEREST, symbol="BTCUSDT", intervalTime="5min", limit=1)["list"]
    assert int(oi[0]["timestamp"]) == now
    ratio = ok(ACCOUNT_RATIO, symbol="BTCUSDT", period="1h", limit=1)["list"]
    assert int(ratio[0]["timestamp"]) == JUNE_1 + 10 * HOUR
    ticker = ok(TICKERS, symbol="BTCUSDT")["list"][0]
    assert ticker["lastPrice"] == bars[0][4]
    assert ticker["prevPrice1h"] == bars[0][1]
    assert ticker["nextFundingTime"] == str(JUNE_1 + 16 * HOUR)
    assert ticker["fundingRate"] == funding[0]["fundingRate"]
    assert float(ticker["openInterestValue"]) == pytest.approx(
        float(ticker["openInterest"]) * float(ticker["lastPrice"]), abs=0.01)
    assert float(ticker["bid1Price"]) < float(ticker["ask1Price"])
    fng = get("/fng/", limit=0).json()["data"]
    assert fng[0]["timestamp"] == str(JUNE_1 // 1000)
    assert len(fng) == 31 + 152  # 2021-12-01 .. 2022-06-01 inclusive
    assert fng[0]["time_until_update"] == str(13 * 3600 + 30 * 60)


def test_before_the_bundle_nothing_is_served(ok, ex):
    ex.set_clock(BUNDLE_START.replace(year=2021))
    assert ok(KLINE, symbol="BTCUSDT", interval="60")["list"] == []
    assert ok(TICKERS)["list"] == []
    assert ok(OPEN_INTEREST, symbol="BTCUSDT", intervalTime="1h") == {
        "symbol": "BTCUSDT", "category": "linear", "list": [], "nextPageCursor": ""}


def test_a_running_clock_advances(ex, get):
    start = ms("2022-03-01")
    ex.set_clock(start, speed=1_000_000.0)  # replay ms per wall ms: any request moves it
    served = get(TIME).json()["time"]
    assert served > start
    assert ex.now_ms() >= served


def test_clock_control_api(ex, http):
    url = ex.base_url + "/__replay/clock"
    answer = http.post(url, json={"now": "2022-07-04T12:00:00Z", "speed": 0}).json()
    assert answer == {"now": ms("2022-07-04 12:00"), "speed": 0.0}
    assert http.get(url).json() == answer and ex.now_ms() == answer["now"]
    http.post(url, json={"now": ms("2022-02-02")})
    assert ex.now_ms() == ms("2022-02-02")
    assert http.post(url, json={"now": "not a time"}).status_code == 400


@pytest.mark.parametrize(("headers", "status"), [
    ({"Host": "evil.example:8765"}, 403),  # DNS rebinding: a page's own host name
    ({"Origin": "http://evil.example"}, 403),  # a cross-site page in a local browser
    ({"Origin": "null"}, 403),  # a sandboxed page
])
def test_control_requests_from_a_web_page_are_refused(ex, http, headers, status):
    url = ex.base_url + "/__replay/clock"
    before = ex.now_ms()
    for call in (lambda: http.post(url, json={"now": "2022-07-04"}, headers=headers),
                 lambda: http.post(ex.base_url + "/__replay/faults",
                                   json={"kind": "http_500"}, headers=headers),
                 lambda: http.delete(ex.base_url + "/__replay/requests", headers=headers)):
        answer = call()
        assert answer.status_code == status
        assert "refused" in answer.json()["error"] or "loopback" in answer.json()["error"]
    assert ex.now_ms() == before
    assert http.get(ex.base_url + "/__replay/faults").json() == {"faults": []}
    # This machine's programs (no Origin; a loopback Host, or the server's own origin) pass.
    own = {"Origin": ex.base_url}
    assert http.post(url, json={"now": "2022-07-04"}, headers=own).status_code == 200
    assert ex.now_ms() == ms("2022-07-04")


def test_a_control_body_over_the_cap_is_refused(ex, http):
    answer = http.post(ex.base_url + "/__replay/faults", data=b"{" + b" " * 200_000 + b"}",
                       headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    assert http.get(ex.base_url + "/__replay/faults").json() == {"faults": []}  # still serving


def test_fear_greed_limits_and_values(get, bundle):
    assert len(get("/fng/").json()["data"]) == 1
    everything = get("/fng/", limit=0, format="json").json()["data"]
    assert len(everything) == 396
    fg = bundle["fear_greed"]
    assert [int(d["value"]) for d in reversed(everything)] == fg.value.tolist()
    assert [d["value_classification"] for d in reversed(everything)] == (
        fg.classification.tolist())
    stamps = [int(d["timestamp"]) for d in everything]
    assert stamps == sorted(stamps, reverse=True) and stamps[-1] == ms("2021-12-01") // 1000
    assert sum("time_until_update" in d for d in everything) == 1


# --------------------------------------------------------------------------------------------
# Faults


def _kline(get, symbol="BTCUSDT"):
    return get(KLINE, category="linear", symbol=symbol, interval="60", limit=5)


def test_rate_limit_fault(ex, get):
    ex.inject(KLINE, "rate_limit")
    response = _kline(get)
    assert response.status_code == 200
    payload = response.json()
    assert list(payload) == list(sample("bybit/funding_history.json"))
    assert {k: payload[k] for k in ("retCode", "retMsg", "result")} == {
        "retCode": 10006, "retMsg": "Too many visits!", "result": {}}
    assert sample("bybit/error_rate_limit.json").items() <= payload.items()
    assert response.headers["X-Bapi-Limit-Status"] == "0"
    assert response.headers["X-Bapi-Limit"] == "600"
    assert int(response.headers["X-Bapi-Limit-Reset-Timestamp"]) > time.time() * 1000
    assert _kline(get).json()["retCode"] == 0


@pytest.mark.parametrize(
    ("kind", "status", "text"),
    [("http_429", 429, "Too Many Requests"), ("http_500", 500, "Internal Server Error"),
     ("http_502", 502, "Bad Gateway"), ("http_403", 403, "access too frequent")],
)
def test_http_error_faults(ex, get, kind, status, text):
    ex.inject(KLINE, kind)
    response = _kline(get)
    assert response.status_code == status and text in response.text
    assert _kline(get).status_code == 200


def test_a_fault_is_consumed_after_count_requests(ex, get):
    ex.inject(KLINE, "http_500", count=2)
    ex.inject(FUNDING, "http_502")
    assert [_kline(get).status_code for _ in range(3)] == [500, 500, 200]
    assert ex.faults() == [dict(ex.faults()[0])] and ex.faults()[0]["path"] == FUNDING
    log = [(r["path"], r["status"], r["fault"]) for r in ex.requests()]
    assert log == [(KLINE, 500, "http_500"), (KLINE, 500, "http_500"), (KLINE, 200, None)]
    assert ex.requests()[0]["query"] == {"category": "linear", "symbol": "BTCUSDT",
                                         "interval": "60", "limit": "5"}
    ex.clear_requests()
    assert ex.requests() == []


def test_faults_can_match_query_parameters_and_any_path(ex, get):
    ex.inject(KLINE, "retcode", count=1, ret_code=10016, ret_msg="Server error",
              match={"symbol": "ETHUSDT"})
    assert _kline(get, "BTCUSDT").json()["retCode"] == 0
    payload = _kline(get, "ETHUSDT").json()
    assert (payload["retCode"], payload["retMsg"], payload["result"]) == (
        10016, "Server error", {})
    assert _kline(get, "ETHUSDT").json()["retCode"] == 0
    ex.inject("*", "http_500", count=2)
    assert get(TIME).status_code == 500
    assert get("/fng/").status_code == 500
    assert get(TIME).status_code == 200


def test_slow_fault(ex, get):
    ex.inject(KLINE, "slow", delay_s=0.3)
    started = time.perf_counter()
    response = _kline(get)
    assert time.perf_counter() - started >= 0.3
    assert response.json()["retCode"] == 0 and len(response.json()["result"]["list"]) == 5
    assert ex.requests()[-1]["fault"] == "slow"


def test_malformed_fault(ex, get):
    whole = _kline(get).text
    ex.inject(KLINE, "malformed")
    response = _kline(get)
    assert response.status_code == 200
    assert whole.startswith(response.text) and len(response.text) < len(whole)
    with pytest.raises(ValueError):
        json.loads(response.text)


def test_missing_field_faults(ex, get, ok):
    ex.inject(KLINE, "missing_field", field="close")
    rows = _kline(get).json()["result"]["list"]
    assert rows and all(len(row) == 4 for row in rows)  # the row ends before the close
    ex.inject(FUNDING, "missing_field", field="fundingRate")
    items = ok(FUNDING, symbol="BTCUSDT", limit=3)["list"]
    assert len(items) == 3 and all(list(i) == ["symbol", "fundingRateTimestamp"] for i in items)
    ex.inject("/fng/", "missing_field", field="value")
    assert all("value" not in d for d in get("/fng/", limit=3).json()["data"])
    assert "fundingRate" in ok(FUNDING, symbol="BTCUSDT", limit=1)["list"][0]


def test_bad_number_faults(ex, get, ok):
    ex.inject(FUNDING, "bad_number", field="fundingRate")
    items = ok(FUNDING, symbol="BTCUSDT", limit=3)["list"]
    assert items[0]["fundingRate"] == "abc"
    assert all(not math.isnan(float(i["fundingRate"])) for i in items[1:])
    ex.inject(KLINE, "bad_number", field="close")
    rows = _kline(get).json()["result"]["list"]
    assert rows[0][4] == "abc" and float(rows[1][4]) > 0
    ex.inject(OPEN_INTEREST, "bad_number", field="openInterest")
    items = ok(OPEN_INTEREST, symbol="BTCUSDT", intervalTime="1h", limit=2)["list"]
    assert items[0]["openInterest"] == "abc"


def test_fault_control_api(ex, http, get):
    url = ex.base_url + "/__replay/faults"
    answer = http.post(url, json={"path": KLINE, "kind": "http_502", "count": 2})
    assert answer.status_code == 200 and len(answer.json()["faults"]) == 1
    assert _kline(get).status_code == 502
    assert http.delete(url).status_code == 200
    assert ex.faults() == [] and _kline(get).status_code == 200
    assert http.post(url, json={"path": KLINE, "kind": "no_such_kind"}).status_code == 400
    assert http.post(url, json={"path": KLINE, "kind": "slow", "count": 0}).status_code == 400
    log = http.get(ex.base_url + "/__replay/requests").json()
    assert [r["status"] for r in log] == [502, 200]
    assert http.delete(ex.base_url + "/__replay/requests").json() == []
    assert ex.requests() == []
    with pytest.raises(ValueError):
        ex.inject(KLINE, "explode")


# --------------------------------------------------------------------------------------------
# Lifecycle


def test_start_stop_and_run_server():
    with ReplayExchange(port=0, now="2022-03-01T00:00:00Z") as other:
        url = other.base_url
        assert requests.get(url + TIME, timeout=5).json()["time"] == ms("2022-03-01")
    with pytest.raises(requests.ConnectionError):
        requests.get(url + TIME, timeout=5)

    code = "from replay.server import run_server; run_server(port=0, now='2022-05-01')"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("replay exchange on http://127.0.0.1:")
        assert "2022-05-01T00:00:00Z" in line
        assert "synthetic: open_interest, long_short_ratio" in line
        base = line.split()[3]
        assert requests.get(base + TIME, timeout=5).json()["time"] == ms("2022-05-01")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
