-- PostgreSQL variants of ../dashboard.sql (same names, parameters and columns). PostgreSQL
-- has no GROUP BY ALL, to_minutes, INTERVAL n UNIT without quotes or time_bucket.

-- name: extents
SELECT symbol, interval, min(timestamp) AS first, max(timestamp) AS last, count(*) AS bars
FROM sentiment_history
GROUP BY symbol, interval
ORDER BY symbol, interval;

-- name: history
SELECT s.*, c.open, c.high, c.low, c.volume
FROM sentiment_history AS s
LEFT JOIN candles AS c
       ON c.symbol = s.symbol AND c.interval = s.interval
      AND c.open_time = s.timestamp - make_interval(mins => CAST(? AS INTEGER))
WHERE s.symbol = ? AND s.interval = ? AND s.timestamp > ? AND s.timestamp <= ?
ORDER BY s.timestamp;

-- name: stream_now
SELECT st.symbol, st.through, st.loaded_at,
       (SELECT obi FROM orderbook_imbalance o WHERE o.symbol = st.symbol
        ORDER BY o.ts DESC LIMIT 1) AS obi,
       (SELECT max(ts) FROM orderbook_imbalance o WHERE o.symbol = st.symbol) AS obi_ts,
       (SELECT min(ts) FROM orderbook_imbalance o WHERE o.symbol = st.symbol
          AND o.ts > st.through - INTERVAL '61 minutes') AS first_ts
FROM stream_state AS st
ORDER BY st.symbol;

-- name: stream_liquidations
SELECT l.symbol, l.ts, l.side, l.price, l.size
FROM liquidations AS l
JOIN stream_state AS st ON st.symbol = l.symbol
WHERE l.ts > st.through - INTERVAL '1 hour' AND l.ts <= st.through
ORDER BY l.symbol, l.ts;

-- name: obi_series
SELECT date_bin(INTERVAL '5 minutes', ts, TIMESTAMP '2000-01-01') AS ts, avg(obi) AS obi,
       count(*) AS samples
FROM orderbook_imbalance
WHERE symbol = ? AND ts >= ? AND ts < ?
GROUP BY 1
ORDER BY 1;

-- name: liquidation_series
SELECT date_bin(INTERVAL '1 hour', ts, TIMESTAMP '2000-01-01') AS ts,
       sum(CASE WHEN side = 'Buy' THEN size * price ELSE 0 END) AS longs,
       sum(CASE WHEN side = 'Sell' THEN size * price ELSE 0 END) AS shorts
FROM liquidations
WHERE symbol = ? AND ts >= ? AND ts < ?
GROUP BY 1
ORDER BY 1;
