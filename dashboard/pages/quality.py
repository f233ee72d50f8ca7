"""Quality: how well the confirmed regime described the stored history, the figures
``sentiment evaluate`` prints (sentiment.core.evaluation): each metric against its goal, the
regimes' shares and what followed them, the HMM layer's figures, and the regime over price."""

import pandas as pd
import streamlit as st

from dashboard import charts, controls, queries, report
from sentiment.models import INTERVAL_MINUTES

settings, config, extents = controls.page("Regime quality")

symbol, interval, extent = controls.symbol_and_interval(extents, config)
first, last = pd.Timestamp(extent["first"].iloc[0]), pd.Timestamp(extent["last"].iloc[0])
# Judged over everything stored unless a range is asked for: a month says little about
# transitions per month or crash catches.
start, end = controls.time_range(first, last, (last - first).days + 1)

#: How a goal's outcome reads on the page (st.table renders the Markdown colours).
MARKS = {True: ":green[met]", False: ":red[missed]", None: "n/a"}


def _marked(frame: pd.DataFrame) -> pd.DataFrame:
    """The table with its ``met`` column in words (blank where the row has no goal) and
    its goals as ≤ / ≥ (a cell starting with ">" would read as a Markdown quote)."""
    met = [("" if m is None and g == "" else MARKS[m])
           for m, g in zip(frame["met"], frame["goal"], strict=True)]
    goal = frame["goal"].str.replace("<=", "≤").str.replace(">=", "≥")
    return frame.assign(met=met, goal=goal)


@st.fragment(run_every=config.dashboard.refresh_seconds)
def quality() -> None:
    try:
        rows, _ = queries.history(settings.db_path, symbol, interval, start, end)
        ev = queries.quality(settings.db_path, symbol, interval, start, end)
    except queries.Unavailable as exc:
        controls.explain(exc, settings.db_path, config.dashboard.refresh_seconds)
        return
    controls.busy_note(settings.db_path)
    if rows.empty:
        st.info("No rows in this range.")
        return
    name = f"{symbol} {controls.INTERVAL_NAMES.get(interval, interval)}"
    st.caption(report.summary(ev, name) + ". The same figures as `sentiment evaluate`.")
    bar = pd.Timedelta(minutes=INTERVAL_MINUTES[interval])
    st.plotly_chart(charts.regime_price(rows, bar), key="regime-price")
    st.subheader("Metrics against their goals")
    st.table(_marked(report.metrics_table(ev)), hide_index=True, width="content")
    st.subheader("Per regime")
    st.caption("Share of bars with its goal, runs and mean run length in bars; then the next "
               "24 h after each bar (closed windows only): return and realised volatility, "
               "median and 10th / 90th percentiles.")
    st.table(_marked(report.regimes_table(ev)), hide_index=True)
    st.subheader("HMM layer")
    if ev.hmm:
        st.table(report.hmm_table(ev), hide_index=True, width="content")
    else:
        st.info("No HMM labels in this range.")


quality()
