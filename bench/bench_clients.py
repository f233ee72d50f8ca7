"""Client figures against the replay exchange on 127.0.0.1.

* one 1000-row kline page: HTTP round trip + JSON parse + validation into a DataFrame
  (median of 50);
* a whole year of 1h candles for one symbol (9 pages) and of synthetic open interest
  (44 pages of 200).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from replay.server import BUNDLE_END, BUNDLE_START, ReplayExchange  # noqa: E402
from sentiment.io.sources.bybit import BybitClient  # noqa: E402


def main() -> None:
    with ReplayExchange(port=0) as exchange:
        client = BybitClient(exchange.base_url)
        start = BUNDLE_START
        end = start.replace(month=2, day=11, hour=16)  # 1000 hourly bars
        client.klines("BTCUSDT", "60", start, end)  # warm up the connection
        page_times = []
        for _ in range(50):
            t0 = time.perf_counter()
            frame = client.klines("BTCUSDT", "60", start, end)
            page_times.append(time.perf_counter() - t0)
        assert len(frame) == 1000, len(frame)
        print("replay exchange on 127.0.0.1")
        median_ms = statistics.median(page_times) * 1e3
        p90_ms = sorted(page_times)[44] * 1e3
        print(f"  1000-row kline page, fetch + parse: median {median_ms:.1f} ms, "
              f"p90 {p90_ms:.1f} ms")
        t0 = time.perf_counter()
        year = client.klines("BTCUSDT", "60", BUNDLE_START, BUNDLE_END)
        took = time.perf_counter() - t0
        print(f"  one year of 1h candles ({len(year)} rows): {took:.2f} s")
        t0 = time.perf_counter()
        oi = client.open_interest("BTCUSDT", "1h", BUNDLE_START, BUNDLE_END)
        took = time.perf_counter() - t0
        print(f"  one year of 1h open interest ({len(oi)} rows, pages of 200): {took:.2f} s")


if __name__ == "__main__":
    main()
