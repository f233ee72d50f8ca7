"""Speed of the dashboard (issue targets in brackets).

1. Time to first full render in Chromium, from navigation until the regime, the score and
   every chart of the page are drawn, with one year of hourly history for two symbols
   [<= 3 s]: the overview, the history page at its default 30 days and over the whole year,
   and the exchange page, for a new visitor (nothing cached) and a returning one (the
   browser has the app's scripts). Median of 7 loads each, after one warm-up load.
2. Database time per page: the page's read-only queries, uncached (median of 20).

The year is built first through the real jobs against the replay exchange (about 1.5 min).
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from conftest import build_database  # noqa: E402

from replay.server import ReplayExchange  # noqa: E402
from sentiment.config import INTERVAL_MINUTES, load_config  # noqa: E402
from sentiment.io.store import Store, named_queries  # noqa: E402

LOADS = 7
VIEW = {"viewport": {"width": 1600, "height": 1100}}


def build_year(exchange, db: str) -> None:
    build_database(exchange, db, "2022-01-01", "2022-12-31", config=load_config())


def bench_queries(db: str) -> None:
    sql = named_queries("dashboard.sql")
    store = Store(db)
    last = dt.datetime(2023, 1, 1)
    month, year = last - dt.timedelta(days=30), dt.datetime(2022, 1, 1)
    pages = {
        "overview": [("extents", []), ("latest", ["60"])],
        "history, 30 days": [("extents", []),
                             ("history", [INTERVAL_MINUTES["60"], "BTCUSDT", "60", month, last]),
                             ("transitions", ["BTCUSDT", "60", month, last])],
        "history, the year": [("extents", []),
                              ("history", [INTERVAL_MINUTES["60"], "BTCUSDT", "60", year, last]),
                              ("transitions", ["BTCUSDT", "60", year, last])],
        "exchange, 30 days": [("extents", []), ("funding", ["BTCUSDT", month, last]),
                              ("open_interest", ["BTCUSDT", "1h", month, last]),
                              ("long_short", ["BTCUSDT", "1h", month, last]),
                              ("fear_greed", [month, last])],
    }
    for name, queries in pages.items():
        times = []
        for _ in range(20):
            start = time.perf_counter()
            with store.connect(read_only=True) as conn:
                for query, params in queries:
                    conn.execute(sql[query], params).df()
            times.append(time.perf_counter() - start)
        print(f"queries of {name}: median {statistics.median(times) * 1000:.1f} ms "
              "(one read-only connection, opened and closed)")


def bench_render(db: str, exchange, tmp: Path) -> None:
    from playwright.sync_api import sync_playwright
    from test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, Dashboard

    floor = _floor(tmp)
    print(f"for scale, a bare Streamlit page with one small Plotly chart: new visitor median "
          f"{floor[0]:.2f} s, returning visitor median {floor[1]:.2f} s")
    server = Dashboard(db, exchange.base_url, tmp, refresh_seconds=60)
    pages = {
        "overview": ("/", 4, "BTCUSDT"),
        "history, default 30 days": ("/history?symbol=BTCUSDT&interval=60", 2, "bars,"),
        "history, the whole year": (
            "/history?symbol=BTCUSDT&interval=60&from=2022-01-01&to=2022-12-31", 2, "bars,"),
        "exchange and macro, 30 days": ("/exchange?symbol=BTCUSDT", 1, "Funding rate"),
        "exchange and macro, the whole year": (
            "/exchange?symbol=BTCUSDT&from=2022-01-01&to=2022-12-31", 1, "Funding rate"),
    }
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for name, (path, charts, text) in pages.items():
                # A new visitor: a fresh browser profile, nothing cached. A returning one:
                # the same profile (the app's scripts cached), a new tab and session.
                new = [_load(browser.new_context(**VIEW), server.url + path, charts, text,
                             close_context=True) for _ in range(LOADS + 1)][1:]
                returning = browser.new_context(**VIEW)
                again = [_load(returning, server.url + path, charts, text)
                         for _ in range(LOADS + 1)][1:]
                returning.close()
                print(f"first full render in Chromium, {name}: new visitor median "
                      f"{statistics.median(new):.2f} s (max {max(new):.2f}), returning "
                      f"visitor median {statistics.median(again):.2f} s (max "
                      f"{max(again):.2f}) over {LOADS} loads [target <= 3 s]")
            browser.close()
    finally:
        server.close()


def _floor(tmp: Path) -> tuple[float, float]:
    """The same measure on a one-chart Streamlit app: what Streamlit and Plotly's own
    scripts cost before the dashboard does anything."""
    import subprocess

    import requests
    from playwright.sync_api import sync_playwright
    from test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, _free_port

    app = tmp / "bare.py"
    app.write_text("import plotly.graph_objects as go\nimport streamlit as st\n"
                   "st.title('bare page')\n"
                   "st.plotly_chart(go.Figure(go.Scatter(x=[1, 2, 3], y=[1, 3, 2])))\n")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port),
         "--browser.gatherUsageStats", "false"], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:  # polling the health endpoint until the server answers
        try:
            if requests.get(url + "_stcore/health", timeout=1).text == "ok":
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "streamlit did not start"
        time.sleep(0.1)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            browser.new_page().goto(url, wait_until="load", timeout=60_000)  # up and warm
            new = [_load(browser.new_context(**VIEW), url, 1, "bare page", close_context=True)
                   for _ in range(LOADS + 1)][1:]
            returning = browser.new_context(**VIEW)
            again = [_load(returning, url, 1, "bare page") for _ in range(LOADS + 1)][1:]
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return statistics.median(new), statistics.median(again)


def _load(context, url: str, charts: int, text: str, close_context: bool = False) -> float:
    """Seconds from navigation until ``text``, ``charts`` drawn Plotly charts and no
    loading skeleton are on the page."""
    page = context.new_page()
    start = time.perf_counter()
    page.goto(url)
    page.get_by_text(text).first.wait_for(timeout=60_000)
    page.wait_for_function(
        f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {charts} "
        "&& !document.querySelector('[data-testid=stSkeleton]')", timeout=60_000,
        polling="raf")
    elapsed = time.perf_counter() - start
    (context if close_context else page).close()
    return elapsed


def main() -> None:
    """``bench_dashboard.py [DB]``: an existing database of the bundled year skips the build."""
    with tempfile.TemporaryDirectory() as tmp:
        db = sys.argv[1] if len(sys.argv) > 1 else str(Path(tmp) / "year.duckdb")
        with ReplayExchange(port=0) as exchange:
            if not Path(db).exists():
                start = time.perf_counter()
                build_year(exchange, db)
                print(f"built one year of hourly history for two symbols in "
                      f"{time.perf_counter() - start:.0f} s")
            bench_queries(db)
            bench_render(db, exchange, Path(tmp))


if __name__ == "__main__":
    main()
