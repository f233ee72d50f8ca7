"""History: price with the regime behind it, the composite and its parts, the HMM's view,
and the regime transitions."""

import pandas as pd
import streamlit as st

from dashboard import charts, controls, queries
from sentiment.config import INTERVAL_MINUTES

settings, config = queries.context()
st.title("Sentiment history")
try:
    extents = queries.extents(settings.db_path)
except queries.NoData as exc:
    controls.explain_no_data(str(exc), settings.db_path)
    st.stop()
except queries.Busy as exc:
    controls.explain_busy(str(exc))
    st.stop()

symbol = controls.symbol(sorted(extents["symbol"].unique()))
interval = controls.interval(
    [i for i in config.intervals if i in set(extents.loc[extents["symbol"] == symbol,
                                                         "interval"])] or list(config.intervals))
extent = extents[(extents["symbol"] == symbol) & (extents["interval"] == interval)]
if extent.empty:
    st.info(f"No {symbol} rows at interval {interval} yet.")
    st.stop()
start, end = controls.time_range(pd.Timestamp(extent["first"].iloc[0]),
                                 pd.Timestamp(extent["last"].iloc[0]),
                                 config.dashboard.default_days)


@st.fragment(run_every=config.dashboard.refresh_seconds)
def history() -> None:
    try:
        rows, transitions = queries.history(settings.db_path, symbol, interval, start, end)
    except queries.Busy as exc:
        controls.explain_busy(str(exc))
        return
    if rows.empty:
        st.info("No rows in this range.")
        return
    newest = rows.iloc[-1]
    regime = newest["regime"]
    state = "warming up" if pd.isna(regime) else (
        f"{str(regime).replace('_', ' ')}, composite {float(newest['sentiment_score']):+.2f}")
    st.caption(f"{symbol} {controls.INTERVAL_NAMES.get(interval, interval)}: {len(rows):,} "
               f"bars, {rows['timestamp'].iloc[0]:%Y-%m-%d %H:%M} to "
               f"{newest['timestamp']:%Y-%m-%d %H:%M} UTC (bar closes). Latest: {state}.")
    bar = pd.Timedelta(minutes=INTERVAL_MINUTES[interval])
    st.plotly_chart(charts.history(rows, config.weights.as_dict(), bar), key="history")
    probs = queries.state_probabilities(rows)
    st.subheader("HMM regime probabilities")
    if probs.empty:
        st.info("No HMM model covers this range yet (the first needs "
                f"{config.hmm.min_bars} bars before a weekly boundary).")
    else:
        st.plotly_chart(charts.hmm_probabilities(probs), key="hmm")
    st.subheader("Regime transitions")
    st.dataframe(transitions, hide_index=True, height=260)
    st.download_button(
        "Download these rows (CSV)", rows.to_csv(index=False).encode(),
        file_name=f"sentiment_{symbol}_{interval}_{start:%Y%m%d}.csv", mime="text/csv",
        on_click="ignore")


history()
