"""How long every outside call waits and how often it retries: the one definition of each
default.

The REST clients, the WebSocket stream and the store's wait for a locked database file take
their defaults from here; the configuration's ``sources:`` and ``stream:`` sections (and the
Dagster resources built from them) override them per run. Each figure names the constraint it
answers.

Pure: no I/O library is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceRetry:
    """A REST client's patience with one request (the ``sources:`` section's keys).

    ``max_retries`` retries follow the first attempt; retry ``n`` (0-based) waits a jittered
    ``min(backoff_max_seconds, backoff_base_seconds * 2**n)``.
    """

    #: Seconds for one attempt: connecting, the headers and the whole body.
    timeout_seconds: float = 10.0
    max_retries: int = 5
    backoff_base_seconds: float = 0.5
    #: Also the longest wait a server's ``Retry-After`` hint can impose.
    backoff_max_seconds: float = 30.0


@dataclass(frozen=True)
class StreamRetry:
    """The WebSocket stream's heartbeat and reconnection (the ``stream:`` section's keys)."""

    #: Bybit drops a connection that sends nothing for long; a ping every 20 s is its advice.
    ping_seconds: float = 20.0
    #: No message at all for this long (more than two pings): the connection is dead.
    dead_seconds: float = 45.0
    #: Reconnection ``n`` waits about ``min(max_backoff_seconds, backoff_seconds * 2**n)``.
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    connect_timeout_seconds: float = 10.0


@dataclass(frozen=True)
class LockWait:
    """How a process waits for a DuckDB file another process holds (one writer or many
    readers, never both): retries from ``first_delay_seconds``, doubling up to
    ``max_delay_seconds``, for ``timeout_seconds`` in all."""

    timeout_seconds: float
    first_delay_seconds: float = 0.01
    max_delay_seconds: float = 0.5


#: The REST clients' defaults (Bybit, alternative.me).
SOURCES = SourceRetry()
#: The stream's defaults.
STREAM = StreamRetry()
#: A pipeline step's wait for the file.
STORE_LOCK = LockWait(timeout_seconds=60.0)
#: A dashboard read waits this long before it shows its last good answer
#: (``dashboard.lock_wait_seconds``).
DASHBOARD_LOCK_WAIT_SECONDS = 10.0
#: A command-line read (``sentiment status``, ``history``, ``evaluate``, ``tables``) waits
#: this long for a writer to let go of the file, then says the database is busy: a writer
#: holds the lock only while it commits (seconds), and a person at a prompt should not wait a
#: pipeline step's full minute to hear why.
CLI_LOCK_WAIT_SECONDS = 5.0
