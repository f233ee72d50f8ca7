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

-- name: stream_now
-- The live stream, per symbol: how far it got (exchange time) and when that was loaded (this
-- machine's clock), its newest order-book sample and the liquidations of the hour before
-- that (for the pressure reading).
SELECT st.symbol, st.through, st.loaded_at,
       (SELECT obi FROM orderbook_imbalance o WHERE o.symbol = st.symbol
        ORDER BY o.ts DESC LIMIT 1) AS obi,
       (SELECT max(ts) FROM orderbook_imbalance o WHERE o.symbol = st.symbol) AS obi_ts,
       -- the oldest order-book sample of the last hour and a minute: whether the stream
       -- has watched a whole hour, which the liquidation pressure needs
       (SELECT min(ts) FROM orderbook_imbalance o WHERE o.symbol = st.symbol
          AND o.ts > st.through - INTERVAL 61 MINUTE) AS first_ts
FROM stream_state AS st
ORDER BY st.symbol;

-- name: stream_liquidations
-- Liquidations of every symbol in the hour up to each symbol's stream time.
SELECT l.symbol, l.ts, l.side, l.price, l.size
FROM liquidations AS l
JOIN stream_state AS st ON st.symbol = l.symbol
WHERE l.ts > st.through - INTERVAL 1 HOUR AND l.ts <= st.through
ORDER BY l.symbol, l.ts;

-- name: obi_series
-- Order-book imbalance in 5-minute means.
SELECT time_bucket(INTERVAL 5 MINUTE, ts) AS ts, avg(obi) AS obi, count(*) AS samples
FROM orderbook_imbalance
WHERE symbol = ? AND ts >= ? AND ts < ?
GROUP BY 1
ORDER BY 1;

-- name: liquidation_series
-- Liquidated notional per hour, longs ("Buy") and shorts ("Sell").
SELECT time_bucket(INTERVAL 1 HOUR, ts) AS ts,
       sum(CASE WHEN side = 'Buy' THEN size * price ELSE 0 END) AS longs,
       sum(CASE WHEN side = 'Sell' THEN size * price ELSE 0 END) AS shorts
FROM liquidations
WHERE symbol = ? AND ts >= ? AND ts < ?
GROUP BY 1
ORDER BY 1;
