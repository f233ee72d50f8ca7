"""sentiment_history as a Dagster asset: real runs over the replay exchange's data in a
temporary DuckDB file; the rows equal the core's, whatever the partitioning."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
from dagster import DagsterInstance

from orchestration.definitions import build_definitions
from sentiment.cli import main as cli
from sentiment.config import load_config
from sentiment.history import compute_history_and_transitions
from sentiment.io.store import Slice, Store
from sentiment.models import HISTORY_COLUMNS
from sentiment.services.pipeline import load_candles, load_inputs
from sentiment.settings import get_settings

pytestmark = pytest.mark.integration

FIRST, LAST = "2022-03-01", "2022-03-20"


def _range(first, last, symbols=("BTCUSDT", "ETHUSDT")):
    return {"dagster/asset_partition_range_start": f"{first}|{symbols[0]}",
            "dagster/asset_partition_range_end": f"{last}|{symbols[-1]}"}


@pytest.fixture
def defs(clean_replay, db_path):
    settings = dataclasses.replace(get_settings(), db_path=db_path,
                                   bybit_base_url=clean_replay.base_url,
                                   fear_greed_url=clean_replay.fear_greed_url)
    return build_definitions(load_config(), settings)


def run(defs, job, *, partition=None, tags=None):
    result = defs.resolve_job_def(job).execute_in_process(
        partition_key=partition, tags=tags, raise_on_error=False,
        instance=DagsterInstance.ephemeral())
    assert result.success, job
    return result


@pytest.fixture
def ingested(defs, db_path, seeded):
    seeded(defs, db_path, ("market_data_job", {"tags": _range(FIRST, LAST)}),
           ("fear_greed_job", {"tags": {"dagster/asset_partition_range_start": FIRST,
                                        "dagster/asset_partition_range_end": LAST}}))
    return defs


def _sorted(frame):
    return frame.sort_values(["symbol", "interval", "timestamp"], ignore_index=True)


@pytest.mark.slow
def test_backfill_equals_the_core_and_does_not_depend_on_partitioning(ingested, db_path):
    result = run(ingested, "sentiment_job", tags=_range(FIRST, LAST))
    assert all(c.passed for c in result.get_asset_check_evaluations())
    store = Store(db_path)
    whole = _sorted(store.read("sentiment_history"))
    transitions = store.read("regime_transitions")
    assert list(whole.columns) == list(HISTORY_COLUMNS)
    assert len(whole) == 20 * (24 + 6) * 2
    config = load_config()
    for symbol in ("BTCUSDT", "ETHUSDT"):
        inputs = load_inputs(store, config, symbol)
        for interval in ("60", "240"):
            core, trans = compute_history_and_transitions(
                load_candles(store, symbol, interval), config=config, **inputs)
            mine = whole[(whole.symbol == symbol) & (whole.interval == interval)]
            assert len(mine) == len(core)
            for column in ("sentiment_score", "confidence", "trend_score", "funding_rate"):
                a = mine[column].to_numpy(dtype=float, na_value=float("nan"))
                b = core[column].to_numpy(dtype=float, na_value=float("nan"))
                assert ((a == b) | ((a != a) & (b != b))).all(), column
            assert mine["regime"].fillna("-").tolist() == core["regime"].fillna("-").tolist()
            stored_trans = transitions[(transitions.symbol == symbol)
                                       & (transitions.interval == interval)]
            assert len(stored_trans) == len(trans)

    # Day by day, in reverse order, gives the same table; a re-run changes nothing.
    wipe = [Slice(frame.iloc[:0], "2000-01-01", "2100-01-01", {})
             for frame in (whole, transitions)]
    store.write(replace={"sentiment_history": [wipe[0]], "regime_transitions": [wipe[1]]})
    assert store.read("sentiment_history").empty
    for day in reversed(pd.date_range(FIRST, LAST).strftime("%Y-%m-%d")):
        for symbol in ("ETHUSDT", "BTCUSDT"):
            run(ingested, "sentiment_job", partition=f"{day}|{symbol}")
    run(ingested, "sentiment_job", partition=f"{FIRST}|BTCUSDT")
    again = _sorted(store.read("sentiment_history"))
    pd.testing.assert_frame_equal(again, whole)
    assert len(store.read("regime_transitions")) == len(transitions)


def test_status_block_and_json(ingested, db_path, capsys):
    run(ingested, "sentiment_job", tags=_range(FIRST, LAST))
    assert cli(["status", "--db", db_path, "--symbol", "BTCUSDT"]) == 0
    block = capsys.readouterr().out
    lines = block.splitlines()
    assert lines[0] == "Symbol: BTCUSDT"
    assert lines[1].startswith("Regime: ") and "bars, confidence: " in lines[1]
    assert lines[2].startswith("Sentiment: ") and "[" in lines[2]
    assert "Funding: +0.0" in lines[4] and "%/4h" in lines[4] and "FnG: " in lines[4]
    assert cli(["status", "--db", db_path, "--json", "--interval", "240"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["symbol"] for r in rows] == ["BTCUSDT", "ETHUSDT"]
    assert all(list(r) == list(HISTORY_COLUMNS) and r["interval"] == "240" for r in rows)
    assert rows[0]["timestamp"] == "2022-03-21T00:00:00"


def test_status_says_na_for_missing_inputs_and_explains_an_empty_db(tmp_path, capsys):
    from sentiment.services.status import format_status

    row = {c: None for c in HISTORY_COLUMNS} | {
        "symbol": "BTCUSDT", "interval": "60", "timestamp": pd.Timestamp("2022-01-01 05:00"),
        "regime": "ranging", "regime_duration_bars": 3, "regime_confidence": 0.75,
        "sentiment_score": 0.62, "confidence": 0.7, "trend_score": 0.78,
        "momentum_score": 0.45, "volatility_score": 0.35, "volume_flow_score": 0.52,
    }
    block = format_status(row)
    assert "Sentiment: +0.62 [=========>    ] Bullish" in block
    assert "Funding: n/a  OI: n/a  L/S: n/a  FnG: n/a" in block
    empty = str(tmp_path / "empty.duckdb")
    Store(empty).init()
    assert cli(["status", "--db", empty]) == 1
    assert "make demo" in capsys.readouterr().err
