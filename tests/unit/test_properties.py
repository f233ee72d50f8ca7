"""Property tests: batch history and live tracker on random bars, bad input, TA-Lib RSI, OBI.

The bars are built from random log returns (positive prices, high >= max(open, close),
low <= min(open, close), volume >= 0 with zeros), so every draw is a valid market.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sentiment.config import load_config
from sentiment.core.indicators.talib_set import compute_talib
from sentiment.core.orderbook import imbalance
from sentiment.errors import InputError
from sentiment.history import compute_history
from sentiment.models import HISTORY_COLUMNS, REGIMES
from sentiment.tracker import MarketSentimentTracker

CONFIG = load_config()
SYMBOL, INTERVAL = "BTCUSDT", "60"
HOUR = pd.Timedelta(hours=1)
START = pd.Timestamp("2022-03-01")

SIGNED_SCORES = ("sentiment_score", "trend_score", "momentum_score", "volume_flow_score",
                 "exchange_sentiment", "macro_sentiment")
UNIT_SCORES = ("confidence", "volatility_score", "regime_confidence")
FLOAT_COLUMNS = ("close", *SIGNED_SCORES, *UNIT_SCORES)

FAST = settings(max_examples=25, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ------------------------------------------------------------------ strategies


@st.composite
def ohlcv(draw, min_size=1, max_size=400) -> pd.DataFrame:
    n = draw(st.integers(min_size, max_size))
    ret = st.floats(-0.08, 0.08, allow_nan=False, allow_subnormal=False)
    frac = st.floats(0.0, 0.05, allow_nan=False, allow_subnormal=False)
    log_ret = draw(hnp.arrays(np.float64, n, elements=ret))
    gap = draw(hnp.arrays(np.float64, n, elements=st.floats(-0.01, 0.01, allow_subnormal=False)))
    wick_up = draw(hnp.arrays(np.float64, n, elements=frac))
    wick_dn = draw(hnp.arrays(np.float64, n, elements=frac))
    volume = draw(hnp.arrays(np.float64, n, elements=st.one_of(
        st.just(0.0), st.floats(0.0, 1e6, allow_nan=False, allow_subnormal=False))))
    base = draw(st.floats(0.01, 1e5))
    close = base * np.exp(np.cumsum(log_ret))
    open_ = np.r_[base, close[:-1]] * np.exp(gap)
    high = np.maximum(open_, close) * (1.0 + wick_up)
    low = np.minimum(open_, close) * (1.0 - wick_dn)
    assert (low > 0).all() and (high >= np.maximum(open_, close)).all()
    assert (low <= np.minimum(open_, close)).all()
    return candles(open_, high, low, close, volume)


def candles(open_, high, low, close, volume, open_time=None) -> pd.DataFrame:
    n = len(close)
    if open_time is None:
        open_time = START + HOUR * np.arange(n)
    return pd.DataFrame({
        # Nanosecond resolution: see test_history_accepts_microsecond_open_times.
        "open_time": pd.Series(pd.DatetimeIndex(open_time)).astype("datetime64[ns]"),
        "open": open_, "high": high, "low": low, "close": close, "volume": volume,
    })


def history(frame: pd.DataFrame) -> pd.DataFrame:
    return compute_history(frame, config=CONFIG, symbol=SYMBOL, interval=INTERVAL)


def bar(frame: pd.DataFrame, i: int) -> dict:
    r = frame.iloc[i]
    return {"open_time": r["open_time"], "open": r["open"], "high": r["high"],
            "low": r["low"], "close": r["close"], "volume": r["volume"]}


def feed(frame: pd.DataFrame, tracker: MarketSentimentTracker | None = None):
    tracker = tracker or MarketSentimentTracker(SYMBOL, INTERVAL, CONFIG)
    return tracker, [tracker.on_candle_close(bar(frame, i)) for i in range(len(frame))]


def floats(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


# ------------------------------------------------------------------ checks


def assert_valid_history(hist: pd.DataFrame, n: int) -> None:
    assert len(hist) == n
    assert list(hist.columns) == list(HISTORY_COLUMNS)
    for name in FLOAT_COLUMNS:
        # NaN is never stored: a missing value is NA (isna), nothing else.
        present = hist[name].dropna().to_numpy(dtype=np.float64)
        assert not np.isnan(present).any(), name
        assert np.isfinite(present).all(), name
    for name in SIGNED_SCORES:
        v = hist[name].dropna().to_numpy(dtype=np.float64)
        assert ((v >= -1.0) & (v <= 1.0)).all(), (name, v.min(), v.max())
    for name in UNIT_SCORES:
        v = hist[name].dropna().to_numpy(dtype=np.float64)
        assert ((v >= 0.0) & (v <= 1.0)).all(), (name, v.min(), v.max())
    regimes = hist["regime"]
    assert set(regimes.dropna()) <= set(REGIMES)
    # NA only in the warm-up: once a score or regime exists it keeps existing.
    for name in ("sentiment_score", "confidence", "regime", "trend_score", "momentum_score",
                 "volatility_score", "volume_flow_score", "regime_confidence"):
        na = hist[name].isna().to_numpy()
        if not na.all():
            first = int(np.argmin(na))
            assert not na[first:].any(), name
    assert (hist["regime"].isna() == hist["sentiment_score"].isna()).all()


def assert_same_rows(hist: pd.DataFrame, snaps) -> None:
    assert len(hist) == len(snaps)
    for i, snap in enumerate(snaps):
        row = snap.as_row()
        want = hist.iloc[i]
        for name in HISTORY_COLUMNS:
            live, batch = row[name], want[name]
            if live is None or pd.isna(batch):
                # NULL on both sides (pandas shows it as NA, or NaN in text columns)
                assert live is None and pd.isna(batch), (i, name, live, batch)
            elif name == "timestamp":
                assert pd.Timestamp(live) == batch, (i, live, batch)
            elif isinstance(live, str):
                assert live == batch, (i, name, live, batch)
            else:
                assert math.isclose(live, float(batch), rel_tol=0.0, abs_tol=1e-9), (
                    i, name, live, batch)


# ------------------------------------------------------------------ random bars


@FAST
@given(frame=ohlcv())
def test_history_on_random_bars_is_bounded_and_matches_the_tracker(frame):
    hist = history(frame)
    assert_valid_history(hist, len(frame))
    expected_ts = frame["open_time"] + HOUR
    assert (hist["timestamp"].to_numpy() == expected_ts.to_numpy()).all()
    np.testing.assert_array_equal(floats(hist["close"]), frame["close"].to_numpy())
    if len(frame) >= 150:
        # the warm-up is over well before 150 bars
        assert hist["sentiment_score"].notna().iloc[-1]
    _, snaps = feed(frame)
    assert_same_rows(hist, snaps)


@settings(max_examples=10, deadline=None, database=None)
@given(n=st.integers(1, 400), price=st.floats(0.001, 1e6), zero_volume=st.booleans())
def test_flat_prices_and_zero_volume(n, price, zero_volume):
    c = np.full(n, price)
    v = np.zeros(n) if zero_volume else np.full(n, 10.0)
    frame = candles(c, c, c, c, v)
    hist = history(frame)
    assert_valid_history(hist, n)
    if n >= 150:
        assert hist["sentiment_score"].notna().iloc[-1]
        warm = int(np.argmin(hist["sentiment_score"].isna().to_numpy()))
        for name in ("sentiment_score", "confidence", "trend_score", "momentum_score",
                     "volatility_score", "volume_flow_score", "regime", "regime_confidence"):
            assert hist[name].iloc[warm:].notna().all(), name
    _, snaps = feed(frame)
    assert_same_rows(hist, snaps)


def test_random_walk_with_zero_volume_runs_keeps_scores_defined():
    rng = np.random.default_rng(42)
    n = 400
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) * 1.002
    low = np.minimum(open_, close) * 0.998
    volume = rng.exponential(100.0, n)
    volume[150:220] = 0.0  # 70 bars without any trade
    frame = candles(open_, high, low, close, volume)
    hist = history(frame)
    assert_valid_history(hist, n)
    assert hist["sentiment_score"].iloc[130:].notna().all()
    assert hist["volume_flow_score"].iloc[130:].notna().all()
    _, snaps = feed(frame)
    assert_same_rows(hist, snaps)


# ------------------------------------------------------------------ gaps and order


@FAST
@given(frame=ohlcv(min_size=2, max_size=250), data=st.data())
def test_gaps_in_the_bars_are_accepted(frame, data):
    n = len(frame)
    steps = data.draw(hnp.arrays(np.int64, n - 1, elements=st.integers(1, 5)))
    hours = np.r_[0, np.cumsum(steps)]
    gapped = frame.assign(open_time=pd.Series(START + HOUR * hours).astype("datetime64[ns]"))
    hist = history(gapped)
    assert_valid_history(hist, n)
    assert (hist["timestamp"].to_numpy() == (gapped["open_time"] + HOUR).to_numpy()).all()
    _, snaps = feed(gapped)
    assert_same_rows(hist, snaps)


@FAST
@given(frame=ohlcv(min_size=2, max_size=120), data=st.data())
def test_out_of_order_or_duplicate_bar_is_rejected_and_changes_nothing(frame, data):
    n = len(frame)
    k = data.draw(st.integers(1, n - 1), label="bars fed before the bad one")
    back = data.draw(st.integers(0, k - 1), label="bar repeated (k-1: duplicate)")
    tracker, _ = feed(frame.iloc[:k])
    before = tracker.checkpoint()
    bad = bar(frame, back)
    with pytest.raises(InputError) as info:
        tracker.on_candle_close(bad)
    assert info.value.field == "open_time"
    assert isinstance(info.value, ValueError)
    assert tracker.checkpoint() == before
    # The tracker goes on exactly like one that never saw the bad bar.
    fresh, _ = feed(frame.iloc[:k])
    for i in range(k, n):
        assert tracker.on_candle_close(bar(frame, i)) == fresh.on_candle_close(bar(frame, i))


def test_history_rejects_duplicate_open_time():
    rng = np.random.default_rng(3)
    c = 100 + rng.random(30)
    frame = candles(c, c + 1, c - 1, c, np.ones(30))
    dup = pd.concat([frame, frame.iloc[[10]]], ignore_index=True)
    with pytest.raises(InputError) as info:
        history(dup)
    assert info.value.field == "open_time"


def test_history_sorts_bars_given_out_of_order():
    rng = np.random.default_rng(4)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 200)))
    frame = candles(c, c * 1.01, c * 0.99, c, rng.random(200))
    shuffled = frame.sample(frac=1.0, random_state=1)
    pd.testing.assert_frame_equal(history(shuffled), history(frame))


BAD_VALUES = (math.nan, math.inf, -math.inf)


@FAST
@given(frame=ohlcv(min_size=2, max_size=200), data=st.data())
def test_non_finite_price_is_rejected_naming_the_field(frame, data):
    n = len(frame)
    k = data.draw(st.integers(0, n - 1), label="bars fed before the bad one")
    field = data.draw(st.sampled_from(["open", "high", "low", "close", "volume"]))
    value = data.draw(st.sampled_from(BAD_VALUES))
    tracker, _ = feed(frame.iloc[:k])
    before = tracker.checkpoint()
    bad = bar(frame, k)
    bad[field] = value
    with pytest.raises(InputError) as info:
        tracker.on_candle_close(bad)
    assert info.value.field == field
    assert field in str(info.value)
    assert tracker.checkpoint() == before
    fresh, _ = feed(frame.iloc[:k])
    for i in range(k, n):
        assert tracker.on_candle_close(bar(frame, i)) == fresh.on_candle_close(bar(frame, i))
    # The batch path names the same field.
    broken = frame.copy()
    broken.loc[k, field] = value
    with pytest.raises(InputError) as info:
        history(broken)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("change", "field"),
    [({"volume": -1.0}, "volume"), ({"high": 90.0, "low": 95.0}, "high"),
     ({"close": "abc"}, "close")],
)
def test_other_invalid_bars_are_rejected_without_side_effects(change, field):
    rng = np.random.default_rng(9)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 60)))
    frame = candles(c, c * 1.01, c * 0.99, c, rng.random(60))
    tracker, _ = feed(frame.iloc[:40])
    before = tracker.checkpoint()
    with pytest.raises(InputError) as info:
        tracker.on_candle_close({**bar(frame, 40), **change})
    assert info.value.field == field
    assert tracker.checkpoint() == before
    fresh, _ = feed(frame.iloc[:40])
    for i in range(40, 60):
        assert tracker.on_candle_close(bar(frame, i)) == fresh.on_candle_close(bar(frame, i))


def test_history_accepts_microsecond_open_times():
    # pandas >= 3 builds date_range / to_datetime columns (and DuckDB returns TIMESTAMP
    # columns) as datetime64[us]; the tracker reads those times correctly.
    rng = np.random.default_rng(5)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 150)))
    frame = candles(c, c * 1.01, c * 0.99, c, rng.random(150))
    frame_us = frame.assign(open_time=frame["open_time"].astype("datetime64[us]"))
    assert frame_us["open_time"].tolist() == frame["open_time"].tolist()
    hist = history(frame_us)
    want = (frame["open_time"] + HOUR).tolist()
    assert hist["timestamp"].tolist() == want
    _, snaps = feed(frame_us)
    assert [s.timestamp for s in snaps] == [t.to_pydatetime() for t in want]


def test_history_reads_microsecond_funding_times():
    from replay.server import load_bundle

    bundle = load_bundle()
    btc = bundle["candles"][bundle["candles"]["symbol"] == SYMBOL].iloc[:300]
    funding = bundle["funding"]
    funding_us = funding.assign(funding_time=funding["funding_time"].astype("datetime64[us]"))
    want = history_with_funding(btc, funding)["funding_rate"]
    assert want.iloc[100:].notna().all()
    got = history_with_funding(btc, funding_us)["funding_rate"]
    pd.testing.assert_series_equal(got, want)


def history_with_funding(candles_: pd.DataFrame, funding: pd.DataFrame) -> pd.DataFrame:
    return compute_history(candles_, funding, config=CONFIG, symbol=SYMBOL, interval=INTERVAL)


def test_microsecond_and_nanosecond_open_times_agree_in_the_tracker():
    rng = np.random.default_rng(6)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 30)))
    frame = candles(c, c * 1.01, c * 0.99, c, rng.random(30))
    frame_us = frame.assign(open_time=frame["open_time"].astype("datetime64[us]"))
    _, a = feed(frame)
    _, b = feed(frame_us)
    assert a == b
    assert a[0].timestamp == dt.datetime(2022, 3, 1, 1, 0)


# ------------------------------------------------------------------ TA-Lib RSI


@settings(max_examples=40, deadline=None, database=None)
@given(
    log_ret=hnp.arrays(np.float64, st.integers(1, 300), elements=st.one_of(
        st.just(0.0), st.floats(-0.2, 0.2, allow_nan=False, allow_subnormal=False))),
    base=st.floats(1e-3, 1e6),
)
def test_talib_rsi_is_between_0_and_100(log_ret, base):
    close = base * np.exp(np.cumsum(log_ret))
    n = len(close)
    bars = {"open": close.copy(), "high": close * 1.001, "low": close * 0.999,
            "close": close, "volume": np.ones(n)}
    out = compute_talib(bars)
    rsi = out["rsi"]
    assert len(rsi) == n
    present = rsi[~np.isnan(rsi)]
    assert ((present >= 0.0) & (present <= 100.0)).all()
    if n > 14:
        assert np.isfinite(rsi[14:]).all()  # RSI 14 is defined after its lookback
    moves = np.diff(close)
    if n > 14 and (moves >= 0).all() and (moves > 0).any():
        assert rsi[-1] == pytest.approx(100.0)  # gains and never a loss
    if n > 14 and (moves <= 0).all() and (moves < 0).any():
        assert rsi[-1] == pytest.approx(0.0)  # losses and never a gain


@pytest.mark.parametrize("step", [0.01, -0.01])
def test_talib_rsi_of_a_monotone_series_is_at_its_bound(step):
    close = 100.0 * np.exp(step * np.arange(60))
    bars = {"open": close, "high": close, "low": close, "close": close, "volume": np.ones(60)}
    rsi = compute_talib(bars)["rsi"]
    assert rsi[-1] == pytest.approx(100.0 if step > 0 else 0.0)


# ------------------------------------------------------------------ order-book imbalance


levels = st.lists(
    st.tuples(st.floats(1.0, 1e5), st.floats(1e-6, 1e6, allow_subnormal=False)),
    min_size=1, max_size=10,
)


@settings(max_examples=200, deadline=None, database=None)
@given(bids=levels, asks=levels)
def test_obi_is_between_minus_one_and_one(bids, asks):
    bids = [list(level) for level in bids]
    asks = [list(level) for level in asks]
    obi = imbalance(bids, asks)
    assert -1.0 <= obi <= 1.0
    assert imbalance(asks, bids) == pytest.approx(-obi, abs=1e-12)
    # Levels past the fifth do not count.
    if len(bids) >= 5:
        assert imbalance(bids + [[1.0, 1e9]], asks) == obi
    # More size on the best bid never lowers the imbalance.
    heavier = [[bids[0][0], bids[0][1] * 2.0], *bids[1:]]
    assert imbalance(heavier, asks) >= obi


@settings(max_examples=50, deadline=None, database=None)
@given(side=levels)
def test_obi_of_a_one_sided_book(side):
    side = [list(level) for level in side]
    assert imbalance(side, []) == 1.0
    assert imbalance([], side) == -1.0
    assert math.isnan(imbalance([], []))


@pytest.mark.parametrize("volume", [0.0, 10.0])
def test_flat_market_reads_neutral_and_ranging(volume):
    n = 200
    c = np.full(n, 100.0)
    hist = history(candles(c, c, c, c, np.full(n, volume)))
    warm = hist.iloc[104:]
    assert (floats(warm["sentiment_score"]) == 0.0).all()
    assert (floats(warm["volatility_score"]) == 0.5).all()
    assert (warm["regime"] == "ranging").all()
    assert hist["sentiment_score"].iloc[:104].isna().all()
