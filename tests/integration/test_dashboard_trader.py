"""The dashboard as a trader reads it (streamlit.testing's AppTest over a real database built
from the recorded data): the price and its change, a gauge filled from zero, a recorded
period said plainly, synthetic and derived series tagged where they are shown (and real data
not), regimes as colour-blind-safe periods, a live stream judged by this machine's clock, a
squeeze badge only for a burst, and one sentence, never a traceback, for a database that
cannot be read."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import subprocess
import sys
import textwrap
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
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def _run(page: str = PAGES[0], **params) -> AppTest:
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    if page != PAGES[0]:
        at.switch_page(page)
        at.run()
    return at


@pytest.fixture
def env(clean_replay, monkeypatch, tmp_path):
    """Point the dashboard at a database (and a staging directory of its own)."""
    from dashboard import queries

    monkeypatch.setenv("BYBIT_BASE_URL", clean_replay.base_url)
    monkeypatch.setenv("SENTIMENT_STREAM_DIR", str(tmp_path / "stream"))

    def use(db: str) -> None:
        monkeypatch.setenv("SENTIMENT_DB", db)
        queries._LAST_GOOD.clear()
        st.cache_data.clear()

    yield use
    queries._LAST_GOOD.clear()
    st.cache_data.clear()


@pytest.fixture
def copy_db(dashboard_db, tmp_path):
    def make(name: str = "copy.duckdb") -> str:
        db = str(tmp_path / name)
        shutil.copy(dashboard_db, db)
        return db
    return make


def _as_real_market_data(db: str, symbol: str | None = None) -> None:
    """Make the stored candles (of ``symbol``, or all) carry a measured turnover, as Bybit's
    do: the quote volume actually traded, 0.2 % off volume x close (the replay exchange
    serves exactly volume x close)."""
    with Store(db).connect() as conn:
        conn.execute("UPDATE candles SET turnover = volume * close * 1.002 WHERE symbol = ?"
                     " OR ?", [symbol or "", symbol is None])


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _values(array) -> np.ndarray:
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array)


def _metrics(at: AppTest, label: str) -> list:
    return [m for m in at.metric if m.label == label]


# --------------------------------------------------------------------------- the overview


def test_the_overview_shows_the_price_and_its_change(env, dashboard_db):
    env(dashboard_db)
    at = _run()
    assert not at.exception
    store = Store(dashboard_db)
    for i, symbol in enumerate(SYMBOLS):
        closes = store.query(
            "SELECT timestamp, close FROM sentiment_history WHERE symbol = ? AND interval = "
            "'60' ORDER BY timestamp DESC LIMIT 25", [symbol]).set_index("timestamp")["close"]
        last = closes.iloc[0]
        assert _metrics(at, "Price")[i].value == f"{last:,.2f}"
        assert _metrics(at, "Last 1h bar")[i].value == f"{(last / closes.iloc[1] - 1) * 100:+.2f} %"
        assert _metrics(at, "24 h")[i].value == f"{(last / closes.iloc[24] - 1) * 100:+.2f} %"
        # Short enough for a third of a card: no "+0.035…" or "TRENDING DO…".
        funding = _metrics(at, "Funding")[i].value
        assert len(funding) <= 7 and funding.endswith("%")


def test_the_gauge_fills_from_zero_to_the_score(env, dashboard_db):
    from dashboard import charts

    env(dashboard_db)
    at = _run()
    gauges = [c for c in _charts(at) if c["data"][0]["type"] == "indicator"]
    assert len(gauges) == 2
    for g in gauges:
        score = g["data"][0]["value"]
        gauge = g["data"][0]["gauge"]
        assert gauge["bar"]["thickness"] == 0  # Plotly's own bar starts at -1
        filled = gauge["steps"][-1]
        assert filled["range"] == sorted([0.0, score])
    # Neutral reads neutral: a zero score fills nothing; +0.5 fills from 0 to +0.5 only.
    zero = charts.gauge(0.0, "Neutral").to_plotly_json()["data"][0]["gauge"]["steps"][-1]
    assert zero["range"] == [0.0, 0.0]
    half = charts.gauge(0.5, "Bullish").to_plotly_json()["data"][0]["gauge"]["steps"][-1]
    assert half["range"] == [0.0, 0.5] and half["color"] == charts.RISING


def test_the_bundled_recording_reads_as_a_recorded_period(env, dashboard_db):
    """The replay clock stands at the end of 2022, months after the bundled rows: the card
    says it is a recorded period, in a note, not a red alarm."""
    env(dashboard_db)
    at = _run()
    assert not at.error
    notes = [i.value for i in at.info if i.value.startswith("Recorded period")]
    assert len(notes) == 2
    assert all("bundled recording of 2022" in n and "not a live feed" in n for n in notes)


def test_stale_real_data_are_flagged_by_the_named_clock(env, copy_db, monkeypatch):
    db = copy_db()
    _as_real_market_data(db)
    env(db)
    at = _run()
    errors = [e.value for e in at.error]
    assert len(errors) == 2 and all(e.startswith("Stale: the latest bar closed") for e in errors)
    assert all("ago by the exchange's clock." in e for e in errors)
    # Without an exchange to ask, this machine's clock, named once ("by the this" before).
    monkeypatch.setenv("BYBIT_BASE_URL", "http://127.0.0.1:9")
    at = _run()
    errors = [e.value for e in at.error]
    assert len(errors) == 2
    assert all("by this machine's clock (the exchange did not answer)" in e for e in errors)
    assert not any("the this" in e for e in errors)


# ------------------------------------------------------------- synthetic and derived series


def test_synthetic_series_are_tagged_where_they_are_shown(env, dashboard_db):
    env(dashboard_db)
    at = _run()
    for label in ("OI change", "Long share"):
        assert [m.delta for m in _metrics(at, label)] == ["synthetic", "synthetic"]
    assert not any(m.delta for m in _metrics(at, "Funding"))  # recorded
    tiers = [c for c in _charts(at) if c["data"][0]["type"] == "bar"]
    assert all("exchange<br>(partly synthetic)" in list(t["data"][0]["y"]) for t in tiers)

    at.switch_page(PAGES[2]).run()
    assert any(w.value.startswith("Not market data: open interest and the long/short ratio "
                                  "are SYNTHETIC") for w in at.warning)
    figure = _charts(at)[0]
    titles = [a["text"] for a in figure["layout"]["annotations"]]
    assert "Open interest (base coin) · SYNTHETIC" in titles
    assert "Long/short: share of accounts long · SYNTHETIC" in titles

    at.switch_page(PAGES[1]).run()
    history = next(c for c in _charts(at) if any(t["type"] == "candlestick" for t in c["data"]))
    assert "exchange (partly synthetic)" in {t.get("name") for t in history["data"]}


def test_real_data_are_not_tagged(env, copy_db):
    from conftest import with_stream_data

    db = copy_db()
    _as_real_market_data(db)
    with_stream_data(db, Path(db).parent / "staged")
    env(db)
    at = _run()
    assert not at.exception
    assert any(m.label == "Order book (OBI)" for m in at.metric)  # the stream is shown
    assert all(m.delta not in ("synthetic", "derived from candles") for m in at.metric)
    assert not any("derived from candles" in m.value for m in at.markdown)
    tiers = [c for c in _charts(at) if c["data"][0]["type"] == "bar"]
    assert tiers and not any("synthetic" in str(t["data"][0]["y"]) for t in tiers)
    at.switch_page(PAGES[2]).run()
    assert not any(w.value.startswith("Not market data") for w in at.warning)
    names = [t["name"] for t in _charts(at)[0]["data"]]
    assert "open interest" in names and "long share" in names and "OBI" in names


def test_provenance_reads_the_candles_not_the_settings(dashboard_db, copy_db):
    """sentiment.provenance: the replay's candles (turnover = volume x close) mark a symbol's
    open interest and long/short ratio synthetic and its stream derived, whatever the
    settings say; measured turnover marks nothing, symbol by symbol; without candles in the
    day before, nothing can be told and nothing is marked."""
    from sentiment.provenance import DERIVED, SYNTHETIC, read_source, series_tags

    made_up = {"open_interest": SYNTHETIC, "long_short_ratio": SYNTHETIC,
               "orderbook_imbalance": DERIVED, "liquidations": DERIVED}
    hour = dt.timedelta(hours=1)
    first, newest = Store(dashboard_db).query(
        "SELECT min(open_time) AS a, max(open_time) AS b FROM candles WHERE symbol = "
        "'BTCUSDT' AND interval = '60'").iloc[0]
    first, newest = pd.Timestamp(first).to_pydatetime(), pd.Timestamp(newest).to_pydatetime()
    last = newest + hour  # the newest bar's close
    with Store(dashboard_db).connect(read_only=True) as conn:
        for symbol in SYMBOLS:
            assert series_tags(conn, symbol, last) == made_up
        assert series_tags(conn, "BTCUSDT", first) == {}  # no candles before: not told
        assert series_tags(conn, "BTCUSDT", first + 2 * hour) == {}  # two: too few
        assert read_source(conn, "BTCUSDT", first + 3 * hour).replay
    db = copy_db()
    _as_real_market_data(db, "BTCUSDT")
    with Store(db).connect(read_only=True) as conn:
        assert series_tags(conn, "BTCUSDT", last) == {}
        assert series_tags(conn, "ETHUSDT", last) == made_up
    # One measured hour in the day is enough: the replay serves none.
    with Store(db).connect() as conn:
        conn.execute("UPDATE candles SET turnover = volume * close WHERE symbol = 'BTCUSDT' "
                     "AND open_time < ?", [newest])
        assert series_tags(conn, "BTCUSDT", last) == {}
        assert series_tags(conn, "BTCUSDT", newest) == made_up


# ---------------------------------------------------------------------------- the history


def test_regimes_are_drawn_as_colour_blind_safe_periods(env, dashboard_db):
    from dashboard import charts

    env(dashboard_db)
    at = _run(PAGES[1], symbol="BTCUSDT", interval="60",
              **{"from": "2022-03-01", "to": "2022-03-31"})
    assert not at.exception
    figure = next(c for c in _charts(at) if any(t["type"] == "candlestick" for t in c["data"]))
    bands = [t for t in figure["data"] if t.get("fill") == "toself"]
    okabe_ito = set(charts.OKABE_ITO.values())
    assert bands and {t["fillcolor"] for t in bands} <= okabe_ito
    assert set(charts.REGIME_COLORS.values()) <= okabe_ito
    assert len(set(charts.REGIME_COLORS.values())) == len(charts.REGIME_COLORS)
    # Every legend sits beside the plot (x >= 1), clear of the panel titles above them.
    layout = figure["layout"]
    legends = [layout[k] for k in ("legend", "legend2", "legend3")]
    assert all(lg["x"] >= 1 and lg["xanchor"] == "left" for lg in legends)
    # Short runs merged for display, and the page says how.
    rows = Store(dashboard_db).query(
        "SELECT regime FROM sentiment_history WHERE symbol = 'BTCUSDT' AND interval = '60' "
        "ORDER BY timestamp")
    shortest = charts.min_period_bars(len(rows))
    assert shortest > 1
    assert any(c.value.startswith("Background: the confirmed regime. Runs shorter than "
                                  f"{shortest} bars") for c in at.caption)
    runs = charts._runs(rows["regime"])
    periods = [p for p in charts.merged_runs(rows["regime"], shortest) if p[0] is not None]
    assert len(periods) < len([r for r in runs if r[0] is not None])
    assert sum(len(t["x"]) // 6 for t in bands) == len(periods)
    # The hover keeps each bar's own regime, not the merged period's.
    candles = next(t for t in figure["data"] if t["type"] == "candlestick")
    exact = ["regime: " + ("warming up" if pd.isna(r) else r.replace("_", " "))
             for r in rows["regime"]]
    assert list(candles["hovertext"]) == exact


def test_merged_runs_absorb_short_runs_into_their_neighbours():
    from dashboard.charts import merged_runs

    regimes = pd.Series([None] * 3 + ["ranging"] * 10 + ["breakout"] * 2 + ["ranging"] * 8
                        + ["trending_up"] * 6 + ["squeeze"] + ["trending_down"] * 5)
    assert merged_runs(regimes, 1) == [
        (None, 0, 2), ("ranging", 3, 12), ("breakout", 13, 14), ("ranging", 15, 22),
        ("trending_up", 23, 28), ("squeeze", 29, 29), ("trending_down", 30, 34)]
    # Runs under 4 bars join the period before them, and equal neighbours join up; the
    # short first run joins the one after it. Every bar stays covered, in order.
    assert merged_runs(regimes, 4) == [
        ("ranging", 0, 22), ("trending_up", 23, 29), ("trending_down", 30, 34)]


# ---------------------------------------------------------------------------- the stream


def _stream(db: str, staging: Path, liquidations: list[dict], minutes: int = 90) -> pd.Timestamp:
    """OBI samples every minute for ``minutes`` up to the last bar of ``db`` and the given
    liquidations (ms offsets before that end), staged and loaded like the stream's."""
    from sentiment.io.staging import Staging, load_staged

    store = Store(db)
    end = pd.Timestamp(store.query("SELECT max(timestamp) AS t FROM sentiment_history")["t"]
                       .iloc[0])
    end_ms = int(end.value // 1_000_000)
    obi = [{"symbol": "BTCUSDT", "ts": end_ms - k * 60_000, "obi": 0.1}
           for k in range(minutes, 0, -1)]
    liq = [dict(symbol="BTCUSDT", seq=k, ts=end_ms - r.pop("before_ms"), **r)
           for k, r in enumerate(liquidations)]
    Staging(staging).write({"orderbook_imbalance": obi, "liquidations": liq,
                            "stream_state": [{"symbol": "BTCUSDT", "through": end_ms}]})
    load_staged(store, Staging(staging))
    return end


def test_a_running_stream_is_not_reported_stopped(env, copy_db, clean_replay, tmp_path):
    """The replay clock runs far ahead of the loaded stream time (at 120x, a loader 30 s
    behind is an hour of exchange time): while the stream keeps staging or being loaded by
    this machine's clock, it is running; silent for longer than stream.alive_seconds, it
    stopped."""
    from conftest import with_stream_data

    db = copy_db()
    end = with_stream_data(db, tmp_path / "loaded")
    clean_replay.set_clock(end + dt.timedelta(hours=3))
    env(db)
    at = _run()
    assert not at.exception
    assert not [w for w in at.warning if "Live stream stopped" in w.value]
    # Nothing loaded for ten minutes and nothing staged: stopped.
    with Store(db).connect() as conn:
        conn.execute("UPDATE stream_state SET loaded_at = ?",
                     [dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=10)])
    at = _run()
    stopped = [w.value for w in at.warning if "Live stream stopped" in w.value]
    assert len(stopped) == 1 and stopped[0].startswith(
        "Live stream stopped: nothing new from it for 10 min (this machine's clock)")
    # The stream stages a file the loader has not taken yet: running again.
    from sentiment.io.staging import Staging

    Staging(tmp_path / "stream").write({"orderbook_imbalance": [
        {"symbol": "BTCUSDT", "ts": int(end.value // 1_000_000) + 1000, "obi": 0.2}]})
    at = _run()
    assert not [w for w in at.warning if "Live stream stopped" in w.value]


def test_a_lone_small_liquidation_is_no_squeeze(env, copy_db, tmp_path):
    """One long liquidated for 3,800 USDT is all the window's liquidations: the stream's own
    rule calls it a long squeeze (one side over 80 %); the overview shows no badge, and its
    caption states the rule it applies."""
    from dashboard import queries

    db = copy_db()
    _stream(db, tmp_path / "staged", [
        {"before_ms": 60_000, "side": "Buy", "price": 19_000.0, "size": 0.2}])
    env(db)
    at = _run()
    liq = next(m for m in at.metric if m.label.startswith("Liquidations"))
    assert liq.value == "3,800 USDT"
    assert "SQUEEZE" not in (liq.delta or "")
    rule = next(c.value for c in at.caption if "SQUEEZE: one side over 80 %" in c.value)
    assert f"the larger of {queries.SQUEEZE_MIN_NOTIONAL:,.0f} and 3x this symbol's usual " \
           "5 min" in rule


def test_the_squeeze_rule_is_relative_to_the_symbols_usual_liquidations():
    from dashboard.queries import SQUEEZE_MIN_NOTIONAL, squeeze_shown, usual_window_notional
    from sentiment.core.liquidations import LiquidationReading

    # Seven days of hours: 1.2 M USDT liquidated in a usual hour, 100 k per 5 minutes.
    hours = pd.date_range("2022-12-01", periods=7 * 24, freq="h")
    hourly = pd.DataFrame({"ts": hours, "longs": 600_000.0, "shorts": 600_000.0})
    hourly = hourly.iloc[::2]  # every other hour without any: they count as 0
    usual = usual_window_notional(hourly, hours[0], hours[-1] + pd.Timedelta(hours=1), 300)
    assert usual == pytest.approx(np.median([1_200_000.0, 0.0] * 84) * 300 / 3600)

    def reading(volume: float) -> LiquidationReading:
        return LiquidationReading(volume, 0.0, 0.0, False, "long")

    busy = 3 * 100_000.0  # 3x a 100 k window
    assert squeeze_shown(reading(busy + 1), 100_000.0) == "long"
    assert squeeze_shown(reading(busy - 1), 100_000.0) is None
    assert squeeze_shown(reading(SQUEEZE_MIN_NOTIONAL - 1), 0.0) is None  # a quiet symbol
    assert squeeze_shown(LiquidationReading(5e6, 5e6, 0.0, False, None), 0.0) is None


# ----------------------------------------------------- a database that cannot be read now


def test_a_busy_database_is_one_sentence_on_every_page(env, copy_db, tmp_path, monkeypatch):
    """The pipeline holds the write lock before any page has read: each page says so in
    one sentence with when it retries, never a traceback."""
    db = copy_db("busy.duckdb")
    config = tmp_path / "sentiment.yaml"
    config.write_text((Path(APP).parents[1] / "sentiment.yaml").read_text().replace(
        "lock_wait_seconds: 10", "lock_wait_seconds: 0.3"))
    monkeypatch.setenv("SENTIMENT_CONFIG", str(config))
    env(db)
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from sentiment.io.store import Store
        with Store({db!r}).connect() as conn:
            print("locked", flush=True)
            sys.stdin.readline()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "locked"
        for page in PAGES:
            from dashboard import queries

            queries._LAST_GOOD.clear()
            at = _run(page)
            assert not at.exception, page
            assert [w.value for w in at.warning] == [
                "The database is busy: the pipeline is writing to it; this page retries in "
                "10 s."], page
    finally:
        writer.communicate("\n", timeout=30)


def test_an_unreadable_file_or_configuration_is_one_sentence(env, tmp_path, monkeypatch):
    bad = tmp_path / "not-a-database.duckdb"
    bad.write_bytes(b"this is not a DuckDB file" * 100)
    env(str(bad))
    for page in PAGES:
        at = _run(page)
        assert not at.exception, page
        texts = [w.value for w in at.warning]
        assert len(texts) == 1 and texts[0].startswith(
            f"The database {bad} cannot be read: "), (page, texts)
    config = tmp_path / "broken.yaml"
    config.write_text((Path(APP).parents[1] / "sentiment.yaml").read_text().replace(
        "refresh_seconds: 10", "refresh_seconds: -3"))
    monkeypatch.setenv("SENTIMENT_CONFIG", str(config))
    at = _run()
    assert not at.exception
    assert len(at.error) == 1 and at.error[0].value.startswith(
        "The configuration cannot be used: ")
