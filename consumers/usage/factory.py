"""Assembles the usage consumer's strategy chain (see steps.py for what each step does)."""

from __future__ import annotations

from collections.abc import Mapping

from arroyo.backends.kafka import KafkaPayload
from arroyo.processing.strategies import BatchStep, CommitOffsets, ProcessingStrategy, ProcessingStrategyFactory, RunTask
from arroyo.types import Commit, Partition
from django.conf import settings

from ..backpressure import OutageBackoff, OutageGate
from .steps import DecodeStep, PublishStep, RateStep


class UsageStrategyFactory(ProcessingStrategyFactory[KafkaPayload]):
    def __init__(self, *, max_batch_size: int | None = None, max_batch_time_s: float | None = None, health=None):
        self.max_batch_size = max_batch_size or settings.USAGE_BATCH_MAX_SIZE
        self.max_batch_time_s = max_batch_time_s or settings.USAGE_BATCH_MAX_TIME_S
        # One outage window for the whole chain (consumers.backpressure): an outage holds the
        # batch and the record in hand, and the consumer stays in its group.
        self.gate = OutageGate(health=health)
        # Long-lived across rebalances: the caches stay warm when partitions move.
        self.decode = DecodeStep()
        self.rate = RateStep()
        self.publish = PublishStep()

    def create_with_partitions(
        self, commit: Commit, partitions: Mapping[Partition, int]
    ) -> ProcessingStrategy[KafkaPayload]:
        return OutageBackoff(
            RunTask(
                self.decode,
                BatchStep(
                    max_batch_size=self.max_batch_size,
                    max_batch_time=self.max_batch_time_s,
                    next_step=OutageBackoff(RunTask(self.rate, RunTask(self.publish, CommitOffsets(commit))), gate=self.gate),
                ),
            ),
            gate=self.gate,
        )
