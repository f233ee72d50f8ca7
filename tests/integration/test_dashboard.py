"""The Streamlit dashboard through streamlit.testing's AppTest, over a real database built
from the recorded data: every page renders, the selectors change what is shown and live in
the URL, an empty or missing database explains itself, and reading never blocks a writer."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from sentiment.io.store import Store

pytestmark = pytest.mark.integration

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
PAGES = ("pages/overview.py", "pages/history.py", "pages/exchange.py", "pages/quality.py")


@pytest.fixture
def app(dashboard_db, clean_replay, monkeypatch):
    monkeypatch.setenv("SENTIMENT_DB", dashboard_db)
    monkeypatch.setenv("BYBIT_BASE_URL", clean_replay.base_url)
    st.cache_data.clear()

    def make(page: str = PAGES[0], **params) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=60)
        for key, value in params.items():
            at.query_params[key] = value
        at.run()
        if page != PAGES[0]:
            at.switch_page(page)
            at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    yield make
    st.cache_data.clear()


def _latest(db: str, interval: str) -> dict[str, dict]:
    frame = Store(db).query("SELECT * FROM latest_sentiment WHERE interval = ?", [interval])
    return {r["symbol"]: r for r in frame.to_dict("records")}


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _values(array) -> np.ndarray:
    """A Plotly JSON array: a list, or typed-array base64 ({"dtype", "bdata"})."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array)


def test_overview_shows_each_symbols_latest_snapshot(app, dashboard_db):
    at = app()
    latest = _latest(dashboard_db, "60")
    regimes = [m for m in at.metric if m.label == "Regime"]
    assert [m.value for m in regimes] == [
        latest[s]["regime"].replace("_", " ").capitalize() for s in ("BTCUSDT", "ETHUSDT")]
    assert [m.delta for m in regimes] == [
        f"{latest[s]['regime_duration_bars']} bars, confidence "
        f"{latest[s]['regime_confidence']:.2f}" for s in ("BTCUSDT", "ETHUSDT")]
    gauges = [c for c in _charts(at) if c["data"][0]["type"] == "indicator"]
    assert [g["data"][0]["value"] for g in gauges] == pytest.approx(
        [latest[s]["sentiment_score"] for s in ("BTCUSDT", "ETHUSDT")])
    hmm = [m for m in at.metric if m.label == "HMM"]
    assert [m.delta for m in hmm] == [f"p = {latest[s]['hmm_probability']:.2f}"
                                      for s in ("BTCUSDT", "ETHUSDT")]
    fng = [m for m in at.metric if m.label == "Fear & Greed"]
    assert fng[0].value == str(int(latest["BTCUSDT"]["fear_greed_index"]))
    # The replay clock stands at the end of 2022, long after these rows, which are the
    # bundled recording: a recorded period, said plainly rather than flagged in red.
    assert not at.error
    recorded = [i.value for i in at.info if i.value.startswith("Recorded period")]
    assert len(recorded) == 2 and all("bundled recording of 2022" in r for r in recorded)


def test_stale_flag_follows_the_exchange_clock(app, clean_replay, dashboard_db):
    last = max(r["timestamp"] for r in _latest(dashboard_db, "60").values())
    clean_replay.set_clock(last + dt.timedelta(minutes=10))
    at = app()
    assert not at.error
    fresh = [c.value for c in at.caption if c.value.startswith("Latest bar closed")]
    assert len(fresh) == 2 and all("10 min ago by the exchange's clock." in c for c in fresh)


def test_a_replay_running_ahead_of_the_rows_reads_as_catching_up(app, clean_replay,
                                                                   dashboard_db):
    """The replay exchange's clock a few hours past the newest rows (the live loop's first
    start): the loop is behind, which the page says, neither a recorded period nor stale."""
    last = max(r["timestamp"] for r in _latest(dashboard_db, "60").values())
    clean_replay.set_clock(last + dt.timedelta(hours=6))
    at = app()
    assert not at.error and not [i for i in at.info if i.value.startswith("Recorded")]
    behind = [w.value for w in at.warning if w.value.startswith("Catching up")]
    assert len(behind) == 2 and all("6 h before the replay exchange's clock" in w
                                    for w in behind), behind


def test_interval_selector_changes_the_overview_and_the_url(app, dashboard_db):
    at = app()
    at.sidebar.selectbox[0].set_value("240").run()
    assert at.query_params["interval"] == "240"
    latest = _latest(dashboard_db, "240")
    gauges = [c for c in _charts(at) if c["data"][0]["type"] == "indicator"]
    assert [g["data"][0]["value"] for g in gauges] == pytest.approx(
        [latest[s]["sentiment_score"] for s in ("BTCUSDT", "ETHUSDT")])


def test_history_page_follows_its_selectors_and_the_url(app, dashboard_db):
    at = app(PAGES[1])
    store = Store(dashboard_db)
    # Default: the last 30 days of BTCUSDT 1h, up to the newest row.
    caption = next(c.value for c in at.caption if c.value.startswith("BTCUSDT 1h"))
    last = store.query("SELECT max(timestamp) AS t FROM sentiment_history")["t"].iloc[0]
    assert f"to {last:%Y-%m-%d %H:%M}" in caption
    figure = next(c for c in _charts(at) if any(t["type"] == "candlestick" for t in c["data"]))
    candles = next(t for t in figure["data"] if t["type"] == "candlestick")
    n = int(store.query(
        "SELECT count(*) AS n FROM sentiment_history WHERE symbol = 'BTCUSDT' AND interval = "
        "'60' AND timestamp > ?", [last.normalize() - pd.Timedelta(days=30)])["n"].iloc[0])
    assert len(_values(candles["x"])) == n  # the bars opened in the 30 days before the last
    shaded = {t["name"] for t in figure["data"] if t.get("fill") == "toself"}
    assert shaded and shaded <= {r.replace("_", " ") for r in (
        "trending_up", "trending_down", "ranging", "high_volatility", "squeeze", "breakout",
        "capitulation")}
    # Another symbol, interval and range: what is shown and the URL follow.
    at.sidebar.selectbox[0].set_value("ETHUSDT").run()
    at.sidebar.selectbox[1].set_value("240").run()
    at.sidebar.date_input[0].set_value((dt.date(2022, 3, 27), dt.date(2022, 3, 30))).run()
    assert not at.exception
    assert dict(at.query_params) == {"symbol": "ETHUSDT", "interval": "240",
                                     "from": "2022-03-27", "to": "2022-03-30"}
    caption = next(c.value for c in at.caption if c.value.startswith("ETHUSDT 4h"))
    assert caption.startswith("ETHUSDT 4h: 24 bars, 2022-03-27 04:00 to 2022-03-31 00:00")
    # Back to 1h, over days with regime changes.
    at.sidebar.selectbox[1].set_value("60").run()
    at.sidebar.date_input[0].set_value((dt.date(2022, 3, 8), dt.date(2022, 3, 10))).run()
    assert not at.exception
    assert dict(at.query_params)["interval"] == "60"
    caption = next(c.value for c in at.caption if c.value.startswith("ETHUSDT 1h"))
    assert caption.startswith("ETHUSDT 1h: 72 bars, 2022-03-08 01:00 to 2022-03-11 00:00")
    expected = store.query(
        "SELECT timestamp, to_regime FROM regime_transitions WHERE symbol = 'ETHUSDT' AND "
        "interval = '60' AND timestamp > ? AND timestamp <= ? ORDER BY timestamp DESC",
        [dt.datetime(2022, 3, 8), dt.datetime(2022, 3, 11)])
    assert len(expected) >= 2  # the window was picked to hold some
    assert f"Regime transitions ({len(expected)})" in [h.value for h in at.subheader]
    listed = _transition_rows(at)
    assert [(r[0], r[2]) for r in listed] == [
        (f"{t:%Y-%m-%d %H:%M}", n.replace("_", " ")) for t, n in expected.itertuples(index=False)]


def _transition_rows(at: AppTest) -> list[list[str]]:
    """The cells of the page's regime-transition table (Markdown), newest first."""
    table = next(m.value for m in at.markdown if m.value.startswith("| Bar close (UTC)"))
    return [[cell.strip() for cell in line.strip("|").split("|")]
            for line in table.splitlines()[2:]]


def test_long_ranges_are_drawn_in_coarser_bars(app, dashboard_db, monkeypatch):
    """Over MAX_CANDLES bars the chart draws coarser ones (the month's 1h bars as 12h bars
    when at most 100 are drawn): each has the OHLC of the bars inside it and the snapshot
    of its last bar; the regime shading, the transitions and the CSV keep every bar."""
    from dashboard import charts

    monkeypatch.setattr(charts, "MAX_CANDLES", 100)
    at = app(PAGES[1], symbol="BTCUSDT", interval="60", **{"from": "2022-03-01",
                                                           "to": "2022-03-31"})
    caption = next(c.value for c in at.caption if c.value.startswith("BTCUSDT 1h"))
    assert "Drawn as 12h bars" in caption
    hourly = Store(dashboard_db).query(
        "SELECT c.open_time, c.open, c.high, c.low, c.close, s.sentiment_score, s.timestamp "
        "FROM sentiment_history s JOIN candles c ON c.symbol = s.symbol AND c.interval = "
        "s.interval AND c.open_time = s.timestamp - INTERVAL 1 HOUR "
        "WHERE s.symbol = 'BTCUSDT' AND s.interval = '60' ORDER BY s.timestamp")
    bucket = hourly["open_time"].dt.floor("12h")
    want = hourly.groupby(bucket).agg(open=("open", "first"), high=("high", "max"),
                                      low=("low", "min"), close=("close", "last"),
                                      score=("sentiment_score", "last"),
                                      closed=("timestamp", "last"))
    figure = next(c for c in _charts(at) if any(t["type"] == "candlestick" for t in c["data"]))
    candles = next(t for t in figure["data"] if t["type"] == "candlestick")
    assert len(_values(candles["open"])) == len(want) <= 100
    assert pd.to_datetime(candles["x"]).tolist() == want.index.tolist()
    for field in ("open", "high", "low", "close"):
        assert _values(candles[field]) == pytest.approx(want[field].to_numpy(), rel=1e-12)
    composite = next(t for t in figure["data"] if t.get("name") == "composite")
    assert pd.to_datetime(composite["x"]).tolist() == want["closed"].tolist()
    assert _values(composite["y"]) == pytest.approx(want["score"].to_numpy(), nan_ok=True)
    # The shading follows the hourly regimes, runs shorter than the chart's shortest period
    # drawn as part of the period before them (charts.merged_runs, tested on its own).
    regimes = Store(dashboard_db).query(
        "SELECT regime FROM sentiment_history WHERE symbol = 'BTCUSDT' AND interval = '60' "
        "ORDER BY timestamp")["regime"]
    periods = [p for p in charts.merged_runs(regimes, charts.min_period_bars(len(regimes)))
               if p[0] is not None]
    polygons = sum(len(t["x"]) // 6 for t in figure["data"] if t.get("fill") == "toself")
    assert polygons == len(periods)


def test_a_shared_url_opens_the_same_view(app):
    at = app(PAGES[1], symbol="ETHUSDT", interval="240", **{"from": "2022-03-10",
                                                            "to": "2022-03-12"})
    assert at.sidebar.selectbox[0].value == "ETHUSDT"
    assert at.sidebar.selectbox[1].value == "240"
    assert any(c.value.startswith("ETHUSDT 4h: 18 bars") for c in at.caption)


def test_history_shows_hmm_probabilities_and_offers_the_csv(app, dashboard_db):
    at = app(PAGES[1])
    hmm = [c for c in _charts(at) if c["data"] and c["data"][0].get("stackgroup") == "p"]
    assert hmm, "no HMM probability chart"
    total = pd.DataFrame({t["name"]: _values(t["y"]) for t in hmm[0]["data"]}).sum(axis=1)
    assert total.to_numpy() == pytest.approx(1.0, abs=1e-9)
    assert at.get("download_button")


def test_exchange_page_draws_the_briefs_thresholds(app):
    at = app(PAGES[2])
    figure = _charts(at)[0]
    lines = sorted(round(s["y0"], 6) for s in figure["layout"]["shapes"])
    # Fear & Greed: the edges of alternative.me's Extreme bands (<= 25, >= 76).
    assert lines == sorted([0.1, -0.05, 0.6, 0.4, 76.0, 25.0])
    texts = {a["text"] for a in figure["layout"]["annotations"]}
    assert {"extreme fear ≤ 25", "extreme greed ≥ 76"} <= texts
    names = [t["name"] for t in figure["data"]]
    # Open interest and the long/short ratio of the bundle are generated, and say so.
    assert names == ["funding", "funding", "open interest (synthetic)",
                     "long share (synthetic)", "Fear & Greed"]
    assert all(len(_values(t["x"])) > 0 for t in figure["data"])
    # Funding is drawn as its positive part (green) and negative part (red), each rate held
    # until the next settlement; together they are the stored rates, in percent.
    up, down = figure["data"][:2]
    assert (_values(up["y"]) >= 0).all() and (_values(down["y"]) <= 0).all()
    assert _values(up["y"]) + _values(down["y"]) == pytest.approx(_values(up["customdata"]))
    assert up["line"]["shape"] == "hv"


def test_quality_page_shows_the_evaluation_of_the_stored_rows(app, dashboard_db,
                                                              monkeypatch):
    """The Quality page shows what ``sentiment evaluate`` computes from the same rows: the
    metrics against their goals, the per-regime table, the HMM figures, and the close over
    the regime bands (a long history drawn every n-th bar, the bands keeping every bar)."""
    from dashboard import charts, report
    from sentiment.core.evaluation import METRICS, evaluate

    monkeypatch.setattr(charts, "MAX_LINE_POINTS", 100)
    at = app(PAGES[3], symbol="ETHUSDT", interval="60")
    store = Store(dashboard_db)
    rows = store.query("SELECT * FROM sentiment_history WHERE symbol = 'ETHUSDT' AND "
                       "interval = '60' ORDER BY timestamp")
    ev = evaluate(rows, "60")
    assert any(c.value.startswith(f"ETHUSDT 1h: {ev.start:%Y-%m-%d %H:%M} to") for c in
               at.caption)
    metrics, regimes, hmm = (t.value for t in at.table)
    assert metrics["metric"].tolist() == list(METRICS)
    assert metrics["value"].tolist() == report.metrics_table(ev)["value"].tolist()
    words = {True: ":green[met]", False: ":red[missed]", None: "n/a"}
    assert metrics["met"].tolist() == [words[ev.passed()[m]] for m in METRICS]
    assert {"≤ 15", "≥ 0.95"} <= set(metrics["goal"])
    assert regimes["share"].tolist() == report.regimes_table(ev)["share"].tolist()
    assert hmm["value"].iloc[0] == f"{ev.hmm['bars']:,}" and ev.hmm["bars"] > 0
    figure = next(c for c in _charts(at) if any(t.get("name") == "close" for t in c["data"]))
    close = next(t for t in figure["data"] if t["name"] == "close")
    assert len(_values(close["y"])) <= 100 < len(rows)
    assert _values(close["y"])[-1] == rows["close"].iloc[-1]
    polygons = sum(len(t["x"]) // 6 for t in figure["data"] if t.get("fill") == "toself")
    changes = store.query("SELECT count(*) AS n FROM regime_transitions WHERE symbol = "
                          "'ETHUSDT' AND interval = '60'")["n"].iloc[0]
    assert polygons == changes + 1
    # A shorter range from the URL's selectors: fewer bars judged, the URL follows.
    at.sidebar.date_input[0].set_value((dt.date(2022, 3, 20), dt.date(2022, 3, 25))).run()
    assert dict(at.query_params) == {"symbol": "ETHUSDT", "interval": "60",
                                     "from": "2022-03-20", "to": "2022-03-25"}
    t = rows["timestamp"]
    week = rows[(t > dt.datetime(2022, 3, 20)) & (t <= dt.datetime(2022, 3, 26))]
    assert at.table[0].value["value"].tolist() == report.metrics_table(
        evaluate(week, "60"))["value"].tolist()
    assert any(f"{len(week):,} bars with a regime" in c.value for c in at.caption)


@pytest.mark.parametrize("page", PAGES)
def test_a_missing_or_empty_database_shows_the_command_to_run(page, tmp_path, monkeypatch,
                                                              clean_replay):
    monkeypatch.setenv("BYBIT_BASE_URL", clean_replay.base_url)
    for db in (tmp_path / "missing.duckdb", tmp_path / "empty.duckdb"):
        if db.name == "empty.duckdb":
            Store(db).init()
        monkeypatch.setenv("SENTIMENT_DB", str(db))
        st.cache_data.clear()
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()
        at.switch_page(page)
        at.run()
        assert not at.exception
        assert any("make demo" in c.value for c in at.code), page
        assert str(db) in " ".join(i.value for i in at.info) + at.caption[-1].value


def test_reading_leaves_the_file_unchanged_and_free_for_a_writer(app, dashboard_db,
                                                                  tmp_path, monkeypatch):
    db = tmp_path / "copy.duckdb"
    shutil.copy(dashboard_db, db)
    monkeypatch.setenv("SENTIMENT_DB", str(db))
    before = os.stat(db).st_mtime_ns, db.read_bytes()
    for page in PAGES:
        app(page)
    assert (os.stat(db).st_mtime_ns, db.read_bytes()) == before
    with Store(db, lock_timeout=0.0).connect(read_only=False) as conn:
        conn.execute("SELECT 1").fetchall()  # no lock left behind


def test_stacked_contributions_add_up_to_the_stored_composite(dashboard_db):
    from sentiment.config import load_config
    from sentiment.core.scores import SUBSCORE_COLUMNS, contributions

    rows = Store(dashboard_db).read("sentiment_history")
    rows = rows[rows["sentiment_score"].notna()]
    parts = contributions({n: rows[c].to_numpy(dtype=float, na_value=np.nan)
                           for n, c in SUBSCORE_COLUMNS.items()},
                          load_config().weights.as_dict())
    total = sum(parts.values())
    assert len(rows) > 1000
    assert np.abs(np.clip(total, -1, 1) - rows["sentiment_score"].to_numpy(float)).max() < 1e-9
    # A tier without data adds nothing (here: no order book or liquidations stream, but
    # exchange data is present, so every tier is in).
    assert all(np.isfinite(v).all() for v in parts.values())


def test_overview_and_exchange_show_the_live_stream(app, dashboard_db, tmp_path, monkeypatch,
                                                    clean_replay):
    from conftest import with_stream_data

    db = str(tmp_path / "stream.duckdb")
    shutil.copy(dashboard_db, db)
    end = with_stream_data(db, tmp_path / "stream")
    monkeypatch.setenv("SENTIMENT_DB", db)
    clean_replay.set_clock(end + pd.Timedelta(minutes=1))
    at = app()
    stored = Store(db)
    newest = stored.query("SELECT obi FROM orderbook_imbalance ORDER BY ts DESC LIMIT 1")
    obi = [m for m in at.metric if m.label == "Order book (OBI)"]
    # The candles of its hours are the replay's: so is the stream, derived from candles.
    assert any("derived from candles" in m.value for m in at.markdown)
    assert len(obi) == 1 and obi[0].value == f"{newest['obi'].iloc[0]:+.2f}"  # BTCUSDT only
    liq = next(m for m in at.metric if m.label.startswith("Liquidations"))
    # The window's notional: 10 long liquidations of 2 x 39 500 and the steady shorts in
    # the last 5 minutes, read back from the store.
    window = stored.query(
        "SELECT sum(size * price) AS v FROM liquidations WHERE ts > ? AND ts <= ?",
        [end - pd.Timedelta(seconds=270), end + pd.Timedelta(seconds=30)])["v"].iloc[0]
    assert liq.value == f"{window:,.0f} USDT"
    assert "CASCADE" in liq.delta and "LONG SQUEEZE" in liq.delta
    assert any("No live-stream data" in c.value for c in at.caption)  # ETHUSDT has none

    at.switch_page(PAGES[2]).run()
    at.sidebar.date_input[0].set_value(((end - pd.Timedelta(days=1)).date(),
                                        end.date())).run()
    figure = _charts(at)[0]
    names = [t["name"] for t in figure["data"]]
    assert names[-3:] == ["OBI (derived from candles)", "longs liquidated (derived from "
                          "candles)", "shorts liquidated (derived from candles)"]
    longs = next(t for t in figure["data"] if t["name"].startswith("longs liquidated"))
    shorts = next(t for t in figure["data"] if t["name"].startswith("shorts liquidated"))
    totals = stored.query("SELECT side, sum(size * price) AS v FROM liquidations GROUP BY 1"
                          ).set_index("side")["v"]
    assert -_values(longs["y"]).sum() == pytest.approx(totals["Buy"])
    assert _values(shorts["y"]).sum() == pytest.approx(totals["Sell"])
    assert len(figure["layout"]["annotations"]) >= 6  # six subplot titles (and thresholds)


def test_a_busy_database_shows_the_last_good_view_with_a_note(dashboard_db, clean_replay,
                                                              monkeypatch, tmp_path):
    import subprocess
    import sys
    import textwrap

    from dashboard import queries

    db = str(tmp_path / "busy.duckdb")
    shutil.copy(dashboard_db, db)
    monkeypatch.setenv("SENTIMENT_DB", db)
    monkeypatch.setenv("BYBIT_BASE_URL", clean_replay.base_url)
    config = tmp_path / "sentiment.yaml"
    config.write_text((Path(APP).parents[1] / "sentiment.yaml").read_text().replace(
        "lock_wait_seconds: 10", "lock_wait_seconds: 0.5"))
    monkeypatch.setenv("SENTIMENT_CONFIG", str(config))
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGES[1]).run()
    assert not at.exception and not at.warning
    drawn = len(_charts(at))
    # Another process (the pipeline) takes the write lock and keeps it.
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from sentiment.io.store import Store
        with Store({db!r}).connect() as conn:
            print("locked", flush=True)
            sys.stdin.readline()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "locked"
        st.cache_data.clear()
        at.run()
        assert not at.exception
        notes = [w.value for w in at.warning]
        assert len(notes) == 1 and notes[0].startswith(
            "Database busy (the pipeline is writing): showing data as of ")
        assert len(_charts(at)) == drawn  # the last good view, not an empty page
        # A page with nothing read before says so in one sentence: no path, no PID.
        queries._LAST_GOOD.clear()
        fresh = AppTest.from_file(APP, default_timeout=60)
        fresh.run()
        assert not fresh.exception
        texts = [w.value for w in fresh.warning]
        assert texts == ["The database is busy: the pipeline is writing to it; this page "
                         "retries in 10 s."]
    finally:
        writer.communicate("\n", timeout=30)
    st.cache_data.clear()
    at.run()  # the writer is done: fresh data, no note
    assert not at.exception and not at.warning
    st.cache_data.clear()
