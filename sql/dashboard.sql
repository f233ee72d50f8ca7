-- What the dashboard reads (dashboard/queries.py), always through a read-only connection.
-- Loaded by name; every value is a bound parameter.

-- name: extents
-- Which symbols and intervals have history, and from when to when (bar closes).
SELECT symbol, interval, min(timestamp) AS first, max(timestamp) AS last, count(*) AS bars
FROM sentiment_history
GROUP BY ALL
ORDER BY symbol, interval;

-- name: latest
-- The newest snapshot of every symbol at one interval.
SELECT *
FROM latest_sentiment
WHERE interval = ?
ORDER BY symbol;

-- name: history
-- One symbol and interval, the bars opened in [start, end), each row with its bar's OHLC
-- (candles are keyed by open time; a row's timestamp is the bar's close).
-- Parameters: interval minutes, symbol, interval, start, end.
SELECT s.*, c.open, c.high, c.low, c.volume
FROM sentiment_history AS s
LEFT JOIN candles AS c
       ON c.symbol = s.symbol AND c.interval = s.interval
      AND c.open_time = s.timestamp - to_minutes(CAST(? AS BIGINT))
WHERE s.symbol = ? AND s.interval = ? AND s.timestamp > ? AND s.timestamp <= ?
ORDER BY s.timestamp;

-- name: transitions
SELECT timestamp, from_regime, to_regime
FROM regime_transitions
WHERE symbol = ? AND interval = ? AND timestamp > ? AND timestamp <= ?
ORDER BY timestamp DESC;

-- name: funding
SELECT funding_time AS ts, funding_rate
FROM funding_rates
WHERE symbol = ? AND funding_time >= ? AND funding_time < ?
ORDER BY ts;

-- name: open_interest
SELECT ts, open_interest
FROM open_interest
WHERE symbol = ? AND interval = ? AND ts >= ? AND ts < ?
ORDER BY ts;

-- name: long_short
SELECT ts, buy_ratio
FROM long_short_ratio
WHERE symbol = ? AND period = ? AND ts >= ? AND ts < ?
ORDER BY ts;

-- name: fear_greed
SELECT ts, value, classification
FROM fear_greed
WHERE ts >= ? AND ts < ?
ORDER BY ts;
