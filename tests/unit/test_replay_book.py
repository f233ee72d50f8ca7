"""The replay WebSocket's DERIVED order books read like a real book: the imbalance the stream
computes from them swings around 0, leaning with the hour, instead of sitting between -0.4 and
-0.9 (which pushed every bar's exchange score bearish)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from replay.server import BUNDLE_DIR, _market
from replay.ws import MarketSource
from sentiment.services.stream import StreamRecorder


@pytest.fixture(scope="module")
def market():
    return _market(BUNDLE_DIR)


def stream_samples(market, start: str, hours: int, step_ms: int = 60_000) -> pd.DataFrame:
    """The OBI samples the stream's recorder takes from one replay connection's book pushes
    (snapshot, then a poll every ``step_ms`` of replay time; the book's sizes change every
    replay minute), both symbols."""
    now = {"ms": 0}
    recorder = StreamRecorder(list(market.symbols), local_clock=lambda: now["ms"] / 1000)
    session = MarketSource(market).session()
    topics = [f"orderbook.50.{symbol}" for symbol in market.symbols]
    t0 = int(pd.Timestamp(start).value // 1_000_000)
    now["ms"] = t0
    for topic in topics:
        for message in session.on_subscribe(topic, t0):
            assert recorder.on_message(message) is None
    for t in range(t0 + step_ms, t0 + hours * 3_600_000, step_ms):
        now["ms"] = t
        for message in session.poll(topics, t):
            assert recorder.on_message(message) is None  # no gap, no resync
    assert recorder.counters.bad_messages == 0
    samples = pd.DataFrame(recorder.pending["orderbook_imbalance"])
    samples["ts"] = pd.to_datetime(samples["ts"], unit="ms")
    return samples


@pytest.mark.parametrize("start", ["2022-03-01", "2022-11-08"])
def test_the_derived_book_imbalance_is_centred_like_a_real_books(market, start):
    samples = stream_samples(market, start, hours=48)
    for symbol, obi in samples.groupby("symbol")["obi"]:
        assert len(obi) > 2500, symbol  # a sample per poll that changed the book
        assert abs(obi.mean()) < 0.1, (symbol, obi.mean())  # was -0.72 .. -0.73
        assert 0.35 < (obi > 0).mean() < 0.65, symbol  # both signs, about equally often
        assert obi.quantile(0.1) < -0.2 and obi.quantile(0.9) > 0.2, symbol
        assert -1 < obi.min() and obi.max() < 1, symbol


def test_the_derived_book_still_leans_with_the_hour(market):
    """Bids outweigh asks in rising hours and the other way round: a bar's mean OBI (what the
    exchange score reads) follows the hour's direction, by a margin much smaller than the
    spread of the samples."""
    samples = stream_samples(market, "2022-05-09", hours=72)
    for symbol, rows in samples.groupby("symbol"):
        sym = market.symbols[symbol]
        hour_ms = ((rows["ts"].dt.floor("h") - pd.Timestamp(0))
                   // pd.Timedelta(milliseconds=1)).to_numpy()
        index = np.searchsorted(sym.hour_ms, hour_ms, side="right") - 1
        bars = pd.DataFrame({"hour": hour_ms, "rising": sym.close[index] >= sym.open[index],
                             "obi": rows["obi"].to_numpy()}).groupby("hour").agg(
            rising=("rising", "first"), obi=("obi", "mean"))
        up, down = bars.loc[bars["rising"], "obi"], bars.loc[~bars["rising"], "obi"]
        assert len(up) > 10 and len(down) > 10
        assert 0.03 < up.mean() < 0.3 and -0.3 < down.mean() < -0.03, (up.mean(), down.mean())
