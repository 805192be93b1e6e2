"""Assembles the alerts consumer's strategy chain (see step.py)."""

from __future__ import annotations

import time
from collections.abc import Mapping

from arroyo.processing.strategies import CommitOffsets, ProcessingStrategy, ProcessingStrategyFactory, RunTask
from arroyo.processing.strategies.buffer import Buffer
from arroyo.types import Commit, Partition
from django.conf import settings

from ..backpressure import OutageBackoff, OutageGate
from ..chunks import ChunkBuffer
from .step import EvaluateStep


class AlertsStrategyFactory(ProcessingStrategyFactory):
    def __init__(self, *, health=None):
        self.gate = OutageGate(health=health)
        self.step = EvaluateStep()  # long-lived across rebalances: its caches stay warm

    def create_with_partitions(self, commit: Commit, partitions: Mapping[Partition, int]) -> ProcessingStrategy:
        return OutageBackoff(
            Buffer(
                buffer=ChunkBuffer(
                    max_records=settings.USAGE_BATCH_MAX_SIZE, max_wait_s=settings.USAGE_BATCH_MAX_TIME_S,
                    clock=time.monotonic,
                ),
                next_step=OutageBackoff(RunTask(self.step, CommitOffsets(commit)), gate=self.gate),
            ),
            gate=self.gate,
        )
