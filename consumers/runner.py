"""Runs a registered consumer as an arroyo StreamProcessor until SIGTERM/SIGINT, which
finish the batch in flight, commit its offsets and exit cleanly."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Mapping, MutableSequence
from typing import Any

from arroyo.backends.kafka import KafkaConsumer, KafkaPayload, KafkaProducer
from arroyo.backends.kafka.configuration import build_kafka_consumer_configuration
from arroyo.commit import IMMEDIATE
from arroyo.dlq import DlqPolicy, KafkaDlqProducer
from arroyo.processing import StreamProcessor
from arroyo.processing.strategies import ProcessingStrategy, ProcessingStrategyFactory
from arroyo.types import BrokerValue, Commit, Partition, Topic
from django.conf import settings
from django.db import close_old_connections

from aforo.kafka import producer_config, topics_ensure

from .errors import OUTAGES
from .health import ConsumerHealth, Watchdog
from .registry import ConsumerDefinition

EXIT_STALLED = 3  # `run_consumer` exit status when the watchdog stopped it

logger = logging.getLogger(__name__)


class ReasonedDlqProducer(KafkaDlqProducer):
    """arroyo's Kafka DLQ producer, plus a `reason` header saying why the record is poison.
    The value and key are the original bytes, untouched."""

    def __init__(self, producer: KafkaProducer, topic: Topic):
        super().__init__(producer, topic)
        self._producer = producer
        self._topic = topic

    def produce(self, value: BrokerValue[KafkaPayload], reason: str | None = None):
        headers: MutableSequence[tuple[str, bytes]] = list(value.payload.headers)
        headers.extend(
            [
                ("reason", (reason or "invalid").encode()),
                ("original_topic", value.partition.topic.name.encode()),
                ("original_partition", str(value.partition.index).encode()),
                ("original_offset", str(value.offset).encode()),
            ]
        )
        return self._producer.produce(self._topic, KafkaPayload(value.payload.key, value.payload.value, headers))


class PromptKafkaConsumer(KafkaConsumer):
    """arroyo's Kafka consumer with a bounded poll wait. arroyo polls with a fixed 1 s timeout
    and lets a time-bounded batch flush only after that poll returns, so when traffic pauses
    the last partial batch would wait up to a second. Capping the wait at the batch time
    keeps event-to-rated latency at the batch bound even for a lone event."""

    def __init__(self, configuration: dict[str, Any], *, max_wait_s: float):
        super().__init__(configuration)
        self._max_wait_s = max_wait_s

    def poll(self, timeout: float | None = None):
        return super().poll(self._max_wait_s if timeout is None else min(timeout, self._max_wait_s))


def consumer_configuration(*, group_id: str) -> dict[str, Any]:
    return build_kafka_consumer_configuration(
        default_config={
            "session.timeout.ms": settings.KAFKA_SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": settings.KAFKA_HEARTBEAT_INTERVAL_MS,
            # Return fetches as soon as records arrive: at low rates the default 500 ms wait
            # would be most of the event-to-rated latency.
            "fetch.wait.max.ms": settings.KAFKA_FETCH_WAIT_MAX_MS,
        },
        bootstrap_servers=[settings.KAFKA_BOOTSTRAP_SERVERS],
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,  # offsets move only through CommitOffsets, after the DB commit
    )


class _ObservedFactory(ProcessingStrategyFactory[KafkaPayload]):
    """The definition's strategy factory, telling the consumer's health record which partitions
    it holds and when each batch's offsets were committed."""

    def __init__(self, inner: ProcessingStrategyFactory[KafkaPayload], health: ConsumerHealth):
        self.inner = inner
        self.health = health

    def create_with_partitions(self, commit: Commit, partitions: Mapping[Partition, int]) -> ProcessingStrategy[KafkaPayload]:
        self.health.update(partitions=sorted(p.index for p in partitions), state="running")

        def observed_commit(offsets: Mapping[Partition, int], force: bool = False) -> None:
            commit(offsets, force)
            if offsets:
                self.health.committed()

        return self.inner.create_with_partitions(observed_commit, partitions)

    def shutdown(self) -> None:
        self.inner.shutdown()


def build_processor(definition: ConsumerDefinition, *, health: ConsumerHealth | None = None) -> StreamProcessor[KafkaPayload]:
    dlq_topic = definition.dlq_topic()
    dlq_policy = None
    if dlq_topic:
        dlq_policy = DlqPolicy(ReasonedDlqProducer(KafkaProducer(producer_config()), Topic(dlq_topic)), None, None)
    factory = definition.strategy_factory(health=health)
    return StreamProcessor(
        consumer=PromptKafkaConsumer(
            consumer_configuration(group_id=definition.group_id()), max_wait_s=settings.USAGE_BATCH_MAX_TIME_S
        ),
        topic=Topic(definition.topic()),
        processor_factory=_ObservedFactory(factory, health) if health is not None else factory,
        commit_policy=IMMEDIATE,
        dlq_policy=dlq_policy,
    )


class ConsumerStalled(Exception):
    """The watchdog saw no progress while records waited: exit non-zero for a restart."""


def run(definition: ConsumerDefinition, *, install_signals: bool = True, max_backoff_s: float = 30.0) -> None:
    """Run until a signal. A transient error (database, Redis or broker unavailable) closes the
    processor without committing and starts a new one after a backoff: the batch in flight is
    replayed from the last committed offset, which idempotency makes safe. Records at fault are
    the steps' business (DLQ). The watchdog (consumers.health) raises ConsumerStalled when the
    group has lag and nothing moves for CONSUMER_STALL_AFTER_S; any other error stops the
    process too (non-zero exit) for its supervisor to restart."""
    topics_ensure(names=definition.topics_to_ensure())
    health = ConsumerHealth(name=definition.name, group=definition.group_id())
    state: dict[str, Any] = {"processor": None, "stalled": None}
    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        logger.info("signal %s: finishing the current batch, then stopping", signum)
        health.update(state="stopping")
        stopping.set()
        if state["processor"] is not None:
            state["processor"].signal_shutdown()

    def stalled(message: str) -> None:
        logger.error("consumer %s is stalled: %s; stopping so that its supervisor restarts it", definition.name, message)
        state["stalled"] = message
        stopping.set()
        if state["processor"] is not None:
            state["processor"].signal_shutdown()
        # A processor stuck inside a call never reaches its shutdown check: leave anyway.
        threading.Timer(settings.CONSUMER_STALL_GRACE_S, lambda: os._exit(EXIT_STALLED)).start()

    if install_signals:
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    watchdog = Watchdog(
        health=health, topic=definition.topic(), stall_after_s=settings.CONSUMER_STALL_AFTER_S, on_stall=stalled,
        interval_s=settings.CONSUMER_WATCHDOG_INTERVAL_S,
    ).start()
    backoff = 1.0
    try:
        while not stopping.is_set():
            state["processor"] = build_processor(definition, health=health)
            logger.info("consumer %s reading %s as group %s", definition.name, definition.topic(), definition.group_id())
            started = time.monotonic()
            try:
                state["processor"].run()
                break
            except OUTAGES as error:
                close_old_connections()
                if time.monotonic() - started > max_backoff_s:
                    backoff = 1.0
                health.update(state="backoff", last_error=f"{type(error).__name__}: {error}"[:300], partitions=[])
                logger.error("consumer %s: %s; restarting in %.0fs from the last committed offsets", definition.name, error, backoff)
                stopping.wait(backoff)  # a service is down: wait before reconnecting (a signal ends the wait)
                backoff = min(backoff * 2, max_backoff_s)
    finally:
        watchdog.stop()
    if state["stalled"]:
        raise ConsumerStalled(state["stalled"])
