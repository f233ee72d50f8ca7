"""MarketSentimentTracker: one per (symbol, interval), fed one closed bar at a time.

The live path of the product. Per bar it advances the TA-Lib stream handles, the
indicators written here, the slower inputs (as of the bar's close) and the compiled engine
shared with the batch path (``sentiment/core/engine.py``), and returns a
:class:`~sentiment.models.SentimentSnapshot`. ``checkpoint()`` is a JSON-serialisable state;
``MarketSentimentTracker.restore(state)`` continues exactly where it stopped.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from sentiment.config import Config, load_config
from sentiment.core import engine
from sentiment.core.indicators.custom import (
    AtrPercentRank,
    ChaikinMoneyFlow,
    Squeeze,
    SuperTrend,
    keltner,
    settled_atr_value,
)
from sentiment.core.indicators.talib_set import BAR_FIELDS, OUTPUTS, TalibStreams
from sentiment.core.inputs import LiveInputs
from sentiment.core.layout import (
    N_INPUTS,
    N_OUTPUTS,
    X_ATR_RANK,
    X_CMF,
    X_FNG,
    X_FUNDING,
    X_KC_LO,
    X_KC_UP,
    X_LIQ_INTENSITY,
    X_LS,
    X_MOVE,
    X_OBI,
    X_OI,
    X_OI_DELTA,
    X_SQUEEZE,
    X_SQUEEZE_FIRED,
    X_ST_DIR,
    Y_CONFIDENCE,
    Y_COOLDOWN,
    Y_DURATION,
    Y_EXCHANGE,
    Y_FLOW,
    Y_MACRO,
    Y_MOMENTUM,
    Y_PENDING,
    Y_PENDING_BARS,
    Y_REGIME,
    Y_REGIME_CONF,
    Y_SCORE,
    Y_TRANSITION_FROM,
    Y_TREND,
    Y_VOLATILITY,
)
from sentiment.core.layout import (
    OUTPUTS as ENGINE_OUTPUTS,
)
from sentiment.core.orderbook import imbalance
from sentiment.core.regime import move_bars
from sentiment.core.timeutil import MINUTE_MS, epoch_ms, ms_to_datetime
from sentiment.errors import CheckpointMismatch, InputError
from sentiment.models import INTERVAL_MINUTES, REGIMES, RegimeState, SentimentSnapshot

CHECKPOINT_VERSION = 2
KELTNER_MULT = 1.5
SUPERTREND_FACTOR = 3.0
CMF_PERIOD = 20
TRANSITIONS_KEPT = 100
_T = {name: i for i, name in enumerate(OUTPUTS)}
# Engine input slots filled straight from TA-Lib outputs.
_TALIB_TO_X = [
    (_T[name], slot)
    for slot, name in enumerate(
        ("", "", "", "", "", "ema_9", "ema_21", "ema_50", "adx", "plus_di", "minus_di", "rsi",
         "macd_hist", "roc", "atr", "natr", "bb_upper", "bb_middle", "bb_lower", "mfi",
         "volume_sma_20")
    )
    if name
]
_TALIB_SRC = np.array([t for t, _ in _TALIB_TO_X])
_TALIB_DST = np.array([x for _, x in _TALIB_TO_X])


def _none(x: float) -> float | None:
    return None if x != x else float(x)


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


class MarketSentimentTracker:
    """Sentiment and regime of one symbol at one interval, updated per closed bar.

    Parameters
    ----------
    symbol, interval
        ``"BTCUSDT"``, and a Bybit kline code such as ``"60"``.
    config
        A validated :class:`~sentiment.config.Config`; ``None`` loads ``sentiment.yaml``.
    """

    def __init__(self, symbol: str, interval: str, config: Config | None = None):
        if interval not in INTERVAL_MINUTES:
            raise InputError("tracker", f"unknown interval {interval!r}", symbol=symbol,
                             field="interval")
        self.symbol = symbol
        self.interval = interval
        self.config = config if config is not None else load_config()
        self._interval_ms = INTERVAL_MINUTES[interval] * MINUTE_MS
        self._move_bars = move_bars(INTERVAL_MINUTES[interval])
        self._params = engine.params(self.config, interval)
        self._state = engine.new_state()
        self._streams = TalibStreams()
        self._rank = AtrPercentRank(self.config.regime.atr_lookback)
        self._squeeze = Squeeze()
        self._supertrend = SuperTrend(SUPERTREND_FACTOR)
        self._cmf = ChaikinMoneyFlow(CMF_PERIOD)
        ex = self.config.exchange_data
        self._inputs = LiveInputs(INTERVAL_MINUTES[interval], ex.open_interest_interval,
                                  ex.long_short_period)
        # Enough bars for the 24-hour move too (1440 one-minute bars).
        self._bars: deque[tuple[int, float, float, float, float, float]] = deque(
            maxlen=max(self.config.history.checkpoint_bars, self._move_bars + 1)
        )
        self._n_bars = 0
        self._x = np.full(N_INPUTS, math.nan)
        self._y = np.full(N_OUTPUTS, math.nan)
        self._transitions: deque[tuple[dt.datetime, str, str]] = deque(
            maxlen=TRANSITIONS_KEPT
        )
        self.snapshots: deque[SentimentSnapshot] = deque(
            maxlen=self.config.history.buffer_size
        )
        self.last_ticker: dict | None = None
        # OBV is a running total: reopened over the stored bars it restarts from their first
        # volume, so a restored tracker adds back the difference.
        self._obv_offset = 0.0

    # ----------------------------------------------------------------- bars

    def on_candle_close(self, candle: Mapping[str, Any], timeframe: str | None = None
                        ) -> SentimentSnapshot:
        """Process one closed bar (a mapping with the ``candles`` columns)."""
        if timeframe is not None and str(timeframe) != self.interval:
            raise InputError("candles", f"tracker is for interval {self.interval}, got "
                             f"{timeframe}", symbol=self.symbol, field="interval")
        bar = self._validate(candle)
        open_ms = bar[0]
        close_ms = open_ms + self._interval_ms
        o, h, l_, c, v = bar[1:]
        self._bars.append(bar)
        self._n_bars += 1
        history = self._history() if self._streams.pending else None
        ta = self._streams.update((o, h, l_, c, v), history)

        x = self._x
        x[0], x[1], x[2], x[3], x[4] = o, h, l_, c, v
        x[_TALIB_DST] = ta[_TALIB_SRC]
        x[X_ATR_RANK] = self._rank.update(settled_atr_value(ta[_T["atr"]], c))
        kc_up, kc_lo = keltner(ta[_T["kc_basis"]], ta[_T["atr_20"]], KELTNER_MULT)
        x[X_KC_UP] = kc_up
        x[X_KC_LO] = kc_lo
        x[X_SQUEEZE], x[X_SQUEEZE_FIRED] = self._squeeze.update(
            ta[_T["bb_upper"]], ta[_T["bb_lower"]], kc_up, kc_lo
        )
        x[X_ST_DIR] = self._supertrend.update(h, l_, c, ta[_T["atr_10"]])[1]
        x[X_CMF] = self._cmf.update(h, l_, c, v)
        x[X_FUNDING:X_OBI + 1] = self._inputs.at_close(open_ms, close_ms, c)
        k = self._move_bars
        x[X_MOVE] = c / self._bars[-1 - k][4] - 1.0 if len(self._bars) > k else math.nan
        engine.engine_step(self._state, x, self._params, self._y)
        snap = self._snapshot(close_ms, c)
        self.snapshots.append(snap)
        return snap

    def _validate(self, candle: Mapping[str, Any]) -> tuple:
        for key, mine in (("symbol", self.symbol), ("interval", self.interval)):
            theirs = candle.get(key)
            if theirs is not None and str(theirs) != mine:
                raise InputError("candles", f"a {theirs} bar given to the {mine} tracker",
                                 symbol=self.symbol, field=key)
        try:
            open_ms = epoch_ms(candle["open_time"])
        except (KeyError, ValueError, TypeError) as exc:
            raise InputError("candles", f"bad or missing open_time: {exc}",
                             symbol=self.symbol, field="open_time") from None
        try:
            values = [float(candle[name]) for name in BAR_FIELDS]
        except (KeyError, ValueError, TypeError):
            values = None
        if values is None or not math.isfinite(sum(values)):
            for name in BAR_FIELDS:
                try:
                    value = float(candle[name])
                except (KeyError, ValueError, TypeError):
                    raise InputError("candles", f"missing or not a number: "
                                     f"{candle.get(name)!r}", symbol=self.symbol,
                                     field=name) from None
                if not math.isfinite(value):
                    raise InputError("candles", f"not finite ({value}) at "
                                     f"{ms_to_datetime(open_ms)}", symbol=self.symbol,
                                     field=name)
        if values[4] < 0:
            raise InputError("candles", f"negative volume at {ms_to_datetime(open_ms)}",
                             symbol=self.symbol, field="volume")
        if values[1] < values[2]:
            raise InputError("candles", f"high below low at {ms_to_datetime(open_ms)}",
                             symbol=self.symbol, field="high")
        if self._bars and open_ms <= self._bars[-1][0]:
            raise InputError(
                "candles",
                f"bar {ms_to_datetime(open_ms)} is not after the last processed bar "
                f"{ms_to_datetime(self._bars[-1][0])}",
                symbol=self.symbol, field="open_time",
            )
        return (open_ms, *values)

    def _history(self) -> dict[str, np.ndarray]:
        arr = np.array(self._bars, dtype=np.float64).reshape(-1, 6)
        return {name: np.ascontiguousarray(arr[:, i + 1]) for i, name in enumerate(BAR_FIELDS)}

    def _full_history(self, candles: pd.DataFrame) -> dict[str, np.ndarray]:
        frame = candles
        if "symbol" in frame.columns:
            frame = frame[frame["symbol"] == self.symbol]
        if "interval" in frame.columns:
            frame = frame[frame["interval"].astype(str) == self.interval]
        frame = frame.sort_values("open_time")
        open_ms = np.array([epoch_ms(v) for v in frame["open_time"]], dtype=np.int64)
        last = self._bars[-1]
        keep = open_ms <= last[0]
        if not keep.any() or open_ms[keep][-1] != last[0] or (
            float(frame["close"].to_numpy()[keep][-1]) != last[4]
        ):
            raise InputError("checkpoint", "candles do not end at the checkpoint's last bar "
                             f"{ms_to_datetime(last[0])}", symbol=self.symbol, field="candles")
        return {name: frame[name].to_numpy(dtype=np.float64)[keep] for name in BAR_FIELDS}

    def _snapshot(self, close_ms: int, close: float) -> SentimentSnapshot:
        y = self._y.tolist()
        x = self._x.tolist()
        code = y[Y_REGIME]
        regime = None if code != code else REGIMES[int(code)]
        ts = ms_to_datetime(close_ms)
        frm = y[Y_TRANSITION_FROM]
        if frm == frm and frm >= 0:
            self._transitions.append((ts, REGIMES[int(frm)], regime))
        fng = x[X_FNG]
        return SentimentSnapshot(
            ts, self.symbol, self.interval, close,
            *[v if v == v else None for v in (y[Y_SCORE], y[Y_CONFIDENCE])],
            regime,
            None if regime is None else int(y[Y_DURATION]),
            *[v if v == v else None for v in (
                y[Y_REGIME_CONF], y[Y_TREND], y[Y_MOMENTUM], y[Y_VOLATILITY], y[Y_FLOW],
                y[Y_EXCHANGE], y[Y_MACRO], x[X_FUNDING], x[X_OI], x[X_OI_DELTA], x[X_LS],
                x[X_LIQ_INTENSITY], x[X_OBI],
            )],
            None if fng != fng else int(fng),
        )

    # ----------------------------------------------------------------- slower feeds

    def _value(self, source: str, field: str, value: Any) -> float:
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InputError(source, f"not a number: {value!r}", symbol=self.symbol,
                             field=field) from None
        if math.isinf(value):
            raise InputError(source, "infinite value", symbol=self.symbol, field=field)
        return value  # NaN: no value, ignored like a missing row

    def on_funding(self, funding_time: Any, funding_rate: float) -> None:
        """A settled funding rate (usable from its settlement time)."""
        value = self._value("funding", "funding_rate", funding_rate)
        self._inputs.funding.add(epoch_ms(funding_time), value)

    def on_open_interest(self, ts: Any, open_interest: float, interval: str | None = None
                         ) -> bool:
        """An open-interest record (usable at ``ts`` + period). Records of another period
        than ``exchange_data.open_interest_interval`` are ignored (returns False)."""
        if interval is not None and interval != self.config.exchange_data.open_interest_interval:
            return False
        value = self._value("open_interest", "open_interest", open_interest)
        self._inputs.open_interest.add(epoch_ms(ts) + self._inputs.oi_lag, value)
        return True

    def on_long_short(self, ts: Any, buy_ratio: float, period: str | None = None) -> bool:
        """An account-ratio record (usable at ``ts`` + period). Records of another period
        than ``exchange_data.long_short_period`` are ignored (returns False)."""
        if period is not None and period != self.config.exchange_data.long_short_period:
            return False
        value = self._value("long_short_ratio", "buy_ratio", buy_ratio)
        self._inputs.long_short.add(epoch_ms(ts) + self._inputs.ls_lag, value)
        return True

    def on_fear_greed(self, ts: Any, value: float) -> None:
        """A daily Fear & Greed value (usable from its day)."""
        self._inputs.fear_greed.add(epoch_ms(ts), self._value("fear_greed", "value", value))

    def on_ticker_update(self, ticker_data: Mapping[str, Any]) -> None:
        """Keep the latest ticker (mark price, predicted funding, OI, bid/ask).

        Not used in the scores: the ticker's funding rate is a prediction, never the settled
        rate (DESIGN 8.3), and its OI is a tick, not the period series backfills use.
        """
        self.last_ticker = dict(ticker_data)

    def _event_time(self, source: str, data: Mapping[str, Any], ts: Any) -> int:
        symbol = data.get("symbol", data.get("s"))
        if symbol is not None and symbol != self.symbol:
            raise InputError(source, f"a {symbol} message given to the {self.symbol} tracker",
                             symbol=self.symbol, field="symbol")
        for key in ("ts", "T", "time"):
            if ts is None:
                ts = data.get(key)
        if ts is None:
            raise InputError(source, "message without a time (ts, T or time)",
                             symbol=self.symbol, field="ts")
        try:
            return epoch_ms(ts)
        except (ValueError, TypeError):
            raise InputError(source, f"bad time {ts!r}", symbol=self.symbol,
                             field="ts") from None

    def on_liquidation(self, liq_data: Mapping[str, Any]) -> None:
        """One liquidation (Bybit ``allLiquidation`` fields T, s, S, v, p, or ts, symbol,
        side, size, price). It counts in the bar whose [open, close) holds its time."""
        ts = self._event_time("liquidations", liq_data, None)
        side = liq_data.get("side", liq_data.get("S"))
        if side not in ("Buy", "Sell"):
            raise InputError("liquidations", f"side must be Buy or Sell, got {side!r}",
                             symbol=self.symbol, field="side")
        size = self._value("liquidations", "size", liq_data.get("size", liq_data.get("v")))
        price = self._value("liquidations", "price", liq_data.get("price", liq_data.get("p")))
        if not (size == size and price == price):
            raise InputError("liquidations", "size and price are required",
                             symbol=self.symbol, field="size/price")
        self._inputs.add_liquidation(ts, side, size, price)

    def on_orderbook_update(self, orderbook: Mapping[str, Any], ts: Any = None) -> float:
        """One order-book sample (``b``/``a``: [price, size] levels, best first; its time
        ``ts`` or the message's). Returns its OBI, averaged into the bar that holds ``ts``."""
        when = self._event_time("orderbook", orderbook, ts)
        obi = imbalance(orderbook.get("b", ()), orderbook.get("a", ()))
        if obi == obi:
            self._inputs.add_obi(when, obi)
        return obi

    def drop_pending_stream_events(self) -> None:
        """Forget the liquidations and OBI samples held for bars not closed yet (a caller
        that re-feeds them from storage after a restore)."""
        self._inputs.events = []
        self._inputs._unsorted = False

    def on_obi_sample(self, ts: Any, obi: float) -> None:
        """One order-book imbalance sample already computed (the stream's), at ``ts``."""
        value = self._value("orderbook", "obi", obi)
        if not -1.0 <= value <= 1.0:
            raise InputError("orderbook", f"OBI {value} outside [-1, 1]", symbol=self.symbol,
                             field="obi")
        self._inputs.add_obi(self._event_time("orderbook", {}, ts), value)

    # ----------------------------------------------------------------- reading

    def get_snapshot(self) -> SentimentSnapshot | None:
        return self.snapshots[-1] if self.snapshots else None

    def get_regime(self) -> str | None:
        s = self.get_snapshot()
        return s.regime if s else None

    @property
    def regime_state(self) -> RegimeState:
        y = self._y
        pending = y[Y_PENDING]
        current = y[Y_REGIME]
        return RegimeState(
            current_regime=None if current != current else REGIMES[int(current)],
            pending_regime=None if pending != pending else REGIMES[int(pending)],
            pending_bars=0 if y[Y_PENDING_BARS] != y[Y_PENDING_BARS] else int(
                y[Y_PENDING_BARS]),
            confirmation_threshold=self.config.regime.confirmation_bars,
            cooldown_remaining=0 if y[Y_COOLDOWN] != y[Y_COOLDOWN] else int(y[Y_COOLDOWN]),
            duration_bars=0 if current != current else int(y[Y_DURATION]),
            transition_history=list(self._transitions),
        )

    @property
    def indicators(self) -> dict[str, float | None]:
        """Indicator, structure and engine values at the last bar (None in warm-up)."""
        out = {name: _none(v) for name, v in zip(OUTPUTS, self._streams.values, strict=True)}
        if out["obv"] is not None:
            out["obv"] += self._obv_offset
        x = self._x
        out |= {"atr_rank": _none(x[X_ATR_RANK]), "kc_upper": _none(x[X_KC_UP]),
                "kc_lower": _none(x[X_KC_LO]), "squeeze": _none(x[X_SQUEEZE]),
                "squeeze_fired": _none(x[X_SQUEEZE_FIRED]),
                "supertrend_direction": _none(x[X_ST_DIR]),
                "supertrend": _none(self._supertrend.st[4]), "cmf": _none(x[X_CMF])}
        out |= {name: _none(v) for name, v in zip(ENGINE_OUTPUTS, self._y, strict=True)}
        return out

    @property
    def n_bars(self) -> int:
        """Closed bars processed since the first (restored checkpoints included)."""
        return self._n_bars

    @property
    def last_timestamp(self) -> dt.datetime | None:
        return ms_to_datetime(self._bars[-1][0] + self._interval_ms) if self._bars else None

    # ----------------------------------------------------------------- checkpoint

    def _fingerprint(self) -> list:
        return engine.fingerprint(self.config, self.interval)

    def checkpoint(self) -> dict:
        """The whole state as plain JSON types (NaN written as null)."""
        bars = list(zip(*self._bars, strict=True)) if self._bars else [()] * 6
        return {
            "version": CHECKPOINT_VERSION,
            "symbol": self.symbol,
            "interval": self.interval,
            "params": self._fingerprint(),
            "n_bars": self._n_bars,
            "bars": {"open_ms": list(bars[0]),
                     **{name: list(bars[i + 1]) for i, name in enumerate(BAR_FIELDS)}},
            "engine": [_none(v) for v in self._state],
            "x": [_none(v) for v in self._x],
            "y": [_none(v) for v in self._y],
            "atr_rank": self._rank.state(),
            "squeeze": self._squeeze.state(),
            "supertrend": self._supertrend.state(),
            "cmf": self._cmf.state(),
            "inputs": self._inputs.state(),
            "transitions": [[t.isoformat(), a, b] for t, a, b in self._transitions],
            "snapshot": _snapshot_json(self.get_snapshot()),
            "obv": self.indicators["obv"],
        }

    @classmethod
    def restore(cls, state: Mapping[str, Any], config: Config | None = None, *,
                candles: pd.DataFrame | None = None) -> MarketSentimentTracker:
        """A tracker continuing from ``checkpoint()``'s output.

        The TA-Lib handles are reopened over the stored bars; with the whole history stored
        (``history.checkpoint_bars`` or fewer bars so far) the result is bit-identical, and
        otherwise within about 1e-13. Pass ``candles`` (this symbol and interval, from the
        first bar up to the checkpoint's last bar) to reopen over the whole history instead.
        """
        if state.get("version") != CHECKPOINT_VERSION:
            raise CheckpointMismatch("checkpoint", f"unsupported version {state.get('version')!r}",
                             symbol=state.get("symbol"), field="version")
        t = cls(state["symbol"], state["interval"], config)
        if t._fingerprint() != list(state["params"]):
            raise CheckpointMismatch(
                "checkpoint", "made with a different configuration (weights, thresholds or "
                "enabled inputs); recompute the history instead", symbol=t.symbol,
                field="params")
        b = state["bars"]
        t._bars.extend(
            (int(o), *vals)
            for o, *vals in zip(b["open_ms"], *(b[n] for n in BAR_FIELDS), strict=True)
        )
        t._n_bars = int(state["n_bars"])
        if t._bars and candles is not None:
            t._streams.reopen(t._full_history(candles))
        elif t._bars:
            t._streams.reopen(t._history())
            reopened = t._streams.values[_T["obv"]]
            if state.get("obv") is not None and reopened == reopened:
                t._obv_offset = float(state["obv"] - reopened)
        t._state = np.array([_nan(v) for v in state["engine"]], dtype=np.float64)
        t._x = np.array([_nan(v) for v in state["x"]], dtype=np.float64)
        t._y = np.array([_nan(v) for v in state["y"]], dtype=np.float64)
        t._rank = AtrPercentRank.from_state(state["atr_rank"])
        t._squeeze = Squeeze.from_state(state["squeeze"])
        t._supertrend = SuperTrend.from_state(state["supertrend"])
        t._cmf = ChaikinMoneyFlow.from_state(state["cmf"])
        t._inputs.load_state(state["inputs"])
        t._transitions.extend(
            (dt.datetime.fromisoformat(ts), a, b) for ts, a, b in state["transitions"]
        )
        if state.get("snapshot"):
            t.snapshots.append(_snapshot_from_json(state["snapshot"]))
        return t


def _snapshot_json(snap: SentimentSnapshot | None) -> dict | None:
    if snap is None:
        return None
    out = {}
    for name in SentimentSnapshot.__slots__:
        value = getattr(snap, name)
        out[name] = value.isoformat() if isinstance(value, dt.datetime) else value
    return out


def _snapshot_from_json(data: Mapping[str, Any]) -> SentimentSnapshot:
    values = dict(data)
    values["timestamp"] = dt.datetime.fromisoformat(values["timestamp"])
    return SentimentSnapshot(**values)

