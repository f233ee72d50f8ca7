"""Assets: each owns the DuckDB table of its name.

What every asset here shares is defined once: they write one DuckDB file, which allows one
writing process at a time, so they all run in one pool.
"""

import pandas as pd
from dagster import BackfillPolicy, MetadataValue

#: One pool for every writer of the DuckDB file: it allows one writing process at a time.
WRITER_POOL = "duckdb_writer"

#: The ``@asset`` arguments of every writer of the DuckDB file.
WRITES_DUCKDB = {"pool": WRITER_POOL, "kinds": frozenset({"duckdb", "python"})}

#: One run for a whole backfill range: the fetch pages through the range once and the write
#: is one transaction (DESIGN 8.11).
SINGLE_RUN = BackfillPolicy.single_run()


def span_metadata(times: pd.Series) -> dict[str, MetadataValue]:
    """``first`` and ``last`` of a materialization's rows (``times`` not empty)."""
    times = pd.to_datetime(times)
    return {"first": MetadataValue.text(str(times.min())),
            "last": MetadataValue.text(str(times.max()))}
