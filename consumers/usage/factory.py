"""Assembles the usage consumer's strategy chain (see steps.py for what each step does).

The consumer reads records a chunk at a time (consumers.chunks, ConsumerDefinition.chunked);
ChunkBuffer gathers chunks into a batch of up to USAGE_BATCH_MAX_SIZE records."""

from __future__ import annotations

import time
from collections.abc import Mapping

from arroyo.processing.strategies import CommitOffsets, ProcessingStrategy, ProcessingStrategyFactory, RunTask
from arroyo.processing.strategies.buffer import Buffer
from arroyo.types import Commit, Partition
from django.conf import settings
from django.utils.module_loading import import_string

from ..backpressure import OutageBackoff, OutageGate
from ..chunks import ChunkBuffer
from .steps import PublishStep, RecordStep


class UsageStrategyFactory(ProcessingStrategyFactory):
    def __init__(self, *, max_batch_size: int | None = None, max_batch_time_s: float | None = None, health=None):
        self.max_batch_size = max_batch_size or settings.USAGE_BATCH_MAX_SIZE
        self.max_batch_time_s = max_batch_time_s or settings.USAGE_BATCH_MAX_TIME_S
        # One outage window for the whole chain (consumers.backpressure): an outage holds the
        # batch in hand, and the consumer stays in its group.
        self.gate = OutageGate(health=health)
        # Long-lived across rebalances: the caches stay warm when partitions move.
        self.record = RecordStep()
        if settings.CONSUMER_STEP_WRAPPER:  # tests only: fault injection (tests/consumers/faults.py)
            self.record = import_string(settings.CONSUMER_STEP_WRAPPER)(self.record)

    def create_with_partitions(self, commit: Commit, partitions: Mapping[Partition, int]) -> ProcessingStrategy:
        return OutageBackoff(
            Buffer(
                buffer=ChunkBuffer(max_records=self.max_batch_size, max_wait_s=self.max_batch_time_s, clock=time.monotonic),
                next_step=OutageBackoff(RunTask(self.record, PublishStep(CommitOffsets(commit))), gate=self.gate),
            ),
            gate=self.gate,
        )
