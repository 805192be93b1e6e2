"""Riding out an outage without leaving the consumer group.

A step that meets an outage (consumers.errors.OUTAGES: PostgreSQL, Redis or the broker
unreachable) must not lose its batch, and should not tear the processor down either: a rebuilt
processor closes its Kafka consumer — a LeaveGroup — and joins again, a rebalance for every
consumer of the group on every outage. On the embedded broker that is worse than slow: Tansu 0.6
keeps a group's leader when it leaves in the middle of a rebalance (its Forming state's leave
does not clear it), and from then on no member can ever be assigned a partition. A 5 s PostgreSQL
cut with two consumers — both failing, both leaving — wedged the group exactly so.

`OutageBackoff` uses arroyo's own backpressure instead: on an outage it raises MessageRejected,
so the batch stays in BatchStep (its flush is retried), the record being submitted is carried
over, and after 5 s the processor pauses its partitions while it keeps polling — the member
stays in the group, heartbeats and all. Until the backoff (1 s doubling to 30 s) has passed, a
submit is refused at once without touching the service. One `OutageGate` is shared by every
wrapped step of a consumer, so a decode that needs the database and a batch that needs it wait
for the same window.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Generic, TypeVar

from arroyo.processing.strategies import MessageRejected, ProcessingStrategy
from arroyo.types import Message
from django.db import close_old_connections

from .errors import OUTAGES

logger = logging.getLogger(__name__)
TPayload = TypeVar("TPayload")


class OutageGate:
    """When the next attempt may reach the services again, and what the consumer's health
    record should say meanwhile."""

    def __init__(self, *, health: Any = None, initial_s: float = 1.0, max_s: float = 30.0) -> None:
        self.health = health
        self.initial_s = initial_s
        self.max_s = max_s
        self.delay_s = 0.0
        self.retry_at = 0.0
        self.outages = 0  # outages ridden out (for tests and logs)

    def check(self) -> None:
        if time.monotonic() < self.retry_at:
            raise MessageRejected()

    def failed(self, error: BaseException) -> MessageRejected:
        close_old_connections()  # a dead database connection must not be reused by the retry
        self.delay_s = self.initial_s if self.delay_s == 0 else min(self.delay_s * 2, self.max_s)
        self.retry_at = time.monotonic() + self.delay_s
        if self.delay_s == self.initial_s:
            self.outages += 1
        logger.error("outage: %s: %s; holding the batch, next try in %.0fs", type(error).__name__, error, self.delay_s)
        if self.health is not None:
            self.health.update(state="backoff", last_error=f"{type(error).__name__}: {error}"[:300])
        return MessageRejected()

    def succeeded(self) -> None:
        if self.delay_s:
            logger.info("services answer again: the held batch went through")
            self.delay_s = 0.0
            if self.health is not None:
                self.health.update(state="running", last_error=None)


class OutageBackoff(ProcessingStrategy[TPayload], Generic[TPayload]):
    """Forwards to `next_step`; an outage raised by it becomes MessageRejected (see module)."""

    def __init__(self, next_step: ProcessingStrategy[TPayload], *, gate: OutageGate) -> None:
        self.next_step = next_step
        self.gate = gate

    def submit(self, message: Message[TPayload]) -> None:
        self.gate.check()
        try:
            self.next_step.submit(message)
        except MessageRejected:
            raise
        except OUTAGES as error:
            raise self.gate.failed(error) from error
        self.gate.succeeded()

    def poll(self) -> None:
        try:
            self.next_step.poll()
        except OUTAGES as error:  # e.g. CommitOffsets with the broker gone: the next commit covers it
            self.gate.failed(error)

    def join(self, timeout: float | None = None) -> None:
        self.next_step.join(timeout)

    def close(self) -> None:
        self.next_step.close()

    def terminate(self) -> None:
        self.next_step.terminate()
