"""The real dashboard served by ``streamlit run`` on 127.0.0.1, driven by headless Chromium
(Debian's /usr/bin/chromium through Playwright): what a user sees, and that it keeps reading
while the live job and a backfill write the same file."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
from dagster import DagsterInstance

from sentiment.io.store import Store

from helpers import free_port

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
#: Screenshots of the last browser run, for people to look at (not compared).
SCREENSHOTS = ROOT / "test-output"


class Dashboard:
    """``streamlit run dashboard/app.py`` in a subprocess, on a free loopback port."""

    def __init__(self, db: str, exchange_url: str, tmp: Path, refresh_seconds: int = 1,
                 lock_wait_seconds: float = 10):
        config = tmp / "sentiment.yaml"
        text = (ROOT / "sentiment.yaml").read_text(encoding="utf-8")
        config.write_text(text.replace("refresh_seconds: 10",
                                       f"refresh_seconds: {refresh_seconds}")
                          .replace("lock_wait_seconds: 10",
                                   f"lock_wait_seconds: {lock_wait_seconds}"),
                          encoding="utf-8")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "streamlit.log"
        env = dict(os.environ, SENTIMENT_DB=db, SENTIMENT_CONFIG=str(config),
                   BYBIT_BASE_URL=exchange_url)
        self._log_file = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
             "--server.headless", "true", "--server.address", "127.0.0.1",
             "--server.port", str(self.port), "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=self._log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:  # ready when its health endpoint answers
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if requests.get(self.url + "/_stcore/health", timeout=1).text == "ok":
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "streamlit did not start"
            time.sleep(0.1)  # polling the health endpoint, not waiting for a result

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self._log_file.close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1600, "height": 1100})
    yield context.new_page()
    context.close()


def _latest(db: str, symbol: str, interval: str = "60") -> dict:
    return Store(db).query("SELECT * FROM latest_sentiment WHERE symbol = ? AND interval = ?",
                           [symbol, interval]).iloc[0].to_dict()


def _shot(page, tmp_path: Path, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = tmp_path / name
    # The app scrolls inside its main section: make the window as tall as that content.
    height = page.evaluate(
        "Math.max(...[...document.querySelectorAll('section, div')].map(e => e.scrollHeight))")
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": min(max(height, 600), 4000)})
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    shutil.copy(path, SCREENSHOTS / name)
    return path


def test_the_pages_show_regime_score_and_charts(page, dashboard_db, clean_replay, tmp_path):
    server = Dashboard(dashboard_db, clean_replay.base_url, tmp_path)
    try:
        page.goto(server.url)
        btc = _latest(dashboard_db, "BTCUSDT")
        regime = btc["regime"].replace("_", " ").capitalize()
        page.get_by_text(regime).first.wait_for(timeout=30_000)
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 4",
                               timeout=30_000)
        text = page.inner_text("body")
        assert f"{btc['regime_duration_bars']} bars, confidence " \
               f"{btc['regime_confidence']:.2f}" in text
        gauges = page.locator(".js-plotly-plot text.number").all_text_contents()
        assert f"{btc['sentiment_score']:+.2f}".replace("-", "−") in [
            g.replace("-", "−") for g in gauges]
        # The replay clock stands at the end of 2022, after these bundled rows: a recorded
        # period, not an alarm.
        assert "Recorded period" in text and "Stale" not in text
        assert _shot(page, tmp_path, "dashboard-overview.png").stat().st_size > 20_000

        page.goto(server.url + "/history?symbol=ETHUSDT&interval=60")
        page.get_by_text("Price and regime").wait_for(timeout=30_000)
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 2",
                               timeout=30_000)
        assert "ETHUSDT 1h:" in page.inner_text("body")
        _shot(page, tmp_path, "dashboard-history.png")
        # The CSV is written when asked for: every row shown, one line each.
        shown = int(re.search(r"ETHUSDT 1h: ([\d,]+) bars", page.inner_text("body"))[1]
                    .replace(",", ""))
        button = page.get_by_role("button", name="Download the rows shown (CSV)")
        with page.expect_download(timeout=30_000) as download:
            button.click()
        csv = pd.read_csv(download.value.path())
        assert len(csv) == shown and set(csv["symbol"]) == {"ETHUSDT"}
        assert {"sentiment_score", "regime", "open", "close"} <= set(csv.columns)

        page.goto(server.url + "/exchange?symbol=BTCUSDT")
        page.get_by_text("Funding rate (% per settlement)").wait_for(timeout=30_000)
        assert "extreme greed ≥ 76" in page.inner_text("body")
        _shot(page, tmp_path, "dashboard-exchange.png")
    finally:
        server.close()
    assert "Traceback" not in server.log.read_text()


def test_the_quality_page_shows_the_metrics_and_the_regime_over_price(
        page, dashboard_db, clean_replay, tmp_path):
    from sentiment.core.evaluation import METRICS, evaluate

    rows = Store(dashboard_db).query("SELECT * FROM sentiment_history WHERE symbol = 'BTCUSDT' "
                                     "AND interval = '60' ORDER BY timestamp")
    ev = evaluate(rows, "60")
    server = Dashboard(dashboard_db, clean_replay.base_url, tmp_path)
    try:
        page.goto(server.url)  # the app registers its pages at its first run
        page.get_by_text("Quality").first.wait_for(timeout=30_000)
        page.goto(server.url + "/quality?symbol=BTCUSDT&interval=60")
        page.get_by_text("Metrics against their goals").wait_for(timeout=30_000)
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 1",
                               timeout=30_000)
        metrics = page.locator("table").first
        metrics.locator("tbody tr").nth(len(METRICS) - 1).wait_for(timeout=30_000)
        cells = metrics.locator("td").all_text_contents()
        rows_shown = [cells[i:i + 4] for i in range(0, len(cells), 4)]
        assert [r[0] for r in rows_shown] == list(METRICS)
        words = {True: "met", False: "missed", None: "n/a"}
        assert [r[3] for r in rows_shown] == [words[ev.passed()[m]] for m in METRICS]
        text = page.inner_text("body")
        assert f"{ev.counts['bars']:,} bars with a regime" in text
        # The regime bands' legend names the regimes that occur, and only those.
        legend = set(page.locator(".js-plotly-plot .legendtext").all_text_contents())
        assert legend == {r.replace("_", " ") for r in rows["regime"].dropna()} | {"close"}
        assert "HMM layer" in text and "share labelled calm" in text
        assert _shot(page, tmp_path, "dashboard-quality.png").stat().st_size > 20_000
    finally:
        server.close()
    assert "Traceback" not in server.log.read_text()


def test_the_overview_shows_the_live_stream(page, dashboard_db, clean_replay, tmp_path):
    from conftest import with_stream_data

    db = str(tmp_path / "sentiment.duckdb")
    shutil.copy(dashboard_db, db)
    end = with_stream_data(db, tmp_path / "stream")
    clean_replay.set_clock(end + dt.timedelta(minutes=1))
    server = Dashboard(db, clean_replay.base_url, tmp_path)
    try:
        page.goto(server.url)
        page.get_by_text("Order book (OBI)").first.wait_for(timeout=30_000)
        page.get_by_text("CASCADE, LONG SQUEEZE").first.wait_for(timeout=30_000)
        newest = Store(db).query("SELECT obi FROM orderbook_imbalance ORDER BY ts DESC "
                                 "LIMIT 1")["obi"].iloc[0]
        text = page.inner_text("body")
        assert f"{newest:+.2f}".replace("-", "−") in text.replace("-", "−")
        _shot(page, tmp_path, "dashboard-stream.png")
        day = end - dt.timedelta(days=1)
        page.goto(server.url + f"/exchange?symbol=BTCUSDT&from={day:%Y-%m-%d}")
        page.get_by_text("Liquidations per hour").wait_for(timeout=30_000)
        _shot(page, tmp_path, "dashboard-exchange-stream.png")
    finally:
        server.close()
    assert "Traceback" not in server.log.read_text()


def test_the_dashboard_reads_while_the_live_job_and_a_backfill_write(
        page, dashboard_db, clean_replay, tmp_path):
    from conftest import dashboard_config

    from orchestration.definitions import build_definitions
    from sentiment.settings import get_settings

    db = str(tmp_path / "sentiment.duckdb")
    shutil.copy(dashboard_db, db)
    server = Dashboard(db, clean_replay.base_url, tmp_path, refresh_seconds=1)
    try:
        page.goto(server.url)
        before = _latest(db, "BTCUSDT")["timestamp"]
        page.get_by_text(f"Latest bar closed {before:%Y-%m-%d %H:%M} UTC").first.wait_for(
            timeout=30_000)
        settings = dataclasses.replace(get_settings(), db_path=db,
                                       bybit_base_url=clean_replay.base_url,
                                       fear_greed_url=clean_replay.fear_greed_url)
        defs = build_definitions(dashboard_config(), settings)

        def run(job, **kwargs):
            return defs.resolve_job_def(job).execute_in_process(
                instance=DagsterInstance.ephemeral(), raise_on_error=False, **kwargs)

        # Six new hours on the exchange: the live job brings them in while the page reads
        # the file every second; then a backfill rewrites ten days of both symbols.
        clean_replay.set_clock(before + dt.timedelta(hours=6, seconds=30))
        assert run("live_update_job").success
        assert run("sentiment_job", tags={
            "dagster/asset_partition_range_start": "2022-03-10|BTCUSDT",
            "dagster/asset_partition_range_end": "2022-03-19|ETHUSDT"}).success
        after = _latest(db, "BTCUSDT")["timestamp"]
        assert after == before + dt.timedelta(hours=6)
        page.get_by_text(f"Latest bar closed {after:%Y-%m-%d %H:%M} UTC").first.wait_for(
            timeout=30_000)
        assert "Could not set lock" not in page.inner_text("body")
        _shot(page, tmp_path, "dashboard-live.png")
    finally:
        server.close()
    log = server.log.read_text()
    assert "Could not set lock" not in log and "Traceback" not in log


def test_a_busy_database_keeps_the_page_with_a_note(page, dashboard_db, clean_replay,
                                                    tmp_path):
    """The pipeline holds the write lock: the open overview keeps its last good view under
    a "database busy" note (no traceback, no path or PID), and drops the note once the
    writer is done."""
    import shutil
    import textwrap

    db = str(tmp_path / "busy.duckdb")
    shutil.copy(dashboard_db, db)
    app = Dashboard(db, clean_replay.base_url, tmp_path, lock_wait_seconds=0.5)
    try:
        page.goto(app.url)
        page.get_by_text("BTCUSDT").first.wait_for(timeout=60_000)
        writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from sentiment.io.store import Store
            with Store({db!r}).connect() as conn:
                print("locked", flush=True)
                sys.stdin.readline()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert writer.stdout.readline().strip() == "locked"
            note = page.get_by_text("Database busy (the pipeline is writing)")
            note.wait_for(timeout=60_000)  # the page's next refresh reads past the lock
            # The cards drawn from the last good read, under the note.
            page.get_by_text("ETHUSDT").first.wait_for(timeout=60_000)
            text = page.inner_text("body")
            assert "showing data as of" in text
            assert "BTCUSDT" in text and "ETHUSDT" in text, text  # the last good view stays
            assert "Traceback" not in text and "PID" not in text and db not in text
            _shot(page, tmp_path, "dashboard-busy.png")
        finally:
            writer.communicate("\n", timeout=30)
        note.wait_for(state="detached", timeout=60_000)  # fresh data again, no note
    finally:
        app.close()
