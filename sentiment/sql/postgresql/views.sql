-- The views of ../views.sql for a PostgreSQL store (SENTIMENT_DB=postgresql://...): the same
-- names, columns and rows. PostgreSQL has no QUALIFY: DISTINCT ON keeps the newest row.

-- The newest snapshot of every symbol and interval.
CREATE OR REPLACE VIEW latest_sentiment AS
SELECT DISTINCT ON (symbol, interval) *
FROM sentiment_history
ORDER BY symbol, interval, timestamp DESC;

-- One row per stretch of bars in the same regime: when it started and ended (bar closes)
-- and how many bars it lasted.
CREATE OR REPLACE VIEW regime_periods AS
WITH marked AS (
    SELECT symbol, interval, timestamp, regime,
           CASE WHEN regime IS DISTINCT FROM lag(regime) OVER w THEN 1 ELSE 0 END AS starts
    FROM sentiment_history
    WHERE regime IS NOT NULL
    WINDOW w AS (PARTITION BY symbol, interval ORDER BY timestamp)
), numbered AS (
    SELECT *, sum(starts) OVER (PARTITION BY symbol, interval ORDER BY timestamp) AS period
    FROM marked
)
SELECT symbol, interval, regime, min(timestamp) AS started, max(timestamp) AS ended,
       count(*) AS bars
FROM numbered
GROUP BY symbol, interval, period, regime;
