-- The rule of sentiment/provenance.py, which tells the replay exchange's made-up series from
-- market data. Loaded by name; every value is a bound parameter. Portable SQL: the same text
-- runs on DuckDB and PostgreSQL.

-- name: replay_turnover
-- The replay exchange's mark on a symbol's hourly candles in the day before a time: its
-- recording lacks turnover, so it serves volume x close to 4 decimals (replay/data/README.md);
-- Bybit reports the quote volume actually traded, which differs as soon as an hour trades at
-- more than one price. Counts the traded bars and those that carry such a turnover.
-- Parameters: symbol, time (a bar close, or a stream's exchange time).
SELECT count(*) AS traded,
       count(*) FILTER (WHERE abs(turnover - volume * close) <= 0.00005 + 1e-9 * turnover)
           AS replay_turnover
FROM candles
WHERE symbol = $1 AND interval = '60' AND volume > 0
  AND open_time >= $2::TIMESTAMP - INTERVAL '1 day' AND open_time < $2::TIMESTAMP;
