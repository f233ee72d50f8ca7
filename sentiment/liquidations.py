"""Liquidation pressure of one symbol, as the stream sees it (brief 6.4).

Liquidations are counted by notional (size x price, in the quote coin) and by the side of
the position that was liquidated: on Bybit's ``allLiquidation`` topic ``S`` = "Buy" is a
long position liquidated, "Sell" a short one. Over the last ``window`` (5 min by default):

* **volume**: long, short and total notional;
* **average**: the mean window volume over the last hour (this window included, as the
  bar-level ``liquidation_intensity`` counts its own bar), and ``ratio`` = volume / average;
* **cascade**: ratio above 3 (brief: "liquidation volume > 3x rolling 1h avg"), once a
  whole hour has been watched (before that, the average is not an hour's: ``warming_up``);
* **squeeze**: "long" when long liquidations are more than 80 % of the window's volume,
  "short" when short ones are.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from sentiment.errors import InputError

#: Bybit ``allLiquidation`` side of a liquidated long position.
LONG_SIDE = "Buy"
CASCADE_RATIO = 3.0
SQUEEZE_SHARE = 0.8
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class LiquidationReading:
    long_volume: float
    short_volume: float
    average: float  # mean window volume over the last hour
    cascade: bool
    squeeze: str | None  # "long", "short" or None
    warming_up: bool = False  # less than an hour watched: no cascade call yet

    @property
    def volume(self) -> float:
        return self.long_volume + self.short_volume

    @property
    def ratio(self) -> float:
        return self.volume / self.average if self.average > 0 else 0.0


class LiquidationMonitor:
    """Rolling liquidation volume by side; feed events in time order, read at any time."""

    def __init__(self, symbol: str, window_ms: int = 300_000, history_ms: int = HOUR_MS,
                 since_ms: int | None = None):
        if window_ms <= 0 or history_ms < window_ms:
            raise InputError("liquidations", "need 0 < window <= history", symbol=symbol,
                             field="window")
        self.symbol = symbol
        self.window_ms = window_ms
        self.history_ms = history_ms
        self.events: deque[tuple[int, bool, float]] = deque()  # (ts, is_long, notional)
        self.since_ms = since_ms  # when watching began (default: the first event or reading)

    def add(self, ts: int, side: str, size: float, price: float) -> None:
        if side not in ("Buy", "Sell"):
            raise InputError("liquidations", f"side must be Buy or Sell, got {side!r}",
                             symbol=self.symbol, field="side")
        if not (size > 0 and price > 0):
            raise InputError("liquidations", f"size {size!r} and price {price!r} must be "
                             "positive", symbol=self.symbol, field="size/price")
        if self.since_ms is None:
            self.since_ms = int(ts)
        self.events.append((int(ts), side == LONG_SIDE, float(size) * float(price)))

    def reading(self, now_ms: int) -> LiquidationReading:
        """The pressure as of ``now_ms`` (events stamped after it are not counted)."""
        if self.since_ms is None:
            self.since_ms = now_ms
        while self.events and self.events[0][0] <= now_ms - self.history_ms:
            self.events.popleft()
        long_vol = short_vol = hour = 0.0
        start = now_ms - self.window_ms
        for ts, is_long, notional in self.events:
            if ts > now_ms or ts <= now_ms - self.history_ms:
                continue  # after the reading, or out of the hour (arrived out of order)
            hour += notional
            if ts > start:
                if is_long:
                    long_vol += notional
                else:
                    short_vol += notional
        average = hour * self.window_ms / self.history_ms
        total = long_vol + short_vol
        squeeze = None
        if total > 0:
            if long_vol > SQUEEZE_SHARE * total:
                squeeze = "long"
            elif short_vol > SQUEEZE_SHARE * total:
                squeeze = "short"
        warming_up = now_ms - self.since_ms < self.history_ms
        cascade = not warming_up and average > 0 and total > CASCADE_RATIO * average
        return LiquidationReading(long_vol, short_vol, average, cascade, squeeze, warming_up)
