-- PostgreSQL variants of ../catalog.sql (same names and columns).

-- name: comments
SELECT c.relname::text AS table_name, NULL::text AS column_name,
       obj_description(c.oid, 'pg_class') AS comment
FROM pg_class c
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
UNION ALL
SELECT c.relname::text, a.attname::text, col_description(c.oid, a.attnum)
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
  AND a.attnum > 0 AND NOT a.attisdropped;
