"""Order-book imbalance (brief 6.5): top 5 levels per side, weights 1, .5, .25, .125, .0625."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sentiment.core.orderbook import imbalance

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


# ---------------------------------------------------------------------- the local book

import json  # noqa: E402
from pathlib import Path  # noqa: E402

from sentiment.core.orderbook import BookGap, OrderBook  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bybit"


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def _levels(side) -> dict[float, float]:
    return {float(p): float(q) for p, q in side}


def test_recorded_snapshot_then_delta_gives_the_expected_book():
    snapshot = _fixture("ws_orderbook_snapshot.json")
    delta = _fixture("ws_orderbook_delta_following_snapshot.json")
    book = OrderBook("BTCUSDT")
    book.apply(snapshot)
    assert len(book.bids) == len(book.asks) == 50 and book.update_id == 10132540
    book.apply(delta)
    # Expected: the snapshot's levels with the delta written over them, size 0 deleting.
    expected = {"b": _levels(snapshot["data"]["b"]), "a": _levels(snapshot["data"]["a"])}
    for side in ("b", "a"):
        for price, size in _levels(delta["data"][side]).items():
            if size == 0:
                expected[side].pop(price)
            else:
                expected[side][price] = size
    assert book.bids == expected["b"] and book.asks == expected["a"]
    # Spot checks read off the recorded messages.
    assert 71419.8 not in book.bids and book.bids[71418.2] == 0.159
    assert book.bids[71413.2] == 0.603 and book.asks[71427.9] == 0.006
    assert 71428.3 not in book.asks and book.update_id == 10132541
    bids, asks = book.top(5)
    assert [p for p, _ in bids] == sorted(book.bids, reverse=True)[:5]
    assert [p for p, _ in asks] == sorted(book.asks)[:5]
    assert book.ts == delta["ts"]


def test_obi_of_the_recorded_book_follows_the_brief():
    book = OrderBook("BTCUSDT")
    book.apply(_fixture("ws_orderbook_snapshot.json"))
    data = _fixture("ws_orderbook_snapshot.json")["data"]
    want = reference_obi([float(q) for _, q in data["b"]], [float(q) for _, q in data["a"]])
    assert book.imbalance() == pytest.approx(want, abs=1e-12)
    assert -1.0 < want < 0.0  # 4.669 BTC at the best ask outweighs the bids


def _snap(u: int, bids, asks, ts: int = 1_000) -> dict:
    return {"topic": "orderbook.50.BTCUSDT", "type": "snapshot", "ts": ts,
            "data": {"s": "BTCUSDT", "b": bids, "a": asks, "u": u, "seq": u}}


def _delta(u: int, bids=(), asks=(), ts: int = 1_001) -> dict:
    return {"topic": "orderbook.50.BTCUSDT", "type": "delta", "ts": ts,
            "data": {"s": "BTCUSDT", "b": list(bids), "a": list(asks), "u": u, "seq": u}}


def test_a_skipped_update_id_is_a_gap_until_the_next_snapshot():
    book = OrderBook("BTCUSDT")
    with pytest.raises(BookGap, match="without a snapshot"):
        book.apply(_delta(5, [["100", "1"]]))
    book.apply(_snap(100, [["100", "2"]], [["101", "1"]]))
    book.apply(_delta(101, [["100", "3"]]))
    with pytest.raises(BookGap, match="update id 103 after 101") as gap:
        book.apply(_delta(103, [["99", "5"]]))
    assert gap.value.symbol == "BTCUSDT" and gap.value.field == "u"
    assert not book.synced and book.imbalance() != book.imbalance()
    with pytest.raises(BookGap):  # still out of sync: no delta is applied
        book.apply(_delta(104, [["98", "5"]]))
    assert 99.0 not in book.bids and 98.0 not in book.bids
    book.apply(_snap(500, [["100", "1"]], [["101", "3"]]))
    assert book.synced and book.bids == {100.0: 1.0} and book.asks == {101.0: 3.0}
    assert book.imbalance() == pytest.approx((1 - 3) / (1 + 3))


def test_a_restart_snapshot_with_update_id_one_replaces_the_book():
    book = OrderBook("BTCUSDT")
    book.apply(_snap(100, [["100", "2"], ["99", "1"]], [["101", "1"]]))
    book.apply(_snap(1, [["90", "1"]], [["91", "1"]]))
    assert book.bids == {90.0: 1.0} and book.update_id == 1
    book.apply(_delta(2, asks=[["91", "0"], ["92", "4"]]))
    assert book.asks == {92.0: 4.0}


def test_a_repeated_delta_is_ignored():
    book = OrderBook("BTCUSDT")
    book.apply(_snap(10, [["100", "2"]], [["101", "1"]]))
    book.apply(_delta(11, [["100", "3"]]))
    book.apply(_delta(11, [["100", "7"]]))  # the same id again: already applied
    book.apply(_delta(9, [["100", "8"]]))  # older than the book
    assert book.bids == {100.0: 3.0} and book.update_id == 11 and book.synced
    book.apply(_delta(12, [["100", "4"]]))
    assert book.bids == {100.0: 4.0}


@pytest.mark.parametrize("bad, field", [
    ({"type": "update"}, "type"),
    ({"data": {"s": "ETHUSDT", "b": [], "a": [], "u": 1}}, "s"),
    ({"data": {"s": "BTCUSDT", "b": [["x", "1"]], "a": [], "u": 1}}, "u/b/a/ts"),
])
def test_a_malformed_push_names_the_field_and_leaves_the_book(bad, field):
    book = OrderBook("BTCUSDT")
    book.apply(_snap(10, [["100", "2"]], [["101", "1"]]))
    message = {**_snap(11, [], []), **bad}
    with pytest.raises(Exception) as err:
        book.apply(message)
    assert err.value.field == field and err.value.symbol == "BTCUSDT"
    assert book.bids == {100.0: 2.0} and book.update_id == 10
