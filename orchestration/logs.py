"""Progress of long steps in the Dagster run log.

The computation and the assets report progress through Python logging (the ``sentiment``
and ``orchestration`` loggers: per symbol and interval, rows and HMM models done), so the
demo prints it and a Dagster step shows it: :func:`forward_progress` hands those records to
the step's ``context.log`` for as long as the step runs, whatever the instance's
``python_logs`` settings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

#: The loggers whose warnings a step forwards (every module of the project's packages)...
PROGRESS_LOGGERS = ("sentiment", "orchestration")
#: ...and those whose INFO records are progress (not, e.g., each HMM boundary skipped).
PROGRESS_INFO = ("sentiment.services", "orchestration")


def _is_progress(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or record.name.startswith(PROGRESS_INFO)


class _ToDagster(logging.Handler):
    def __init__(self, log) -> None:
        super().__init__(logging.INFO)
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            self._log.warning(message)
        else:
            self._log.info(message)


@contextmanager
def progress_to(handler: logging.Handler) -> Iterator[None]:
    """Send INFO and above of :data:`PROGRESS_LOGGERS` to ``handler`` meanwhile."""
    handler.addFilter(_is_progress)
    loggers = [logging.getLogger(name) for name in PROGRESS_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def forward_progress(context):
    """Forward the progress records to ``context.log`` while the step runs."""
    return progress_to(_ToDagster(context.log))
