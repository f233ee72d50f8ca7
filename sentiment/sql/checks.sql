-- Data-quality queries behind the Dagster asset checks (orchestration/checks.py).
-- Each query returns the offending rows (an empty result means the check passes).
-- Loaded by name through sentiment.io.store.named_queries.

-- name: candles_gaps
-- Consecutive bars per symbol and interval further apart than one interval.
WITH ordered AS (
    SELECT symbol, interval, open_time,
           lag(open_time) OVER (PARTITION BY symbol, interval ORDER BY open_time) AS prev_time
    FROM candles
)
SELECT symbol, interval, prev_time AS gap_after, open_time AS gap_before,
       CAST(date_diff('minute', prev_time, open_time) AS BIGINT) AS minutes
FROM ordered
WHERE prev_time IS NOT NULL
  AND CASE interval
        WHEN 'D' THEN open_time <> prev_time + INTERVAL 1 DAY
        WHEN 'W' THEN open_time <> prev_time + INTERVAL 7 DAY
        ELSE open_time <> prev_time + to_minutes(CAST(interval AS BIGINT))
      END
ORDER BY symbol, interval, open_time
LIMIT 100;

-- name: candles_off_grid
-- Bars whose open time is off their interval's UTC grid: minute intervals open on multiples
-- of their length from 00:00 UTC, D at 00:00 UTC, W on Monday 00:00 UTC (1970-01-05 was a
-- Monday). A bar off the grid means a shifted clock (local time, seconds read as
-- milliseconds): it lands in the wrong day and disagrees with every chart's bars.
SELECT symbol, interval, open_time
FROM candles
WHERE epoch_ms(open_time - CASE interval WHEN 'W' THEN INTERVAL 4 DAY ELSE INTERVAL 0 DAY END)
      % CASE interval WHEN 'D' THEN 86400000 WHEN 'W' THEN 7 * 86400000
                      ELSE CAST(interval AS BIGINT) * 60000 END <> 0
ORDER BY symbol, interval, open_time
LIMIT 100;

-- name: candles_out_of_range
SELECT symbol, interval, open_time, open, high, low, close, volume, turnover
FROM candles
WHERE NOT (open > 0 AND high > 0 AND low > 0 AND close > 0
           AND high >= greatest(open, close, low) AND low <= least(open, close, high)
           AND volume >= 0 AND turnover >= 0)
   OR open IS NULL OR high IS NULL OR low IS NULL OR close IS NULL
LIMIT 100;

-- name: funding_rates_out_of_range
-- Bybit caps funding per settlement well below 5 %; anything beyond is a parsing error.
SELECT symbol, funding_time, funding_rate
FROM funding_rates
WHERE funding_rate IS NULL OR isnan(funding_rate) OR abs(funding_rate) > 0.05
LIMIT 100;

-- name: open_interest_out_of_range
SELECT symbol, interval, ts, open_interest
FROM open_interest
WHERE open_interest IS NULL OR isnan(open_interest) OR open_interest < 0
LIMIT 100;

-- name: long_short_ratio_out_of_range
SELECT symbol, period, ts, buy_ratio, sell_ratio
FROM long_short_ratio
WHERE buy_ratio IS NULL OR sell_ratio IS NULL
   OR buy_ratio < 0 OR buy_ratio > 1 OR sell_ratio < 0 OR sell_ratio > 1
   OR abs(buy_ratio + sell_ratio - 1) > 0.01
LIMIT 100;

-- name: fear_greed_out_of_range
SELECT ts, value, classification
FROM fear_greed
WHERE value IS NULL OR value < 0 OR value > 100 OR classification IS NULL
LIMIT 100;

-- name: candles_latest
SELECT symbol, interval, max(open_time) AS latest FROM candles GROUP BY ALL ORDER BY ALL;

-- name: funding_rates_latest
SELECT symbol, max(funding_time) AS latest FROM funding_rates GROUP BY ALL ORDER BY ALL;

-- name: fear_greed_latest
SELECT max(ts) AS latest FROM fear_greed;

-- name: sentiment_history_out_of_range
-- Scores outside [-1, 1], confidences or the volatility score outside [0, 1].
SELECT symbol, interval, timestamp, sentiment_score, confidence, regime_confidence
FROM sentiment_history
WHERE NOT (sentiment_score BETWEEN -1 AND 1) OR NOT (confidence BETWEEN 0 AND 1)
   OR NOT (regime_confidence BETWEEN 0 AND 1) OR NOT (volatility_score BETWEEN 0 AND 1)
   OR NOT (trend_score BETWEEN -1 AND 1) OR NOT (momentum_score BETWEEN -1 AND 1)
   OR NOT (volume_flow_score BETWEEN -1 AND 1) OR NOT (exchange_sentiment BETWEEN -1 AND 1)
   OR NOT (macro_sentiment BETWEEN -1 AND 1)
   OR isnan(sentiment_score) OR isnan(confidence)
LIMIT 100;

-- name: sentiment_history_gaps
-- Stored candles without their sentiment row, once the symbol and interval have any rows
-- (a row's timestamp is its bar's close).
SELECT c.symbol, c.interval, c.open_time
FROM candles c
JOIN (SELECT symbol, interval, min(timestamp) AS first, max(timestamp) AS last
      FROM sentiment_history GROUP BY ALL) s USING (symbol, interval)
LEFT JOIN sentiment_history h
  ON h.symbol = c.symbol AND h.interval = c.interval
 AND h.timestamp = c.open_time + CASE c.interval
        WHEN 'D' THEN INTERVAL 1 DAY WHEN 'W' THEN INTERVAL 7 DAY
        ELSE to_minutes(CAST(c.interval AS BIGINT)) END
WHERE h.timestamp IS NULL
  AND c.open_time + CASE c.interval
        WHEN 'D' THEN INTERVAL 1 DAY WHEN 'W' THEN INTERVAL 7 DAY
        ELSE to_minutes(CAST(c.interval AS BIGINT)) END BETWEEN s.first AND s.last
ORDER BY 1, 2, 3
LIMIT 100;

-- name: sentiment_history_bad_regimes
-- A regime name outside the seven, or a score without a regime (or the reverse).
SELECT symbol, interval, timestamp, regime
FROM sentiment_history
WHERE (regime IS NOT NULL AND regime NOT IN ('trending_up', 'trending_down', 'ranging',
       'high_volatility', 'squeeze', 'breakout', 'capitulation'))
   OR ((regime IS NULL) <> (sentiment_score IS NULL))
   OR (regime IS NOT NULL AND (regime_duration_bars IS NULL OR regime_duration_bars < 1))
LIMIT 100;
