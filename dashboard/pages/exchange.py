"""Exchange and macro: funding, open interest, long/short ratio and Fear & Greed over time,
with the thresholds the sentiment engine reads them by."""

import pandas as pd
import streamlit as st

from dashboard import charts, controls, queries
from sentiment.provenance import SYNTHETIC

settings, config, extents = controls.page("Exchange and macro data")

symbol = controls.symbol(sorted(extents["symbol"].unique()))
mine = extents[extents["symbol"] == symbol]
start, end = controls.time_range(pd.Timestamp(mine["first"].min()),
                                 pd.Timestamp(mine["last"].max()),
                                 config.dashboard.default_days)
ex = config.exchange_data


def provenance_sentence(notes: dict[str, str]) -> str:
    """Which series drawn here are not market data, in one sentence."""
    names = {"open_interest": "open interest", "long_short_ratio": "the long/short ratio",
             "orderbook_imbalance": "order-book imbalance", "liquidations": "liquidations"}
    synthetic = [names[t] for t, kind in notes.items() if kind == SYNTHETIC and t in names]
    derived = [names[t] for t, kind in notes.items() if kind != SYNTHETIC and t in names]
    parts = []
    if synthetic:
        parts.append(f"{' and '.join(synthetic)} are SYNTHETIC (generated from the candles "
                     "by the replay exchange; no recording of them exists)")
    if derived:
        parts.append(f"{' and '.join(derived)} are derived from candles by the replay "
                     "exchange's stream, not recorded")
    return "Not market data: " + "; ".join(parts) + ". Their panels say so."


@st.fragment(run_every=config.dashboard.refresh_seconds)
def exchange() -> None:
    try:
        frames = queries.exchange(settings.db_path, symbol, ex.open_interest_interval,
                                  ex.long_short_period, start, end)
    except queries.Unavailable as exc:
        controls.explain(exc, settings.db_path, config.dashboard.refresh_seconds)
        return
    controls.busy_note(settings.db_path)
    # Judged at the newest bar shown: the series drawn come from where its candles came from.
    shown_until = min(pd.Timestamp(end), pd.Timestamp(mine["last"].max())).to_pydatetime()
    notes = queries.provenance(settings.db_path, symbol, shown_until)
    if notes:
        st.warning(provenance_sentence(notes), icon=":material/science:")
    st.caption(f"{symbol}: open interest every {ex.open_interest_interval}, long/short "
               f"every {ex.long_short_period}, funding per settlement, Fear & Greed daily. "
               "Dashed lines: the levels the exchange and macro scores treat as crowded or "
               "extreme.")
    st.plotly_chart(charts.exchange(frames["funding"], frames["open_interest"],
                                    frames["long_short"], frames["fear_greed"], frames["obi"],
                                    frames["liquidations"], notes),
                    key="exchange")
    if frames["obi"].empty and frames["liquidations"].empty:
        st.caption("No live-stream data (order-book imbalance, liquidations) in this range: "
                   "`sentiment stream` records them (`make up` runs it against the replay "
                   "exchange).")


exchange()
