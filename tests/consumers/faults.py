"""Fault injection for the usage consumer, for tests only: wrappers of its record step, named by
a consumer process's AFORO_CONSUMER_STEP_WRAPPER (settings.CONSUMER_STEP_WRAPPER)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from django.db import OperationalError

logger = logging.getLogger(__name__)
Step = Callable[[Any], Any]
EXIT_CRASHED = 70


def crash_after_persist(step: Step) -> Step:
    """Exit right after the first batch that stored new events committed, before its offsets."""

    def crashing(message: Any) -> Any:
        outcome = step(message)
        if outcome.new:
            logger.error("fault injection: exiting after the database commit, before the offset commit")
            os._exit(EXIT_CRASHED)
        return outcome

    return crashing


def database_down(step: Step) -> Step:
    """The first AFORO_FAULT_COUNT (default 2) batches fail as if PostgreSQL were unreachable, after
    the record step's own retries: each failure is an outage the consumer backs off from (1 s, 2 s)."""
    left = [int(os.environ.get("AFORO_FAULT_COUNT", "2"))]

    def failing(message: Any) -> Any:
        if left[0] > 0:
            left[0] -= 1
            raise OperationalError("fault injection: database unavailable")
        return step(message)

    return failing
