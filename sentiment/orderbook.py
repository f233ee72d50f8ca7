"""Order-book imbalance (brief 6.5).

``OBI = (sum w_i * bid_i - sum w_i * ask_i) / (sum w_i * bid_i + sum w_i * ask_i)`` over the
top 5 levels with distance weights 1, 0.5, 0.25, 0.125, 0.0625; in [-1, 1] (+1: all bids).
An empty book side counts as zero size; an empty book has no imbalance (NaN).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
