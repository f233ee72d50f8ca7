"""Plotly figures of the dashboard. Each builder takes frames and returns a figure; none
calls Streamlit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sentiment.core.engine import (
    FEAR_GREED_HIGH,
    FEAR_GREED_LOW,
    FUNDING_HIGH,
    FUNDING_LOW,
    LONG_SHORT_HIGH,
    LONG_SHORT_LOW,
)
from sentiment.core.scores import SUBSCORE_COLUMNS, contributions
from sentiment.models import REGIMES
from sentiment.provenance import SHOWN

#: The Okabe-Ito palette (Okabe & Ito 2008), which readers with any common colour-vision
#: deficiency can tell apart; the regimes, the HMM labels and rising/falling use it.
OKABE_ITO: dict[str, str] = {
    "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73", "yellow": "#F0E442",
    "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7", "grey": "#999999",
    "black": "#000000",
}
REGIME_COLORS: dict[str, str] = {
    "trending_up": OKABE_ITO["bluish_green"],
    "trending_down": OKABE_ITO["vermillion"],
    "ranging": OKABE_ITO["grey"],
    "high_volatility": OKABE_ITO["orange"],
    "squeeze": OKABE_ITO["reddish_purple"],
    "breakout": OKABE_ITO["sky_blue"],
    "capitulation": OKABE_ITO["blue"],
}
#: How strongly a regime's band is filled behind the price (the candles stay readable).
REGIME_OPACITY = 0.3
HMM_COLORS: dict[str, str] = {
    "bull": OKABE_ITO["bluish_green"], "bear": OKABE_ITO["vermillion"],
    "calm": OKABE_ITO["grey"], "high_volatility": OKABE_ITO["orange"],
}
RISING, FALLING = OKABE_ITO["bluish_green"], OKABE_ITO["vermillion"]
TIER_COLORS: dict[str, str] = {
    "trend": "#1f77b4", "momentum": "#17becf", "volatility": "#ff7f0e",
    "volume_flow": "#9467bd", "exchange": "#8c564b", "macro": "#bcbd22",
}
#: The most candles one chart draws. A longer range is drawn in coarser bars, which is all a
#: screen's width can show anyway and keeps a year of hourly bars as quick to draw as a month;
#: the CSV download and SQL keep every row.
MAX_CANDLES = 1000
#: The most closes a price line draws; a longer history is drawn every n-th bar.
MAX_LINE_POINTS = 5000
#: A regime period drawn in the history chart spans at least this share of the range: a
#: shorter run is drawn as part of the period before it (the first one, of the period after
#: it), so a year of hourly bars reads as periods, not a barcode. Display only: the rows, the
#: hover and the transitions table keep every bar's own regime.
MIN_PERIOD_SHARE = 1 / 150
#: The coarser bars to choose from, in minutes (up to a week; beyond, whole weeks).
_STEP_MINUTES = (1, 3, 5, 15, 30, 60, 120, 240, 360, 720, 1440, 2880, 10080)
#: Coarser bars start on UTC day boundaries, and weekly ones on Mondays.
_ORIGIN = pd.Timestamp("1970-01-05")
#: Room at the right of the history and HMM charts for their legends (same for both, so
#: their time axes line up).
LEGEND_MARGIN = 190
_LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=30, b=10),
               legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))


def _regime_name(regime: str) -> str:
    return regime.replace("_", " ")


def score_color(score: float) -> str:
    if score != score:
        return OKABE_ITO["grey"]
    return RISING if score >= 0.2 else FALLING if score <= -0.2 else OKABE_ITO["grey"]


#: The gauge's zones, light, behind the bar (bearish, neutral, bullish).
_GAUGE_ZONES = ((-1, -0.6, "#f6d5bf"), (-0.6, -0.2, "#fbeadf"), (-0.2, 0.2, "#eeeeee"),
                (0.2, 0.6, "#d9efe8"), (0.6, 1, "#b3e0d2"))


def gauge(score: float, label: str) -> go.Figure:
    """The composite score on a -1 .. +1 dial, with its word. The bar is drawn from 0 to the
    score (Plotly's own gauge bar always starts at the left end, so a neutral 0 would read
    half bearish): it is the last of the gauge's steps, over the light zones."""
    known = score == score
    color = score_color(score) if abs(score) >= 0.2 else "#6b6b6b"  # dark on the grey zone
    bar = [dict(range=sorted((0.0, score)), color=color, thickness=0.5)] if known else []
    fig = go.Figure(go.Indicator(
        mode="gauge+number", value=score if known else None,
        number=dict(valueformat="+.2f", font=dict(size=34)),
        title=dict(text=label, font=dict(size=16)),
        gauge=dict(
            axis=dict(range=[-1, 1], tickvals=[-1, -0.6, -0.2, 0, 0.2, 0.6, 1],
                      ticktext=["-1", "-0.6", "-0.2", "0", "+0.2", "+0.6", "+1"]),
            bar=dict(color="rgba(0,0,0,0)", thickness=0),
            steps=[dict(range=[lo, hi], color=c) for lo, hi, c in _GAUGE_ZONES] + bar,
            threshold=dict(line=dict(color="#444", width=2), thickness=0.9, value=0)),
    ))
    fig.update_layout(height=190, margin=dict(l=25, r=25, t=40, b=5))
    return fig


def tier_label(name: str, notes: dict[str, str] | None = None) -> str:
    """A tier's name as shown, with its note (e.g. "partly synthetic") when it has one."""
    note = (notes or {}).get(name)
    return name.replace("_", " ") + (f" ({note})" if note else "")


def subscores(row: dict, notes: dict[str, str] | None = None) -> go.Figure:
    """The six sub-scores of one snapshot as horizontal bars (volatility reads 0 .. 1);
    ``notes`` marks a tier by name (e.g. ``{"exchange": "partly synthetic"}``)."""
    names = list(SUBSCORE_COLUMNS)
    values = [row.get(SUBSCORE_COLUMNS[n]) for n in names]
    values = [np.nan if v is None or pd.isna(v) else float(v) for v in values]
    fig = go.Figure(go.Bar(
        x=values, y=[tier_label(n, notes).replace(" (", "<br>(") for n in names],
        orientation="h", marker_color=[TIER_COLORS[n] for n in names],
        text=["n/a" if v != v else f"{v:+.2f}" for v in values], textposition="outside",
        cliponaxis=False, hovertemplate="%{y}: %{x:+.3f}<extra></extra>"))
    # Room beyond +-1 for a label outside its bar (inside a short bar it was cut off).
    fig.update_layout(height=230, xaxis=dict(range=[-1.35, 1.35], zeroline=True,
                                             tickvals=[-1, -0.5, 0, 0.5, 1]), **_LAYOUT)
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10))
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=11))
    return fig


def display_step(frame: pd.DataFrame, bar: pd.Timedelta) -> pd.Timedelta:
    """The bar length the history chart draws ``frame`` (bar closes in ``timestamp``) in:
    ``bar`` itself, or the shortest step of :data:`_STEP_MINUTES` that fits the range in
    :data:`MAX_CANDLES` bars."""
    if frame.empty:
        return bar
    t = pd.to_datetime(frame["timestamp"])
    span = t.iloc[-1] - t.iloc[0] + bar
    for minutes in _STEP_MINUTES:
        step = pd.Timedelta(minutes=minutes)
        if step >= bar and span / step <= MAX_CANDLES:
            return step
    week = pd.Timedelta(weeks=1)
    return max(bar, week * int(np.ceil(span / week / MAX_CANDLES)))


def coarser_bars(frame: pd.DataFrame, bar: pd.Timedelta) -> pd.DataFrame:
    """``frame`` as drawn: one row per :func:`display_step` bar, with ``bar_open``. A coarser
    bar has the OHLC and volume of the bars inside it and the snapshot (scores, regime, HMM)
    of its last bar, the state as of its close, like a candle's close."""
    step = display_step(frame, bar)
    t = pd.to_datetime(frame["timestamp"])
    if step == bar:
        return frame.assign(bar_open=t - bar)
    bucket = _ORIGIN + ((t - bar) - _ORIGIN).dt.floor(step)
    groups = frame.groupby(bucket.to_numpy(), sort=True)
    ohlc = groups.agg(open=("open", "first"), high=("high", "max"), low=("low", "min"),
                      volume=("volume", "sum"))
    last = groups.tail(1).reset_index(drop=True)  # in time order, as the buckets
    last[["open", "high", "low", "volume"]] = ohlc[["open", "high", "low", "volume"]].to_numpy()
    return last.assign(bar_open=ohlc.index.to_numpy())


def _runs(regimes: pd.Series) -> list[tuple[object, int, int]]:
    """(regime, first index, last index) of each run of equal regimes (None: no regime)."""
    values = regimes.to_numpy(dtype=object)
    values = np.array([None if pd.isna(v) else v for v in values], dtype=object)
    if not len(values):
        return []
    first = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    last = np.r_[first[1:] - 1, len(values) - 1]
    return [(values[i], int(i), int(j)) for i, j in zip(first, last, strict=True)]


def merged_runs(regimes: pd.Series, min_bars: int) -> list[tuple[object, int, int]]:
    """The runs of :func:`_runs` as drawn: a run shorter than ``min_bars`` bars becomes part
    of the period before it (a short first run, of the one after it), and neighbouring
    periods of one regime join. Covers every bar, in order."""
    out: list[list] = []
    for regime, i, j in _runs(regimes):
        if out and (j - i + 1 < min_bars or out[-1][0] == regime):
            out[-1][2] = j
        else:
            out.append([regime, i, j])
    if len(out) > 1 and out[0][2] - out[0][1] + 1 < min_bars:
        out[1][1] = out[0][1]
        del out[0]
    return [(r, i, j) for r, i, j in out]


def min_period_bars(n_bars: int) -> int:
    """The shortest run drawn as a period of its own in a range of ``n_bars`` bars."""
    return max(1, int(np.ceil(n_bars * MIN_PERIOD_SHARE)))


def regime_bands(rows: pd.DataFrame, bar: pd.Timedelta, lo: float, hi: float,
                 min_bars: int = 1, **trace) -> list[go.Scatter]:
    """The confirmed regime behind a price from ``lo`` to ``hi``: one filled trace per
    regime holding a rectangle per period of it (a shape per run would make a long history
    slow to draw). ``min_bars`` > 1 merges shorter runs for display (:func:`merged_runs`)."""
    pad = (hi - lo) * 0.02 if hi == hi and lo == lo else 0.0
    t = pd.to_datetime(rows["timestamp"]).to_numpy()
    shapes: dict[str, tuple[list, list]] = {}
    for regime, i, j in merged_runs(rows["regime"].reset_index(drop=True), min_bars):
        if regime is None:
            continue
        start, end = t[i] - bar, t[j]
        xs, ys = shapes.setdefault(str(regime), ([], []))
        xs += [start, start, end, end, start, None]
        ys += [lo - pad, hi + pad, hi + pad, lo - pad, lo - pad, None]
    return [go.Scatter(x=shapes[r][0], y=shapes[r][1], fill="toself", mode="none",
                       fillcolor=REGIME_COLORS[r], opacity=REGIME_OPACITY,
                       name=_regime_name(r), hoverinfo="skip", **trace)
            for r in REGIMES if r in shapes]


def regime_price(rows: pd.DataFrame, bar: pd.Timedelta) -> go.Figure:
    """The close as a line over the confirmed regime's bands: what ``sentiment evaluate``
    and the Quality page judge. A history of more than :data:`MAX_LINE_POINTS` bars draws
    every n-th close (and the last); the bands keep every bar."""
    close = rows["close"].to_numpy(dtype=float, na_value=np.nan)
    known = close[np.isfinite(close)]
    fig = go.Figure(regime_bands(rows, bar, known.min(), known.max()) if len(known) else [])
    n = len(rows)
    step = max(1, -(-n // MAX_LINE_POINTS))
    drawn = np.r_[np.arange(0, n - 1, step), n - 1] if n else np.empty(0, dtype=int)
    fig.add_trace(go.Scatter(
        x=pd.to_datetime(rows["timestamp"]).iloc[drawn], y=close[drawn], mode="lines",
        name="close", line=dict(color="#222", width=1),
        hovertemplate="%{x|%Y-%m-%d %H:%M}: %{y:,.2f}<extra>close</extra>"))
    fig.update_layout(height=420, hovermode="closest", **_LAYOUT)
    return fig


def history(rows: pd.DataFrame, weights: dict[str, float], bar: pd.Timedelta,
            notes: dict[str, str] | None = None) -> go.Figure:
    """Candles with the regime shaded behind them; the composite score and its confidence;
    the six tiers' contributions to the composite stacked (positive up, negative down).
    Long ranges are drawn in :func:`coarser_bars`; the regime shading merges runs shorter
    than :func:`min_period_bars` into their neighbours, and a candle's hover names its own
    bar's regime. Each panel has its legend at its right, clear of the panel titles."""
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        row_heights=[0.5, 0.22, 0.28],
                        subplot_titles=("Price and regime", "Composite sentiment",
                                        "Contributions to the composite"))
    frame = coarser_bars(rows, bar)
    t = pd.to_datetime(frame["timestamp"])
    for band in regime_bands(rows, bar, frame["low"].min(), frame["high"].max(),
                             min_period_bars(len(rows)), legend="legend"):
        fig.add_trace(band, row=1, col=1)
    regime = frame["regime"].map(lambda r: "warming up" if pd.isna(r) else _regime_name(r))
    fig.add_trace(go.Candlestick(
        x=frame["bar_open"], open=frame["open"], high=frame["high"], low=frame["low"],
        close=frame["close"], name="price", showlegend=False, customdata=regime,
        hovertext=[f"regime: {r}" for r in regime], hoverinfo="x+y+text",
        increasing_line_color=RISING, decreasing_line_color=FALLING), row=1, col=1)
    score = frame["sentiment_score"].astype(float)
    fig.add_trace(go.Scatter(x=t, y=score, name="composite", line=dict(color="#222", width=1.5),
                             legend="legend2",
                             hovertemplate="%{y:+.2f}<extra>composite</extra>"), row=2, col=1)
    fig.add_trace(go.Scatter(x=t, y=frame["confidence"].astype(float), name="confidence",
                             line=dict(color="#999", width=1, dash="dot"), legend="legend2",
                             hovertemplate="%{y:.2f}<extra>confidence</extra>"), row=2, col=1)
    parts = contributions(
        {name: frame[column].to_numpy(dtype=float, na_value=np.nan)
         for name, column in SUBSCORE_COLUMNS.items()}, weights)
    for name, values in parts.items():
        for sign, group in (("+", "up"), ("-", "down")):
            part = np.maximum(values, 0.0) if sign == "+" else np.minimum(values, 0.0)
            fig.add_trace(go.Scatter(
                x=t, y=part, stackgroup=group, mode="none", name=tier_label(name, notes),
                fillcolor=TIER_COLORS[name], legendgroup=name, showlegend=sign == "+",
                legend="legend3",
                hovertemplate=f"{name}: %{{y:+.3f}}<extra></extra>"), row=3, col=1)
    fig.update_yaxes(range=[-1, 1], row=2, col=1)
    fig.update_yaxes(range=[-1, 1], row=3, col=1)
    fig.update_xaxes(rangeslider_visible=False)
    # One legend per panel, beside its top (the paper y of each panel's top).
    tops = [fig.layout[f"yaxis{'' if k == 1 else k}"].domain[1] for k in (1, 2, 3)]
    side = dict(x=1.01, xanchor="left", yanchor="top", orientation="v",
                font=dict(size=11), tracegroupgap=2)
    fig.update_layout(height=780, hovermode="x unified", **_LAYOUT)
    fig.update_layout(margin=dict(l=10, r=LEGEND_MARGIN, t=30, b=10),
                      legend=dict(side, y=tops[0], title=dict(text="Regime")),
                      legend2=dict(side, y=tops[1]),
                      legend3=dict(side, y=tops[2], title=dict(text="Tiers")))
    return fig


def hmm_probabilities(probs: pd.DataFrame, x_range: tuple | None = None) -> go.Figure:
    """The HMM's filtered label probabilities over time, stacked to 1; ``x_range`` lines its
    time axis up with the history chart's."""
    fig = go.Figure()
    for label in sorted(probs.columns, key=lambda c: list(HMM_COLORS).index(c)
                        if c in HMM_COLORS else 99):
        fig.add_trace(go.Scatter(
            x=probs.index, y=probs[label], stackgroup="p", mode="none",
            name=label.replace("_", " "), fillcolor=HMM_COLORS.get(label, "#aaa"),
            hovertemplate=f"{label}: %{{y:.2f}}<extra></extra>"))
    fig.update_layout(height=230, yaxis=dict(range=[0, 1]),
                      xaxis=dict(range=list(x_range) if x_range else None),
                      hovermode="x unified", **_LAYOUT)
    # The legend at the right, as the history chart's, so the two time axes line up.
    fig.update_layout(margin=dict(l=10, r=LEGEND_MARGIN, t=30, b=10),
                      legend=dict(x=1.01, xanchor="left", y=1, yanchor="top",
                                  orientation="v", font=dict(size=11)))
    return fig


def _threshold(fig: go.Figure, y: float, text: str, row: int, color: str) -> None:
    fig.add_hline(y=y, line=dict(color=color, dash="dash", width=1), row=row, col=1,
                  annotation_text=text, annotation_position="top left",
                  annotation_font=dict(size=10, color=color))


def exchange(funding: pd.DataFrame, oi: pd.DataFrame, long_short: pd.DataFrame,
             fear_greed: pd.DataFrame, obi: pd.DataFrame | None = None,
             liquidations: pd.DataFrame | None = None,
             notes: dict[str, str] | None = None) -> go.Figure:
    """Funding rate, open interest, long/short account ratio and Fear & Greed, with the
    brief's thresholds; then, when the live stream recorded any in the range, order-book
    imbalance (5-minute means) and liquidations per hour (longs down, shorts up).
    ``notes`` (table -> kind, :func:`sentiment.provenance.series_tags`) marks the series
    that are not market data in their panel's title and trace name."""
    notes = notes or {}

    def marked(text: str, table: str) -> str:
        return f"{text} · {SHOWN[notes[table]].upper()}" if table in notes else text

    def named(text: str, table: str) -> str:
        return f"{text} ({SHOWN[notes[table]]})" if table in notes else text

    titles = ["Funding rate (% per settlement)",
              marked("Open interest (base coin)", "open_interest"),
              marked("Long/short: share of accounts long", "long_short_ratio"),
              "Fear & Greed Index"]
    stream_obi = obi is not None and len(obi) > 0
    stream_liq = liquidations is not None and len(liquidations) > 0
    if stream_obi:
        titles.append(marked("Order-book imbalance, top 5 levels (5-min mean; +1 all bids)",
                             "orderbook_imbalance"))
    if stream_liq:
        titles.append(marked("Liquidations per hour (USDT notional; longs below zero)",
                             "liquidations"))
    fig = make_subplots(rows=len(titles), cols=1, shared_xaxes=True, vertical_spacing=0.05
                        if len(titles) == 4 else 0.04, subplot_titles=titles)
    rate = funding["funding_rate"].astype(float) * 100
    for part, color, hover in ((rate.clip(lower=0), "#2ca02c", "%{customdata:+.4f}%"),
                               (rate.clip(upper=0), "#d62728", None)):
        # Each rate holds until the next settlement: a step, filled to zero (one path for
        # any range, where a bar per settlement is a thousand shapes over a year).
        fig.add_trace(go.Scatter(x=funding["ts"], y=part, name="funding", mode="lines",
                                 line=dict(color=color, width=1, shape="hv"), fill="tozeroy",
                                 customdata=rate, hoverinfo="skip" if hover is None else None,
                                 hovertemplate=hover and hover + "<extra>funding</extra>"),
                      row=1, col=1)
    _threshold(fig, FUNDING_HIGH * 100, "crowded longs 0.1%", 1, "#d62728")
    _threshold(fig, FUNDING_LOW * 100, "crowded shorts -0.05%", 1, "#2ca02c")
    fig.add_trace(go.Scatter(x=oi["ts"], y=oi["open_interest"],
                             name=named("open interest", "open_interest"),
                             line=dict(color="#1f77b4")), row=2, col=1)
    fig.add_trace(go.Scatter(x=long_short["ts"], y=long_short["buy_ratio"],
                             name=named("long share", "long_short_ratio"),
                             line=dict(color="#9467bd")), row=3, col=1)
    _threshold(fig, LONG_SHORT_HIGH, "longs crowded 0.60", 3, "#d62728")
    _threshold(fig, LONG_SHORT_LOW, "shorts crowded 0.40", 3, "#2ca02c")
    fig.add_trace(go.Scatter(x=fear_greed["ts"], y=fear_greed["value"], name="Fear & Greed",
                             mode="lines+markers" if len(fear_greed) <= 120 else "lines",
                             marker=dict(size=4),
                             line=dict(color="#bcbd22"), customdata=fear_greed["classification"],
                             hovertemplate="%{y:.0f} %{customdata}<extra></extra>"),
                  row=4, col=1)
    _threshold(fig, FEAR_GREED_HIGH, f"extreme greed ≥ {FEAR_GREED_HIGH:g}", 4, "#d62728")
    _threshold(fig, FEAR_GREED_LOW, f"extreme fear ≤ {FEAR_GREED_LOW:g}", 4, "#2ca02c")
    fig.update_yaxes(range=[0, 100], row=4, col=1)
    row = 5
    if stream_obi:
        fig.add_trace(go.Scatter(x=obi["ts"], y=obi["obi"], mode="lines",
                                 name=named("OBI", "orderbook_imbalance"),
                                 line=dict(color="#17becf", width=1), fill="tozeroy",
                                 hovertemplate="%{y:+.2f}<extra>OBI</extra>"),
                      row=row, col=1)
        fig.update_yaxes(range=[-1, 1], row=row, col=1)
        row += 1
    if stream_liq:
        fig.add_trace(go.Bar(x=liquidations["ts"], y=-liquidations["longs"],
                             name=named("longs liquidated", "liquidations"),
                             marker_color=FALLING,
                             customdata=liquidations["longs"],
                             hovertemplate="%{customdata:,.0f}<extra>longs</extra>"),
                      row=row, col=1)
        fig.add_trace(go.Bar(x=liquidations["ts"], y=liquidations["shorts"],
                             name=named("shorts liquidated", "liquidations"),
                             marker_color=RISING,
                             hovertemplate="%{y:,.0f}<extra>shorts</extra>"), row=row, col=1)
        fig.update_layout(barmode="relative")
    fig.update_layout(height=205 * len(titles), showlegend=False, hovermode="x unified",
                      **_LAYOUT)
    return fig
