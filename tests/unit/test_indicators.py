"""Indicators: TA-Lib batch vs streaming, the hand-written indicators' batch vs incremental
twins (with JSON checkpoints), and independent reference implementations written here from
the published definitions (TradingView's ``ta.supertrend`` and ``ta.percentrank``, LazyBear's
Squeeze Momentum, Chaikin Money Flow, Wilder's RSI and ATR).

All on the recorded real 1h candles of 2022 (first :data:`N_BARS` bars of each symbol).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from replay.server import load_bundle
from sentiment.core.indicators import custom
from sentiment.core.indicators.custom import (
    SQUEEZE_NONE,
    SQUEEZE_OFF,
    SQUEEZE_ON,
    AtrPercentRank,
    ChaikinMoneyFlow,
    Squeeze,
    SuperTrend,
)
from sentiment.core.indicators.talib_set import (
    BAR_FIELDS,
    OUTPUTS,
    SPECS,
    TalibStreams,
    compute_talib,
)

N_BARS = 1500
SYMBOLS = ("BTCUSDT", "ETHUSDT")
ATR_LOOKBACK = 90  # sentiment.yaml regime.atr_lookback
ST_FACTOR = 3.0
KC_MULT = 1.5
CMF_PERIOD = 20
TOL = 1e-9
NAN = float("nan")


# ------------------------------------------------------------------ data


@pytest.fixture(scope="module")
def recorded() -> dict[str, dict[str, np.ndarray]]:
    """The first N_BARS recorded 1h bars of each symbol, as float64 arrays."""
    candles = load_bundle()["candles"]
    out = {}
    for symbol in SYMBOLS:
        group = candles[candles["symbol"] == symbol].sort_values("open_time").head(N_BARS)
        assert len(group) == N_BARS
        assert (group["open_time"].diff().dropna() == np.timedelta64(1, "h")).all()
        out[symbol] = {f: group[f].to_numpy(dtype=np.float64) for f in BAR_FIELDS}
    return out


@pytest.fixture(scope="module")
def bars(recorded) -> dict[str, np.ndarray]:
    return recorded["BTCUSDT"]


@pytest.fixture(scope="module")
def batch(recorded) -> dict[str, dict[str, np.ndarray]]:
    return {symbol: compute_talib(b) for symbol, b in recorded.items()}


@pytest.fixture(scope="module")
def ta(batch) -> dict[str, np.ndarray]:
    return batch["BTCUSDT"]


def _rows(b: dict[str, np.ndarray], start: int = 0, stop: int | None = None):
    stop = len(b["close"]) if stop is None else stop
    cols = [b[f] for f in BAR_FIELDS]
    return [tuple(float(c[i]) for c in cols) for i in range(start, stop)]


def _feed(streams: TalibStreams, b: dict[str, np.ndarray], start: int, origin: int = 0):
    """Feed bars ``start..`` to ``streams``; history (from ``origin``) only while pending."""
    out = []
    for i, bar in enumerate(_rows(b, start), start):
        history = {f: b[f][origin : i + 1] for f in BAR_FIELDS} if streams.pending else None
        out.append(streams.update(bar, history).copy())
    return np.array(out).reshape(-1, len(OUTPUTS))


@pytest.fixture(scope="module")
def streamed(recorded) -> dict[str, np.ndarray]:
    """TalibStreams fed bar by bar from the first bar: one row of OUTPUTS per bar."""
    return {symbol: _feed(TalibStreams(), b, 0) for symbol, b in recorded.items()}


def _slots(spec) -> list[int]:
    return [OUTPUTS.index(name) for name in spec.outputs]


# ------------------------------------------------------------------ 1. TA-Lib batch == stream


def test_outputs_cover_every_spec_once(ta):
    names = [name for spec in SPECS for name in spec.outputs]
    assert list(OUTPUTS) == names
    assert len(set(OUTPUTS)) == len(OUTPUTS)
    assert list(ta) == list(OUTPUTS)
    assert all(v.dtype == np.float64 and v.shape == (N_BARS,) for v in ta.values())


@pytest.mark.parametrize("symbol", SYMBOLS)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "+".join(s.outputs))
def test_talib_stream_equals_batch_at_every_bar(spec, symbol, streamed, batch):
    live = streamed[symbol]
    for slot, name in zip(_slots(spec), spec.outputs, strict=True):
        np.testing.assert_array_equal(live[:, slot], batch[symbol][name], err_msg=name)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "+".join(s.outputs))
def test_talib_stream_warm_up_is_nan_until_the_lookback(spec, streamed):
    live = streamed["BTCUSDT"]
    lookback = spec.lookback
    assert 0 <= lookback < 250
    for slot in _slots(spec):
        assert np.isnan(live[:lookback, slot]).all()
        assert np.isfinite(live[lookback:, slot]).all()


def test_talib_stream_needs_history_while_warming_up(bars):
    streams = TalibStreams()
    assert streams.pending
    with pytest.raises(ValueError, match="history"):
        streams.update(_rows(bars, 0, 1)[0], None)


def test_talib_stream_stops_needing_history_after_the_longest_lookback(bars):
    longest = max(spec.lookback for spec in SPECS)
    streams = TalibStreams()
    _feed(streams, {f: bars[f][:longest] for f in BAR_FIELDS}, 0)
    assert streams.pending
    _feed(streams, {f: bars[f][: longest + 1] for f in BAR_FIELDS}, longest)
    assert not streams.pending
    # Once every handle is open, update() must not read history at all.
    streams.update(_rows(bars, longest + 1, longest + 2)[0], None)


# ------------------------------------------------------------------ 2. reopen


@pytest.mark.parametrize("k", [1, 9, 15, 34, 199, 200, 201, 777, N_BARS - 1])
def test_talib_reopen_over_all_bars_so_far_continues_exactly(k, bars, streamed):
    streams = TalibStreams()
    streams.reopen({f: bars[f][:k] for f in BAR_FIELDS})
    uninterrupted = streamed["BTCUSDT"]
    np.testing.assert_array_equal(streams.values, uninterrupted[k - 1])
    np.testing.assert_array_equal(_feed(streams, bars, k), uninterrupted[k:])


def test_talib_reopen_replaces_the_state_of_a_used_stream(bars, streamed):
    streams = TalibStreams()
    _feed(streams, bars, 0)  # at the end of the slice
    streams.reopen({f: bars[f][:500] for f in BAR_FIELDS})
    np.testing.assert_array_equal(_feed(streams, bars, 500), streamed["BTCUSDT"][500:])


def test_talib_reopen_over_a_trailing_window_converges(bars, streamed):
    """Reopened over only the last 600 bars (a bounded checkpoint), the recursive indicators
    have converged; OBV, a running total, is off by a constant (the tracker adds it back)."""
    k, window = 1200, 600
    streams = TalibStreams()
    streams.reopen({f: bars[f][k - window : k] for f in BAR_FIELDS})
    got = np.vstack([streams.values.copy(), _feed(streams, bars, k, origin=k - window)])
    want = streamed["BTCUSDT"][k - 1 :]
    obv = OUTPUTS.index("obv")
    others = [j for j in range(len(OUTPUTS)) if j != obv]
    np.testing.assert_allclose(got[:, others], want[:, others], rtol=1e-9, atol=1e-9)
    offset = got[:, obv] - want[:, obv]
    assert abs(offset[0]) > 1.0  # not trivially equal
    np.testing.assert_allclose(offset, offset[0], rtol=0, atol=1e-6)


# ------------------------------------------------------------------ 3. batch == incremental


def _hand_written(b, t):
    """The batch outputs (one 2-D array) and per-bar inputs of each hand-written indicator."""
    kc_up, kc_lo = custom.keltner(t["kc_basis"], t["atr_20"], KC_MULT)
    h, lo, c, v = b["high"], b["low"], b["close"], b["volume"]
    return {
        "atr_rank": (
            lambda: AtrPercentRank(ATR_LOOKBACK),
            np.column_stack([custom.atr_percent_rank(t["atr"], ATR_LOOKBACK)]),
            list(zip(t["atr"].tolist(), strict=True)),
        ),
        "squeeze": (
            Squeeze,
            np.column_stack(custom.squeeze(t["bb_upper"], t["bb_lower"], kc_up, kc_lo)),
            list(zip(t["bb_upper"].tolist(), t["bb_lower"].tolist(), kc_up.tolist(),
                     kc_lo.tolist(), strict=True)),
        ),
        "supertrend": (
            lambda: SuperTrend(ST_FACTOR),
            np.column_stack(custom.supertrend(h, lo, c, t["atr_10"], ST_FACTOR)),
            list(zip(h.tolist(), lo.tolist(), c.tolist(), t["atr_10"].tolist(), strict=True)),
        ),
        "cmf": (
            lambda: ChaikinMoneyFlow(CMF_PERIOD),
            np.column_stack([custom.cmf(h, lo, c, v, CMF_PERIOD)]),
            list(zip(h.tolist(), lo.tolist(), c.tolist(), v.tolist(), strict=True)),
        ),
    }


def _round_trip(obj):
    text = json.dumps(obj.state(), allow_nan=False)  # strict JSON: no NaN literals
    restored = type(obj).from_state(json.loads(text))
    assert restored.state() == json.loads(text)
    return restored


def _incremental(make, rows, cuts=()) -> np.ndarray:
    obj = make()
    out = []
    for i, row in enumerate(rows):
        if i in cuts:
            obj = _round_trip(obj)
        r = obj.update(*row)
        out.append(r if isinstance(r, tuple) else (r,))
    return np.array(out, dtype=np.float64)


HAND_WRITTEN = ("atr_rank", "squeeze", "supertrend", "cmf")
CUTS = (0, 1, 11, 19, 20, 21, 90, 91, 105, 700, N_BARS - 1)


@pytest.mark.parametrize("symbol", SYMBOLS)
@pytest.mark.parametrize("cuts", [(), CUTS], ids=["uninterrupted", "json-round-trips"])
@pytest.mark.parametrize("name", HAND_WRITTEN)
def test_incremental_equals_batch_after_every_bar(name, cuts, symbol, recorded, batch):
    make, want, rows = _hand_written(recorded[symbol], batch[symbol])[name]
    got = _incremental(make, rows, cuts)
    assert got.shape == want.shape
    # Exact: same values, NaN at the same bars.
    np.testing.assert_array_equal(got, want)
    assert np.isfinite(want[-1]).all()


def test_keltner_bands_on_arrays_and_floats(ta):
    up, lo = custom.keltner(ta["kc_basis"], ta["atr_20"], KC_MULT)
    i = 500
    assert custom.keltner(float(ta["kc_basis"][i]), float(ta["atr_20"][i]), KC_MULT) == (
        up[i], lo[i]
    )
    np.testing.assert_allclose(up - ta["kc_basis"], KC_MULT * ta["atr_20"], rtol=1e-9)
    np.testing.assert_allclose(ta["kc_basis"] - lo, KC_MULT * ta["atr_20"], rtol=1e-9)
    assert np.isnan(up[:20]).all() and np.isfinite(up[20:]).all()


# ------------------------------------------------------------------ 4. references


def pine_supertrend(high, low, close, atr, factor):
    """TradingView's ``ta.supertrend(factor, atrPeriod)`` (Pine reference code), with the
    given ATR; returns (supertrend, direction) where direction -1 is up, as TradingView."""
    n = len(close)
    st = [NAN] * n
    direction = [NAN] * n
    lower_hist = [NAN] * n  # Pine keeps the history of the reassigned bands
    upper_hist = [NAN] * n

    def nz(x):
        return 0.0 if math.isnan(x) else x

    for i in range(n):
        if math.isnan(atr[i]):
            continue
        src = (high[i] + low[i]) / 2
        upper_band = src + factor * atr[i]
        lower_band = src - factor * atr[i]
        prev_lower = nz(lower_hist[i - 1]) if i else 0.0
        prev_upper = nz(upper_hist[i - 1]) if i else 0.0
        prev_close = close[i - 1] if i else NAN  # comparisons with na are false in Pine
        if not (lower_band > prev_lower or prev_close < prev_lower):
            lower_band = prev_lower
        if not (upper_band < prev_upper or prev_close > prev_upper):
            upper_band = prev_upper
        prev_st = st[i - 1] if i else NAN
        if i == 0 or math.isnan(atr[i - 1]):
            d = 1
        elif prev_st == prev_upper:
            d = -1 if close[i] > upper_band else 1
        else:
            d = 1 if close[i] < lower_band else -1
        st[i] = lower_band if d == -1 else upper_band
        direction[i] = d
        lower_hist[i] = lower_band
        upper_hist[i] = upper_band
    return np.array(st), np.array(direction, dtype=np.float64)


def lazybear_squeeze(bb_upper, bb_lower, ema, atr, mult):
    """LazyBear's Squeeze Momentum sqzOn / sqzOff / noSqz (1 / -1 / 0), NaN in warm-up,
    and fired = previous bar on and this bar not on."""
    state = []
    for bu, bl, basis, a in zip(bb_upper, bb_lower, ema, atr, strict=True):
        if any(math.isnan(x) for x in (bu, bl, basis, a)):
            state.append(NAN)
            continue
        upper_kc = basis + mult * a
        lower_kc = basis - mult * a
        sqz_on = bl > lower_kc and bu < upper_kc
        sqz_off = bl < lower_kc and bu > upper_kc
        state.append(1.0 if sqz_on else -1.0 if sqz_off else 0.0)
    fired = [0.0] + [
        1.0 if prev == 1.0 and cur != 1.0 else 0.0
        for prev, cur in zip(state[:-1], state[1:], strict=True)
    ]
    return np.array(state), np.array(fired)


def chaikin_cmf(high, low, close, volume, period):
    """Chaikin Money Flow with plain loops; a high == low bar has multiplier 0 and a window
    without volume has CMF 0."""
    mfv = []
    for h, lo, c, v in zip(high, low, close, volume, strict=True):
        mult = ((c - lo) - (h - c)) / (h - lo) if h != lo else 0.0
        mfv.append(mult * v)
    out = [NAN] * len(close)
    for i in range(period - 1, len(close)):
        flow = sum(mfv[i - period + 1 : i + 1])
        vol = sum(volume[i - period + 1 : i + 1])
        out[i] = flow / vol if vol else 0.0
    return np.array(out)


def percent_rank(values, length):
    """TradingView ``ta.percentrank`` as a fraction: the share of the previous ``length``
    values that are <= the current one (NaN while any of them is missing)."""
    out = [NAN] * len(values)
    for i in range(length, len(values)):
        previous = values[i - length : i]
        if math.isnan(values[i]) or any(math.isnan(x) for x in previous):
            continue
        out[i] = sum(1 for x in previous if x <= values[i]) / length
    return np.array(out)


def mid_rank(values, length):
    """The code's documented tie rule: (count below + count equal / 2) / ``length`` over the
    previous ``length`` values; equal to :func:`percent_rank` when there are no ties."""
    out = [NAN] * len(values)
    for i in range(length, len(values)):
        previous = values[i - length : i]
        if math.isnan(values[i]) or any(math.isnan(x) for x in previous):
            continue
        below = sum(1 for x in previous if x < values[i])
        equal = sum(1 for x in previous if x == values[i])
        out[i] = (below + equal / 2) / length
    return np.array(out)


def wilder_rsi(close, period):
    """Wilder's RSI: first average = mean of the first ``period`` gains / losses."""
    out = [NAN] * len(close)
    diffs = [close[i] - close[i - 1] for i in range(1, len(close))]
    gain = sum(max(d, 0.0) for d in diffs[:period]) / period
    loss = sum(max(-d, 0.0) for d in diffs[:period]) / period
    out[period] = 100 * gain / (gain + loss)
    for i in range(period + 1, len(close)):
        d = diffs[i - 1]
        gain = (gain * (period - 1) + max(d, 0.0)) / period
        loss = (loss * (period - 1) + max(-d, 0.0)) / period
        out[i] = 100 * gain / (gain + loss)
    return np.array(out)


def wilder_atr(high, low, close, period):
    """Wilder's ATR: true range from the second bar, first ATR = mean of ``period`` of them."""
    tr = [NAN] + [
        max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
        for i in range(1, len(close))
    ]
    out = [NAN] * len(close)
    atr = sum(tr[1 : period + 1]) / period
    out[period] = atr
    for i in range(period + 1, len(close)):
        atr = (atr * (period - 1) + tr[i]) / period
        out[i] = atr
    return np.array(out)


def _lists(b):
    return [b[f].tolist() for f in ("high", "low", "close", "volume")]


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_supertrend_matches_tradingview(symbol, recorded, batch):
    b, t = recorded[symbol], batch[symbol]
    h, lo, c, _ = _lists(b)
    atr = t["atr_10"]
    line, direction, flip = custom.supertrend(b["high"], b["low"], b["close"], atr, ST_FACTOR)
    ref_line, ref_tv_dir = pine_supertrend(h, lo, c, atr.tolist(), ST_FACTOR)
    warm = np.isfinite(atr)
    assert warm.sum() == N_BARS - 10
    assert np.isnan(line[~warm]).all() and np.isnan(direction[~warm]).all()
    np.testing.assert_allclose(line[warm], ref_line[warm], rtol=TOL, atol=TOL)
    np.testing.assert_array_equal(direction[warm], -ref_tv_dir[warm])
    changes = np.zeros(N_BARS)
    idx = np.flatnonzero(warm)
    changes[idx[1:]] = ref_tv_dir[idx[1:]] != ref_tv_dir[idx[:-1]]
    np.testing.assert_array_equal(flip, changes)
    # Non-vacuous: the sample trends both ways and flips several times.
    assert 5 <= flip.sum() and {-1.0, 1.0} <= set(direction[warm].tolist())
    # The line is the lower band (below the close) when bullish, the upper band when bearish.
    assert (line[warm][direction[warm] > 0] < b["close"][warm][direction[warm] > 0]).all()
    assert (line[warm][direction[warm] < 0] > b["close"][warm][direction[warm] < 0]).all()


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_squeeze_matches_lazybear(symbol, batch):
    t = batch[symbol]
    kc_up, kc_lo = custom.keltner(t["kc_basis"], t["atr_20"], KC_MULT)
    state, fired = custom.squeeze(t["bb_upper"], t["bb_lower"], kc_up, kc_lo)
    ref_state, ref_fired = lazybear_squeeze(
        t["bb_upper"].tolist(), t["bb_lower"].tolist(), t["kc_basis"].tolist(),
        t["atr_20"].tolist(), KC_MULT,
    )
    np.testing.assert_array_equal(state, ref_state)
    np.testing.assert_array_equal(fired, ref_fired)
    assert (SQUEEZE_ON, SQUEEZE_NONE, SQUEEZE_OFF) == (1.0, 0.0, -1.0)
    # Non-vacuous: every state occurs, and squeezes fire.
    assert {1.0, 0.0, -1.0} <= set(state[np.isfinite(state)].tolist())
    assert fired.sum() >= 3


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_cmf_matches_chaikin(symbol, recorded):
    b = recorded[symbol]
    got = custom.cmf(b["high"], b["low"], b["close"], b["volume"], CMF_PERIOD)
    want = chaikin_cmf(*_lists(b), CMF_PERIOD)
    assert np.isnan(got[: CMF_PERIOD - 1]).all()
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    assert (np.abs(got[CMF_PERIOD - 1 :]) <= 1).all()
    assert got[CMF_PERIOD - 1 :].min() < -0.1 and got[CMF_PERIOD - 1 :].max() > 0.1


def test_cmf_bars_with_high_equal_low_have_multiplier_zero():
    rng = np.random.default_rng(7)
    n = 200
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    high = close + rng.uniform(0, 2, n)
    low = close - rng.uniform(0, 2, n)
    flat = rng.random(n) < 0.2
    high[flat] = low[flat] = close[flat]
    volume = rng.uniform(0, 50, n)
    volume[rng.random(n) < 0.1] = 0.0
    got = custom.cmf(high, low, close, volume, CMF_PERIOD)
    want = chaikin_cmf(high.tolist(), low.tolist(), close.tolist(), volume.tolist(), CMF_PERIOD)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    inc = _incremental(lambda: ChaikinMoneyFlow(CMF_PERIOD),
                       list(zip(high, low, close, volume, strict=True)))
    np.testing.assert_array_equal(inc[:, 0], got)


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_atr_rank_matches_percentrank(symbol, batch):
    atr = batch[symbol]["atr"]
    got = custom.atr_percent_rank(atr, ATR_LOOKBACK)
    # The recorded ATR has no ties, so TradingView's rule and the tie-aware one agree.
    np.testing.assert_allclose(got, percent_rank(atr.tolist(), ATR_LOOKBACK), rtol=0, atol=TOL)
    np.testing.assert_allclose(got, mid_rank(atr.tolist(), ATR_LOOKBACK), rtol=0, atol=TOL)
    first = 14 + ATR_LOOKBACK  # ATR 14 starts at bar 14
    assert np.isnan(got[:first]).all() and np.isfinite(got[first:]).all()
    assert got[first:].min() == 0.0 and got[first:].max() == 1.0


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_talib_rsi_and_atr_match_wilder(symbol, recorded, batch):
    """The RSI and ATR the goldens below rely on are Wilder's, as TA-Lib seeds them."""
    b, t = recorded[symbol], batch[symbol]
    h, lo, c, _ = _lists(b)
    np.testing.assert_allclose(t["rsi"], wilder_rsi(c, 14), rtol=0, atol=TOL)
    for name, period in (("atr", 14), ("atr_20", 20), ("atr_10", 10)):
        np.testing.assert_allclose(t[name], wilder_atr(h, lo, c, period), rtol=TOL, atol=0)


# ------------------------------------------------------------------ 5. edge cases


def _flat_bars(n=300, price=100.0, volume=0.0):
    return {
        "open": np.full(n, price), "high": np.full(n, price), "low": np.full(n, price),
        "close": np.full(n, price), "volume": np.full(n, volume),
    }


@pytest.mark.parametrize("volume", [0.0, 5.0], ids=["no-volume", "volume"])
def test_flat_prices_give_finite_values_after_warm_up(volume):
    b = _flat_bars(volume=volume)
    t = compute_talib(b)
    for name, (make, want, rows) in _hand_written(b, t).items():
        warm = 14 + ATR_LOOKBACK if name == "atr_rank" else 20
        assert np.isfinite(want[warm:]).all(), name
        np.testing.assert_array_equal(_incremental(make, rows, (0, 50, 150)), want, name)
    hw = _hand_written(b, t)
    cmf = hw["cmf"][1][:, 0]
    assert (cmf[CMF_PERIOD - 1 :] == 0.0).all()
    rank = hw["atr_rank"][1][:, 0]
    assert ((rank[14 + ATR_LOOKBACK :] >= 0) & (rank[14 + ATR_LOOKBACK :] <= 1)).all()
    # Every ATR is 0: all ties, which the documented mid-rank reads as 0.5.
    assert (rank[14 + ATR_LOOKBACK :] == 0.5).all()
    line, direction, flip = hw["supertrend"][1].T
    assert (line[10:] == 100.0).all() and (direction[10:] == -1.0).all() and flip.sum() == 0
    state, fired = hw["squeeze"][1].T
    assert np.isnan(state[:20]).all()
    assert (state[20:] == SQUEEZE_NONE).all() and fired.sum() == 0


def test_cmf_is_zero_when_the_window_has_no_volume(bars):
    zero = np.zeros(N_BARS)
    got = custom.cmf(bars["high"], bars["low"], bars["close"], zero, CMF_PERIOD)
    assert (got[CMF_PERIOD - 1 :] == 0.0).all()
    assert np.isnan(got[: CMF_PERIOD - 1]).all()
    obj = ChaikinMoneyFlow(CMF_PERIOD)
    inc = [obj.update(h, lo, c, 0.0) for h, lo, c in
           zip(bars["high"], bars["low"], bars["close"], strict=True)]
    np.testing.assert_array_equal(inc, got)
    # A window whose only volume left has just rolled out is 0 again, not NaN.
    volume = np.zeros(60)
    volume[5] = 3.0
    h, lo, c = bars["high"][:60], bars["low"][:60], bars["close"][:60]
    got = custom.cmf(h, lo, c, volume, CMF_PERIOD)
    assert np.isfinite(got[CMF_PERIOD - 1 :]).all()
    assert (got[5 + CMF_PERIOD :] == 0.0).all()


def test_atr_rank_stays_in_unit_interval_with_ties():
    """With ties the code counts an equal value as half (its docstring's mid-rank), where
    TradingView's ``ta.percentrank`` counts it fully."""
    rng = np.random.default_rng(3)
    atr = np.round(rng.uniform(0, 5, 600))  # many ties
    got = custom.atr_percent_rank(atr, 30)
    np.testing.assert_allclose(got, mid_rank(atr.tolist(), 30), rtol=0, atol=TOL)
    tied = np.array([atr[i] in atr[i - 30 : i] for i in range(30, len(atr))])
    tv = percent_rank(atr.tolist(), 30)[30:]
    assert tied.sum() > 500
    assert (got[30:][tied] < tv[tied]).all() and (got[30:][~tied] == tv[~tied]).all()
    assert ((got[30:] >= 0) & (got[30:] <= 1)).all()
    assert custom.atr_percent_rank(np.arange(40.0), 30)[30:].tolist() == [1.0] * 10
    assert custom.atr_percent_rank(-np.arange(40.0), 30)[30:].tolist() == [0.0] * 10
    inc = _incremental(lambda: AtrPercentRank(30), [(x,) for x in atr], (0, 29, 30, 31, 400))
    np.testing.assert_array_equal(inc[:, 0], got)


def test_atr_rank_nan_during_warm_up_is_nan_and_stays_out_of_the_window():
    lookback = 4
    atr = np.array([NAN, NAN, NAN, 3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    got = custom.atr_percent_rank(atr, lookback)
    # First rank at the 5th valid value, over the 4 valid values before it only.
    # 5 vs (3, 1, 4, 1); 9 vs (1, 4, 1, 5); 2 vs (4, 1, 5, 9); 6 vs (1, 5, 9, 2).
    expected = [NAN] * 7 + [4 / 4, 4 / 4, 1 / 4, 3 / 4]
    np.testing.assert_array_equal(got, expected)
    obj = AtrPercentRank(lookback)
    for x in atr[:3]:
        assert math.isnan(obj.update(x))
        assert obj.state()["window"] == []
    inc = [obj.update(x) for x in atr[3:]]
    np.testing.assert_array_equal(inc, expected[3:])
    assert all(math.isfinite(x) for x in obj.state()["window"])
    assert len(obj.state()["window"]) == lookback


def test_squeeze_inequalities_are_strict_in_both_forms():
    # (bb_upper, bb_lower, kc_upper, kc_lower): a band touching the channel is neither
    # inside nor outside it (LazyBear's sqzOn / sqzOff use strict comparisons).
    cases = [
        (2.0, 0.5, 2.0, 0.0),  # upper touches
        (1.5, 0.0, 2.0, 0.0),  # lower touches
        (2.0, 0.0, 2.0, 0.0),  # both touch
        (3.0, 0.0, 2.0, 0.0),  # upper out, lower touches
        (2.0, -1.0, 2.0, 0.0),  # lower out, upper touches
        (1.5, 0.5, 2.0, 0.0),  # inside
        (3.0, -1.0, 2.0, 0.0),  # outside
    ]
    want = [SQUEEZE_NONE] * 5 + [SQUEEZE_ON, SQUEEZE_OFF]
    cols = [np.array(col) for col in zip(*cases, strict=True)]
    state, _ = custom.squeeze(*cols)
    np.testing.assert_array_equal(state, want)
    ref, _ = lazybear_squeeze(cols[0].tolist(), cols[1].tolist(), ((cols[2] + cols[3]) / 2)
                              .tolist(), ((cols[2] - cols[3]) / 2 / KC_MULT).tolist(), KC_MULT)
    np.testing.assert_array_equal(ref, want)
    np.testing.assert_array_equal([Squeeze().update(*case)[0] for case in cases], want)


def test_supertrend_and_squeeze_single_steps():
    st = SuperTrend(ST_FACTOR)
    assert all(math.isnan(x) for x in st.update(101.0, 99.0, 100.0, NAN)[:2])
    assert st.update(101.0, 99.0, 100.0, NAN)[2] == 0.0
    first = st.update(101.0, 99.0, 100.0, 1.0)
    assert first == (100.0 + ST_FACTOR, -1.0, 0.0)  # first bar with an ATR: bearish
    sq = Squeeze()
    assert math.isnan(sq.update(NAN, 1.0, 2.0, 0.0)[0])
    assert sq.update(1.5, 0.5, 2.0, 0.0) == (SQUEEZE_ON, 0.0)
    assert sq.update(1.5, 0.5, 2.0, 0.0) == (SQUEEZE_ON, 0.0)
    assert sq.update(3.0, -1.0, 2.0, 0.0) == (SQUEEZE_OFF, 1.0)  # on -> off fires once
    assert sq.update(3.0, -1.0, 2.0, 0.0) == (SQUEEZE_OFF, 0.0)
    assert sq.update(3.0, 0.5, 2.0, 0.0) == (SQUEEZE_NONE, 0.0)


# ------------------------------------------------------------------ 6. golden values

# Golden values: BTCUSDT 1h bar index 1000 of 2022 (2022-02-11 16:00 UTC), computed with the
# reference functions above (not with the code under test) and rounded to 1e-6.
GOLDEN_BAR = 1000
GOLDEN = {
    "rsi": 48.823265,
    "atr": 478.478201,
    "atr_10": 448.526071,
    "supertrend": 44737.765966,
    "supertrend_dir": -1.0,  # bearish (TradingView direction +1)
    "cmf": -0.055158,
    "atr_rank": 0.3,  # 27 of the previous 90 ATR values are <= the current one
    "squeeze": 1.0,  # on: both Bollinger bands inside the Keltner channel
}


def test_golden_values_from_the_reference_definitions(bars, ta):
    h, lo, c, v = _lists(bars)
    i = GOLDEN_BAR
    ref_line, ref_tv_dir = pine_supertrend(h, lo, c, ta["atr_10"].tolist(), ST_FACTOR)
    ref_state, _ = lazybear_squeeze(ta["bb_upper"].tolist(), ta["bb_lower"].tolist(),
                                    ta["kc_basis"].tolist(), ta["atr_20"].tolist(), KC_MULT)
    reference = {
        "rsi": wilder_rsi(c, 14)[i],
        "atr": wilder_atr(h, lo, c, 14)[i],
        "atr_10": wilder_atr(h, lo, c, 10)[i],
        "supertrend": ref_line[i],
        "supertrend_dir": -ref_tv_dir[i],
        "cmf": chaikin_cmf(h, lo, c, v, CMF_PERIOD)[i],
        "atr_rank": percent_rank(wilder_atr(h, lo, c, 14).tolist(), ATR_LOOKBACK)[i],
        "squeeze": ref_state[i],
    }
    line, direction, _ = custom.supertrend(bars["high"], bars["low"], bars["close"],
                                           ta["atr_10"], ST_FACTOR)
    kc_up, kc_lo = custom.keltner(ta["kc_basis"], ta["atr_20"], KC_MULT)
    code = {
        "rsi": ta["rsi"][i],
        "atr": ta["atr"][i],
        "atr_10": ta["atr_10"][i],
        "supertrend": line[i],
        "supertrend_dir": direction[i],
        "cmf": custom.cmf(bars["high"], bars["low"], bars["close"], bars["volume"],
                          CMF_PERIOD)[i],
        "atr_rank": custom.atr_percent_rank(ta["atr"], ATR_LOOKBACK)[i],
        "squeeze": custom.squeeze(ta["bb_upper"], ta["bb_lower"], kc_up, kc_lo)[0][i],
    }
    for name, golden in GOLDEN.items():
        assert reference[name] == pytest.approx(golden, rel=0, abs=1e-6), name
        assert code[name] == pytest.approx(golden, rel=0, abs=1e-6), name
