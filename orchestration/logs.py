"""Progress of long steps in the Dagster run log.

The computation reports its progress through Python logging (``sentiment.*`` loggers: per
symbol and interval, rows and HMM models done), so the demo prints it and a Dagster step
shows it: :func:`forward_progress` hands those records to the step's ``context.log`` for
as long as the step runs, whatever the instance's ``python_logs`` settings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

#: The loggers whose records a step forwards (every module of the product package).
PRODUCT_LOGGER = "sentiment"


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
def forward_progress(context) -> Iterator[None]:
    """Forward INFO and above of the ``sentiment`` loggers to ``context.log``."""
    logger = logging.getLogger(PRODUCT_LOGGER)
    handler = _ToDagster(context.log)
    level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
