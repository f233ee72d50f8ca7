"""``sentiment evaluate`` over a real database built from the recorded data (the dashboard's
test database), and over a candles CSV file without any database."""

from __future__ import annotations

import datetime as dt
import json
import re

import pandas as pd
import pytest

from replay.server import load_bundle
from sentiment.cli import main as cli
from sentiment.config import load_config
from sentiment.core.evaluation import METRICS, evaluate
from sentiment.history import compute_history
from sentiment.io.store import Store

pytestmark = pytest.mark.integration


def _rows(db: str, symbol: str, interval: str) -> pd.DataFrame:
    return Store(db).read("sentiment_history", where={"symbol": symbol, "interval": interval},
                          read_only=True)


def _plain(obj):
    """What the JSON output of an evaluation reads back as."""
    return json.loads(json.dumps(obj))


def test_text_report_names_every_metric_for_every_symbol(dashboard_db, capsys):
    assert cli(["evaluate", "--db", dashboard_db]) == 0
    lines = capsys.readouterr().out.splitlines()
    heads = [line for line in lines if re.match(r"^[A-Z]+USDT 60 ", line)]
    assert [h.split()[0] for h in heads] == ["BTCUSDT", "ETHUSDT"]
    for name in METRICS:  # one line per metric in each symbol's report
        assert sum(line.startswith(name + " ") for line in lines) == 2, name


def test_json_equals_the_evaluation_of_the_stored_rows(dashboard_db, capsys):
    assert cli(["evaluate", "--db", dashboard_db, "--symbol", "ETHUSDT", "--interval", "240",
                "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    want = _plain(evaluate(_rows(dashboard_db, "ETHUSDT", "240"), "240").to_dict())
    assert got["metrics"] == want["metrics"]
    assert got == want
    assert got["symbol"] == "ETHUSDT" and got["interval"] == "240"
    # Several symbols: a list, one object each, in the configured order.
    assert cli(["evaluate", "--db", dashboard_db, "--json"]) == 0
    both = json.loads(capsys.readouterr().out)
    assert [e["symbol"] for e in both] == ["BTCUSDT", "ETHUSDT"]
    assert both[0] == _plain(evaluate(_rows(dashboard_db, "BTCUSDT", "60"), "60").to_dict())
    assert both[0]["hmm"]["bars"] > 0  # the stored 1h rows carry the walk-forward HMM labels


def test_from_and_to_restrict_the_rows(dashboard_db, capsys):
    rows = _rows(dashboard_db, "BTCUSDT", "60")
    assert cli(["evaluate", "--db", dashboard_db, "--symbol", "BTCUSDT", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bars"] == len(rows)
    # A date as --to takes in the bars closing on that day.
    assert cli(["evaluate", "--db", dashboard_db, "--symbol", "BTCUSDT", "--json",
                "--from", "2022-03-10", "--to", "2022-03-19"]) == 0
    got = json.loads(capsys.readouterr().out)
    t = rows["timestamp"]
    inside = rows[(t >= dt.datetime(2022, 3, 10)) & (t < dt.datetime(2022, 3, 20))]
    assert got["bars"] == len(inside) == 240
    assert got == _plain(evaluate(inside, "60").to_dict())
    # ISO times (an offset converted to UTC) bound the bar closes inclusively.
    assert cli(["evaluate", "--db", dashboard_db, "--symbol", "BTCUSDT", "--json",
                "--from", "2022-03-10T12:00:00+02:00", "--to", "2022-03-12T10:00"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["bars"] == len(rows[(t >= dt.datetime(2022, 3, 10, 10))
                                   & (t <= dt.datetime(2022, 3, 12, 10))]) == 49
    assert cli(["evaluate", "--db", dashboard_db, "--from", "2023-01-01"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no sentiment rows for BTCUSDT" in err


def test_html_report_draws_each_regime_that_occurs(dashboard_db, tmp_path, capsys):
    events = tmp_path / "events.csv"
    events.write_text("name,start,end\nMid-March week,2022-03-14,2022-03-20\n"
                      "FTX collapse,2022-11-08,2022-11-10\n", encoding="utf-8")
    report = tmp_path / "report.html"
    assert cli(["evaluate", "--db", dashboard_db, "--symbol", "ETHUSDT", "--html",
                str(report), "--events", str(events)]) == 0
    captured = capsys.readouterr()
    assert "metric" in captured.out and str(report) in captured.err
    text = report.read_text(encoding="utf-8")
    assert "plotly" in text.lower() and text.count("<h2>") == 1
    occurring = set(_rows(dashboard_db, "ETHUSDT", "60")["regime"].dropna())
    drawn = {name for name in re.findall(r'"name":"([a-z ]+)"', text) if name != "close"}
    assert occurring and drawn == {r.replace("_", " ") for r in occurring}
    for regime in occurring:
        assert f"<td>{regime}</td>" in text  # its row of the per-regime table
    assert "<td>Mid-March week</td>" in text and "FTX collapse" not in text
    assert "1 of the 2 events fall outside these rows" in text


def test_a_missing_or_empty_database_says_so_in_one_line(tmp_path, capsys):
    missing = tmp_path / "missing.duckdb"
    assert cli(["evaluate", "--db", str(missing)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith(
        f"no database at {missing}")
    assert not missing.exists()  # read-only: nothing created
    empty = tmp_path / "empty.duckdb"
    Store(empty).init()
    assert cli(["evaluate", "--db", str(empty), "--symbol", "BTCUSDT"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "make demo" in err


def _bundle_csvs(tmp_path, bars: int):
    """The first ``bars`` BTCUSDT hours of the bundled data, its funding and Fear & Greed,
    as a user's CSV files (ISO times, no symbol column); and the frames themselves."""
    bundle = load_bundle()
    candles = bundle["candles"][bundle["candles"]["symbol"] == "BTCUSDT"].head(bars)
    funding = bundle["funding"][bundle["funding"]["symbol"] == "BTCUSDT"]
    paths = {name: tmp_path / f"{name}.csv" for name in ("candles", "funding", "fng")}
    candles.drop(columns=["symbol"]).to_csv(paths["candles"], index=False)
    funding.to_csv(paths["funding"], index=False)
    bundle["fear_greed"].to_csv(paths["fng"], index=False)
    return paths, candles, funding, bundle["fear_greed"]


def test_candles_csv_is_evaluated_without_a_database(tmp_path, capsys, monkeypatch):
    missing = tmp_path / "none.duckdb"
    monkeypatch.setenv("SENTIMENT_DB", str(missing))
    paths, candles, funding, fng = _bundle_csvs(tmp_path, 3000)
    assert cli(["evaluate", "--candles", str(paths["candles"]), "--symbol", "BTCUSDT",
                "--funding", str(paths["funding"]), "--fear-greed", str(paths["fng"]),
                "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    rows = compute_history(candles.assign(interval="60"), funding, None, None, fng,
                           load_config())
    assert got == _plain(evaluate(rows, "60").to_dict())
    assert got["bars"] == 3000 and got["symbol"] == "BTCUSDT" and got["hmm"] == {}
    assert not missing.exists()
    # Without the slower inputs the macro and exchange tiers drop out: other scores.
    assert cli(["evaluate", "--candles", str(paths["candles"]), "--symbol", "BTCUSDT",
                "--json", "--to", "2022-03-31"]) == 0
    bare = json.loads(capsys.readouterr().out)
    assert bare["end"] == "2022-03-31T23:00:00"
    assert bare["metrics"] != got["metrics"]
    # --symbol is required with --candles: one line, exit 1.
    assert cli(["evaluate", "--candles", str(paths["candles"])]) == 1
    assert "--symbol" in capsys.readouterr().err


@pytest.mark.slow
def test_candles_csv_with_the_walk_forward_hmm(tmp_path, capsys):
    paths, *_ = _bundle_csvs(tmp_path, 1500)
    assert cli(["evaluate", "--candles", str(paths["candles"]), "--symbol", "BTCUSDT",
                "--hmm", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    # The first model needs min_bars closed bars before a Monday: later bars are labelled.
    assert 0 < got["hmm"]["bars"] < 1500
    assert sum(got["hmm"]["label_shares"].values()) == pytest.approx(1.0)
