-- Queries the command line runs (sentiment/cli.py). Loaded by name.

-- name: latest_snapshot
SELECT *
FROM sentiment_history
WHERE symbol = ? AND interval = ?
ORDER BY timestamp DESC
LIMIT 1;
