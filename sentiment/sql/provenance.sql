-- What sentiment/provenance.py reads to tell generated series from market data, through a
-- read-only connection. Loaded by name; every value is a bound parameter. Portable SQL: the
-- same text runs on DuckDB and PostgreSQL.

-- name: newest_open_interest
-- The newest rows of each symbol and interval. Parameter: how many.
SELECT symbol, ts, open_interest
FROM (SELECT symbol, ts, open_interest,
             row_number() OVER (PARTITION BY symbol, interval ORDER BY ts DESC) AS k
      FROM open_interest) AS newest
WHERE k <= ?;

-- name: newest_long_short
-- The newest rows of each symbol and period. Parameter: how many.
SELECT symbol, ts, buy_ratio
FROM (SELECT symbol, ts, buy_ratio,
             row_number() OVER (PARTITION BY symbol, period ORDER BY ts DESC) AS k
      FROM long_short_ratio) AS newest
WHERE k <= ?;

-- name: stream_clocks
-- How far the stream got per symbol (exchange time) and when that was loaded (this
-- machine's clock).
SELECT symbol, through, loaded_at
FROM stream_state;
