"""``compute_series``: the one computation of the backfill and the live job.

Resuming from an engine checkpoint gives the rows and transitions of a fresh run over the
same bars, in several steps as in one; a checkpoint that no longer fits is refused.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from replay.server import load_bundle
from sentiment.config import load_config
from sentiment.errors import CheckpointMismatch
from sentiment.history import compute_history_and_transitions, compute_series

SYMBOL = "BTCUSDT"
N = 1500  # past every warm-up and a few regime changes


@pytest.fixture(scope="module")
def config():
    return load_config()


@pytest.fixture(scope="module")
def data():
    bundle = load_bundle()
    candles = bundle["candles"]
    candles = candles[candles["symbol"] == SYMBOL].sort_values("open_time").head(N)
    inputs = {"funding": bundle["funding"], "open_interest": bundle["open_interest"],
              "long_short": bundle["long_short"], "fear_greed": bundle["fear_greed"]}
    return candles.reset_index(drop=True), inputs


def _run(data, config, n, **kw):
    candles, inputs = data
    return compute_series(candles.head(n), config, symbol=SYMBOL, interval="60",
                          inputs=inputs, **kw)


def _close(candles, i):
    return (pd.Timestamp(candles["open_time"].iloc[i]) + pd.Timedelta(hours=1)).to_pydatetime()


def _assert_same(a: pd.DataFrame, b: pd.DataFrame):
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    assert list(a.columns) == list(b.columns)
    for column in a.columns:
        x, y = a[column], b[column]
        if pd.api.types.is_float_dtype(x):
            np.testing.assert_allclose(x.to_numpy(dtype=float, na_value=np.nan),
                                       y.to_numpy(dtype=float, na_value=np.nan),
                                       rtol=0, atol=1e-9, err_msg=column)
        else:
            assert x.astype(object).where(x.notna(), None).tolist() == \
                y.astype(object).where(y.notna(), None).tolist(), column


def test_the_batch_api_is_compute_series_from_a_fresh_state(data, config):
    candles, inputs = data
    rows, trans = compute_history_and_transitions(candles, config=config, symbol=SYMBOL,
                                                  interval="60", **inputs)
    series = _run(data, config, N)
    _assert_same(series.rows, rows)
    _assert_same(series.transitions, trans)
    assert not series.resumed and len(series.transitions) > 0


def test_resuming_in_steps_gives_the_rows_of_one_fresh_run(data, config):
    candles, _ = data
    full = _run(data, config, N)
    cuts = [700, 703, 950, 1320, N]
    checkpoint, parts, transitions = None, [], []
    for i, n in enumerate(cuts):
        # Fed up to ``n`` bars, the checkpoint taken a few bars before the newest (as the
        # live job does when a slower source is not yet in).
        until = _close(candles, n - 1 - (i % 3))
        step = _run(data, config, n, resume=checkpoint, checkpoint_until=until)
        assert step.resumed == (checkpoint is not None)
        done = 0 if checkpoint is None else checkpoint["n_bars"]
        assert len(step.rows) == n - done
        assert step.checkpoint_time == until
        # The rows after the checkpoint are provisional: the next step rewrites them.
        keep = step.rows["timestamp"] <= pd.Timestamp(until)
        parts.append(step.rows[keep.to_numpy()])
        transitions.append(step.transitions[
            (step.transitions["timestamp"] <= pd.Timestamp(until)).to_numpy()])
        last = step.rows[~keep.to_numpy()]
        checkpoint = json.loads(json.dumps(step.checkpoint))  # through JSON, as stored
    _assert_same(pd.concat(parts + [last]), full.rows)
    _assert_same(pd.concat(transitions + [step.transitions[
        (step.transitions["timestamp"] > pd.Timestamp(until)).to_numpy()]]), full.transitions)


def test_no_new_final_bar_no_new_checkpoint(data, config):
    candles, _ = data
    first = _run(data, config, 700, checkpoint_until=_close(candles, 697))
    # Two more bars, but the slower data are still not in after bar 697.
    again = _run(data, config, 702, resume=first.checkpoint,
                 checkpoint_until=_close(candles, 697))
    assert again.checkpoint is None and again.checkpoint_time is None
    assert len(again.rows) == 4  # the provisional bars, recomputed
    _assert_same(again.rows.head(2), first.rows.tail(2))


def test_the_checkpoint_is_small_plain_json(data, config):
    candles, _ = data
    step = _run(data, config, 900, checkpoint_until=_close(candles, 899))
    text = json.dumps(step.checkpoint, allow_nan=False)
    assert len(text) < 20_000
    assert step.checkpoint["n_bars"] == 900


def test_a_checkpoint_that_no_longer_fits_is_refused(data, config):
    candles, _ = data
    checkpoint = _run(data, config, 800, checkpoint_until=_close(candles, 799)).checkpoint
    with pytest.raises(CheckpointMismatch, match="version"):
        _run(data, config, 900, resume={**checkpoint, "version": 1})
    other = dataclasses.replace(config, weights=dataclasses.replace(
        config.weights, trend=0.30, momentum=0.15))
    with pytest.raises(CheckpointMismatch, match="configuration"):
        _run(data, other, 900, resume=checkpoint)
    # A bar before the checkpoint went missing (or arrived late): the bars no longer
    # continue it.
    with pytest.raises(CheckpointMismatch, match="no longer continue"):
        compute_series(candles.head(900).drop(index=10), config, symbol=SYMBOL,
                       interval="60", inputs=data[1], resume=checkpoint)
    with pytest.raises(CheckpointMismatch, match="no longer continue"):
        _run(data, config, 700, resume=checkpoint)


def test_nothing_after_a_bar_changes_its_row(data, config):
    """Point in time: the rows of the first bars do not move when later bars, or later
    slower data, are added."""
    candles, inputs = data
    short = _run(data, config, 1000).rows
    # Only the slower data published by the close of bar 1000 (its time plus its lag
    # at most: funding at settlement, OI and L/S one period after their stamp).
    cut = pd.Timestamp(candles["open_time"].iloc[999]) + pd.Timedelta(hours=1)
    column = {"funding": "funding_time", "open_interest": "ts", "long_short": "ts",
              "fear_greed": "ts"}
    early = compute_series(candles.head(1000), config, symbol=SYMBOL, interval="60",
                           inputs={k: v[v[column[k]] <= cut] for k, v in inputs.items()}).rows
    _assert_same(short, _run(data, config, N).rows.head(1000))
    _assert_same(early, short)
