-- Queries the command line runs (sentiment/cli.py). Loaded by name.

-- name: latest_snapshot
SELECT *
FROM sentiment_history
WHERE symbol = ? AND interval = ?
ORDER BY timestamp DESC
LIMIT 1;

-- name: history_recent
-- One symbol and interval's newest rows, newest first (sentiment history without --from).
-- Parameters: symbol, interval, how many.
SELECT *
FROM sentiment_history
WHERE symbol = $1 AND interval = $2
ORDER BY timestamp DESC
LIMIT $3;

-- name: stored_series
-- Which symbols and intervals sentiment_history holds, with their newest bar close (what a
-- command names when a symbol or interval asked for has no rows).
SELECT symbol, interval, count(*) AS rows, max(timestamp) AS newest
FROM sentiment_history
GROUP BY symbol, interval
ORDER BY symbol, interval;

-- name: history_range
-- One symbol and interval's rows in time order, with the bar close in [start, end]; a NULL
-- bound leaves that side open (sentiment evaluate). Parameters: symbol, interval, start, end.
SELECT *
FROM sentiment_history
WHERE symbol = $1 AND interval = $2
  AND ($3::TIMESTAMP IS NULL OR timestamp >= $3::TIMESTAMP)
  AND ($4::TIMESTAMP IS NULL OR timestamp <= $4::TIMESTAMP)
ORDER BY timestamp;

-- name: newest_rows
-- The newest stored time per table and key (what the live update fetches after).
SELECT 'candles' AS tbl, symbol, interval AS code, max(open_time) AS newest
FROM candles GROUP BY ALL
UNION ALL
SELECT 'funding_rates', symbol, NULL, max(funding_time) FROM funding_rates GROUP BY ALL
UNION ALL
SELECT 'open_interest', symbol, interval, max(ts) FROM open_interest GROUP BY ALL
UNION ALL
SELECT 'long_short_ratio', symbol, period, max(ts) FROM long_short_ratio GROUP BY ALL
UNION ALL
SELECT 'fear_greed', NULL, NULL, max(ts) FROM fear_greed HAVING count(*) > 0;

-- name: recent_candle_times
-- The open times of every symbol's and interval's bars within ? (an interval) of its newest:
-- where the live update looks for a bar an earlier answer left out.
SELECT symbol, interval, open_time
FROM (SELECT symbol, interval, open_time,
             max(open_time) OVER (PARTITION BY symbol, interval) AS newest
      FROM candles) AS t
WHERE open_time >= newest - ?
ORDER BY symbol, interval, open_time;
