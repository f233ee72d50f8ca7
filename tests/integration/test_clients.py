"""The real REST clients against the replay exchange on 127.0.0.1.

Ranges over several pages must equal the bundled rows exactly; faults injected into the
exchange (rate limit, HTTP 429/5xx/403, a slow answer, bad bodies and fields) must be retried
or named. Clients get a recording ``sleep``, so backoff is asserted and never waited for.
"""

from __future__ import annotations

import itertools
import socket

import pandas as pd
import pytest

from replay.server import BUNDLE_END, BUNDLE_START, BUNDLED_SYMBOLS, load_bundle
from sentiment.errors import SourceBlockedError, SourceError, TransientSourceError
from sentiment.io.sources.bybit import (
    FUNDING_COLUMNS,
    KLINE_COLUMNS,
    LONG_SHORT_COLUMNS,
    OPEN_INTEREST_COLUMNS,
    TICKER_COLUMNS,
    BybitClient,
)
from sentiment.io.sources.fear_greed import FearGreedClient

pytestmark = pytest.mark.integration

KLINE = "/v5/market/kline"
FUNDING = "/v5/market/funding/history"
OPEN_INTEREST = "/v5/market/open-interest"
ACCOUNT_RATIO = "/v5/market/account-ratio"
FNG = "/fng/"
START = pd.Timestamp(BUNDLE_START)
END = pd.Timestamp(BUNDLE_END)
#: Both bounds fall exactly on a row of every endpoint (hourly rows; funding at 00/08/16 UTC).
LO = pd.Timestamp("2022-03-01 08:00")
HI = pd.Timestamp("2022-03-03 16:00")


class Sleeps(list):
    """A ``sleep`` that records the delay and returns at once."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(scope="module")
def bundle():
    return load_bundle()


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture
def client(clean_replay, sleeps):
    jitter = itertools.cycle([0.9, 0.1, 0.7, 0.3])
    with BybitClient(clean_replay.base_url, sleep=sleeps, rng=lambda: next(jitter),
                     max_retries=5, backoff_base=0.5, backoff_max=30.0) as bybit:
        yield bybit


@pytest.fixture
def fng(clean_replay, sleeps):
    with FearGreedClient(clean_replay.fear_greed_url, sleep=sleeps, rng=lambda: 0.5) as client:
        yield client


def served(replay, path=None):
    return [r for r in replay.requests() if path is None or r["path"].rstrip("/")
            == path.rstrip("/")]


def expected_rows(bundle, table, time_column, symbol=None, start=START, end=END, **labels):
    """The bundle's rows of ``symbol`` in [start, end) plus the label columns the client adds
    (``interval``, ``period``), ascending."""
    frame = bundle[table]
    if symbol is not None:
        frame = frame[frame["symbol"] == symbol]
    frame = frame[(frame[time_column] >= start) & (frame[time_column] < end)]
    return frame.assign(**labels).sort_values(time_column).reset_index(drop=True)


def assert_same_rows(got: pd.DataFrame, want: pd.DataFrame, time_column: str) -> None:
    """Same rows in the same order with exact values; times naive-UTC ns, numbers float64."""
    assert len(got) == len(want)
    assert got[time_column].dtype == "datetime64[ns]"
    assert got[time_column].is_monotonic_increasing and not got[time_column].duplicated().any()
    assert (got[time_column].to_numpy() == want[time_column].to_numpy("datetime64[ns]")).all()
    for column in got.columns:
        if column == time_column:
            continue
        if pd.api.types.is_string_dtype(got[column]):
            assert got[column].tolist() == want[column].astype(str).tolist(), column
        else:
            assert got[column].dtype == "float64", column
            assert got[column].tolist() == want[column].astype(float).tolist(), column


# -- whole ranges over several pages ----------------------------------------------------------


@pytest.mark.parametrize("symbol", BUNDLED_SYMBOLS)
def test_a_year_of_hourly_candles_equals_the_bundle(client, clean_replay, bundle, symbol):
    got = client.klines(symbol, "60", START, END)
    assert list(got.columns) == KLINE_COLUMNS
    want = expected_rows(bundle, "candles", "open_time", symbol, interval="60")
    assert len(want) == 8760
    assert_same_rows(got, want, "open_time")
    # API limit: 1000 candles a page -> 9 pages, none asked twice.
    requests = served(clean_replay, KLINE)
    assert len(requests) == 9
    assert len({r["query"]["end"] for r in requests}) == 9
    assert all(r["query"]["limit"] == "1000" for r in requests)


def test_a_year_of_funding_equals_the_bundle(client, clean_replay, bundle):
    got = client.funding_history("ETHUSDT", START, END)
    assert list(got.columns) == FUNDING_COLUMNS
    want = expected_rows(bundle, "funding", "funding_time", "ETHUSDT")
    assert len(want) == 3 * 365
    assert_same_rows(got, want, "funding_time")
    requests = served(clean_replay, FUNDING)
    assert len(requests) == 6  # pages of 200
    # API: startTime alone is an error, so both are always sent.
    assert all({"startTime", "endTime"} <= set(r["query"]) for r in requests)


def test_a_year_of_open_interest_equals_the_bundle(client, clean_replay, bundle):
    got = client.open_interest("BTCUSDT", "1h", START, END)
    assert list(got.columns) == OPEN_INTEREST_COLUMNS
    want = expected_rows(bundle, "open_interest", "ts", "BTCUSDT", interval="1h")
    assert_same_rows(got, want, "ts")
    requests = served(clean_replay, OPEN_INTEREST)
    assert len(requests) == 44  # pages of 200 through nextPageCursor
    assert "cursor" not in requests[0]["query"]
    assert all(r["query"].get("cursor") for r in requests[1:])


def test_a_year_of_long_short_ratio_equals_the_bundle(client, clean_replay, bundle):
    got = client.long_short_ratio("ETHUSDT", "1h", START, END)
    assert list(got.columns) == LONG_SHORT_COLUMNS
    want = expected_rows(bundle, "long_short", "ts", "ETHUSDT", period="1h")
    assert_same_rows(got, want, "ts")
    requests = served(clean_replay, ACCOUNT_RATIO)
    assert len(requests) == 18  # pages of 500
    assert all({"startTime", "endTime"} <= set(r["query"]) for r in requests)


def test_one_full_page_is_one_request(client, clean_replay):
    got = client.klines("BTCUSDT", "60", START, START + pd.Timedelta(hours=1000))
    assert len(got) == 1000
    assert len(served(clean_replay, KLINE)) == 1


def test_coarser_candles_are_paged_too(client, bundle):
    got = client.klines("BTCUSDT", "240", START, END)
    assert len(got) == 365 * 6
    hourly = expected_rows(bundle, "candles", "open_time", "BTCUSDT")
    assert got["high"].iloc[0] == hourly["high"].iloc[:4].max()
    assert got["close"].iloc[-1] == hourly["close"].iloc[-1]


# -- boundaries ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, args, time_column, step",
    [
        ("klines", ("BTCUSDT", "60"), "open_time", "1h"),
        ("funding_history", ("BTCUSDT",), "funding_time", "8h"),
        ("open_interest", ("BTCUSDT", "1h"), "ts", "1h"),
        ("long_short_ratio", ("BTCUSDT", "1h"), "ts", "1h"),
    ],
)
def test_a_row_at_start_is_included_and_one_at_end_excluded(client, method, args,
                                                            time_column, step):
    frame = getattr(client, method)(*args, LO, HI)
    assert frame[time_column].iloc[0] == LO
    assert frame[time_column].iloc[-1] == HI - pd.Timedelta(step)
    assert len(frame) == (HI - LO) // pd.Timedelta(step)


def test_bounds_accept_iso_strings_and_aware_datetimes(client):
    naive = client.klines("BTCUSDT", "60", "2022-03-01T08:30:00", "2022-03-01T12:00:00")
    aware = client.klines("BTCUSDT", "60", pd.Timestamp("2022-03-01 09:30", tz="Europe/Paris"),
                          "2022-03-01T13:00:00+01:00")
    assert naive["open_time"].tolist() == aware["open_time"].tolist()
    assert naive["open_time"].tolist() == list(pd.date_range("2022-03-01 09:00", periods=3,
                                                              freq="h"))


def test_an_empty_range_asks_nothing(client, clean_replay):
    frame = client.klines("BTCUSDT", "60", HI, LO)
    assert frame.empty and list(frame.columns) == KLINE_COLUMNS
    assert frame["open_time"].dtype == "datetime64[ns]" and frame["close"].dtype == "float64"
    assert served(clean_replay) == []


def test_a_range_with_no_rows_gives_an_empty_typed_frame(client):
    frame = client.open_interest("BTCUSDT", "1h", "2021-06-01", "2021-07-01")
    assert frame.empty and list(frame.columns) == OPEN_INTEREST_COLUMNS
    assert frame["ts"].dtype == "datetime64[ns]"


# -- the bar in progress ---------------------------------------------------------------------


def test_the_bar_in_progress_is_dropped(client, clean_replay):
    clean_replay.set_clock(pd.Timestamp("2022-06-01 10:30"))
    day = ("BTCUSDT", "60", "2022-06-01", "2022-06-02")
    closed = client.klines(*day)
    assert closed["open_time"].iloc[-1] == pd.Timestamp("2022-06-01 09:00")
    assert len(closed) == 10
    with_open_bar = client.klines(*day, closed_only=False)
    assert with_open_bar["open_time"].iloc[-1] == pd.Timestamp("2022-06-01 10:00")
    # 4h bars: 08:00-12:00 is still open at 10:30.
    four_hourly = client.klines("BTCUSDT", "240", "2022-06-01", "2022-06-02")
    assert four_hourly["open_time"].tolist() == [pd.Timestamp("2022-06-01 00:00"),
                                                 pd.Timestamp("2022-06-01 04:00")]


def test_a_bar_closing_exactly_at_the_clock_is_kept(client, clean_replay):
    clean_replay.set_clock(pd.Timestamp("2022-06-01 11:00"))
    closed = client.klines("BTCUSDT", "60", "2022-06-01", "2022-06-02")
    assert closed["open_time"].iloc[-1] == pd.Timestamp("2022-06-01 10:00")


def test_server_time_is_the_replay_clock(client, clean_replay):
    clean_replay.set_clock(pd.Timestamp("2022-06-01 10:30:15"))
    assert client.server_time() == pd.Timestamp("2022-06-01 10:30:15")


# -- transient faults are retried -------------------------------------------------------------


def test_a_rate_limit_burst_is_retried_with_growing_jittered_delays(client, clean_replay,
                                                                   sleeps):
    # delay_s: the reset time the exchange announces; 1 ms so the backoff decides the waits.
    clean_replay.inject(KLINE, "rate_limit", count=3, delay_s=0.001)
    got = client.klines("BTCUSDT", "60", LO, HI)
    assert len(got) == 56
    assert [r["fault"] for r in served(clean_replay, KLINE)] == ["rate_limit"] * 3 + [None]
    assert len(sleeps) == 3
    assert sleeps[0] < sleeps[1] < sleeps[2]
    # Drawn from [b/2, b] with b = 0.5, 1, 2 s: jittered, not the bare exponential.
    ceilings = [0.5, 1.0, 2.0]
    assert all(c / 2 <= s <= c for s, c in zip(sleeps, ceilings, strict=True))
    assert sleeps != ceilings


def test_the_rate_limit_reset_time_is_honoured_and_capped(clean_replay, sleeps):
    clean_replay.inject(FUNDING, "rate_limit", count=1, delay_s=20.0)
    clean_replay.inject(FUNDING, "rate_limit", count=1, delay_s=600.0)
    with BybitClient(clean_replay.base_url, sleep=sleeps, rng=lambda: 0.5,
                     backoff_max=30.0) as client:
        assert len(client.funding_history("BTCUSDT", LO, HI)) == 7
    assert len(sleeps) == 2
    assert 15.0 < sleeps[0] <= 20.0  # until the announced reset
    assert sleeps[1] == 30.0  # never beyond backoff_max


def test_http_429_then_success_waits_retry_after(client, clean_replay, sleeps):
    clean_replay.inject(OPEN_INTEREST, "http_429", count=1)
    assert len(client.open_interest("BTCUSDT", "1h", LO, HI)) == 56
    assert [r["status"] for r in served(clean_replay, OPEN_INTEREST)] == [429, 200]
    assert sleeps == [1.0]  # the answer's Retry-After: 1, longer than the first backoff


def test_http_500_then_success(client, clean_replay, sleeps):
    clean_replay.inject(FUNDING, "http_500", count=1)
    got = client.funding_history("ETHUSDT", LO, HI)
    assert len(got) == 7
    assert [r["status"] for r in served(clean_replay, FUNDING)] == [500, 200]
    assert len(sleeps) == 1


def test_a_timeout_then_success(clean_replay, sleeps):
    clean_replay.inject(ACCOUNT_RATIO, "slow", count=1, delay_s=1.0)
    with BybitClient(clean_replay.base_url, timeout=0.2, sleep=sleeps,
                     rng=lambda: 0.5) as client:
        got = client.long_short_ratio("BTCUSDT", "1h", LO, HI)
    assert len(got) == 56
    assert len(sleeps) == 1
    # The slow answer is logged only once its delay is over; the retry is already served.
    assert any(r["fault"] is None and r["status"] == 200
               for r in served(clean_replay, ACCOUNT_RATIO))


def test_exhausted_retries_name_the_last_cause(clean_replay, sleeps):
    clean_replay.inject(ACCOUNT_RATIO, "http_502", count=10)
    with BybitClient(clean_replay.base_url, max_retries=2, sleep=sleeps,
                     rng=lambda: 0.5) as client, pytest.raises(TransientSourceError) as info:
        client.long_short_ratio("ETHUSDT", "1h", LO, HI)
    err = info.value
    assert err.transient
    assert "HTTP 502" in str(err) and "3 attempt" in str(err)
    assert (err.source, err.endpoint, err.symbol) == ("bybit", ACCOUNT_RATIO, "ETHUSDT")
    assert len(served(clean_replay, ACCOUNT_RATIO)) == 3
    assert len(sleeps) == 2


def test_a_fault_on_a_later_page_is_retried_in_place(client, clean_replay, bundle):
    clean_replay.inject(KLINE, "http_500", count=1, match={"end": str(
        int((START + pd.Timedelta(hours=8760 - 1000)).value // 1_000_000) - 1)})
    got = client.klines("ETHUSDT", "60", START, END)
    assert_same_rows(got, expected_rows(bundle, "candles", "open_time", "ETHUSDT",
                                        interval="60"), "open_time")
    statuses = [r["status"] for r in served(clean_replay, KLINE)]
    assert statuses.count(500) == 1 and len(statuses) == 10


def test_a_refused_connection_is_retried_then_reported(sleeps):
    with socket.socket() as sock:  # a loopback port that nothing listens on any more
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with BybitClient(f"http://127.0.0.1:{port}", max_retries=1, sleep=sleeps,
                     rng=lambda: 0.5) as client, pytest.raises(TransientSourceError) as info:
        client.server_time()
    assert "connection failed" in str(info.value)
    assert info.value.endpoint == "/v5/market/time"
    assert len(sleeps) == 1


# -- fatal answers are named, not retried ------------------------------------------------------


def test_a_malformed_body_names_endpoint_and_symbol(client, clean_replay, sleeps):
    clean_replay.inject(KLINE, "malformed", count=1)
    with pytest.raises(SourceError) as info:
        client.klines("ETHUSDT", "60", LO, HI)
    err = info.value
    assert not err.transient
    assert (err.source, err.endpoint, err.symbol, err.field) == ("bybit", KLINE, "ETHUSDT",
                                                                 "body")
    assert "not JSON" in str(err) and '{"retCode"' in str(err)
    assert len(served(clean_replay, KLINE)) == 1 and sleeps == []


def test_ret_code_10001_is_fatal_without_retries(client, clean_replay, sleeps):
    clean_replay.inject(FUNDING, "retcode", count=1, ret_code=10001,
                        ret_msg="params error: symbol invalid")
    with pytest.raises(SourceError) as info:
        client.funding_history("BTCUSDT", LO, HI)
    err = info.value
    assert not isinstance(err, TransientSourceError)
    assert "retCode 10001" in str(err) and "symbol invalid" in str(err)
    assert (err.endpoint, err.symbol, err.field) == (FUNDING, "BTCUSDT", "retCode")
    assert len(served(clean_replay, FUNDING)) == 1 and sleeps == []


def test_an_unknown_symbol_is_the_exchange_params_error(client, clean_replay):
    with pytest.raises(SourceError, match="retCode 10001"):
        client.klines("DOGEUSDT", "60", LO, HI)
    assert len(served(clean_replay, KLINE)) == 1


def test_http_403_stops_after_exactly_one_request(client, clean_replay, sleeps):
    clean_replay.inject(KLINE, "http_403", count=5)
    with pytest.raises(SourceBlockedError, match="refused this IP \\(HTTP 403\\)") as info:
        client.klines("BTCUSDT", "60", LO, HI)
    assert (info.value.endpoint, info.value.symbol) == (KLINE, "BTCUSDT")
    assert len(served(clean_replay, KLINE)) == 1 and sleeps == []


@pytest.mark.parametrize(
    "path, method, args, field",
    [
        (KLINE, "klines", ("BTCUSDT", "60"), "closePrice"),
        (KLINE, "klines", ("BTCUSDT", "60"), "turnover"),
        (FUNDING, "funding_history", ("BTCUSDT",), "fundingRate"),
        (FUNDING, "funding_history", ("BTCUSDT",), "fundingRateTimestamp"),
        (OPEN_INTEREST, "open_interest", ("BTCUSDT", "1h"), "openInterest"),
        (ACCOUNT_RATIO, "long_short_ratio", ("BTCUSDT", "1h"), "buyRatio"),
        (ACCOUNT_RATIO, "long_short_ratio", ("BTCUSDT", "1h"), "timestamp"),
    ],
)
@pytest.mark.parametrize("kind", ["missing_field", "bad_number"])
def test_a_missing_or_non_numeric_field_is_named(client, clean_replay, sleeps, path, method,
                                                 args, field, kind):
    clean_replay.inject(path, kind, count=1, field=field)
    with pytest.raises(SourceError) as info:
        getattr(client, method)(*args, LO, HI)
    err = info.value
    assert not err.transient
    assert (err.field, err.endpoint, err.symbol) == (field, path, "BTCUSDT")
    if kind == "bad_number":
        assert "'abc'" in str(err)
    assert len(served(clean_replay, path)) == 1 and sleeps == []


# -- tickers ---------------------------------------------------------------------------------


def test_tickers_of_one_and_of_every_symbol(client, clean_replay, bundle):
    clean_replay.set_clock(pd.Timestamp("2022-06-01 10:30"))
    one = client.tickers("BTCUSDT")
    assert list(one.columns) == TICKER_COLUMNS
    row = one.iloc[0]
    assert row.symbol == "BTCUSDT" and row.ts == pd.Timestamp("2022-06-01 10:30")
    candles = bundle["candles"]
    bar = candles[(candles.symbol == "BTCUSDT")
                  & (candles.open_time == pd.Timestamp("2022-06-01 10:00"))].iloc[0]
    assert row.last_price == bar.close and row.prev_price_1h == bar.open
    assert row.next_funding_time == pd.Timestamp("2022-06-01 16:00")
    every = client.tickers()
    assert every["symbol"].tolist() == sorted(BUNDLED_SYMBOLS)


# -- Fear & Greed ----------------------------------------------------------------------------


def test_fear_greed_history_equals_the_bundle(fng, clean_replay, bundle):
    got = fng.history()
    assert list(got.columns) == ["ts", "value", "classification"]
    assert_same_rows(got, bundle["fear_greed"].sort_values("ts").reset_index(drop=True), "ts")
    assert (got["ts"].iloc[0], got["ts"].iloc[-1]) == (pd.Timestamp("2021-12-01"),
                                                       pd.Timestamp("2022-12-31"))
    assert [(r["query"]["limit"], r["query"]["format"]) for r in served(clean_replay)] == [
        ("0", "json")]


def test_fear_greed_range_is_half_open(fng):
    got = fng.history("2022-03-01", pd.Timestamp("2022-03-08"))
    assert got["ts"].tolist() == list(pd.date_range("2022-03-01", "2022-03-07", freq="D"))
    assert fng.history(start="2022-12-30")["ts"].tolist() == [pd.Timestamp("2022-12-30"),
                                                              pd.Timestamp("2022-12-31")]
    assert fng.history(end="2021-12-03")["ts"].tolist() == [pd.Timestamp("2021-12-01"),
                                                            pd.Timestamp("2021-12-02")]


def test_fear_greed_latest_follows_the_clock(fng, clean_replay, bundle):
    clean_replay.set_clock(pd.Timestamp("2022-06-01 10:30"))
    got = fng.latest()
    day = bundle["fear_greed"].set_index("ts").loc[pd.Timestamp("2022-06-01")]
    assert got.to_dict("records") == [{"ts": pd.Timestamp("2022-06-01"),
                                       "value": float(day["value"]),
                                       "classification": day["classification"]}]
    assert served(clean_replay)[0]["query"]["limit"] == "1"


def test_fear_greed_transient_faults_are_retried(fng, clean_replay, sleeps):
    clean_replay.inject(FNG, "http_500", count=1)
    clean_replay.inject(FNG, "rate_limit", count=1)  # alternative.me answers HTTP 429
    assert len(fng.latest()) == 1
    assert [r["status"] for r in served(clean_replay, FNG)] == [500, 429, 200]
    assert len(sleeps) == 2 and sleeps[1] == 1.0  # Retry-After: 1


@pytest.mark.parametrize(
    "kind, kw, field",
    [
        ("malformed", {}, "body"),
        ("retcode", {"ret_msg": "Invalid limit"}, "metadata.error"),
        ("missing_field", {"field": "value"}, "value"),
        ("bad_number", {"field": "value"}, "value"),
        ("bad_number", {"field": "timestamp"}, "timestamp"),
        ("missing_field", {"field": "value_classification"}, "value_classification"),
    ],
)
def test_fear_greed_bad_answers_are_named(fng, clean_replay, sleeps, kind, kw, field):
    clean_replay.inject(FNG, kind, count=1, **kw)
    with pytest.raises(SourceError) as info:
        fng.history()
    err = info.value
    assert not err.transient
    assert (err.source, err.endpoint, err.field) == ("fear_greed", "fng", field)
    assert len(served(clean_replay, FNG)) == 1 and sleeps == []


def test_fear_greed_http_403_stops_at_once(fng, clean_replay):
    clean_replay.inject(FNG, "http_403", count=3)
    with pytest.raises(SourceBlockedError, match="alternative.me refused this IP"):
        fng.latest()
    assert len(served(clean_replay, FNG)) == 1
