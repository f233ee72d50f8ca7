"""Overview: the current state of every symbol at a glance."""

import datetime as dt

import pandas as pd
import streamlit as st

from dashboard import charts, controls, queries
from sentiment.models import INTERVAL_MINUTES, fear_greed_class, sentiment_label
from sentiment.provenance import DERIVED, DERIVED_TABLES, SHOWN, SYNTHETIC, SYNTHETIC_TABLES

settings, config = controls.context()
st.title("Market sentiment")
interval = controls.interval(list(config.intervals))
BAR_NAME = controls.INTERVAL_NAMES.get(interval, interval)
# Metric values a little smaller than Streamlit's default, and wrapped rather than cut off
# ("TRENDING DO…"): a card is a third of a wide screen.
st.html("<style>[data-testid='stMetricValue'] {font-size: 1.6rem;} "
        "[data-testid='stMetricValue'] > div {white-space: normal; overflow: visible;}</style>")
#: How a tag on a figure reads (Streamlit's Markdown badge).
TAGS = {kind: f":orange-badge[{SHOWN[kind]}]" for kind in (SYNTHETIC, DERIVED)}


def _pct(value, fmt):
    return "n/a" if pd.isna(value) else format(float(value), fmt)


def _age(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} d"


def _tag(table: str, series: dict[str, str]) -> dict:
    """A figure's tag when its series is not market data: the metric's delta, in orange."""
    tag = series.get(table)
    return dict(delta=SHOWN[tag], delta_color="orange", delta_arrow="off") if tag else {}


def _change(closes: pd.Series, back: pd.Timedelta) -> float:
    """The change of the last close against the close ``back`` before it (NaN if unknown)."""
    if closes.empty:
        return float("nan")
    then = closes.index[-1] - back
    if then not in closes.index:
        return float("nan")
    return float(closes.iloc[-1] / closes.loc[then] - 1.0)


#: A replayed bar older than this by the exchange's clock belongs to a recorded period read
#: without the live loop; a younger one is a live replay that has not caught up yet.
RECORDED_AFTER = pd.Timedelta(days=7)


def freshness(row: dict, now: pd.Timestamp, clock_ok: bool, recorded: bool) -> None:
    """How old the latest bar is, by the exchange's clock (DESIGN 8.18): a caption when
    fresh, a red flag when stale, and a plain note for a recorded period (the bundled 2022
    data read without the live loop), which is old by design, not broken."""
    closed = pd.Timestamp(row["timestamp"])
    age = (now - closed).total_seconds()
    limit = config.dashboard.stale_after_bars * INTERVAL_MINUTES[interval] * 60
    bar = pd.Timedelta(minutes=INTERVAL_MINUTES[interval])
    clock = "the exchange's clock" if clock_ok else \
        "this machine's clock (the exchange did not answer)"
    when = f"{closed:%Y-%m-%d %H:%M} UTC"
    if age <= limit:
        st.caption(f"Latest bar closed {when}, {_age(max(age, 0))} ago by {clock}.")
    elif recorded and age < RECORDED_AFTER.total_seconds():
        # The replay exchange's clock is running near the data: the live loop is behind.
        st.warning(f"Catching up: the latest bar closed {when}, {_age(age)} before the "
                   f"replay exchange's clock; the live loop writes the bars closed since "
                   "(a first start takes a few minutes).", icon=":material/update:")
    elif recorded:
        st.info(f"Recorded period: the latest bar closed {when}. This database holds the "
                f"bundled recording of {closed - bar:%Y}, not a live feed (`make up` runs the live "
                "loop).", icon=":material/history:")
    else:
        st.error(f"Stale: the latest bar closed {when}, {_age(age)} ago by {clock}.",
                 icon=":material/schedule:")


def price_metrics(row: dict, closes: pd.Series) -> None:
    """The price and its change over the last bar and over 24 hours."""
    bar = pd.Timedelta(minutes=INTERVAL_MINUTES[interval])
    close = row["close"]
    a, b, c = st.columns([1.3, 1, 1])
    a.metric("Price", "n/a" if pd.isna(close) else f"{float(close):,.2f}",
             help=f"The close of the latest {BAR_NAME} bar.")
    last_bar = _change(closes, bar)
    b.metric(f"Last {BAR_NAME} bar", _pct(last_bar * 100, "+.2f") + " %",
             help="Change of the close over the latest bar.")
    day = _change(closes, pd.Timedelta(days=1))
    c.metric("24 h", _pct(day * 100, "+.2f") + " %",
             help="Change of the close over the last 24 hours.")


def stream_metrics(live: dict | None, pressure, usual: float, silence: float,
                   series: dict[str, str]) -> None:
    """The live stream's view of one symbol: order-book imbalance and liquidations."""
    if live is None:
        st.caption("No live-stream data: `sentiment stream` records order-book imbalance "
                   "and liquidations.")
        return
    through = f"{pd.Timestamp(live['through']):%Y-%m-%d %H:%M:%S}"
    if silence > config.stream.alive_seconds:
        st.warning(f"Live stream stopped: nothing new from it for {_age(silence)} (this "
                   f"machine's clock); its newest message is stamped {through} (exchange "
                   "time).", icon=":material/signal_disconnected:")
    derived = sorted({series[t] for t in DERIVED_TABLES if t in series})
    if derived:
        st.markdown(f"Order book and liquidations: {' '.join(TAGS[t] for t in derived)}")
    f, g = st.columns(2)
    obi = live["obi"]
    side = "" if pd.isna(obi) else ("bids heavier" if obi > 0.05 else
                                    "asks heavier" if obi < -0.05 else "balanced")
    f.metric("Order book (OBI)", _pct(obi, "+.2f"),
             side or None, delta_color="off", delta_arrow="off",
             help="Top 5 levels, weights 1 .. 0.0625; +1: all bids.")
    minutes = config.stream.liquidation_window_seconds // 60
    squeeze = queries.squeeze_shown(pressure, usual)
    alarms = ", ".join(filter(None, ("CASCADE" if pressure.cascade else "",
                                     f"{squeeze} squeeze".upper() if squeeze else "")))
    note = alarms or ("watching (< 1 h)" if pressure.warming_up
                      else f"{pressure.ratio:.1f}x the hour's average")
    g.metric(f"Liquidations, {minutes} min",
             f"{pressure.volume:,.0f} USDT", note,
             delta_color="inverse" if alarms else "off", delta_arrow="off",
             help="Liquidated notional (longs and shorts) in the window.")
    needed = max(queries.SQUEEZE_MIN_NOTIONAL, queries.SQUEEZE_MULTIPLE * usual)
    st.caption(f"Stream through {through} (exchange time). CASCADE: the window over 3x "
               "the hour's average. SQUEEZE: one side over 80 % of a window of at least "
               f"{needed:,.0f} USDT (the larger of {queries.SQUEEZE_MIN_NOTIONAL:,.0f} and "
               f"{queries.SQUEEZE_MULTIPLE:g}x this symbol's usual {minutes} min, "
               f"{usual:,.0f} USDT: its median hour over {queries.SQUEEZE_BASELINE_DAYS} "
               "days, scaled).")


def symbol_card(row: dict, now: pd.Timestamp, clock_ok: bool, closes: pd.Series,
                series: dict[str, str], live: dict | None = None, pressure=None,
                usual: float = 0.0, silence: float = 0.0) -> None:
    with st.container(border=True):
        st.subheader(row["symbol"])
        freshness(row, now, clock_ok,
                  recorded=any(t in series for t in SYNTHETIC_TABLES))
        price_metrics(row, closes)
        left, right = st.columns([1, 1])
        with left:
            score = float(row["sentiment_score"]) if not pd.isna(row["sentiment_score"]) \
                else float("nan")
            st.plotly_chart(charts.gauge(score, sentiment_label(score)),
                            key=f"gauge-{row['symbol']}", config={"displayModeBar": False})
        with right:
            st.plotly_chart(charts.subscores(row, queries.tier_notes(series)),
                            key=f"tiers-{row['symbol']}", config={"displayModeBar": False})
        r, q = st.columns([2, 1])
        regime = row["regime"]
        if pd.isna(regime):
            r.metric("Regime", "warming up")
        else:
            r.metric("Regime", str(regime).replace("_", " ").capitalize(),
                     f"{int(row['regime_duration_bars'])} bars, confidence "
                     f"{float(row['regime_confidence']):.2f}", delta_color="off",
                     delta_arrow="off")
        q.metric("Score confidence", _pct(row["confidence"], ".2f"),
                 help="Sentiment confidence: 1 minus the volatility penalty, lowered when a "
                      "tier has no data.")
        a, b, c = st.columns(3)
        d, e, _ = st.columns(3)
        funding = row["funding_rate"]
        a.metric("Funding", "n/a" if pd.isna(funding) else f"{float(funding) * 100:+.3f}%",
                 help="The last settled rate, per 8 h settlement.")
        b.metric("OI change", _pct(row["open_interest_delta_pct"], "+.2f") + " %",
                 **_tag("open_interest", series),
                 help="Open interest change over the last 4 hours.")
        c.metric("Long share", _pct(row["long_short_ratio"], ".2f"),
                 **_tag("long_short_ratio", series),
                 help="Share of accounts net long (0.60 and 0.40: crowded).")
        fng = row["fear_greed_index"]
        d.metric("Fear & Greed", "n/a" if pd.isna(fng) else f"{int(fng)}",
                 None if pd.isna(fng) else fear_greed_class(float(fng)), delta_color="off",
                 delta_arrow="off")
        hmm_label = row["hmm_regime"]
        e.metric("HMM", "n/a" if pd.isna(hmm_label) else str(hmm_label).replace("_", " "),
                 None if pd.isna(hmm_label) else f"p = {float(row['hmm_probability']):.2f}",
                 delta_color="off", delta_arrow="off")
        stream_metrics(live, pressure, usual, silence, series)


def tags(db: str, symbol: str, row: dict, live: dict | None) -> dict[str, str]:
    """``symbol``'s series that are not market data (:func:`sentiment.provenance.
    series_tags`): the bar's at its close; the live stream's at its own exchange time."""
    out = queries.provenance(db, symbol, pd.Timestamp(row["timestamp"]).to_pydatetime())
    out = {t: kind for t, kind in out.items() if t not in DERIVED_TABLES}
    if live is not None:
        at = pd.Timestamp(live["through"]).to_pydatetime()
        out |= {t: kind for t, kind in queries.provenance(db, symbol, at).items()
                if t in DERIVED_TABLES}
    return out


@st.fragment(run_every=config.dashboard.refresh_seconds)
def overview() -> None:
    db = settings.db_path
    try:
        queries.extents(db)  # NoData when nothing is stored yet
        latest = queries.latest(db, interval)
        stream_now, liquidations = queries.stream(db)
        rows = {r["symbol"]: r for r in latest.to_dict("records")}
        live = {r["symbol"]: r for r in stream_now.to_dict("records")}
        series = {name: tags(db, name, r, live.get(name)) for name, r in rows.items()}
        closes = {name: queries.recent_closes(db, name, interval,
                                              pd.Timestamp(r["timestamp"]).to_pydatetime())
                  for name, r in rows.items()}
        usual = {name: queries.liquidation_baseline(
                     db, name, pd.Timestamp(r["through"]).to_pydatetime(),
                     config.stream.liquidation_window_seconds) for name, r in live.items()}
    except queries.Unavailable as exc:
        controls.explain(exc, db, config.dashboard.refresh_seconds)
        return
    controls.busy_note(db)
    now, clock_ok = queries.source_now(settings.bybit_base_url)
    staged = queries.staged_at(settings.stream_dir)
    wall_now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    columns = st.columns(max(1, len(config.symbols)))
    for column, name in zip(columns, config.symbols, strict=True):
        with column:
            if name in rows:
                mine = live.get(name)
                pressure = None if mine is None else queries.liquidation_pressure(
                    liquidations, mine, config.stream.liquidation_window_seconds)
                silence = 0.0 if mine is None else queries.stream_silence(mine, staged,
                                                                          wall_now)
                symbol_card(rows[name], now, clock_ok, closes[name], series[name], mine,
                            pressure, usual.get(name, 0.0), silence)
            else:
                st.info(f"No {name} rows at this interval yet.")
    if any(series.values()):
        st.caption("Tagged figures are not market data: the replay exchange generates open "
                   "interest and the long/short ratio from the candles (synthetic) and "
                   "derives its order book and liquidations from them; the price, funding "
                   "and Fear & Greed are recorded.")


overview()
