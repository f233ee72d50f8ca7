"""The regime-quality evaluation as tables and as a self-contained HTML page.

``sentiment evaluate --html`` writes :func:`html_report`; the dashboard's Quality page shows
the same tables (:func:`metrics_table`, :func:`regimes_table`, :func:`hmm_table`) and the
same regime-over-price figure (:func:`dashboard.charts.regime_price`), so both read alike.
"""

from __future__ import annotations

import html
import math

import pandas as pd

from dashboard.charts import regime_price
from sentiment.core.evaluation import (
    SHARE_TARGETS,
    TARGETS,
    Evaluation,
    format_metric,
    format_num,
    format_pct,
)
from sentiment.models import INTERVAL_MINUTES

#: How a goal's outcome reads in the HTML report (the dashboard words it its own way).
MARKS = {True: "ok", False: "MISS", None: "n/a"}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1200px;
       color: #222; }
table { border-collapse: collapse; margin: 8px 0 24px; font-size: 14px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right;
         white-space: nowrap; }
th:first-child, td:first-child, table.events td:last-child,
table.events th:last-child { text-align: left; white-space: normal; }
td.ok { color: #2ca02c; font-weight: 600; }
td.MISS { color: #d62728; font-weight: 600; }
p.note { color: #666; font-size: 13px; }
"""


def summary(ev: Evaluation, name: str | None = None) -> str:
    """One line: what was evaluated (``name``, by default symbol and interval code) and the
    counts behind the catch rates."""
    name = name or f"{ev.symbol or ''} {ev.interval}".strip()
    if ev.start is None:
        return f"{name}: {ev.bars:,} bars, none with a confirmed regime yet"
    c = ev.counts
    return (f"{name}: {ev.start:%Y-%m-%d %H:%M} to {ev.end:%Y-%m-%d %H:%M} UTC, "
            f"{c['bars']:,} bars with a regime, {c['transitions']:,} transitions; crash "
            f"onsets caught {c['crashes_caught']}/{c['crash_onsets']}, pump onsets caught "
            f"{c['pumps_caught']}/{c['pump_onsets']}")


def metrics_table(ev: Evaluation) -> pd.DataFrame:
    """The target metrics: value, goal and ``met`` (True, False, or None when there was
    nothing to measure)."""
    passed = ev.passed()
    return pd.DataFrame([
        {"metric": name, "value": format_metric(name, ev.metrics.get(name, math.nan)),
         "goal": f"{op} {bound:g}", "met": passed[name]}
        for name, (op, bound) in TARGETS.items()])


def regimes_table(ev: Evaluation) -> pd.DataFrame:
    """Per regime: share of bars with its goal, runs, mean run length, and the next 24 h
    (closed windows only): return and realised volatility, median [p10, p90]."""
    passed = ev.passed()
    out = []
    for name, row in ev.regimes.iterrows():
        goal = SHARE_TARGETS.get(name)
        out.append({
            "regime": name, "share": format_pct(row["share"]),
            "goal": f"{goal[0]} {goal[1]:g}" if goal else "",
            "met": passed.get(f"share_{name}"), "runs": int(row["runs"]),
            "mean bars": format_num(row["mean_duration"], 1),
            "return median": format_pct(row["fwd_return_median"], 2),
            "return p10": format_pct(row["fwd_return_p10"], 1),
            "return p90": format_pct(row["fwd_return_p90"], 1),
            "vol median": format_pct(row["fwd_vol_median"], 2),
            "vol p10": format_pct(row["fwd_vol_p10"], 2),
            "vol p90": format_pct(row["fwd_vol_p90"], 2),
        })
    return pd.DataFrame(out)


def hmm_table(ev: Evaluation) -> pd.DataFrame:
    """The HMM layer's own figures (empty when the rows have no HMM labels)."""
    if not ev.hmm:
        return pd.DataFrame(columns=["figure", "value"])
    rows = [("bars with an HMM label", f"{ev.hmm['bars']:,}")]
    rows += [(f"share labelled {label.replace('_', ' ')}", format_pct(share))
             for label, share in ev.hmm["label_shares"].items()]
    rows += [("high-volatility fwd_vol_ratio", format_num(ev.hmm["fwd_vol_ratio"], 2)),
             ("label changes", f"{ev.hmm['label_changes']:,}")]
    return pd.DataFrame(rows, columns=["figure", "value"])


def events_table(ev: Evaluation) -> pd.DataFrame:
    """The named events: price move and low over each (close to close), and the regimes
    shown with their bars."""
    if ev.events is None:
        return pd.DataFrame()
    return pd.DataFrame({
        "event": ev.events["event"],
        "start": [f"{t:%Y-%m-%d %H:%M}" for t in ev.events["start"]],
        "end": [f"{t:%Y-%m-%d %H:%M}" for t in ev.events["end"]],
        "bars": ev.events["bars"], "move": [format_pct(v) for v in ev.events["move"]],
        "low": [format_pct(v) for v in ev.events["low"]], "regimes (bars)": ev.events["regimes"]})


def _html_table(frame: pd.DataFrame, css: str = "") -> str:
    """A plain HTML table; a ``met`` column reads ok / MISS / n/a, coloured by its class."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for rec in frame.to_dict("records"):
        cells = []
        for col, value in rec.items():
            if col == "met":
                mark = "" if value is None and rec.get("goal") == "" else MARKS[value]
                cells.append(f'<td class="{mark}">{mark}</td>')
            else:
                cells.append(f"<td>{html.escape(str(value))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<table class="{css}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def html_report(evaluations: list[tuple[Evaluation, pd.DataFrame]]) -> str:
    """A self-contained HTML page (plotly.js inline, so it opens offline) of evaluations
    and the rows each was computed from: per symbol, the close over the regime bands, the
    metrics with their goals, the per-regime table, the HMM figures and the events."""
    parts = []
    for i, (ev, rows) in enumerate(evaluations):
        bar = pd.Timedelta(minutes=INTERVAL_MINUTES[ev.interval])
        figure = regime_price(rows, bar).to_html(full_html=False, include_plotlyjs=i == 0)
        title = f"{ev.symbol or ''} {ev.interval}".strip()
        parts += [f"<h2>{html.escape(title)}</h2>",
                  f"<p>{html.escape(summary(ev))}</p>", figure,
                  "<h3>Metrics</h3>", _html_table(metrics_table(ev)),
                  "<h3>Per regime</h3>",
                  '<p class="note">Share of bars, runs and mean run length in bars; the next '
                  "24 h after each bar, closed windows only: return and realised volatility "
                  "(std of log returns), median and 10th / 90th percentiles.</p>",
                  _html_table(regimes_table(ev))]
        if ev.hmm:
            parts += ["<h3>HMM layer</h3>", _html_table(hmm_table(ev))]
        events = events_table(ev)
        if len(events):
            shown = events[events["bars"] > 0]
            outside = len(events) - len(shown)
            parts += ["<h3>Events</h3>", _html_table(shown, "events") if len(shown) else ""]
            if outside:
                parts.append(f'<p class="note">{outside} of the {len(events)} events fall '
                             "outside these rows.</p>")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>Regime quality</title><style>{_STYLE}</style></head>"
            f"<body><h1>Regime quality</h1>{''.join(parts)}</body></html>\n")
