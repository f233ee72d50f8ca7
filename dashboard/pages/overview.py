"""Overview: the current state of every symbol at a glance."""

import pandas as pd
import streamlit as st

from dashboard import charts, controls, queries
from sentiment.models import INTERVAL_MINUTES, fear_greed_class, sentiment_label

settings, config = queries.context()
st.title("Market sentiment")
interval = controls.interval(list(config.intervals))


def _pct(value, fmt):
    return "n/a" if pd.isna(value) else format(float(value), fmt)


def _age(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} d"


def stream_metrics(live: dict | None, pressure, now: pd.Timestamp) -> None:
    """The live stream's view of one symbol: order-book imbalance and liquidations."""
    if live is None:
        st.caption("No live-stream data: `sentiment stream` records order-book imbalance "
                   "and liquidations.")
        return
    age = (now - pd.Timestamp(live["through"])).total_seconds()
    if age > config.stream.alive_seconds:
        st.warning(f"Live stream stopped: its newest message is {_age(age)} old.",
                   icon=":material/signal_disconnected:")
    f, g = st.columns(2)
    obi = live["obi"]
    side = "" if pd.isna(obi) else ("bids heavier" if obi > 0.05 else
                                    "asks heavier" if obi < -0.05 else "balanced")
    f.metric("Order book (OBI)", _pct(obi, "+.2f"), side or None, delta_color="off",
             delta_arrow="off", help="Top 5 levels, weights 1 .. 0.0625; +1: all bids.")
    minutes = config.stream.liquidation_window_seconds // 60
    alarms = ", ".join(filter(None, ("CASCADE" if pressure.cascade else "",
                                     f"{pressure.squeeze} squeeze".upper()
                                     if pressure.squeeze else "")))
    note = alarms or ("watching (< 1 h)" if pressure.warming_up
                      else f"{pressure.ratio:.1f}x the hour's average")
    g.metric(f"Liquidations, {minutes} min", f"{pressure.volume:,.0f} USDT", note,
             delta_color="inverse" if alarms else "off", delta_arrow="off",
             help="Liquidated notional (longs and shorts); cascade above 3x the hour's "
                  "average window, squeeze when one side is over 80 %.")


def symbol_card(row: dict, now: pd.Timestamp, clock_ok: bool, live: dict | None = None,
                pressure=None) -> None:
    with st.container(border=True):
        st.subheader(row["symbol"])
        age = (now - pd.Timestamp(row["timestamp"])).total_seconds()
        limit = config.dashboard.stale_after_bars * INTERVAL_MINUTES[interval] * 60
        clock = "exchange clock" if clock_ok else "this machine's clock (exchange unreachable)"
        closed = f"{pd.Timestamp(row['timestamp']):%Y-%m-%d %H:%M} UTC"
        if age > limit:
            st.error(f"Stale: the latest bar closed {closed}, {_age(age)} ago by the {clock}.",
                     icon=":material/schedule:")
        else:
            st.caption(f"Latest bar closed {closed}, {_age(max(age, 0))} ago ({clock}).")
        left, right = st.columns([1, 1])
        with left:
            score = float(row["sentiment_score"]) if not pd.isna(row["sentiment_score"]) \
                else float("nan")
            st.plotly_chart(charts.gauge(score, sentiment_label(score)),
                            key=f"gauge-{row['symbol']}", config={"displayModeBar": False})
            regime = row["regime"]
            if pd.isna(regime):
                st.metric("Regime", "warming up")
            else:
                st.metric("Regime", str(regime).replace("_", " ").upper(),
                          f"{int(row['regime_duration_bars'])} bars, confidence "
                          f"{float(row['regime_confidence']):.2f}", delta_color="off",
                          delta_arrow="off")
            st.caption(f"Sentiment confidence {_pct(row['confidence'], '.2f')}")
        with right:
            st.plotly_chart(charts.subscores(row), key=f"tiers-{row['symbol']}",
                            config={"displayModeBar": False})
        a, b, c = st.columns(3)
        d, e, _ = st.columns(3)
        funding = row["funding_rate"]
        a.metric("Funding", "n/a" if pd.isna(funding) else f"{float(funding) * 100:+.4f}%")
        b.metric("OI change", _pct(row["open_interest_delta_pct"], "+.2f") + " %")
        c.metric("Long share", _pct(row["long_short_ratio"], ".2f"))
        fng = row["fear_greed_index"]
        d.metric("Fear & Greed", "n/a" if pd.isna(fng) else f"{int(fng)}",
                 None if pd.isna(fng) else fear_greed_class(float(fng)), delta_color="off",
                 delta_arrow="off")
        hmm_label = row["hmm_regime"]
        e.metric("HMM", "n/a" if pd.isna(hmm_label) else str(hmm_label).replace("_", " "),
                 None if pd.isna(hmm_label) else f"p = {float(row['hmm_probability']):.2f}",
                 delta_color="off", delta_arrow="off")
        stream_metrics(live, pressure, now)


@st.fragment(run_every=config.dashboard.refresh_seconds)
def overview() -> None:
    try:
        queries.extents(settings.db_path)  # NoData when nothing is stored yet
        latest = queries.latest(settings.db_path, interval)
    except queries.NoData as exc:
        controls.explain_no_data(str(exc), settings.db_path)
        return
    except queries.Busy as exc:
        controls.explain_busy(str(exc))
        return
    controls.busy_note(settings.db_path)
    now, clock_ok = queries.source_now(settings.bybit_base_url)
    rows = {r["symbol"]: r for r in latest.to_dict("records")}
    stream_now, liquidations = queries.stream(settings.db_path)
    live = {r["symbol"]: r for r in stream_now.to_dict("records")}
    columns = st.columns(max(1, len(config.symbols)))
    for column, name in zip(columns, config.symbols, strict=True):
        with column:
            if name in rows:
                mine = live.get(name)
                pressure = None if mine is None else queries.liquidation_pressure(
                    liquidations, mine, config.stream.liquidation_window_seconds)
                symbol_card(rows[name], now, clock_ok, mine, pressure)
            else:
                st.info(f"No {name} rows at this interval yet.")


overview()
