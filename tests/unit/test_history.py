"""Batch equals live: compute_history, the tracker bar by bar, and checkpoint/restore.

All on the recorded real BTCUSDT/ETHUSDT candles of 2022 with the bundled funding, Fear &
Greed and the synthetic OI and long/short series.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from replay.server import load_bundle
from sentiment.config import load_config
from sentiment.core.scores import SCORE_SCALE
from sentiment.errors import InputError
from sentiment.history import compute_history, compute_history_and_transitions, history_frame
from sentiment.models import HISTORY_COLUMNS, REGIMES
from sentiment.tracker import MarketSentimentTracker

TOL = 1e-9


@pytest.fixture(scope="module")
def config():
    return load_config()


@pytest.fixture(scope="module")
def bundle():
    data = load_bundle()
    data["candles"] = data["candles"].assign(interval="60")
    return data


def _symbol(frame, symbol):
    return frame[frame["symbol"] == symbol]


def feed_slow(tracker, bundle, symbol):
    """Everything slower than the bars, in one go: the tracker's publication lags decide
    what each bar may see."""
    for r in _symbol(bundle["funding"], symbol).itertuples():
        tracker.on_funding(r.funding_time, r.funding_rate)
    for r in _symbol(bundle["open_interest"], symbol).itertuples():
        tracker.on_open_interest(r.ts, r.open_interest)
    for r in _symbol(bundle["long_short"], symbol).itertuples():
        tracker.on_long_short(r.ts, r.buy_ratio)
    for r in bundle["fear_greed"].itertuples():
        tracker.on_fear_greed(r.ts, r.value)


def run_live(bundle, config, symbol, n, cuts=()):
    """Feed the tracker bar by bar; at each cut, checkpoint through JSON and restore."""
    tracker = MarketSentimentTracker(symbol, "60", config)
    feed_slow(tracker, bundle, symbol)
    rows = []
    records = _symbol(bundle["candles"], symbol).iloc[:n].to_dict("records")
    for i, candle in enumerate(records):
        if i in cuts:
            state = json.loads(json.dumps(tracker.checkpoint(), allow_nan=False))
            tracker = MarketSentimentTracker.restore(state, config)
        rows.append(tracker.on_candle_close(candle).as_row())
    return history_frame({c: [r[c] for r in rows] for c in HISTORY_COLUMNS}), tracker


def batch(bundle, config, symbol, n, **overrides):
    inputs = {k: bundle[k] for k in ("funding", "open_interest", "long_short", "fear_greed")}
    inputs.update(overrides)
    candles = _symbol(bundle["candles"], symbol).iloc[:n]
    return compute_history(candles, inputs["funding"], inputs["open_interest"],
                           inputs["long_short"], inputs["fear_greed"], config)


def assert_same_rows(a: pd.DataFrame, b: pd.DataFrame, tol=TOL):
    assert list(a.columns) == list(b.columns) == list(HISTORY_COLUMNS)
    assert len(a) == len(b)
    for col in HISTORY_COLUMNS:
        x, y = a[col], b[col]
        assert (x.isna().to_numpy() == y.isna().to_numpy()).all(), col
        present = ~x.isna().to_numpy()
        if col == "timestamp":
            assert (x == y).all(), col
        elif x.dtype.kind in "fi" or str(x.dtype) in ("Float64", "Int64"):
            xv = x.to_numpy(dtype=np.float64, na_value=np.nan)[present]
            yv = y.to_numpy(dtype=np.float64, na_value=np.nan)[present]
            worst = np.max(np.abs(xv - yv), initial=0.0)
            assert worst <= tol, f"{col}: max difference {worst}"
        else:
            assert (x[present].to_numpy() == y[present].to_numpy()).all(), col


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_batch_equals_live_and_checkpoint_restore(bundle, config, symbol):
    n = 6000
    expected = batch(bundle, config, symbol, n)
    live, _ = run_live(bundle, config, symbol, n, cuts=(1, 50, 150, 777, 2500, 5999))
    assert_same_rows(expected, live)
    # The comparison has teeth: warm-up nulls, every regime column, and exchange values.
    assert expected["sentiment_score"].isna().sum() == 104
    assert expected["regime"].dropna().nunique() >= 5
    assert expected["exchange_sentiment"].notna().sum() > n - 200


def test_restore_with_truncated_history_stays_within_tolerance(bundle, config):
    """With fewer stored bars than the history, TA-Lib handles reopen over a window; the
    seed of every recursive indicator has decayed far below 1e-9 by then."""
    small = dataclasses.replace(config, history=dataclasses.replace(config.history,
                                                                    checkpoint_bars=1000))
    expected = batch(bundle, small, "BTCUSDT", 5000)
    live, tracker = run_live(bundle, small, "BTCUSDT", 5000, cuts=(3000, 4500))
    assert len(tracker.checkpoint()["bars"]["close"]) == 1000
    assert_same_rows(expected, live)


def test_prefix_stability(bundle, config):
    full = batch(bundle, config, "BTCUSDT", 4000)
    for n in (1, 30, 104, 105, 1000, 2345):
        prefix = batch(bundle, config, "BTCUSDT", n)
        assert_same_rows(full.iloc[:n].reset_index(drop=True), prefix, tol=0.0)


def test_point_in_time_future_inputs_do_not_change_the_past(bundle, config):
    """Scramble everything stamped after (or usable after) a bar's close: rows up to it stay
    identical."""
    n = 3000
    base = batch(bundle, config, "BTCUSDT", n)
    t = base["timestamp"].iloc[1999]  # close of bar 1999
    rng = np.random.default_rng(7)

    def scramble(frame, time_col, value_col, lag=None):
        lag = pd.Timedelta(0) if lag is None else lag
        frame = frame.astype({value_col: "float64"})
        future = (frame[time_col] + lag) > t
        frame.loc[future, value_col] = frame.loc[future, value_col] * rng.uniform(
            0.5, 1.5, future.sum())
        return frame

    candles = bundle["candles"].copy()
    future = candles["open_time"] >= t  # bars that close after t
    for col in ("open", "high", "low", "close", "volume"):
        candles.loc[future, col] = candles.loc[future, col] * 1.3
    changed = compute_history(
        _symbol(candles, "BTCUSDT").iloc[:n],
        scramble(bundle["funding"], "funding_time", "funding_rate"),
        # An OI or L/S record is usable one period after its timestamp.
        scramble(bundle["open_interest"], "ts", "open_interest", pd.Timedelta(hours=1)),
        scramble(bundle["long_short"], "ts", "buy_ratio", pd.Timedelta(hours=1)),
        scramble(bundle["fear_greed"], "ts", "value"),
        config,
    )
    assert_same_rows(base.iloc[:2000], changed.iloc[:2000], tol=0.0)
    later = base.iloc[2000:]["sentiment_score"].to_numpy(dtype=float, na_value=np.nan)
    assert not np.allclose(later, changed.iloc[2000:]["sentiment_score"].to_numpy(
        dtype=float, na_value=np.nan))


def test_open_interest_is_used_one_period_after_its_timestamp(bundle, config):
    oi = _symbol(bundle["open_interest"], "BTCUSDT").iloc[:200]
    rows = batch(bundle, config, "BTCUSDT", 150, open_interest=oi)
    by_time = dict(zip(oi["ts"], oi["open_interest"], strict=True))
    for row in rows.iloc[10:150].itertuples():
        # 1h bars: the bar closing at T sees the record stamped T - 1h, not the one at T.
        assert row.open_interest == by_time[row.timestamp - pd.Timedelta(hours=1)]


def test_missing_tier_is_left_out_and_weights_renormalised(bundle, config):
    full = batch(bundle, config, "BTCUSDT", 1500)
    no_macro = batch(bundle, config, "BTCUSDT", 1500, fear_greed=None)
    no_exchange = batch(bundle, config, "BTCUSDT", 1500, funding=None, open_interest=None,
                        long_short=None)
    warm = full["sentiment_score"].notna().to_numpy()
    assert no_macro["macro_sentiment"].isna().all()
    assert no_exchange["exchange_sentiment"].isna().all()
    assert no_exchange["funding_rate"].isna().all()
    w = config.weights
    f = {c: no_macro[c].to_numpy(dtype=float, na_value=np.nan)[warm] for c in no_macro.columns
         if c.endswith(("_score", "_sentiment")) or c == "confidence"}
    modifier = -np.maximum(0.0, f["volatility_score"] - 0.5)
    present = w.trend + w.momentum + w.volatility + w.volume_flow + w.exchange
    expected = (w.trend * f["trend_score"] + w.momentum * f["momentum_score"]
                + w.volatility * modifier + w.volume_flow * f["volume_flow_score"]
                + w.exchange * f["exchange_sentiment"]) / present
    np.testing.assert_allclose(f["sentiment_score"], np.clip(SCORE_SCALE * expected, -1, 1),
                               atol=1e-12)
    np.testing.assert_allclose(f["confidence"], (1 + modifier) * present, atol=1e-12)
    full_conf = full["confidence"].to_numpy(dtype=float, na_value=np.nan)[warm]
    assert (f["confidence"] < full_conf).all()


def test_transitions_match_regime_changes(bundle, config):
    candles = _symbol(bundle["candles"], "BTCUSDT").iloc[:3000]
    history, transitions = compute_history_and_transitions(candles, config=config)
    regime = history["regime"]
    changed = regime.notna() & regime.shift().notna() & (regime != regime.shift())
    assert list(history.loc[changed, "timestamp"]) == list(transitions["timestamp"])
    assert list(regime.shift()[changed]) == list(transitions["from_regime"])
    assert set(transitions["to_regime"]) <= set(REGIMES)
    assert len(transitions) > 20


def test_tracker_transition_history_matches_batch(bundle, config):
    candles = _symbol(bundle["candles"], "BTCUSDT").iloc[:2000]
    _, transitions = compute_history_and_transitions(candles, config=config)
    tracker = MarketSentimentTracker("BTCUSDT", "60", config)
    for candle in candles.to_dict("records"):
        tracker.on_candle_close(candle)
    state = tracker.regime_state
    tail = transitions.tail(len(state.transition_history))
    assert [(t.to_pydatetime(), a, b) for t, a, b in zip(
        tail["timestamp"], tail["from_regime"], tail["to_regime"], strict=True)] == (
        state.transition_history)
    assert state.current_regime == tracker.get_regime() == state.transition_history[-1][2]
    assert state.duration_bars == tracker.get_snapshot().regime_duration_bars


def test_checkpoint_is_strict_json_and_refuses_another_config(bundle, config):
    tracker = MarketSentimentTracker("BTCUSDT", "60", config)
    feed_slow(tracker, bundle, "BTCUSDT")
    for candle in _symbol(bundle["candles"], "BTCUSDT").iloc[:300].to_dict("records"):
        tracker.on_candle_close(candle)
    text = json.dumps(tracker.checkpoint(), allow_nan=False)
    other = dataclasses.replace(config, weights=dataclasses.replace(
        config.weights, trend=0.30, momentum=0.15))
    with pytest.raises(InputError, match="different configuration"):
        MarketSentimentTracker.restore(json.loads(text), other)
    restored = MarketSentimentTracker.restore(json.loads(text), config)
    assert restored.get_snapshot() == tracker.get_snapshot()
    assert restored.indicators["obv"] == pytest.approx(tracker.indicators["obv"], rel=1e-12)


def test_snapshot_fields_follow_the_brief(bundle, config):
    tracker = MarketSentimentTracker("BTCUSDT", "60", config)
    feed_slow(tracker, bundle, "BTCUSDT")
    for candle in _symbol(bundle["candles"], "BTCUSDT").iloc[:200].to_dict("records"):
        snap = tracker.on_candle_close(candle)
    for name in ("sentiment_score", "confidence", "regime", "regime_duration_bars",
                 "regime_confidence", "trend_score", "momentum_score", "volatility_score",
                 "volume_flow_score", "exchange_sentiment_score", "macro_sentiment_score",
                 "funding_rate", "open_interest", "open_interest_delta_pct", "long_short_ratio",
                 "liquidation_intensity", "order_book_imbalance", "fear_greed_index"):
        assert hasattr(snap, name)
    assert list(snap.as_row()) == list(HISTORY_COLUMNS)
    assert snap.regime in REGIMES and isinstance(snap.fear_greed_index, int)
    assert snap.timestamp == (candle["open_time"] + pd.Timedelta(hours=1)).to_pydatetime()
    assert tracker.get_snapshot() is snap and tracker.get_regime() == snap.regime


def _stream_events(candles, rng, quiet=range(150, 170)):
    """Liquidations and order-book samples with their own times; none in the quiet bars
    (the stream was down)."""
    from sentiment.core.orderbook import imbalance

    liqs, books = [], []
    for i, (open_time, close) in enumerate(zip(candles["open_time"], candles["close"],
                                               strict=True)):
        if i in quiet:
            continue
        for _ in range(rng.integers(0, 4)):
            ts = open_time + pd.Timedelta(seconds=int(rng.integers(0, 3600)))
            liqs.append({"symbol": "BTCUSDT", "ts": ts, "side": rng.choice(["Buy", "Sell"]),
                         "price": close, "size": float(rng.exponential(2.0))})
        for _ in range(rng.integers(1, 3)):
            ts = open_time + pd.Timedelta(seconds=int(rng.integers(0, 3600)))
            book = {"b": [[close - k, float(rng.uniform(0, 5))] for k in range(1, 8)],
                    "a": [[close + k, float(rng.uniform(0, 5))] for k in range(1, 8)]}
            books.append((ts, book))
    liq_frame = pd.DataFrame(liqs).sort_values("ts", ignore_index=True)
    obi_frame = pd.DataFrame({"symbol": "BTCUSDT", "ts": [t for t, _ in books],
                              "obi": [imbalance(b["b"], b["a"]) for _, b in books]})
    return liq_frame, books, obi_frame


def test_liquidations_and_order_book_batch_equals_live(bundle, config):
    """Stream events count in the bar that holds their own time, whenever they arrive
    before that bar is processed; bars without any stream data read NULL, not 0."""
    rng = np.random.default_rng(3)
    candles = _symbol(bundle["candles"], "BTCUSDT").iloc[:400]
    liq_frame, books, obi_frame = _stream_events(candles, rng)
    expected = compute_history(candles, config=config, liquidations=liq_frame,
                               orderbook_imbalance=obi_frame)

    # Live: every event arrives 30 s after its time, so some stamped before a bar's close
    # only arrive after it closed... unless the bar is processed later (the kline confirm
    # comes after the close). Here bars are processed 60 s after their close.
    arrivals = [(r["ts"] + pd.Timedelta(seconds=30), "liq", r) for r in
                liq_frame.to_dict("records")]
    arrivals += [(ts + pd.Timedelta(seconds=30), "book", (ts, b)) for ts, b in books]
    arrivals += [(c["open_time"] + pd.Timedelta(hours=1, seconds=60), "bar", c)
                 for c in candles.to_dict("records")]
    arrivals.sort(key=lambda a: (a[0], a[1] != "bar"))
    tracker = MarketSentimentTracker("BTCUSDT", "60", config)
    rows = []
    for i, (_, kind, item) in enumerate(arrivals):
        if kind == "liq":
            tracker.on_liquidation(item)
        elif kind == "book":
            tracker.on_orderbook_update(item[1], ts=item[0])
        else:
            rows.append(tracker.on_candle_close(item).as_row())
        if i % 97 == 0:  # stream events still pending go through the checkpoint too
            tracker = MarketSentimentTracker.restore(
                json.loads(json.dumps(tracker.checkpoint(), allow_nan=False)), config)
    live = history_frame({c: [r[c] for r in rows] for c in HISTORY_COLUMNS})
    assert_same_rows(expected, live)
    assert expected["liquidation_intensity"].iloc[150:170].isna().all()
    assert expected["order_book_imbalance"].iloc[150:170].isna().all()
    assert expected["liquidation_intensity"].notna().sum() == 380
    exchange = expected["exchange_sentiment"].notna().to_numpy()
    assert exchange[104:150].all() and exchange[170:].all()
    assert not exchange[150:170].any()  # the stream was down: no tier, never a silent 0


def test_stream_rows_do_not_depend_on_later_events(bundle, config):
    rng = np.random.default_rng(4)
    candles = _symbol(bundle["candles"], "BTCUSDT").iloc[:300]
    liq_frame, _, obi_frame = _stream_events(candles, rng)
    cut = candles["open_time"].iloc[200]
    early = compute_history(candles, config=config, liquidations=liq_frame[liq_frame.ts < cut],
                            orderbook_imbalance=obi_frame[obi_frame.ts < cut])
    full = compute_history(candles, config=config, liquidations=liq_frame,
                           orderbook_imbalance=obi_frame)
    assert_same_rows(early.iloc[:200], full.iloc[:200], tol=0.0)


def test_late_stream_event_is_dropped_live_and_event_after_close_waits(bundle, config):
    candles = _symbol(bundle["candles"], "BTCUSDT").iloc[:3].to_dict("records")
    tracker = MarketSentimentTracker("BTCUSDT", "60", config)
    first_close = candles[0]["open_time"] + pd.Timedelta(hours=1)
    # Stamped after the first bar's close but delivered before it: belongs to bar 2.
    tracker.on_liquidation({"T": first_close + pd.Timedelta(seconds=2), "s": "BTCUSDT",
                            "S": "Buy", "v": 1.0, "p": 100.0})
    assert tracker.on_candle_close(candles[0]).liquidation_intensity is None
    # Stamped inside bar 1, arriving now: too late for live (a backfill counts it).
    tracker.on_liquidation({"ts": first_close - pd.Timedelta(seconds=2), "side": "Sell",
                            "size": 1.0, "price": 100.0})
    second = tracker.on_candle_close(candles[1])
    assert second.liquidation_intensity == 1.0
    with pytest.raises(InputError, match="ETHUSDT"):
        tracker.on_liquidation({"T": first_close, "s": "ETHUSDT", "S": "Buy", "v": 1,
                                "p": 1})
    with pytest.raises(InputError, match="field ts"):
        tracker.on_orderbook_update({"b": [[1, 1]], "a": [[2, 1]]})


def test_restore_over_full_history_is_exact(bundle, config):
    small = dataclasses.replace(config, history=dataclasses.replace(config.history,
                                                                    checkpoint_bars=300))
    candles = _symbol(bundle["candles"], "BTCUSDT").iloc[:2500]
    expected = compute_history(candles, config=small)
    tracker = MarketSentimentTracker("BTCUSDT", "60", small)
    rows = []
    for i, candle in enumerate(candles.to_dict("records")):
        if i == 2000:
            state = json.loads(json.dumps(tracker.checkpoint()))
            with pytest.raises(InputError, match="do not end"):
                MarketSentimentTracker.restore(state, small, candles=candles.iloc[:1500])
            tracker = MarketSentimentTracker.restore(state, small, candles=candles)
            assert tracker.indicators["obv"] == pytest.approx(
                compute_history_obv(candles.iloc[:2000]), rel=0, abs=0)
        rows.append(tracker.on_candle_close(candle).as_row())
    live = history_frame({c: [r[c] for r in rows] for c in HISTORY_COLUMNS})
    assert_same_rows(expected, live, tol=0.0)


def compute_history_obv(candles):
    import talib

    return float(talib.OBV(candles["close"].to_numpy(float), candles["volume"].to_numpy(
        float))[-1])


def test_epoch_millisecond_times_read_the_same_in_batch_and_live(bundle, config):
    candles = _symbol(bundle["candles"], "BTCUSDT").iloc[:150]
    ms = candles.assign(open_time=candles["open_time"].astype("datetime64[ms]")
                        .astype("int64"))
    funding = _symbol(bundle["funding"], "BTCUSDT")
    funding_ms = funding.assign(funding_time=funding["funding_time"].astype("datetime64[ms]")
                                .astype("int64").astype(float))
    expected = compute_history(candles, funding, config=config)
    got = compute_history(ms, funding_ms, config=config)
    assert_same_rows(expected, got, tol=0.0)
    assert got["funding_rate"].notna().all()
    tracker = MarketSentimentTracker("BTCUSDT", "60", config)
    for r in funding_ms.itertuples():
        tracker.on_funding(r.funding_time, r.funding_rate)
    rows = [tracker.on_candle_close(c).as_row() for c in ms.to_dict("records")]
    assert_same_rows(expected, history_frame({c: [r[c] for r in rows]
                                              for c in HISTORY_COLUMNS}), tol=0.0)


def test_empty_candles_give_empty_frames(config):
    empty = pd.DataFrame(columns=["symbol", "interval", "open_time", "open", "high", "low",
                                  "close", "volume"])
    history, transitions = compute_history_and_transitions(empty, config=config)
    assert list(history.columns) == list(HISTORY_COLUMNS) and history.empty
    assert transitions.empty
    assert compute_history(empty.drop(columns=["symbol", "interval"]), config=config,
                           symbol="BTCUSDT", interval="60").empty


def test_open_interest_of_the_configured_period_and_symbol_only(bundle, config):
    candles = _symbol(bundle["candles"], "ETHUSDT").iloc[:200]
    eth = _symbol(bundle["open_interest"], "ETHUSDT")
    five_min = eth.assign(interval="5min", open_interest=eth["open_interest"] * 2)
    btc = _symbol(bundle["open_interest"], "BTCUSDT").assign(interval="1h")
    # ETH only has 5-minute records; the configured period is 1h: no OI for ETH at all,
    # whatever other symbols or later rows hold.
    rows = compute_history(candles, open_interest=pd.concat([five_min, btc]), config=config)
    assert rows["open_interest"].isna().all()
    mixed = pd.concat([five_min, eth.assign(interval="1h"), btc])
    rows = compute_history(candles, open_interest=mixed, config=config)
    expected = compute_history(candles, open_interest=eth, config=config)
    assert_same_rows(expected, rows, tol=0.0)
    tracker = MarketSentimentTracker("ETHUSDT", "60", config)
    assert tracker.on_open_interest(eth["ts"].iloc[0], 1.0, interval="5min") is False
    assert tracker.on_open_interest(eth["ts"].iloc[0], 1.0, interval="1h") is True


def test_non_finite_slower_inputs_are_refused_by_name(bundle, config):
    candles = _symbol(bundle["candles"], "BTCUSDT").iloc[:50]
    funding = _symbol(bundle["funding"], "BTCUSDT").copy()
    funding.loc[funding.index[3], "funding_rate"] = np.inf
    with pytest.raises(InputError, match="funding BTCUSDT field funding_rate"):
        compute_history(candles, funding, config=config)
    funding.loc[funding.index[3], "funding_rate"] = np.nan  # missing: simply not used
    assert compute_history(candles, funding, config=config)["funding_rate"].notna().any()
    tracker = MarketSentimentTracker("BTCUSDT", "60", config)
    with pytest.raises(InputError, match="fear_greed BTCUSDT field value"):
        tracker.on_fear_greed(candles["open_time"].iloc[0], float("inf"))
    with pytest.raises(InputError, match="field symbol"):
        tracker.on_candle_close({**candles.iloc[0].to_dict(), "symbol": "ETHUSDT"})
    assert tracker.get_snapshot() is None


def test_restore_refuses_a_config_with_other_windows(bundle, config):
    tracker = MarketSentimentTracker("BTCUSDT", "60", config)
    for candle in _symbol(bundle["candles"], "BTCUSDT").iloc[:20].to_dict("records"):
        tracker.on_candle_close(candle)
    state = tracker.checkpoint()
    for other in (
        dataclasses.replace(config, regime=dataclasses.replace(config.regime, atr_lookback=30)),
        dataclasses.replace(config, exchange_data=dataclasses.replace(
            config.exchange_data, open_interest_interval="4h")),
    ):
        with pytest.raises(InputError, match="different configuration"):
            MarketSentimentTracker.restore(state, other)
