"""Column layout of the engine's per-bar input row, output row and parameter vector.

The compiled engine (``sentiment/core/engine.py``) works on flat float64 rows so that the batch
loop and the live step run the very same code; these names say what each slot holds.
"""

from __future__ import annotations

#: An ATR at or below this share of the close counts as no movement at all. Wilder's ATR
#: never reaches exactly 0 once prices moved, so "flat" needs a tolerance (the same one in
#: every path, so a restored tracker and a backfill agree on it).
NO_MOVEMENT = 1e-9

#: Per-bar inputs: the candle, indicator values and the as-of exchange and macro inputs.
INPUTS: tuple[str, ...] = (
    "open", "high", "low", "close", "volume",
    "ema_9", "ema_21", "ema_50", "adx", "plus_di", "minus_di", "rsi", "macd_hist",
    "roc", "atr", "natr", "bb_upper", "bb_middle", "bb_lower", "mfi", "volume_sma_20",
    "atr_rank", "kc_upper", "kc_lower", "squeeze", "squeeze_fired", "supertrend_dir", "cmf",
    "funding_rate", "open_interest", "open_interest_delta_pct", "open_interest_change_1h_pct",
    "price_change_oi_window_pct", "long_short_ratio", "fear_greed_index",
    "liquidation_intensity", "liquidation_net", "order_book_imbalance", "move_24h",
)
X = {name: i for i, name in enumerate(INPUTS)}
(X_OPEN, X_HIGH, X_LOW, X_CLOSE, X_VOLUME,
 X_EMA9, X_EMA21, X_EMA50, X_ADX, X_PDI, X_MDI, X_RSI, X_MACD_HIST,
 X_ROC, X_ATR, X_NATR, X_BB_UP, X_BB_MID, X_BB_LO, X_MFI, X_VOL_SMA,
 X_ATR_RANK, X_KC_UP, X_KC_LO, X_SQUEEZE, X_SQUEEZE_FIRED, X_ST_DIR, X_CMF,
 X_FUNDING, X_OI, X_OI_DELTA, X_OI_1H, X_PRICE_OI, X_LS, X_FNG,
 X_LIQ_INTENSITY, X_LIQ_NET, X_OBI, X_MOVE) = range(len(INPUTS))
N_INPUTS = len(INPUTS)

#: Per-bar outputs.
OUTPUTS: tuple[str, ...] = (
    "sentiment_score", "confidence", "regime", "regime_duration_bars", "regime_confidence",
    "trend_score", "momentum_score", "volatility_score", "volume_flow_score",
    "exchange_sentiment", "macro_sentiment", "transition_from",
    "trend_direction", "trend_strength", "wave_count", "bars_in_trend",
    "structure_bias", "bos", "choch", "swing_high", "swing_low",
    "raw_regime", "raw_confidence", "pending_regime", "pending_bars", "cooldown_remaining",
)
(Y_SCORE, Y_CONFIDENCE, Y_REGIME, Y_DURATION, Y_REGIME_CONF,
 Y_TREND, Y_MOMENTUM, Y_VOLATILITY, Y_FLOW, Y_EXCHANGE, Y_MACRO, Y_TRANSITION_FROM,
 Y_TREND_DIR, Y_TREND_STRENGTH, Y_WAVES, Y_BARS_IN_TREND,
 Y_BIAS, Y_BOS, Y_CHOCH, Y_SWING_HIGH, Y_SWING_LOW,
 Y_RAW_REGIME, Y_RAW_CONF, Y_PENDING, Y_PENDING_BARS, Y_COOLDOWN) = range(len(OUTPUTS))
N_OUTPUTS = len(OUTPUTS)
#: ``transition_from`` when the bar confirmed the first regime (no previous one).
NO_REGIME = -1.0

#: Parameters (from the configuration and the brief's thresholds).
PARAMS: tuple[str, ...] = (
    "w_trend", "w_momentum", "w_volatility", "w_volume_flow", "w_exchange", "w_macro",
    "use_funding", "use_open_interest", "use_long_short", "use_liquidations", "use_obi",
    "use_fear_greed",
    "confirmation_bars", "cooldown_bars", "confidence_threshold",
    "adx_trend", "adx_range", "atr_high_vol_rank",
    "swing_length", "roc_period",
    "funding_high", "funding_low", "long_short_high", "long_short_low", "oi_scale_pct",
    "capitulation_oi_drop_pct", "spike_multiple", "breakout_volume_multiple",
    "direction_vote", "quiet_move", "shock_move", "trend_guard_move", "capitulation_move",
    "capitulation_volume", "fear_greed_extreme_fear", "high_vol_level", "vol_base_alpha",
    "release", "switch_margin", "expire_below", "event_bars", "score_scale", "move_bars",
    "capitulation_sigmas",
)
(P_W_TREND, P_W_MOMENTUM, P_W_VOLATILITY, P_W_FLOW, P_W_EXCHANGE, P_W_MACRO,
 P_USE_FUNDING, P_USE_OI, P_USE_LS, P_USE_LIQ, P_USE_OBI, P_USE_FNG,
 P_CONFIRM, P_COOLDOWN, P_CONF_THRESHOLD,
 P_ADX_TREND, P_ADX_RANGE, P_ATR_HV,
 P_SWING, P_ROC_PERIOD,
 P_FUNDING_HIGH, P_FUNDING_LOW, P_LS_HIGH, P_LS_LOW, P_OI_SCALE,
 P_CAPITULATION_OI, P_SPIKE, P_BREAKOUT_VOLUME,
 P_DIR_VOTE, P_QUIET_MOVE, P_SHOCK_MOVE, P_TREND_GUARD, P_CAP_MOVE,
 P_CAP_VOLUME, P_FNG_FEAR, P_HV_LEVEL, P_VOL_BASE_ALPHA,
 P_RELEASE, P_MARGIN, P_EXPIRE, P_EVENT_BARS, P_SCORE_SCALE, P_MOVE_BARS,
 P_CAP_SIGMAS) = range(len(PARAMS))
N_PARAMS = len(PARAMS)
