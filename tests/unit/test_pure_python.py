"""The engine runs without numba's compiler (``NUMBA_DISABLE_JIT=1``, for debugging in pure
Python) and computes the same history as the compiled kernels."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pandas as pd

from replay.server import load_bundle
from sentiment.config import load_config
from sentiment.history import compute_history

BARS = 300

# Builds the same short history in a child process; numba reads NUMBA_DISABLE_JIT at import.
_CHILD = textwrap.dedent(f"""
    import sys
    import numba
    from numba.extending import is_jitted

    from replay.server import load_bundle
    from sentiment.config import load_config
    from sentiment.core import engine
    from sentiment.history import compute_history

    assert numba.config.DISABLE_JIT
    assert not any(is_jitted(f) for f in vars(engine).values() if callable(f))
    data = load_bundle()
    candles = data["candles"]
    candles = candles[candles["symbol"] == "BTCUSDT"].head({BARS}).assign(interval="60")
    compute_history(candles, data["funding"], data["open_interest"], data["long_short"],
                    data["fear_greed"], load_config()).to_pickle(sys.argv[1])
""")


def _short_history() -> pd.DataFrame:
    data = load_bundle()
    candles = data["candles"]
    candles = candles[candles["symbol"] == "BTCUSDT"].head(BARS).assign(interval="60")
    return compute_history(candles, data["funding"], data["open_interest"],
                           data["long_short"], data["fear_greed"], load_config())


def test_the_engine_without_jit_computes_the_compiled_history(tmp_path):
    out = tmp_path / "history.pkl"
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    subprocess.run([sys.executable, "-c", _CHILD, str(out)], check=True, env=env,
                   capture_output=True, text=True, timeout=240)
    pure = pd.read_pickle(out)
    compiled = _short_history()
    assert len(compiled) == BARS
    assert compiled["sentiment_score"].notna().sum() > BARS // 2  # past the warm-up
    assert compiled["regime"].nunique() > 1
    pd.testing.assert_frame_equal(pure, compiled, check_exact=False, rtol=1e-9, atol=1e-12)
