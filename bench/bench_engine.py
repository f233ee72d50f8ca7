"""Speed of the sentiment engine, batch and live (issue targets in brackets).

Batch: one year of one-minute bars (525,600, generated: a random walk with volume) through
``compute_history`` with funding, open interest, long/short and Fear & Greed inputs
[<= 2 s], and the ratio to TA-Lib computing only the indicator list over the same bars in
the same run [<= 50x]. Each figure is the median of 3 runs after one warm-up call.

Live job step: ``compute_series`` for one new bar after a year of one-minute bars, from a
fresh engine state (recompute everything) and from the checkpoint (the engine over the new
bar only; indicators and as-of inputs are still computed over every bar), to choose the
live job's path with figures.

Live: ``MarketSentimentTracker.on_candle_close`` per bar after warm-up, with every indicator,
structure and score (and slower inputs fed as they come) [median <= 50 us]; memory held by
Python objects as bars stream in (tracemalloc), which must stay flat.
"""

from __future__ import annotations

import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sentiment.config import load_config  # noqa: E402
from sentiment.core.indicators.talib_set import compute_talib  # noqa: E402
from sentiment.history import compute_history, compute_series  # noqa: E402
from sentiment.tracker import MarketSentimentTracker  # noqa: E402

BARS = 525_600
LIVE_BARS = 200_000


def synthetic(n: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    times = pd.date_range("2023-01-01", periods=n, freq="min")
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.0004, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.0004, n)))
    volume = rng.lognormal(3, 1, n)
    candles = pd.DataFrame({"symbol": "BTCUSDT", "interval": "1", "open_time": times,
                            "open": open_, "high": high, "low": low, "close": close,
                            "volume": volume, "turnover": volume * close})
    hours = pd.date_range(times[0], times[-1], freq="h")
    funding_times = pd.date_range(times[0], times[-1], freq="8h")
    days = pd.date_range(times[0].normalize(), times[-1], freq="D")
    return {
        "candles": candles,
        "funding": pd.DataFrame({"symbol": "BTCUSDT", "funding_time": funding_times,
                                 "funding_rate": rng.normal(1e-4, 2e-4, len(funding_times))}),
        "open_interest": pd.DataFrame({"symbol": "BTCUSDT", "interval": "1h", "ts": hours,
                                       "open_interest": 5e4 * np.exp(np.cumsum(
                                           rng.normal(0, 0.01, len(hours))))}),
        "long_short": pd.DataFrame({"symbol": "BTCUSDT", "period": "1h", "ts": hours,
                                    "buy_ratio": rng.uniform(0.35, 0.7, len(hours))}),
        "fear_greed": pd.DataFrame({"ts": days, "value": rng.integers(5, 95, len(days))}),
    }


def median_time(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_batch(config) -> None:
    data = synthetic(BARS)
    candles = data["candles"]
    bars = {k: candles[k].to_numpy(dtype=np.float64)
            for k in ("open", "high", "low", "close", "volume")}

    def full():
        return compute_history(candles, data["funding"], data["open_interest"],
                               data["long_short"], data["fear_greed"], config)

    rows = full()  # warm-up: compiled code loaded, memory touched
    talib_only = median_time(lambda: compute_talib(bars))
    batch = median_time(full)
    print(f"batch: {len(rows):,} one-minute bars through compute_history: {batch:.2f} s "
          f"({len(rows) / batch / 1e6:.2f} M bars/s)  [target <= 2 s]")
    print(f"batch: TA-Lib alone on the indicator list: {talib_only:.3f} s; "
          f"ratio {batch / talib_only:.1f}x  [target <= 50x]")


def bench_resume(config) -> None:
    data = synthetic(BARS)
    candles = data["candles"]
    inputs = {k: data[k] for k in ("funding", "open_interest", "long_short", "fear_greed")}

    def run(resume=None, until=None):
        return compute_series(candles, config, symbol="BTCUSDT", interval="1", inputs=inputs,
                              resume=resume, checkpoint_until=until, with_features=True)

    before_last = candles["open_time"].iloc[-1]  # the close of the bar before the newest
    checkpoint = run(until=before_last).checkpoint
    fresh = median_time(lambda: run(until=before_last))
    resumed = median_time(lambda: run(resume=checkpoint, until=before_last))
    print(f"live job step, one new bar after {BARS:,} one-minute bars: from a fresh state "
          f"{fresh:.2f} s, from the checkpoint {resumed:.2f} s ({fresh / resumed:.1f}x)")


def bench_live(config) -> None:
    data = synthetic(LIVE_BARS, seed=1)
    records = data["candles"].to_dict("records")
    tracker = MarketSentimentTracker("BTCUSDT", "1", config)
    # Slower inputs arrive as they are published, interleaved with the bars.
    events = []
    for r in data["funding"].itertuples():
        events.append((r.funding_time, tracker.on_funding, (r.funding_time, r.funding_rate)))
    for r in data["open_interest"].itertuples():
        usable = r.ts + pd.Timedelta(hours=1)
        events.append((usable, tracker.on_open_interest, (r.ts, r.open_interest)))
    for r in data["long_short"].itertuples():
        usable = r.ts + pd.Timedelta(hours=1)
        events.append((usable, tracker.on_long_short, (r.ts, r.buy_ratio)))
    for r in data["fear_greed"].itertuples():
        events.append((r.ts, tracker.on_fear_greed, (r.ts, r.value)))
    events.sort(key=lambda e: e[0])
    e = 0
    warmup = 1_000
    memory = []
    tracemalloc.start()
    for i, candle in enumerate(records):
        close_time = candle["open_time"] + pd.Timedelta(minutes=1)
        while e < len(events) and events[e][0] <= close_time:
            events[e][1](*events[e][2])
            e += 1
        tracker.on_candle_close(candle)
        if i + 1 in (10_000, 50_000, 100_000, LIVE_BARS):
            memory.append((i + 1, tracemalloc.get_traced_memory()[0]))
    tracemalloc.stop()
    # tracemalloc slows every allocation; time a clean stretch too.
    clean = MarketSentimentTracker("BTCUSDT", "1", config)
    clean_times = np.empty(60_000)
    for i, candle in enumerate(records[:60_000]):
        start = time.perf_counter()
        clean.on_candle_close(candle)
        clean_times[i] = time.perf_counter() - start
    us = clean_times[warmup:] * 1e6
    print(f"live: on_candle_close median {np.median(us):.1f} us, p90 "
          f"{np.percentile(us, 90):.1f} us, p99 {np.percentile(us, 99):.1f} us over "
          f"{len(us):,} bars  [target median <= 50 us]")
    print("live: Python memory held while streaming (tracemalloc): " + ", ".join(
        f"{n:,} bars {b / 1e6:.2f} MB" for n, b in memory))
    size = len(__import__("json").dumps(tracker.checkpoint()))
    print(f"live: checkpoint size {size / 1e3:.0f} kB "
          f"({config.history.checkpoint_bars} bars kept)")


def main() -> None:
    config = load_config()
    bench_batch(config)
    bench_resume(config)
    bench_live(config)


if __name__ == "__main__":
    main()
