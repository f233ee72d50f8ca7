"""The TA-Lib indicators the tracker reads, batch and streaming, from one list.

Batch (:func:`compute_talib`) calls the Function API over whole arrays; live
(:class:`TalibStreams`) carries one ``talib.stream`` handle per entry forward a bar at a
time. Both run the same C code, so the values agree bit for bit. A handle can only be
opened once ``lookback + 1`` bars exist; until then the live value is the Function API's
last value over the bars seen so far (NaN during warm-up), which is what batch reports for
that bar too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import talib
from talib import abstract
from talib import stream as ta_stream

#: Candle arrays the indicators read, in the order of :data:`BAR_FIELDS`.
BAR_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Spec:
    function: str
    inputs: tuple[str, ...]
    params: tuple[tuple[str, float], ...]
    outputs: tuple[str, ...]

    @property
    def kwargs(self) -> dict[str, float]:
        return dict(self.params)

    @property
    def lookback(self) -> int:
        return abstract.Function(self.function, **self.kwargs).lookback


def _spec(function, inputs, outputs, **params) -> Spec:
    return Spec(function, tuple(inputs), tuple(sorted(params.items())), tuple(outputs))


HLC = ("high", "low", "close")

#: Every TA-Lib indicator computed, with its parameters (DESIGN section 6).
SPECS: tuple[Spec, ...] = (
    _spec("EMA", ["close"], ["ema_9"], timeperiod=9),
    _spec("EMA", ["close"], ["ema_21"], timeperiod=21),
    _spec("EMA", ["close"], ["ema_50"], timeperiod=50),
    _spec("SMA", ["close"], ["sma_200"], timeperiod=200),
    _spec("ADX", HLC, ["adx"], timeperiod=14),
    _spec("PLUS_DI", HLC, ["plus_di"], timeperiod=14),
    _spec("MINUS_DI", HLC, ["minus_di"], timeperiod=14),
    _spec("RSI", ["close"], ["rsi"], timeperiod=14),
    _spec(
        "MACD", ["close"], ["macd", "macd_signal", "macd_hist"],
        fastperiod=12, slowperiod=26, signalperiod=9,
    ),
    _spec("ROC", ["close"], ["roc"], timeperiod=10),
    _spec("MOM", ["close"], ["mom"], timeperiod=10),
    _spec("ATR", HLC, ["atr"], timeperiod=14),
    _spec("NATR", HLC, ["natr"], timeperiod=14),
    _spec(
        "BBANDS", ["close"], ["bb_upper", "bb_middle", "bb_lower"],
        timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0,
    ),
    _spec("AROON", ["high", "low"], ["aroon_down", "aroon_up"], timeperiod=14),
    _spec("KAMA", ["close"], ["kama"], timeperiod=30),
    _spec("OBV", ["close", "volume"], ["obv"]),
    _spec("MFI", (*HLC, "volume"), ["mfi"], timeperiod=14),
    _spec("SMA", ["volume"], ["volume_sma_20"], timeperiod=20),
    # Keltner channel (DESIGN 8.17: 20 bars, 1.5 x ATR 20) and SuperTrend's ATR 10.
    _spec("EMA", ["close"], ["kc_basis"], timeperiod=20),
    _spec("ATR", HLC, ["atr_20"], timeperiod=20),
    _spec("ATR", HLC, ["atr_10"], timeperiod=10),
)

#: The input combinations the specs use (TalibStreams.update builds each once per bar).
_KINDS = (("close",), HLC, ("volume",), ("high", "low"), ("close", "volume"), (*HLC, "volume"))
assert all(spec.inputs in _KINDS for spec in SPECS)

#: Every output column, in spec order.
OUTPUTS: tuple[str, ...] = tuple(name for spec in SPECS for name in spec.outputs)


def compute_talib(bars: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every TA-Lib output over whole float64 arrays (NaN during each one's warm-up)."""
    out: dict[str, np.ndarray] = {}
    for spec in SPECS:
        result = getattr(talib, spec.function)(*(bars[i] for i in spec.inputs), **spec.kwargs)
        if not isinstance(result, tuple):
            result = (result,)
        for name, values in zip(spec.outputs, result, strict=True):
            out[name] = np.asarray(values, dtype=np.float64)
    return out


class TalibStreams:
    """One streaming handle per :data:`SPECS` entry, fed one closed bar at a time.

    ``history`` keeps the bars seen so far (bounded by ``max_bars``); it is what handles are
    opened over, during warm-up and after :meth:`reopen`.
    """

    def __init__(self) -> None:
        self._handles: list = [None] * len(SPECS)
        self._lookbacks = [spec.lookback for spec in SPECS]
        self.values = np.full(len(OUTPUTS), np.nan)
        # (bound update, input kind, first output slot, outputs) per open handle: the
        # per-bar loop does no lookups.
        self._calls: list[tuple] = []
        self._pending = True

    def reopen(self, history: dict[str, np.ndarray]) -> None:
        """Open every handle over ``history`` (e.g. after a restore) and set the values."""
        self._handles = [None] * len(SPECS)
        self._warm(history)

    def update(self, bar: tuple[float, ...], history: dict[str, np.ndarray] | None) -> np.ndarray:
        """Advance every handle by one closed bar; return the values at that bar.

        ``bar`` is ``(open, high, low, close, volume)``. ``history`` (all bars so far,
        including this one) is only read while some handle is not open yet.
        """
        values = self.values
        o, h, l_, c, v = bar
        by_kind = ((c,), (h, l_, c), (v,), (h, l_), (c, v), (h, l_, c, v))
        for update, kind, k, n in self._calls:
            r = update(*by_kind[kind])
            if n == 1:
                values[k] = r
            else:
                values[k : k + n] = r
        if self._pending:
            if history is None:
                raise ValueError("history is needed while TA-Lib handles warm up")
            self._warm(history)
        return values

    @property
    def pending(self) -> bool:
        """True while some handle still waits for enough history to open."""
        return self._pending

    def _warm(self, history: dict[str, np.ndarray]) -> None:
        length = len(history["close"])
        k = 0
        for i, spec in enumerate(SPECS):
            n = len(spec.outputs)
            if self._handles[i] is None:
                args = [history[name] for name in spec.inputs]
                handle = None
                if length > self._lookbacks[i]:
                    try:
                        handle = getattr(ta_stream, spec.function)(*args, **spec.kwargs)
                    except talib.InsufficientHistory:
                        handle = None
                if handle is not None:
                    self._handles[i] = handle
                    value = handle.value
                    self.values[k : k + n] = value if n > 1 else (value,)
                elif length:
                    # Not open yet: the Function API's value at the last bar (NaN in warm-up).
                    result = getattr(talib, spec.function)(*args, **spec.kwargs)
                    if not isinstance(result, tuple):
                        result = (result,)
                    self.values[k : k + n] = [r[-1] for r in result]
            k += n
        self._calls = []
        k = 0
        for spec, handle in zip(SPECS, self._handles, strict=True):
            n = len(spec.outputs)
            if handle is not None:
                self._calls.append((handle.update, _KINDS.index(spec.inputs), k, n))
            k += n
        self._pending = any(h is None for h in self._handles)
