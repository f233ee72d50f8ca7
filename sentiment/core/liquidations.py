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

What the stream may take from a push is bounded here (DESIGN 9.3: impossible values stop at
the boundary): :func:`check_liquidation` is the one check of a pushed liquidation, and
``MAX_PRICE`` / ``MAX_SIZE`` (sentiment.models) bound every price and size the stream keeps
(books and tickers too).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from sentiment.core.timeutil import HOUR_MS
from sentiment.errors import InputError
from sentiment.models import MAX_PRICE, MAX_SIZE

#: Bybit ``allLiquidation`` side of a liquidated long position, and both sides.
LONG_SIDE = "Buy"
SIDES = (LONG_SIDE, "Sell")
CASCADE_RATIO = 3.0
SQUEEZE_SHARE = 0.8

MAX_NOTIONAL = MAX_PRICE * MAX_SIZE  # the largest size x price (sentiment.models bounds)
#: A liquidation's time ``T`` against the time ``ts`` of the push carrying it. Bybit pushes
#: ``allLiquidation`` every 500 ms, so ``T`` is a moment before ``ts``; a little after it is
#: clock skew between Bybit's services. The hour back leaves room for the replay exchange,
#: whose clock may run thousands of times faster than the wall clock (its pushes then carry
#: the last few replay minutes); a liquidation a month back, or in 2100, is refused.
LIQUIDATION_AHEAD_MS = 60_000
LIQUIDATION_LATE_MS = HOUR_MS


def check_liquidation(symbol: str, when: int, side, size: float, price: float,
                      pushed: int) -> None:
    """Raise :class:`InputError` naming the field (Bybit's: ``S``, ``v``, ``p``, ``T``) if a
    pushed liquidation is impossible: a side other than Buy/Sell, a size outside
    (0, MAX_SIZE], a price outside (0, MAX_PRICE] (NaN and infinities included), or a time
    ``when`` off the push's own time ``pushed`` (see ``LIQUIDATION_*_MS``)."""
    if side not in SIDES:
        raise InputError("liquidations", f"side must be Buy or Sell, got {side!r}",
                         symbol=symbol, field="S")
    if not 0.0 < size <= MAX_SIZE:
        raise InputError("liquidations", f"size {size!r} outside (0, {MAX_SIZE:g}]",
                         symbol=symbol, field="v")
    if not 0.0 < price <= MAX_PRICE:
        raise InputError("liquidations", f"price {price!r} outside (0, {MAX_PRICE:g}]",
                         symbol=symbol, field="p")
    if not pushed - LIQUIDATION_LATE_MS <= when <= pushed + LIQUIDATION_AHEAD_MS:
        raise InputError("liquidations", f"time {when} is {(when - pushed) / 1000:+.0f} s "
                         f"from its push's time {pushed}", symbol=symbol, field="T")


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
        if side not in SIDES:
            raise InputError("liquidations", f"side must be Buy or Sell, got {side!r}",
                             symbol=self.symbol, field="side")
        if not (size > 0 and price > 0):
            raise InputError("liquidations", f"size {size!r} and price {price!r} must be "
                             "positive", symbol=self.symbol, field="size/price")
        if self.since_ms is None:
            self.since_ms = int(ts)
        ts, is_long, notional = int(ts), side == LONG_SIDE, float(size) * float(price)
        # Bounded under a flood: an event joins the entry of its side in the same second
        # (at most two entries a second, so an hour holds at most 7,200), stamped with the
        # later time, so it is never counted before it happened.
        for k in (-1, -2):
            if len(self.events) >= -k:
                t, long_side, total = self.events[k]
                if long_side == is_long and t // 1000 == ts // 1000 and ts >= t:
                    self.events[k] = (ts, is_long, total + notional)
                    return
        self.events.append((ts, is_long, notional))

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
