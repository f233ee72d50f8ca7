"""Process settings from the environment: where the configuration, the database and the
data sources are.

Every network client takes its base URL from here, so the demo and the tests point them at
the replay exchange on 127.0.0.1 by setting environment variables, never by editing code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from sentiment.errors import ConfigError

#: Environment variable -> default value.
DEFAULTS: dict[str, str] = {
    "SENTIMENT_CONFIG": "sentiment.yaml",
    "SENTIMENT_DB": "data/sentiment.duckdb",
    "BYBIT_BASE_URL": "https://api.bybit.com",
    "BYBIT_WS_URL": "wss://stream.bybit.com/v5/public/linear",
    "FEAR_GREED_URL": "https://api.alternative.me/fng/",
    # Where the stream stages its Parquet files; default: stream/ beside the database.
    "SENTIMENT_STREAM_DIR": "",
}


@dataclass(frozen=True)
class Settings:
    """Where things are; read once with :func:`get_settings`."""

    config_path: str
    db_path: str
    bybit_base_url: str
    bybit_ws_url: str
    fear_greed_url: str
    stream_dir: str


def get_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``environ`` (default ``os.environ``); unset or empty means the default.

    Raises :class:`~sentiment.errors.ConfigError` for ``SENTIMENT_DB=:memory:``.
    """
    env = os.environ if environ is None else environ

    def read(name: str) -> str:
        value = env.get(name, "").strip()
        return value or DEFAULTS[name]

    db_path = read("SENTIMENT_DB")
    if db_path.startswith(":memory:"):
        # Every short-lived connection would open its own empty in-memory database: each
        # write would vanish when its connection closes while the job reported success.
        raise ConfigError(
            f"{db_path!r} is an in-memory database: writes would be lost as soon as each "
            "connection closes; set a file path (default data/sentiment.duckdb)",
            key="SENTIMENT_DB",
        )

    return Settings(
        config_path=read("SENTIMENT_CONFIG"),
        db_path=db_path,
        bybit_base_url=read("BYBIT_BASE_URL"),
        bybit_ws_url=read("BYBIT_WS_URL"),
        fear_greed_url=read("FEAR_GREED_URL"),
        stream_dir=read("SENTIMENT_STREAM_DIR") or (
            # A PostgreSQL database (postgresql://...) has no directory to stage beside.
            os.path.join("data", "stream") if db_path.lower().startswith(
                ("postgresql://", "postgres://"))
            else os.path.join(os.path.dirname(db_path) or ".", "stream")),
    )
