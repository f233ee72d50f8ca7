-- Example queries against data/sentiment.duckdb (after `make demo`).
-- Run one with:  .venv/bin/python -c "import duckdb; print(duckdb.connect('data/sentiment.duckdb', read_only=True).sql(open('sql/examples.sql').read().split(';')[0]))"
-- or paste into the duckdb shell.

-- Daily OHLCV for BTCUSDT from the hourly candles.
SELECT date_trunc('day', open_time) AS day,
       first(open ORDER BY open_time) AS open,
       max(high) AS high, min(low) AS low,
       last(close ORDER BY open_time) AS close,
       sum(volume) AS volume
FROM candles
WHERE symbol = 'BTCUSDT' AND interval = '60'
GROUP BY ALL ORDER BY day;

-- Each hourly bar with the funding rate, open interest, long/short ratio and Fear & Greed
-- that were known when the bar closed (as-of joins: never a value from the future).
SELECT c.symbol, c.open_time + INTERVAL 1 HOUR AS bar_close, c.close,
       f.funding_rate, oi.open_interest, ls.buy_ratio, fg.value AS fear_greed
FROM candles c
ASOF LEFT JOIN funding_rates f
       ON f.symbol = c.symbol AND f.funding_time <= c.open_time + INTERVAL 1 HOUR
ASOF LEFT JOIN open_interest oi
       ON oi.symbol = c.symbol AND oi.ts + INTERVAL 1 HOUR <= c.open_time + INTERVAL 1 HOUR
ASOF LEFT JOIN long_short_ratio ls
       ON ls.symbol = c.symbol AND ls.ts + INTERVAL 1 HOUR <= c.open_time + INTERVAL 1 HOUR
ASOF LEFT JOIN fear_greed fg
       ON fg.ts <= c.open_time + INTERVAL 1 HOUR
WHERE c.symbol = 'BTCUSDT' AND c.interval = '60'
ORDER BY bar_close
LIMIT 48;

-- Days of extreme funding (beyond the brief's contrarian thresholds: > 0.1 %, < -0.05 %).
SELECT symbol, funding_time, funding_rate
FROM funding_rates
WHERE funding_rate > 0.001 OR funding_rate < -0.0005
ORDER BY funding_time;

-- Fear & Greed extremes and what BTC did over the next 7 days.
SELECT fg.ts AS day, fg.value, fg.classification,
       (SELECT last(close ORDER BY open_time) FROM candles
         WHERE symbol = 'BTCUSDT' AND interval = '60'
           AND open_time < fg.ts + INTERVAL 8 DAY) /
       (SELECT last(close ORDER BY open_time) FROM candles
         WHERE symbol = 'BTCUSDT' AND interval = '60'
           AND open_time < fg.ts + INTERVAL 1 DAY) - 1 AS btc_return_7d
FROM fear_greed fg
WHERE fg.value <= 20 OR fg.value >= 80
ORDER BY day;
