"""Regime and composite quality over the full recorded hourly histories.

Computes the whole sentiment history of BTCUSDT (2020-03 .. 2025-05) and ETHUSDT
(2021-03 .. 2025-05) from the recorded Bybit candles with the recorded funding (2021-2023)
and Fear & Greed, with the walk-forward HMM layer, and prints the evaluation
(``sentiment.core.evaluation``) beside the figures the first regime machine gave on the same
data. Tuning used BTCUSDT only; ETHUSDT is the check.

    python bench/bench_quality.py DATA_DIR [--no-hmm] [--symbol BTCUSDT]

DATA_DIR holds ``klines/bybit_linear_{SYMBOL}_60_full.csv``, ``funding/bybit_{SYMBOL}_
funding_2021-2023_supervik.csv`` (stamped UTC+3, shifted here) and
``fng/fear_greed_index_*.csv``: the recordings named in the replay bundle's README.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sentiment.config import load_config  # noqa: E402
from sentiment.core import evaluation  # noqa: E402
from sentiment.history import compute_history, with_walk_forward_hmm  # noqa: E402
from sentiment.io.csvfiles import read_candles, read_fear_greed, read_funding  # noqa: E402

#: The first regime machine on the same data (measured before this change, with the HMM).
BEFORE = {
    "BTCUSDT": {"transitions_per_month": 57.0, "stale_share": 0.16,
                "contradiction_share": 0.015, "crash_catch_rate": 0.79,
                "pump_catch_rate": 0.64, "fwd_vol_ratio": 1.30, "very_bull_share": 0.0,
                "very_bear_share": 0.0, "breakout_max_bars": 25},
    "ETHUSDT": {"transitions_per_month": 56.0, "stale_share": 0.17,
                "contradiction_share": 0.029, "crash_catch_rate": 0.67,
                "pump_catch_rate": 0.53, "fwd_vol_ratio": 1.28, "very_bull_share": 0.0,
                "very_bear_share": 0.0, "breakout_max_bars": 23},
}
EVENTS = ROOT / "docs" / "events.csv"


def history(data: Path, symbol: str, config, use_hmm: bool):
    candles = read_candles(data / "klines" / f"bybit_linear_{symbol}_60_full.csv", symbol,
                           "60")
    funding_file = data / "funding" / f"bybit_{symbol}_funding_2021-2023_supervik.csv"
    funding = read_funding(funding_file, symbol, shift_hours=3) if funding_file.exists() \
        else None
    fng_files = sorted((data / "fng").glob("fear_greed_index_*.csv"))
    fng = read_fear_greed(fng_files[0]) if fng_files else None
    start = time.perf_counter()
    rows = compute_history(candles, funding, None, None, fng, config)
    took = time.perf_counter() - start
    if use_hmm:
        start = time.perf_counter()
        rows, models = with_walk_forward_hmm(rows, candles["volume"].to_numpy(), config,
                                             symbol=symbol, interval="60")
        took_hmm = time.perf_counter() - start
        print(f"{symbol}: {len(rows):,} bars computed in {took:.2f} s; {len(models)} weekly "
              f"HMM models trained and applied in {took_hmm:.1f} s")
    else:
        print(f"{symbol}: {len(rows):,} bars computed in {took:.2f} s (no HMM)")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="directory of the recorded data")
    parser.add_argument("--symbol", action="append", default=None)
    parser.add_argument("--no-hmm", action="store_true", help="skip the HMM layer")
    args = parser.parse_args()
    config = load_config()
    events = evaluation.read_events(__import__("pandas").read_csv(EVENTS))
    for symbol in args.symbol or ["BTCUSDT", "ETHUSDT"]:
        rows = history(args.data, symbol, config, not args.no_hmm)
        ev = evaluation.evaluate(rows, "60", events=events)
        print(evaluation.format_report(ev, BEFORE.get(symbol)))
        print()


if __name__ == "__main__":
    main()
