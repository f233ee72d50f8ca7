"""The core's vocabulary: the records it hands out (:class:`SentimentSnapshot`,
:class:`RegimeState`), the regime names, Bybit's interval and period codes, and the bounds and
bands every source shares.

Field names follow the design brief (section 8); :data:`HISTORY_COLUMNS` are the
``sentiment_history`` column names of DESIGN section 4 (from :mod:`sentiment.io.tables`), and
:meth:`SentimentSnapshot.as_row` maps one onto the other.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sentiment.io.tables import DOUBLE, TABLES

#: The largest price taken from any source (quote coin per unit; BTC is about 1e5) and the
#: largest size or amount (1e15 < 2**53, so whole numbers stay exact; a meme coin's weekly
#: spot volume is of the order of 1e14 base coins). Both are orders of magnitude above any
#: real value, and their product is at most 1e27: a sum of a billion notionals stays below
#: 1e36, nowhere near float64's 1.8e308 (a 1e308 price once turned later scores NULL).
MAX_PRICE = 1e12
MAX_SIZE = 1e15

#: Regime names, in the order of their integer codes inside the engine.
REGIMES: tuple[str, ...] = (
    "trending_up",
    "trending_down",
    "ranging",
    "high_volatility",
    "squeeze",
    "breakout",
    "capitulation",
)
REGIME_CODE: dict[str, int] = {name: i for i, name in enumerate(REGIMES)}
#: Regimes that describe an event: they confirm at once (DESIGN 8.5).
EVENT_REGIMES: frozenset[str] = frozenset({"breakout", "capitulation"})

#: ``sentiment_history`` columns, in table order (from the table's one definition).
HISTORY_COLUMNS: tuple[str, ...] = TABLES["sentiment_history"].all_columns
#: Its floating-point columns, in table order (what a history frame holds as float64).
HISTORY_FLOAT_COLUMNS: tuple[str, ...] = TABLES["sentiment_history"].columns_of_type(DOUBLE)

#: Bybit V5 kline interval codes and their length in minutes (W = 7 days).
INTERVAL_MINUTES: dict[str, int] = {
    "1": 1,
    "3": 3,
    "5": 5,
    "15": 15,
    "30": 30,
    "60": 60,
    "120": 120,
    "240": 240,
    "360": 360,
    "720": 720,
    "D": 1440,
    "W": 10080,
}
#: Bybit V5 ``intervalTime`` (open interest) and ``period`` (account ratio) codes and their
#: length in minutes.
PERIOD_MINUTES: dict[str, int] = {
    "5min": 5,
    "15min": 15,
    "30min": 30,
    "1h": 60,
    "4h": 240,
    "1d": 1440,
}

#: Snapshot field -> table column where the brief's name differs from the table's.
_COLUMN_OF_FIELD = {
    "exchange_sentiment_score": "exchange_sentiment",
    "macro_sentiment_score": "macro_sentiment",
}

#: Score bands for the one-word reading of the composite (inclusive lower bounds).
_LABELS = ((0.7, "Very Bullish"), (0.2, "Bullish"), (-0.2, "Neutral"), (-0.7, "Bearish"))


def sentiment_label(score: float | None) -> str:
    """One word for a composite score: Very Bearish, Bearish, Neutral, Bullish, Very Bullish."""
    if score is None or score != score:
        return "n/a"
    for bound, label in _LABELS:
        if score >= bound:
            return label
    return "Very Bearish"


#: alternative.me's classification of the index: (lowest value, highest value, label), both
#: inclusive. Checked on recorded data: 25 is "Extreme Fear", 26 and 46 "Fear", 47 and 54
#: "Neutral", 55 and 75 "Greed", 76 "Extreme Greed". The engine's extreme marks
#: (``sentiment.core.engine.FEAR_GREED_LOW`` / ``FEAR_GREED_HIGH``) are the edges of the
#: outer bands.
FEAR_GREED_BANDS: tuple[tuple[int, int, str], ...] = (
    (0, 25, "Extreme Fear"),
    (26, 46, "Fear"),
    (47, 54, "Neutral"),
    (55, 75, "Greed"),
    (76, 100, "Extreme Greed"),
)


def fear_greed_class(value: float) -> str:
    """alternative.me's label for a Fear & Greed value in [0, 100]; the one definition the
    status block, the dashboard, the replay exchange and the CSV import use.

    The index is an integer. A fractional value is "Extreme Fear" up to 25 inclusive and
    otherwise takes the highest band whose lowest value it reaches (25.5 and 46.5 are
    "Fear", 76 and above "Extreme Greed"), which keeps both extremes where the engine
    puts them.

    Raises
    ------
    ValueError
        ``value`` is not a number in [0, 100] (NaN included).
    """
    v = float(value)
    if not 0.0 <= v <= 100.0:
        raise ValueError(f"Fear & Greed value must be in [0, 100], got {value!r}")
    lowest_band_top, label = FEAR_GREED_BANDS[0][1], FEAR_GREED_BANDS[0][2]
    if v <= lowest_band_top:
        return label
    label = FEAR_GREED_BANDS[1][2]
    for low, _high, name in FEAR_GREED_BANDS[2:]:
        if v >= low:
            label = name
    return label


@dataclass(slots=True)
class SentimentSnapshot:
    """Point-in-time sentiment reading for one closed bar.

    ``timestamp`` is the bar's close, the moment the reading became knowable. Scores are
    ``None`` during warm-up; a tier without data has a ``None`` sub-score (never 0).
    """

    timestamp: dt.datetime
    symbol: str
    interval: str
    close: float

    sentiment_score: float | None
    confidence: float | None

    regime: str | None
    regime_duration_bars: int | None
    regime_confidence: float | None

    trend_score: float | None
    momentum_score: float | None
    volatility_score: float | None
    volume_flow_score: float | None
    exchange_sentiment_score: float | None
    macro_sentiment_score: float | None

    funding_rate: float | None
    open_interest: float | None
    open_interest_delta_pct: float | None
    long_short_ratio: float | None
    liquidation_intensity: float | None
    order_book_imbalance: float | None
    fear_greed_index: int | None

    hmm_regime: str | None = None
    hmm_probability: float | None = None
    hmm_model_id: str | None = None
    hmm_state_probabilities: str | None = None

    @property
    def label(self) -> str:
        return sentiment_label(self.sentiment_score)

    def as_row(self) -> dict:
        """The snapshot as one ``sentiment_history`` row (column name -> value)."""
        row = {}
        for name in self.__slots__:
            row[_COLUMN_OF_FIELD.get(name, name)] = getattr(self, name)
        return {column: row[column] for column in HISTORY_COLUMNS}


@dataclass
class RegimeState:
    """The hysteresis state machine's state (brief section 8).

    ``transition_history`` holds ``(time, from_regime, to_regime)`` for the most recent
    confirmed changes. The first regime after warm-up is an assignment, not a change, and
    is not recorded.
    """

    current_regime: str | None
    pending_regime: str | None
    pending_bars: int
    confirmation_threshold: int
    cooldown_remaining: int
    duration_bars: int = 0
    transition_history: list[tuple[dt.datetime, str, str]] = field(default_factory=list)
