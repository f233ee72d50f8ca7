-- Example queries against data/sentiment.duckdb (after `make demo`).
-- Run one by pasting it into Python:  .venv/bin/python -c "import duckdb, sys; print(duckdb.connect('data/sentiment.duckdb', read_only=True).sql(sys.stdin.read()))"
-- (then paste the query and press Ctrl-D), or into the duckdb shell. Views: sentiment/sql/views.sql.
-- The same queries for a PostgreSQL store: sentiment/sql/postgresql/examples.sql.

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
       ON oi.symbol = c.symbol AND oi.interval = '1h'
      AND oi.ts + INTERVAL 1 HOUR <= c.open_time + INTERVAL 1 HOUR
ASOF LEFT JOIN long_short_ratio ls
       ON ls.symbol = c.symbol AND ls.period = '1h'
      AND ls.ts + INTERVAL 1 HOUR <= c.open_time + INTERVAL 1 HOUR
ASOF LEFT JOIN fear_greed fg
       ON fg.ts <= c.open_time + INTERVAL 1 HOUR
WHERE c.symbol = 'BTCUSDT' AND c.interval = '60'
ORDER BY bar_close
LIMIT 48;

-- Days of extreme funding (beyond the exchange score's contrarian thresholds: > 0.1 %, < -0.05 %).
SELECT symbol, funding_time, funding_rate
FROM funding_rates
WHERE funding_rate > 0.001 OR funding_rate < -0.0005
ORDER BY funding_time, symbol;

-- Fear & Greed extremes (alternative.me's bands: Extreme Fear 0-25, Extreme Greed 76-100) and
-- what BTC did over the next 7 days.
SELECT fg.ts AS day, fg.value, fg.classification,
       (SELECT last(close ORDER BY open_time) FROM candles
         WHERE symbol = 'BTCUSDT' AND interval = '60'
           AND open_time < fg.ts + INTERVAL 8 DAY) /
       (SELECT last(close ORDER BY open_time) FROM candles
         WHERE symbol = 'BTCUSDT' AND interval = '60'
           AND open_time < fg.ts + INTERVAL 1 DAY) - 1 AS btc_return_7d
FROM fear_greed fg
WHERE fg.value <= 25 OR fg.value >= 76
ORDER BY day;

-- The newest snapshot of every symbol and interval (view: latest_sentiment).
SELECT symbol, interval, timestamp, round(sentiment_score, 2) AS score,
       round(confidence, 2) AS confidence, regime, regime_duration_bars
FROM latest_sentiment
ORDER BY symbol, interval;

-- How long each regime lasted on BTCUSDT hourly bars (view: regime_periods).
SELECT regime, count(*) AS periods, round(avg(bars), 1) AS avg_bars, max(bars) AS max_bars
FROM regime_periods
WHERE symbol = 'BTCUSDT' AND interval = '60'
GROUP BY regime
ORDER BY periods DESC, regime;

-- Every confirmed regime change with the score at that bar.
SELECT t.timestamp, t.from_regime, t.to_regime, round(h.sentiment_score, 2) AS score
FROM regime_transitions t
JOIN sentiment_history h USING (symbol, interval, timestamp)
WHERE t.symbol = 'BTCUSDT' AND t.interval = '60'
ORDER BY t.timestamp;

-- Forward 24 h BTC return by sentiment band: does the score say anything? Only the
-- score known at each bar's close is used, and the return is measured after it.
WITH ahead AS (
    SELECT sentiment_score, lead(close, 24) OVER (ORDER BY timestamp) / close - 1 AS ret
    FROM sentiment_history
    WHERE symbol = 'BTCUSDT' AND interval = '60'
)
SELECT CASE WHEN sentiment_score >= 0.2 THEN 'bullish'
            WHEN sentiment_score <= -0.2 THEN 'bearish' ELSE 'neutral' END AS band,
       count(*) AS bars, round(avg(ret) * 100, 3) AS avg_next_24h_pct
FROM ahead
WHERE sentiment_score IS NOT NULL AND ret IS NOT NULL
GROUP BY band
ORDER BY band;

-- Sub-scores on the BTCUSDT hourly bars where the regime was capitulation or breakout.
SELECT timestamp, regime, round(trend_score, 2) AS trend, round(momentum_score, 2) AS mom,
       round(volume_flow_score, 2) AS flow, round(exchange_sentiment, 2) AS exchange,
       open_interest_delta_pct, funding_rate
FROM sentiment_history
WHERE symbol = 'BTCUSDT' AND interval = '60' AND regime IN ('capitulation', 'breakout')
ORDER BY timestamp;
