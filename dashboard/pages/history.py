"""History: price with the regime behind it, the composite and its parts, the HMM's view,
and the regime transitions."""

import pandas as pd
import streamlit as st

from dashboard import charts, controls, queries
from sentiment.models import INTERVAL_MINUTES

settings, config, extents = controls.page("Sentiment history")

symbol, interval, extent = controls.symbol_and_interval(extents, config)
start, end = controls.time_range(pd.Timestamp(extent["first"].iloc[0]),
                                 pd.Timestamp(extent["last"].iloc[0]),
                                 config.dashboard.default_days)


#: Regime changes listed on the page, newest first (a long list slows the first render).
TRANSITIONS_LISTED = 20


def _duration(delta: pd.Timedelta) -> str:
    return controls.short_duration(int(delta.total_seconds() // 60))


def _transitions_table(transitions: pd.DataFrame, first_close: pd.Timestamp) -> str:
    """Newest first, with how long the regime left behind had lasted (at least since the
    range's first bar, for the oldest change). A Markdown table draws at once, where a data
    grid first loads its own code."""
    t = pd.to_datetime(transitions["timestamp"])
    since = t.shift(-1)
    lines = ["| Bar close (UTC) | From | To | From lasted |", "|---|---|---|---|"]
    for when, old, new, began in zip(t, transitions["from_regime"], transitions["to_regime"],
                                     since, strict=True):
        old = "warming up" if pd.isna(old) else str(old).replace("_", " ")
        lasted = (f"≥ {_age(when - pd.Timestamp(first_close))}" if pd.isna(began)
                  else _age(when - began))
        lines.append(f"| {when:%Y-%m-%d %H:%M} | {old} | {str(new).replace('_', ' ')} | "
                     f"{lasted} |")
    return "\n".join(lines)


def _age(delta: pd.Timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.1f} d"


@st.fragment(run_every=config.dashboard.refresh_seconds)
def history() -> None:
    try:
        rows, transitions = queries.history(settings.db_path, symbol, interval, start, end)
    except queries.Unavailable as exc:
        controls.explain(exc, settings.db_path, config.dashboard.refresh_seconds)
        return
    controls.busy_note(settings.db_path)
    if rows.empty:
        st.info("No rows in this range.")
        return
    newest = rows.iloc[-1]
    regime = newest["regime"]
    state = "warming up" if pd.isna(regime) else (
        f"{str(regime).replace('_', ' ')}, composite {float(newest['sentiment_score']):+.2f}")
    bar = pd.Timedelta(minutes=INTERVAL_MINUTES[interval])
    step = charts.display_step(rows, bar)
    drawn = "" if step == bar else (
        f" Drawn as {_duration(step)} bars (each with the OHLC of its {_duration(bar)} bars "
        "and the snapshot at its close); the CSV has every row.")
    st.caption(f"{symbol} {controls.INTERVAL_NAMES.get(interval, interval)}: {len(rows):,} "
               f"bars, {rows['timestamp'].iloc[0]:%Y-%m-%d %H:%M} to "
               f"{newest['timestamp']:%Y-%m-%d %H:%M} UTC (bar closes). Latest: {state}."
               + drawn)
    notes = queries.tier_notes(queries.provenance(
        settings.db_path, symbol, pd.Timestamp(newest["timestamp"]).to_pydatetime()))
    st.plotly_chart(charts.history(rows, config.weights.as_dict(), bar, notes), key="history")
    shortest = charts.min_period_bars(len(rows))
    merged = "" if shortest == 1 else (
        f"Runs shorter than {shortest} bars ({_duration(bar * shortest)}, 1/"
        f"{round(1 / charts.MIN_PERIOD_SHARE)} of the range) are drawn as part of the period "
        "before them, so the bands read as periods; hover a candle for its own regime. ")
    st.caption("Background: the confirmed regime. " + merged + "The transitions below list "
               "every change." + (" Exchange tier: open interest and long/short ratio are "
                                  "synthetic here (generated from candles, not market data)."
                                  if notes.get("exchange") else ""))
    probs = queries.state_probabilities(charts.coarser_bars(rows, bar))
    st.subheader("HMM regime probabilities")
    if probs.empty:
        st.info("No HMM model covers this range yet (the first needs "
                f"{config.hmm.min_bars} bars before a weekly boundary).")
    else:
        span = (rows["timestamp"].iloc[0] - bar, newest["timestamp"])
        st.plotly_chart(charts.hmm_probabilities(probs, span), key="hmm")
    st.subheader(f"Regime transitions ({len(transitions):,})")
    if transitions.empty:
        st.caption("No regime change in this range.")
    else:
        if len(transitions) > TRANSITIONS_LISTED:
            st.caption(f"The {TRANSITIONS_LISTED} most recent; the CSV below and the "
                       "regime_transitions table have them all.")
        with st.container(height=280):
            st.markdown(_transitions_table(transitions.head(TRANSITIONS_LISTED),
                                           rows["timestamp"].iloc[0]))


def _csv(part: int) -> bytes:
    """The range's rows (0) or transitions (1) as CSV, read when the button is pressed: the
    buttons stay outside the refreshing fragment, so a refresh never swallows a click."""
    try:
        frame = queries.history(settings.db_path, symbol, interval, start, end)[part]
    except queries.Unavailable as exc:  # the file says why, rather than a broken download
        return f"{exc}\n".encode()
    return frame.to_csv(index=False).encode()


history()
left, right = st.columns(2)
left.download_button(
    "Download the rows shown (CSV)", lambda: _csv(0),
    file_name=f"sentiment_{symbol}_{interval}_{start:%Y%m%d}.csv", mime="text/csv",
    on_click="ignore")
right.download_button(
    "Download their regime transitions (CSV)", lambda: _csv(1),
    file_name=f"regime_transitions_{symbol}_{interval}_{start:%Y%m%d}.csv", mime="text/csv",
    on_click="ignore")
