-- First start of the postgres service: the warehouse database beside Dagster's own
-- (POSTGRES_DB=dagster), both owned by the same role.
CREATE DATABASE sentiment OWNER sentiment;
