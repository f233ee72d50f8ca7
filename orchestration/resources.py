"""Dagster resources: the DuckDB store and the two network clients.

Base URLs come from the settings (``BYBIT_BASE_URL``, ``FEAR_GREED_URL``, ``SENTIMENT_DB``),
read when the definitions load, so the demo and the tests point them at the replay exchange
on 127.0.0.1 without touching code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
from dagster import ConfigurableResource
from dagster_duckdb import DuckDBResource

from sentiment.config import Config
from sentiment.io import retry
from sentiment.io.sources.bybit import BybitClient
from sentiment.io.sources.fear_greed import FearGreedClient
from sentiment.io.staging import Staging
from sentiment.io.store import Store


class StoreResource(DuckDBResource):
    """``DuckDBResource`` whose connections are always closed and retried when locked.

    dagster-duckdb's own ``get_connection`` leaves the file locked when the step raises (it
    closes only on success) and opens read-write only; both break a single-writer file that
    the dashboard reads. Everything goes through :class:`sentiment.io.store.Store` instead.
    """

    lock_timeout_seconds: float = retry.STORE_LOCK.timeout_seconds

    def store(self, identity: str | None = None) -> Store:
        """The store; ``identity`` pins it to the database file a run started with."""
        return Store(self.database, lock_timeout=self.lock_timeout_seconds, identity=identity)

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.store().connect() as conn:
            yield conn


class HttpResource(ConfigurableResource):
    """A public HTTP API: its base URL and how hard to retry it (``sources`` settings)."""

    base_url: str
    timeout_seconds: float = retry.SOURCES.timeout_seconds
    max_retries: int = retry.SOURCES.max_retries
    backoff_base_seconds: float = retry.SOURCES.backoff_base_seconds
    backoff_max_seconds: float = retry.SOURCES.backoff_max_seconds

    @classmethod
    def configured(cls, base_url: str, config: Config) -> HttpResource:
        """The resource for ``base_url`` with the retry settings of ``config.sources``."""
        sources = config.sources
        return cls(base_url=base_url, timeout_seconds=sources.timeout_seconds,
                   max_retries=sources.max_retries,
                   backoff_base_seconds=sources.backoff_base_seconds,
                   backoff_max_seconds=sources.backoff_max_seconds)

    def _retry(self) -> dict[str, float]:
        return dict(timeout=self.timeout_seconds, max_retries=self.max_retries,
                    backoff_base=self.backoff_base_seconds, backoff_max=self.backoff_max_seconds)


class BybitResource(HttpResource):
    """Bybit V5 public REST client (the real exchange or the replay exchange)."""

    category: str = "linear"

    def client(self) -> BybitClient:
        return BybitClient(self.base_url, category=self.category, **self._retry())


class FearGreedResource(HttpResource):
    """alternative.me Crypto Fear & Greed Index client."""

    def client(self) -> FearGreedClient:
        return FearGreedClient(self.base_url, **self._retry())


class StagingResource(ConfigurableResource):
    """The directory where ``sentiment stream`` stages its Parquet files."""

    directory: str

    def staging(self) -> Staging:
        return Staging(self.directory)
