"""alternative.me Crypto Fear & Greed Index over REST.

``GET {base_url}?limit=N&format=json`` answers
``{"name": ..., "data": [{"value", "value_classification", "timestamp"}, ...],
"metadata": {"error": null}}`` with ``value`` (0-100) and ``timestamp`` (Unix seconds, the
day's 00:00 UTC) as strings, newest first; ``limit=0`` returns the whole history (~3000 days).
The API has no date-range parameter, so :meth:`FearGreedClient.history` fetches everything
and filters client-side.

Transport, retries and rate limiting are shared with the Bybit client
(:mod:`sentiment.io.sources.http`, built on :mod:`requests`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sentiment.io.sources.http import (
    Range,
    RateLimit,
    ResponseContext,
    RestClient,
    check_rows,
    dict_column,
    float_column,
    seconds_column,
    to_utc,
)
from sentiment.io.tables import TABLES

SOURCE = "fear_greed"
ENDPOINT = "fng"

#: API limit: 60 requests per minute, counted over a 10-minute window. A burst of 20 plus
#: 0.5 requests/s stays within 50 in any minute.
RATE_LIMIT = RateLimit(requests=60, per_seconds=60.0, headroom=0.5, burst=20)

COLUMNS = list(TABLES["fear_greed"].all_columns)


def parse_fear_greed(payload: Any, *, ctx: ResponseContext | None = None) -> pd.DataFrame:
    """Rows of one Fear & Greed response: ``ts`` (day), ``value``, ``classification``.

    Ascending by day; a day listed twice with the same value and label is kept once.

    Raises
    ------
    SourceError
        ``metadata.error`` is set, a field is missing, ``value`` is not a whole number in
        [0, 100], ``timestamp`` is not Unix seconds, the classification is empty, or one day
        is listed twice with different values.
    """
    ctx = ctx or ResponseContext(SOURCE, ENDPOINT)
    if not isinstance(payload, dict):
        raise ctx.error("response is not a JSON object", field="body")
    metadata = payload.get("metadata")
    if isinstance(metadata, dict) and metadata.get("error") is not None:
        raise ctx.error(f"the API reported an error: {metadata['error']!r}",
                        field="metadata.error")
    rows = ctx.require_list(payload, "data")
    values = float_column(dict_column(rows, "value", ctx), "value", ctx)
    labels = dict_column(rows, "value_classification", ctx)
    for i, label in enumerate(labels):
        if not isinstance(label, str) or not label.strip():
            raise ctx.error(f"value_classification is not a label: {label!r} (row {i})",
                            field="value_classification")
    days = seconds_column(dict_column(rows, "timestamp", ctx), "timestamp", ctx)
    frame = pd.DataFrame(
        {
            # One value per UTC day: the API stamps 00:00 UTC; flooring guards against a
            # stamp taken later in the day landing on its own key.
            "ts": pd.DatetimeIndex(days).floor("D").as_unit("ns"),
            "value": values,
            "classification": pd.Series(labels, dtype=str),
        },
        columns=COLUMNS,
    )
    check_rows(frame, ctx, key="ts", key_field="timestamp",
               ranges={"value": ("value", Range(0.0, 100.0))},
               rules=[("value", values != np.floor(values), "value {value} is not a whole number")])
    return (
        frame.sort_values("ts", kind="stable")
        .drop_duplicates(subset=["ts"], keep="first")
        .reset_index(drop=True)
    )


class FearGreedClient(RestClient):
    """alternative.me Fear & Greed Index client (one ``requests.Session``).

    Parameters
    ----------
    base_url : str
        The full index URL, ``https://api.alternative.me/fng/`` by default (``FEAR_GREED_URL``).
    timeout, max_retries, backoff_base, backoff_max, sleep, rng
        As for :class:`~sentiment.io.sources.bybit.BybitClient`.
    """

    SOURCE = SOURCE
    DISPLAY_NAME = "alternative.me"
    RATE_LIMIT = RATE_LIMIT

    def _fetch(self, limit: int) -> pd.DataFrame:
        ctx = ResponseContext(SOURCE, ENDPOINT)
        payload = self.transport.get_json(
            self.base_url, {"limit": limit, "format": "json"}, endpoint=ENDPOINT
        )
        return parse_fear_greed(payload, ctx=ctx)

    def history(self, start: Any = None, end: Any = None) -> pd.DataFrame:
        """Every day with ``start <= ts < end`` (either bound may be ``None``).

        ``ts`` is the day's 00:00 UTC, so a day is included when its midnight lies in the
        half-open range, the same rule as every Bybit endpoint.
        """
        frame = self._fetch(0)
        mask = np.ones(len(frame), dtype=bool)
        if start is not None:
            mask &= (frame["ts"] >= to_utc(start, name="start")).to_numpy()
        if end is not None:
            mask &= (frame["ts"] < to_utc(end, name="end")).to_numpy()
        return frame.loc[mask].reset_index(drop=True)

    def latest(self) -> pd.DataFrame:
        """The newest day only (``limit=1``)."""
        return self._fetch(1)
