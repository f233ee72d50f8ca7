-- Queries on the database's own catalog (sentiment/io/store.py). Loaded by name.

-- name: comments
-- The comment of every table (column_name NULL) and column of the current schema: what the
-- store compares with the definitions in sentiment/io/tables.py before writing any.
SELECT table_name, NULL AS column_name, comment
FROM duckdb_tables()
WHERE database_name = current_database() AND schema_name = current_schema()
UNION ALL
SELECT table_name, column_name, comment
FROM duckdb_columns()
WHERE database_name = current_database() AND schema_name = current_schema();
