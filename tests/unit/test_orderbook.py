"""Order-book imbalance (brief 6.5): top 5 levels per side, weights 1, .5, .25, .125, .0625."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sentiment.orderbook import imbalance

# The brief's weights, restated here (not imported) so a change in the code is caught.
BRIEF_WEIGHTS = (1.0, 0.5, 0.25, 0.125, 0.0625)


def book(sizes, start=100.0, step=-0.5):
    """Levels ``[price, size]`` best first (bids step down; pass step=+0.5 for asks)."""
    return [[start + i * step, size] for i, size in enumerate(sizes)]


def reference_obi(bid_sizes, ask_sizes):
    bid = sum(w * s for w, s in zip(BRIEF_WEIGHTS, bid_sizes[:5], strict=False))
    ask = sum(w * s for w, s in zip(BRIEF_WEIGHTS, ask_sizes[:5], strict=False))
    return (bid - ask) / (bid + ask) if bid + ask > 0 else math.nan


def test_all_bids_is_plus_one():
    assert imbalance(book([3.0, 1.0, 2.0]), []) == 1.0
    assert imbalance(book([3.0, 1.0]), book([0.0, 0.0], 100.5, 0.5)) == 1.0


def test_all_asks_is_minus_one():
    assert imbalance([], book([1.0, 4.0, 0.5], 100.5, 0.5)) == -1.0
    assert imbalance(book([0.0]), book([2.0], 100.5, 0.5)) == -1.0


@pytest.mark.parametrize("sizes", [[1.0], [5.0, 3.0, 2.0, 8.0, 1.0], [0.1] * 9])
def test_symmetric_book_is_zero(sizes):
    assert imbalance(book(sizes), book(sizes, 100.5, 0.5)) == 0.0


@pytest.mark.parametrize("level", range(5))
def test_each_level_has_the_brief_weight(level):
    # One unit of bid at `level` against one unit of ask at the best level:
    # OBI = (w - 1) / (w + 1).
    bids = [0.0] * 5
    bids[level] = 1.0
    w = BRIEF_WEIGHTS[level]
    got = imbalance(book(bids), book([1.0], 100.5, 0.5))
    assert got == pytest.approx((w - 1.0) / (w + 1.0), abs=1e-12)
    # And the same on the ask side (sign flips).
    got = imbalance(book([1.0]), book(bids, 100.5, 0.5))
    assert got == pytest.approx((1.0 - w) / (1.0 + w), abs=1e-12)


def test_weights_worked_example():
    # bids: 1*2 + .5*4 + .25*8 = 6; asks: 1*1 + .5*2 + .25*0 + .125*8 + .0625*16 = 4.
    bids = book([2.0, 4.0, 8.0])
    asks = book([1.0, 2.0, 0.0, 8.0, 16.0], 100.5, 0.5)
    assert imbalance(bids, asks) == pytest.approx((6 - 4) / (6 + 4), abs=1e-12)


def test_only_the_top_five_levels_count():
    base_bids = [1.0, 2.0, 3.0, 4.0, 5.0]
    base_asks = [5.0, 4.0, 3.0, 2.0, 1.0]
    want = imbalance(book(base_bids), book(base_asks, 100.5, 0.5))
    deep = imbalance(book(base_bids + [1e6, 1e6]), book(base_asks + [0.0, 3.0], 100.5, 0.5))
    assert deep == want
    # A huge 6th level alone does not count: the book is still all asks.
    assert imbalance(book([0.0] * 5 + [1e9]), book([1.0], 100.5, 0.5)) == -1.0


def test_sizes_as_strings_as_in_bybit_messages():
    bids = [["30000.5", "1.5"], ["30000.0", "2"]]
    asks = [["30001.0", "0.5"]]
    assert imbalance(bids, asks) == pytest.approx(reference_obi([1.5, 2.0], [0.5]), abs=1e-12)


def test_empty_book_is_nan():
    assert math.isnan(imbalance([], []))
    assert math.isnan(imbalance(book([0.0, 0.0]), book([0.0], 100.5, 0.5)))


def test_random_books_stay_in_range_and_match_the_reference():
    rng = np.random.default_rng(20220101)
    for _ in range(500):
        n_bids, n_asks = rng.integers(0, 9, size=2)
        bid_sizes = rng.exponential(2.0, n_bids) * (rng.random(n_bids) > 0.2)
        ask_sizes = rng.exponential(2.0, n_asks) * (rng.random(n_asks) > 0.2)
        got = imbalance(book(bid_sizes.tolist()), book(ask_sizes.tolist(), 100.5, 0.5))
        want = reference_obi(bid_sizes.tolist(), ask_sizes.tolist())
        if math.isnan(want):
            assert math.isnan(got)
            continue
        assert -1.0 <= got <= 1.0
        assert got == pytest.approx(want, abs=1e-12)
