"""Plotly figures of the dashboard. Each builder takes frames and returns a figure; none
calls Streamlit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sentiment.engine import (
    FEAR_GREED_HIGH,
    FEAR_GREED_LOW,
    FUNDING_HIGH,
    FUNDING_LOW,
    LONG_SHORT_HIGH,
    LONG_SHORT_LOW,
)
from sentiment.models import REGIMES
from sentiment.scores import SUBSCORE_COLUMNS, contributions

REGIME_COLORS: dict[str, str] = {
    "trending_up": "#2ca02c",
    "trending_down": "#d62728",
    "ranging": "#7f7f7f",
    "high_volatility": "#ff7f0e",
    "squeeze": "#9467bd",
    "breakout": "#1f77b4",
    "capitulation": "#8c564b",
}
HMM_COLORS: dict[str, str] = {
    "bull": "#2ca02c", "bear": "#d62728", "calm": "#7f7f7f", "high_volatility": "#ff7f0e",
}
TIER_COLORS: dict[str, str] = {
    "trend": "#1f77b4", "momentum": "#17becf", "volatility": "#ff7f0e",
    "volume_flow": "#9467bd", "exchange": "#8c564b", "macro": "#bcbd22",
}
_LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=30, b=10),
               legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))


def _regime_name(regime: str) -> str:
    return regime.replace("_", " ")


def score_color(score: float) -> str:
    if score != score:
        return "#7f7f7f"
    return "#2ca02c" if score >= 0.2 else "#d62728" if score <= -0.2 else "#7f7f7f"


def gauge(score: float, label: str) -> go.Figure:
    """The composite score on a -1 .. +1 dial, with its word."""
    fig = go.Figure(go.Indicator(
        mode="gauge+number", value=None if score != score else score,
        number=dict(valueformat="+.2f"), title=dict(text=label, font=dict(size=16)),
        gauge=dict(
            axis=dict(range=[-1, 1], tickvals=[-1, -0.6, -0.2, 0.2, 0.6, 1]),
            bar=dict(color=score_color(score), thickness=0.35),
            steps=[dict(range=[-1, -0.6], color="#f4c7c3"), dict(range=[-0.6, -0.2],
                   color="#fbe3e1"), dict(range=[-0.2, 0.2], color="#eeeeee"),
                   dict(range=[0.2, 0.6], color="#e0f2e0"), dict(range=[0.6, 1],
                   color="#c3e6c3")]),
    ))
    fig.update_layout(height=190, margin=dict(l=25, r=25, t=40, b=5))
    return fig


def subscores(row: dict) -> go.Figure:
    """The six sub-scores of one snapshot as horizontal bars (volatility reads 0 .. 1)."""
    names = list(SUBSCORE_COLUMNS)
    values = [row.get(SUBSCORE_COLUMNS[n]) for n in names]
    values = [np.nan if v is None or pd.isna(v) else float(v) for v in values]
    fig = go.Figure(go.Bar(
        x=values, y=[n.replace("_", " ") for n in names], orientation="h",
        marker_color=[TIER_COLORS[n] for n in names],
        text=["n/a" if v != v else f"{v:+.2f}" for v in values], textposition="auto",
        hovertemplate="%{y}: %{x:+.3f}<extra></extra>"))
    fig.update_layout(height=210, xaxis=dict(range=[-1, 1], zeroline=True), **_LAYOUT)
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10))
    fig.update_yaxes(autorange="reversed")
    return fig


def _periods(timestamps: pd.Series, regimes: pd.Series, bar: pd.Timedelta):
    """(regime, first bar open, last bar close) for each run of equal regimes."""
    runs = (regimes != regimes.shift()).cumsum()
    frame = pd.DataFrame({"t": timestamps, "regime": regimes, "run": runs})
    frame = frame[frame["regime"].notna()]
    for _, group in frame.groupby("run", sort=False):
        yield group["regime"].iloc[0], group["t"].iloc[0] - bar, group["t"].iloc[-1]


def history(frame: pd.DataFrame, weights: dict[str, float], bar: pd.Timedelta) -> go.Figure:
    """Candles with the regime shaded behind them; the composite score and its confidence;
    the six tiers' contributions to the composite stacked (positive up, negative down)."""
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        row_heights=[0.5, 0.22, 0.28],
                        subplot_titles=("Price and regime", "Composite sentiment",
                                        "Contributions to the composite"))
    t = pd.to_datetime(frame["timestamp"])
    opens = t - bar
    lo, hi = frame["low"].min(), frame["high"].max()
    pad = (hi - lo) * 0.02 if hi == hi and lo == lo else 0.0
    shapes: dict[str, tuple[list, list]] = {}
    for regime, start, end in _periods(t, frame["regime"], bar):
        xs, ys = shapes.setdefault(regime, ([], []))
        xs += [start, start, end, end, start, None]
        ys += [lo - pad, hi + pad, hi + pad, lo - pad, lo - pad, None]
    for regime in REGIMES:
        if regime in shapes:
            xs, ys = shapes[regime]
            fig.add_trace(go.Scatter(
                x=xs, y=ys, fill="toself", mode="none", fillcolor=REGIME_COLORS[regime],
                opacity=0.18, name=_regime_name(regime), legendgroup="regime",
                hoverinfo="skip"), row=1, col=1)
    fig.add_trace(go.Candlestick(
        x=opens, open=frame["open"], high=frame["high"], low=frame["low"],
        close=frame["close"], name="price", showlegend=False,
        increasing_line_color="#2ca02c", decreasing_line_color="#d62728"), row=1, col=1)
    score = frame["sentiment_score"].astype(float)
    fig.add_trace(go.Scatter(x=t, y=score, name="composite", line=dict(color="#222", width=1.5),
                             hovertemplate="%{y:+.2f}<extra>composite</extra>"), row=2, col=1)
    fig.add_trace(go.Scatter(x=t, y=frame["confidence"].astype(float), name="confidence",
                             line=dict(color="#999", width=1, dash="dot"),
                             hovertemplate="%{y:.2f}<extra>confidence</extra>"), row=2, col=1)
    parts = contributions(
        {name: frame[column].to_numpy(dtype=float, na_value=np.nan)
         for name, column in SUBSCORE_COLUMNS.items()}, weights)
    for name, values in parts.items():
        for sign, group in (("+", "up"), ("-", "down")):
            part = np.maximum(values, 0.0) if sign == "+" else np.minimum(values, 0.0)
            fig.add_trace(go.Scatter(
                x=t, y=part, stackgroup=group, mode="none", name=name.replace("_", " "),
                fillcolor=TIER_COLORS[name], legendgroup=name, showlegend=sign == "+",
                hovertemplate=f"{name}: %{{y:+.3f}}<extra></extra>"), row=3, col=1)
    fig.update_yaxes(range=[-1, 1], row=2, col=1)
    fig.update_yaxes(range=[-1, 1], row=3, col=1)
    fig.update_xaxes(rangeslider_visible=False)
    fig.update_layout(height=760, hovermode="x unified", **_LAYOUT)
    return fig


def hmm_probabilities(probs: pd.DataFrame) -> go.Figure:
    """The HMM's filtered label probabilities over time, stacked to 1."""
    fig = go.Figure()
    for label in sorted(probs.columns, key=lambda c: list(HMM_COLORS).index(c)
                        if c in HMM_COLORS else 99):
        fig.add_trace(go.Scatter(
            x=probs.index, y=probs[label], stackgroup="p", mode="none",
            name=label.replace("_", " "), fillcolor=HMM_COLORS.get(label, "#aaa"),
            hovertemplate=f"{label}: %{{y:.2f}}<extra></extra>"))
    fig.update_layout(height=230, yaxis=dict(range=[0, 1], title="probability"),
                      hovermode="x unified", **_LAYOUT)
    return fig


def _threshold(fig: go.Figure, y: float, text: str, row: int, color: str) -> None:
    fig.add_hline(y=y, line=dict(color=color, dash="dash", width=1), row=row, col=1,
                  annotation_text=text, annotation_position="top left",
                  annotation_font=dict(size=10, color=color))


def exchange(funding: pd.DataFrame, oi: pd.DataFrame, long_short: pd.DataFrame,
             fear_greed: pd.DataFrame) -> go.Figure:
    """Funding rate, open interest, long/short account ratio and Fear & Greed, with the
    brief's thresholds."""
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.05,
                        subplot_titles=("Funding rate (% per settlement)",
                                        "Open interest (base coin)",
                                        "Long/short: share of accounts long",
                                        "Fear & Greed Index"))
    fig.add_trace(go.Bar(x=funding["ts"], y=funding["funding_rate"] * 100, name="funding",
                         marker_color=np.where(funding["funding_rate"] >= 0, "#2ca02c",
                                               "#d62728"),
                         hovertemplate="%{y:+.4f}%<extra>funding</extra>"), row=1, col=1)
    _threshold(fig, FUNDING_HIGH * 100, "crowded longs 0.1%", 1, "#d62728")
    _threshold(fig, FUNDING_LOW * 100, "crowded shorts -0.05%", 1, "#2ca02c")
    fig.add_trace(go.Scatter(x=oi["ts"], y=oi["open_interest"], name="open interest",
                             line=dict(color="#1f77b4")), row=2, col=1)
    fig.add_trace(go.Scatter(x=long_short["ts"], y=long_short["buy_ratio"], name="long share",
                             line=dict(color="#9467bd")), row=3, col=1)
    _threshold(fig, LONG_SHORT_HIGH, "longs crowded 0.60", 3, "#d62728")
    _threshold(fig, LONG_SHORT_LOW, "shorts crowded 0.40", 3, "#2ca02c")
    fig.add_trace(go.Scatter(x=fear_greed["ts"], y=fear_greed["value"], name="Fear & Greed",
                             mode="lines+markers", marker=dict(size=4),
                             line=dict(color="#bcbd22"), customdata=fear_greed["classification"],
                             hovertemplate="%{y:.0f} %{customdata}<extra></extra>"),
                  row=4, col=1)
    _threshold(fig, FEAR_GREED_HIGH, "extreme greed 80", 4, "#d62728")
    _threshold(fig, FEAR_GREED_LOW, "extreme fear 20", 4, "#2ca02c")
    fig.update_yaxes(range=[0, 100], row=4, col=1)
    fig.update_layout(height=820, showlegend=False, hovermode="x unified", **_LAYOUT)
    return fig
