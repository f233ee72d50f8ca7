"""Liquidation pressure (brief 6.4) on constructed bursts: cascade when the window's volume
is above 3x the hour's average window, long or short squeeze when one side is over 80 %."""

from __future__ import annotations

import pytest

from sentiment.core.liquidations import LiquidationMonitor
from sentiment.errors import InputError

MIN = 60_000
HOUR = 60 * MIN
T0 = 1_700_000_000_000


def steady(monitor: LiquidationMonitor, minutes: int, notional: float = 1_000.0,
           start: int = T0) -> int:
    """One liquidation a minute, alternating sides, each ``notional`` (price 100)."""
    for i in range(minutes):
        monitor.add(start + i * MIN, "Buy" if i % 2 else "Sell", notional / 100.0, 100.0)
    return start + minutes * MIN


def test_steady_flow_is_neither_cascade_nor_squeeze():
    m = LiquidationMonitor("BTCUSDT")
    now = steady(m, 120)
    r = m.reading(now - 1)
    assert r.volume == pytest.approx(5 * 1_000.0)  # five per 5-minute window
    assert r.average == pytest.approx(5 * 1_000.0)  # the hour's average window
    assert r.ratio == pytest.approx(1.0) and not r.cascade and r.squeeze is None


def test_a_burst_of_long_liquidations_is_a_cascade_and_a_long_squeeze():
    m = LiquidationMonitor("BTCUSDT")
    now = steady(m, 60)
    # 40 long liquidations ("Buy": a long position liquidated) in two minutes.
    for i in range(40):
        m.add(now + i * 3_000, "Buy", 100.0, 100.0)  # 10 000 each
    r = m.reading(now + 2 * MIN)
    assert r.long_volume == pytest.approx(400_000.0 + 1_000.0 * 1)  # and one steady Buy
    assert r.ratio > 3.0 and r.cascade
    assert r.squeeze == "long"


def test_short_squeeze_without_cascade():
    m = LiquidationMonitor("BTCUSDT")
    now = steady(m, 60, notional=10_000.0)
    for i in range(5):  # as much as usual, but all shorts ("Sell")
        m.add(now + i * MIN, "Sell", 100.0, 100.0)
    r = m.reading(now + 4 * MIN + 1)
    assert r.short_volume > 0.8 * r.volume and r.squeeze == "short"
    assert not r.cascade and r.ratio == pytest.approx(1.0, rel=0.25)


def test_no_cascade_call_before_a_whole_hour_was_watched():
    m = LiquidationMonitor("BTCUSDT")
    for i in range(40):
        m.add(T0 + i * 1_000, "Buy", 100.0, 100.0)
    early = m.reading(T0 + MIN)
    assert early.warming_up and not early.cascade and early.squeeze == "long"
    later = m.reading(T0 + HOUR)
    assert not later.warming_up


def test_the_window_and_the_hour_roll_on():
    m = LiquidationMonitor("BTCUSDT", window_ms=5 * MIN, since_ms=T0 - HOUR)  # a quiet hour
    for i in range(40):
        m.add(T0 + i * 1_000, "Buy", 100.0, 100.0)
    assert m.reading(T0 + MIN).cascade  # a burst after a quiet hour
    later = m.reading(T0 + 10 * MIN)  # out of the window, still in the hour
    assert later.volume == 0.0 and later.average > 0.0 and not later.cascade
    assert later.squeeze is None
    gone = m.reading(T0 + 2 * HOUR)
    assert gone.average == 0.0 and not m.events


def test_events_after_the_reading_time_are_not_counted():
    m = LiquidationMonitor("BTCUSDT")
    m.add(T0, "Buy", 1.0, 100.0)
    m.add(T0 + MIN, "Sell", 5.0, 100.0)
    r = m.reading(T0 + 1)
    assert (r.long_volume, r.short_volume) == (100.0, 0.0)


@pytest.mark.parametrize("side, size, price, field", [
    ("Long", 1.0, 100.0, "side"), ("Buy", 0.0, 100.0, "size/price"),
    ("Sell", 1.0, float("nan"), "size/price"),
])
def test_bad_liquidations_name_the_field(side, size, price, field):
    m = LiquidationMonitor("ETHUSDT")
    with pytest.raises(InputError) as err:
        m.add(T0, side, size, price)
    assert err.value.field == field and err.value.symbol == "ETHUSDT"
    assert not m.events


def test_a_flood_is_held_in_bounded_memory_and_summed_exactly():
    m = LiquidationMonitor("BTCUSDT")
    n = 100_000
    for i in range(n):  # 1,000 a second for 100 s, sides alternating
        m.add(T0 + i // 10 * 10 + i % 10, "Buy" if i % 2 else "Sell", 1.0, 100.0)
    assert len(m.events) <= 2 * 100  # two entries a second at most
    r = m.reading(T0 + 100_000)
    assert r.long_volume + r.short_volume == pytest.approx(n * 100.0)
    assert r.long_volume == pytest.approx(n / 2 * 100.0)


def test_an_event_joined_to_its_second_is_never_counted_before_it_happened():
    m = LiquidationMonitor("BTCUSDT")
    m.add(T0 + 100, "Buy", 1.0, 100.0)
    m.add(T0 + 900, "Buy", 2.0, 100.0)
    assert m.reading(T0 + 500).long_volume <= 100.0  # the one at +900 not yet
    assert m.reading(T0 + 900).long_volume == pytest.approx(300.0)
