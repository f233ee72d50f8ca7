-- PostgreSQL variants of ../checks.sql (same names and columns). PostgreSQL has no
-- date_diff, to_minutes, epoch_ms, isnan, GROUP BY ALL or ORDER BY ALL; NaN equals NaN there.

-- name: candles_gaps
WITH ordered AS (
    SELECT symbol, interval, open_time,
           lag(open_time) OVER (PARTITION BY symbol, interval ORDER BY open_time) AS prev_time
    FROM candles
)
SELECT symbol, interval, prev_time AS gap_after, open_time AS gap_before,
       CAST(extract(epoch FROM open_time - prev_time) / 60 AS BIGINT) AS minutes
FROM ordered
WHERE prev_time IS NOT NULL
  AND CASE interval
        WHEN 'D' THEN open_time <> prev_time + INTERVAL '1 day'
        WHEN 'W' THEN open_time <> prev_time + INTERVAL '7 days'
        ELSE open_time <> prev_time + make_interval(mins => CAST(interval AS INTEGER))
      END
ORDER BY symbol, interval, open_time
LIMIT 100;

-- name: candles_off_grid
SELECT symbol, interval, open_time
FROM candles
WHERE CAST(extract(epoch FROM open_time - CASE interval WHEN 'W' THEN INTERVAL '4 days'
                                                        ELSE INTERVAL '0 days' END)
           * 1000 AS BIGINT)
      % CASE interval WHEN 'D' THEN 86400000 WHEN 'W' THEN 7 * 86400000
                      ELSE CAST(interval AS BIGINT) * 60000 END <> 0
ORDER BY symbol, interval, open_time
LIMIT 100;

-- name: funding_rates_out_of_range
SELECT symbol, funding_time, funding_rate
FROM funding_rates
WHERE funding_rate IS NULL OR funding_rate = 'NaN'::float8 OR abs(funding_rate) > 0.05
LIMIT 100;

-- name: open_interest_out_of_range
SELECT symbol, interval, ts, open_interest
FROM open_interest
WHERE open_interest IS NULL OR open_interest = 'NaN'::float8 OR open_interest < 0
LIMIT 100;

-- name: candles_latest
SELECT symbol, interval, max(open_time) AS latest FROM candles GROUP BY symbol, interval
ORDER BY symbol, interval;

-- name: funding_rates_latest
SELECT symbol, max(funding_time) AS latest FROM funding_rates GROUP BY symbol ORDER BY symbol;

-- name: sentiment_history_out_of_range
SELECT symbol, interval, timestamp, sentiment_score, confidence, regime_confidence
FROM sentiment_history
WHERE NOT (sentiment_score BETWEEN -1 AND 1) OR NOT (confidence BETWEEN 0 AND 1)
   OR NOT (regime_confidence BETWEEN 0 AND 1) OR NOT (volatility_score BETWEEN 0 AND 1)
   OR NOT (trend_score BETWEEN -1 AND 1) OR NOT (momentum_score BETWEEN -1 AND 1)
   OR NOT (volume_flow_score BETWEEN -1 AND 1) OR NOT (exchange_sentiment BETWEEN -1 AND 1)
   OR NOT (macro_sentiment BETWEEN -1 AND 1)
   OR sentiment_score = 'NaN'::float8 OR confidence = 'NaN'::float8
LIMIT 100;

-- name: sentiment_history_gaps
SELECT c.symbol, c.interval, c.open_time
FROM candles c
JOIN (SELECT symbol, interval, min(timestamp) AS first, max(timestamp) AS last
      FROM sentiment_history GROUP BY symbol, interval) s USING (symbol, interval)
LEFT JOIN sentiment_history h
  ON h.symbol = c.symbol AND h.interval = c.interval
 AND h.timestamp = c.open_time + CASE c.interval
        WHEN 'D' THEN INTERVAL '1 day' WHEN 'W' THEN INTERVAL '7 days'
        ELSE make_interval(mins => CAST(c.interval AS INTEGER)) END
WHERE h.timestamp IS NULL
  AND c.open_time + CASE c.interval
        WHEN 'D' THEN INTERVAL '1 day' WHEN 'W' THEN INTERVAL '7 days'
        ELSE make_interval(mins => CAST(c.interval AS INTEGER)) END BETWEEN s.first AND s.last
ORDER BY 1, 2, 3
LIMIT 100;
