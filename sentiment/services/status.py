"""The status block of ``sentiment status`` from one ``sentiment_history`` row, its synthetic
and derived values marked by the rule of :mod:`sentiment.provenance` (:class:`Source`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from sentiment.models import fear_greed_class, sentiment_label
from sentiment.provenance import Source
from sentiment.provenance import missing as _missing

BAR_WIDTH = 14


def score_bar(score: float) -> str:
    """``[=========>    ]`` for +0.62; ``[    <=========]`` for -0.62."""
    n = min(BAR_WIDTH - 1, round(abs(score) * BAR_WIDTH))
    if score >= 0:
        return "[" + ("=" * n + ">").ljust(BAR_WIDTH) + "]"
    return "[" + ("<" + "=" * n).rjust(BAR_WIDTH) + "]"


def _signed(value: Any, fmt: str = "+.2f") -> str:
    return "n/a" if _missing(value) else format(float(value), fmt)


def format_status(row: Mapping[str, Any], source: Source | None = None) -> str:
    """The human block for one row (missing inputs read "n/a"). With ``source`` saying the
    row came from the replay exchange, synthetic and derived values are marked as such."""
    source = source or Source(replay=False)
    lines = [f"Symbol: {row['symbol']}"]
    if _missing(row.get("regime")):
        lines.append("Regime: n/a (warming up)")
    else:
        lines.append(f"Regime: {str(row['regime']).upper()} ({int(row['regime_duration_bars'])}"
                     f" bars, confidence: {float(row['regime_confidence']):.2f})")
    score = row.get("sentiment_score")
    if _missing(score):
        lines.append("Sentiment: n/a")
    else:
        score = float(score)
        lines.append(f"Sentiment: {score:+.2f} {score_bar(score)} {sentiment_label(score)}  "
                     f"(confidence {float(row['confidence']):.2f})")
    vol = row.get("volatility_score")
    lines.append(
        f"  Trend: {_signed(row.get('trend_score'))}  Momentum: "
        f"{_signed(row.get('momentum_score'))}  Vol: {_signed(vol, '.2f')}  Flow: "
        f"{_signed(row.get('volume_flow_score'))}"
    )
    funding = row.get("funding_rate")
    funding_text = "n/a" if _missing(funding) else f"{float(funding) * 100:+.3f}%"
    oi = row.get("open_interest_delta_pct")
    oi_text = "n/a" if _missing(oi) else (
        f"{float(oi):+.1f}%/4h{source.mark('open_interest_delta_pct')}")
    ls = row.get("long_short_ratio")
    ls_text = "n/a" if _missing(ls) else f"{float(ls):.2f}{source.mark('long_short_ratio')}"
    fng = row.get("fear_greed_index")
    fng_text = "n/a" if _missing(fng) else f"{int(fng)} ({fear_greed_class(float(fng))})"
    lines.append(f"  Funding: {funding_text}  OI: {oi_text}  L/S: {ls_text}  FnG: {fng_text}")
    exchange = row.get("exchange_sentiment")
    exchange_text = _signed(exchange) + ("" if _missing(exchange)
                                         else source.mark("exchange_sentiment"))
    lines.append(
        f"  Exchange: {exchange_text}  Macro: "
        f"{_signed(row.get('macro_sentiment'))}  Bar: {row['interval']} closed "
        f"{_time(row['timestamp'])} UTC"
    )
    obi, liq = row.get("order_book_imbalance"), row.get("liquidation_intensity")
    if not (_missing(obi) and _missing(liq)):  # only while the live stream feeds the bars
        obi_text = "n/a" if _missing(obi) else (
            f"{float(obi):+.2f}{source.mark('order_book_imbalance')}")
        liq_text = "n/a" if _missing(liq) else (
            f"{float(liq):.1f}x{source.mark('liquidation_intensity')}")
        lines.append(f"  Order book: {obi_text}  Liquidations: {liq_text}")
    label = row.get("hmm_regime")
    if _missing(label):
        lines.append("  HMM: n/a (no model trained before this bar)")
    else:
        model = str(row.get("hmm_model_id") or "")
        k = model.rsplit("-K", 1)[-1] if "-K" in model else "?"
        lines.append(f"  HMM: {label} (p={float(row['hmm_probability']):.2f}, K={k}, "
                     f"model {model})")
    lines += [f"  {note}" for note in source.notes(row)]
    return "\n".join(lines)


def _time(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)[:16]


def row_json(row: Mapping[str, Any]) -> str:
    """The row as one JSON object keyed by the ``sentiment_history`` column names."""
    out = {}
    for key, value in row.items():
        if _missing(value):
            out[key] = None
        elif isinstance(value, dt.datetime):
            out[key] = value.isoformat()
        elif hasattr(value, "item"):
            out[key] = value.item()
        else:
            out[key] = value
    return json.dumps(out, allow_nan=False)
