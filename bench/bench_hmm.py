"""Speed of the HMM regime layer on the recorded data (BTCUSDT, hourly).

0. One retrain with the math libraries' thread pools uncapped (as before the cap) and
   capped to one thread (``hmm.FIT_THREADS``), on an idle machine and with every core
   kept busy by another process (a machine under load).
1. Retrain time for one symbol at the default window (every K in hmm.n_states, every
   restart).
2. Forward-filter cost per bar (the incremental update the live job uses, and the batch
   filter).
3. Walk-forward over the bundled year: a model at every weekly boundary, then the HMM
   columns for every bar (what the sentiment_history backfill adds).
"""

from __future__ import annotations

import multiprocessing
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from replay.server import load_bundle  # noqa: E402
from sentiment import hmm  # noqa: E402
from sentiment.config import load_config  # noqa: E402
from sentiment.history import compute_history, hmm_features  # noqa: E402


def _spin(stop) -> None:
    while not stop.is_set():
        sum(range(10_000))


def _one_fit(features, boundary, config, threads) -> float:
    hmm.FIT_THREADS = threads
    try:
        start = time.perf_counter()
        hmm.train_at(features, boundary, config, symbol="BTCUSDT", interval="60")
        return time.perf_counter() - start
    finally:
        hmm.FIT_THREADS = 1


def thread_cap(features, boundary, config) -> None:
    for loaded in (False, True):
        stop = multiprocessing.Event()
        load = [multiprocessing.Process(target=_spin, args=(stop,), daemon=True)
                for _ in range(multiprocessing.cpu_count() if loaded else 0)]
        for p in load:
            p.start()
        try:
            uncapped = _one_fit(features, boundary, config, None)
            capped = _one_fit(features, boundary, config, 1)
        finally:
            stop.set()
            for p in load:
                p.join()
        what = f"{len(load)} busy processes" if loaded else "idle machine"
        print(f"retrain, {what}: uncapped thread pools {uncapped:.2f} s, one thread "
              f"{capped:.2f} s ({uncapped / capped:.1f}x)")


def main() -> None:
    config = load_config()
    bundle = load_bundle()
    candles = bundle["candles"][bundle["candles"].symbol == "BTCUSDT"].sort_values(
        "open_time").assign(interval="60")
    rows = compute_history(candles, bundle["funding"],
                           bundle["open_interest"].assign(interval="1h"), None, None, config)
    features = hmm_features(rows, candles["volume"].to_numpy(), config)
    bounds = hmm.boundaries(features.index[0], features.index[-1])
    h = config.hmm
    thread_cap(features, bounds[20], config)

    times = []
    for b in bounds[20:25]:
        start = time.perf_counter()
        model = hmm.train_at(features, b, config, symbol="BTCUSDT", interval="60")
        times.append(time.perf_counter() - start)
    print(f"retrain, one symbol, window {h.window_bars} bars, K in {list(h.n_states)} x "
          f"{h.restarts} restarts: median {statistics.median(times):.2f} s "
          f"(chosen K={model.n_states}, labels {model.labels})")

    f = hmm.ForwardFilter(model)
    x = features[model.features].to_numpy()[-2000:]
    start = time.perf_counter()
    for row in x:
        f.update(row)
    per_bar = (time.perf_counter() - start) / len(x)
    start = time.perf_counter()
    model.filter(features.iloc[-2000:])
    batch = (time.perf_counter() - start) / 2000
    print(f"forward filter, K={model.n_states}: {per_bar * 1e6:.0f} us per bar incremental, "
          f"{batch * 1e6:.0f} us per bar in batch")

    start = time.perf_counter()
    models = [m for b in bounds
              if (m := hmm.train_at(features, b, config, symbol="BTCUSDT", interval="60"))]
    trained = time.perf_counter() - start
    start = time.perf_counter()
    cols = hmm.apply_models(features, models)
    applied = time.perf_counter() - start
    print(f"walk-forward over the bundled year (BTCUSDT 60): {len(models)} models in "
          f"{trained:.1f} s, HMM columns for {cols['hmm_regime'].notna().sum():,} bars in "
          f"{applied:.2f} s; the demo's sentiment_job does this for 2 symbols x 2 intervals")


if __name__ == "__main__":
    main()
