"""Order-book imbalance (brief 6.5) and the local order book it is read from.

``OBI = (sum w_i * bid_i - sum w_i * ask_i) / (sum w_i * bid_i + sum w_i * ask_i)`` over the
top 5 levels with distance weights 1, 0.5, 0.25, 0.125, 0.0625; in [-1, 1] (+1: all bids).
An empty book side counts as zero size; an empty book has no imbalance (NaN).

:class:`OrderBook` keeps one Bybit ``orderbook.{depth}.{symbol}`` book from its snapshot and
deltas. Bybit numbers the messages of a topic with an update id ``u`` that grows by exactly
one; a snapshot (also the one Bybit re-sends after a restart, with ``u`` = 1) replaces the
book. A delta whose ``u`` skips ids means messages were lost: the book raises
:class:`BookGap` and stays unusable until a new snapshot, which the stream asks for by
subscribing again; one whose ``u`` was applied already is ignored. Written here because
pybit's book ignores the update ids (DESIGN 8.16).

A push with impossible values (a price outside (0, ``MAX_PRICE``], a size outside
[0, ``MAX_SIZE``], NaN or infinite ones included) or one that leaves the book crossed (best
bid >= best ask) raises :class:`BadBook`: nothing of it is kept and, as after a gap, the
book is unusable until a new snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sentiment.errors import InputError
from sentiment.models import MAX_PRICE, MAX_SIZE

LEVELS = 5
WEIGHTS: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125, 0.0625)


def _weighted(levels: Iterable[Sequence]) -> float:
    total = 0.0
    for weight, level in zip(WEIGHTS, levels, strict=False):
        total += weight * float(level[1])
    return total


def imbalance(bids: Iterable[Sequence], asks: Iterable[Sequence]) -> float:
    """OBI of the best five levels of each side (each level is ``[price, size]``, best
    first, as in Bybit's ``orderbook`` messages)."""
    bid = _weighted(bids)
    ask = _weighted(asks)
    total = bid + ask
    if total <= 0.0:
        return float("nan")
    return (bid - ask) / total


class BookGap(InputError):
    """A delta did not follow the last applied message: the book needs a new snapshot."""


class BadBook(BookGap):
    """A push with impossible values, or one that crossed the book: it is dropped and the
    book needs a new snapshot."""


def check_levels(symbol: str, side: str, levels: Iterable[tuple[float, float]]) -> None:
    """Raise :class:`BadBook` naming ``side`` ("b" or "a") for a level whose price is not in
    (0, MAX_PRICE] or whose size is not in [0, MAX_SIZE] (0 deletes a level)."""
    for price, size in levels:
        if not 0.0 < price <= MAX_PRICE:
            raise BadBook("orderbook", f"price {price!r} outside (0, {MAX_PRICE:g}]",
                          symbol=symbol, field=side)
        if not 0.0 <= size <= MAX_SIZE:
            raise BadBook("orderbook", f"size {size!r} at price {price:g} outside "
                          f"[0, {MAX_SIZE:g}]", symbol=symbol, field=side)


class OrderBook:
    """One symbol's book: price -> size per side, kept from Bybit snapshots and deltas."""

    def __init__(self, symbol: str):
        self.symbol = symbol
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.update_id: int | None = None  # None: no usable book (before a snapshot, or a gap)
        self.seq: int | None = None
        self.ts: int | None = None  # exchange time (ms) of the last applied message

    @property
    def synced(self) -> bool:
        return self.update_id is not None

    def invalidate(self) -> None:
        """Unusable until the next snapshot (a push was dropped: the book may lack it)."""
        self.update_id = None

    def apply(self, message: Mapping) -> None:
        """Apply one ``orderbook`` push (``type`` snapshot or delta)."""
        data = message.get("data")
        kind = message.get("type")
        if not isinstance(data, Mapping) or kind not in ("snapshot", "delta"):
            raise InputError("orderbook", f"not an order-book push (type {kind!r})",
                             symbol=self.symbol, field="type")
        if data.get("s", self.symbol) != self.symbol:
            raise InputError("orderbook", f"a {data.get('s')} book given to {self.symbol}",
                             symbol=self.symbol, field="s")
        try:
            update_id = int(data["u"])
            bids = [(float(p), float(q)) for p, q in data.get("b", ())]
            asks = [(float(p), float(q)) for p, q in data.get("a", ())]
            ts = int(message["ts"])
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise InputError("orderbook", f"malformed {kind}: {exc!r}", symbol=self.symbol,
                             field="u/b/a/ts") from None
        try:
            check_levels(self.symbol, "b", bids)
            check_levels(self.symbol, "a", asks)
        except BadBook:
            self.invalidate()
            raise
        if kind == "snapshot":
            self.bids = {p: q for p, q in bids if q > 0}
            self.asks = {p: q for p, q in asks if q > 0}
        else:
            if self.update_id is None:
                raise BookGap("orderbook", f"delta u={update_id} without a snapshot",
                              symbol=self.symbol, field="u")
            if update_id <= self.update_id:
                return  # already applied (a repeated push): nothing to do
            if update_id != self.update_id + 1:
                last = self.update_id
                self.update_id = None
                raise BookGap("orderbook", f"update id {update_id} after {last} (lost "
                              "messages)", symbol=self.symbol, field="u")
            for side, levels in ((self.bids, bids), (self.asks, asks)):
                for price, size in levels:
                    if size > 0:
                        side[price] = size
                    else:
                        side.pop(price, None)
        if self.bids and self.asks:
            best_bid, best_ask = max(self.bids), min(self.asks)
            if best_bid >= best_ask:
                self.invalidate()
                raise BadBook("orderbook", f"crossed book after {kind} u={update_id}: best "
                              f"bid {best_bid:g} >= best ask {best_ask:g}",
                              symbol=self.symbol, field="b/a")
        self.update_id = update_id
        self.seq = data.get("seq")
        self.ts = ts

    def top(self, n: int = LEVELS) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The best ``n`` levels of each side, best first: (bids descending, asks ascending)."""
        bids = sorted(self.bids.items(), reverse=True)[:n]
        asks = sorted(self.asks.items())[:n]
        return bids, asks

    def imbalance(self) -> float:
        """OBI of the top 5 levels (NaN while the book is not in sync)."""
        if not self.synced:
            return float("nan")
        return imbalance(*self.top(LEVELS))
