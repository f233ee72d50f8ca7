"""What a trader reads in the real dashboard (``streamlit run`` in headless Chromium): no
figure on the overview is cut off, and the history chart's legends never cover its panel
titles, over a month and over the whole stored range."""

from __future__ import annotations

import pytest
import test_dashboard_browser as base

Dashboard, _shot = base.Dashboard, base._shot
browser, page = base.browser, base.page  # the browser fixtures, shared

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

#: For every metric value on the page: its text and whether it is wider than its box
#: (Streamlit cuts a long value off with an ellipsis).
_CUT_OFF = """() => [...document.querySelectorAll('[data-testid=stMetricValue]')].map(e => {
    const inner = e.querySelector('div') || e;
    return [e.innerText, inner.scrollWidth > inner.clientWidth + 1
                         || e.scrollWidth > e.clientWidth + 1];
})"""
#: Boxes (x0, y0, x1, y1) of the history chart's legends and panel titles.
_BOXES = """() => {
    const plot = [...document.querySelectorAll('.js-plotly-plot')]
        .find(p => p.textContent.includes('Price and regime'));
    const box = e => { const r = e.getBoundingClientRect();
                       return [r.left, r.top, r.right, r.bottom]; };
    return {legends: [...plot.querySelectorAll('g.legend, g.legend2, g.legend3')].map(box),
            titles: [...plot.querySelectorAll('g.annotation-text-g text, .annotation-text')]
                    .filter(t => t.textContent.length > 0).map(t => [t.textContent, box(t)])};
}"""


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_no_overview_figure_is_cut_off(page, dashboard_db, clean_replay, tmp_path):
    server = Dashboard(dashboard_db, clean_replay.base_url, tmp_path)
    try:
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.goto(server.url)
        page.get_by_text("Recorded period").first.wait_for(timeout=30_000)
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 4",
                               timeout=30_000)
        values = page.evaluate(_CUT_OFF)
        assert len(values) >= 2 * 10  # price, changes, regime, confidence, exchange, macro
        assert [v for v, cut in values if cut or "…" in v] == []
        text = page.inner_text("body")
        assert "Stale" not in text and "the this" not in text
        _shot(page, tmp_path, "dashboard-overview-reading.png")
    finally:
        server.close()
    assert "Traceback" not in server.log.read_text()


@pytest.mark.parametrize("params", ["symbol=BTCUSDT&interval=60",
                                    "symbol=ETHUSDT&interval=60&from=2022-01-01"])
def test_the_history_legends_leave_the_titles_clear(page, dashboard_db, clean_replay,
                                                     tmp_path, params):
    server = Dashboard(dashboard_db, clean_replay.base_url, tmp_path)
    try:
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.goto(server.url)
        page.get_by_text("History").first.wait_for(timeout=30_000)
        page.goto(f"{server.url}/history?{params}")
        page.get_by_text("Price and regime").wait_for(timeout=30_000)
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot g.legend3')"
                               ".length >= 1", timeout=30_000)
        boxes = page.evaluate(_BOXES)
        names = [t for t, _ in boxes["titles"]]
        assert {"Price and regime", "Composite sentiment",
                "Contributions to the composite"} <= set(names)
        assert len(boxes["legends"]) == 3
        clashes = [(name, legend) for name, title in boxes["titles"]
                   for legend in boxes["legends"] if _overlap(title, legend)]
        assert clashes == []
        _shot(page, tmp_path, "dashboard-history-legends.png")
    finally:
        server.close()
    assert "Traceback" not in server.log.read_text()
