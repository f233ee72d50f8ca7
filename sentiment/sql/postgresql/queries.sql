-- PostgreSQL variants of ../queries.sql (same names, parameters and columns): a PostgreSQL
-- store runs these in place of the DuckDB text. PostgreSQL has no GROUP BY ALL.

-- name: newest_rows
SELECT 'candles' AS tbl, symbol, interval AS code, max(open_time) AS newest
FROM candles GROUP BY symbol, interval
UNION ALL
SELECT 'funding_rates', symbol, NULL, max(funding_time) FROM funding_rates GROUP BY symbol
UNION ALL
SELECT 'open_interest', symbol, interval, max(ts) FROM open_interest GROUP BY symbol, interval
UNION ALL
SELECT 'long_short_ratio', symbol, period, max(ts) FROM long_short_ratio
GROUP BY symbol, period
UNION ALL
SELECT 'fear_greed', NULL, NULL, max(ts) FROM fear_greed HAVING count(*) > 0;
