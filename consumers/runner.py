"""Runs a registered consumer as an arroyo StreamProcessor until SIGTERM/SIGINT, which
finish the batch in flight, commit its offsets and exit cleanly."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import MutableSequence
from typing import Any

from arroyo.backends.kafka import KafkaConsumer, KafkaPayload, KafkaProducer
from arroyo.backends.kafka.configuration import build_kafka_consumer_configuration
from arroyo.commit import IMMEDIATE
from arroyo.dlq import DlqPolicy, KafkaDlqProducer
from arroyo.processing import StreamProcessor
from arroyo.types import BrokerValue, Topic
from django.conf import settings

from .kafka import producer_config, topics_ensure
from .registry import ConsumerDefinition

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


def build_processor(definition: ConsumerDefinition) -> StreamProcessor[KafkaPayload]:
    dlq_topic = definition.dlq_topic()
    dlq_policy = None
    if dlq_topic:
        dlq_policy = DlqPolicy(ReasonedDlqProducer(KafkaProducer(producer_config()), Topic(dlq_topic)), None, None)
    return StreamProcessor(
        consumer=PromptKafkaConsumer(
            consumer_configuration(group_id=definition.group_id()), max_wait_s=settings.USAGE_BATCH_MAX_TIME_S
        ),
        topic=Topic(definition.topic()),
        processor_factory=definition.strategy_factory(),
        commit_policy=IMMEDIATE,
        dlq_policy=dlq_policy,
    )


def _transient_errors() -> tuple[type[BaseException], ...]:
    """Errors of an unavailable service, after which a restart replays from committed offsets."""
    import redis
    from confluent_kafka import KafkaException
    from django.db import InterfaceError, OperationalError

    from .kafka import BrokerUnavailable

    return (OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError, KafkaException, BrokerUnavailable)


def run(definition: ConsumerDefinition, *, install_signals: bool = True, max_backoff_s: float = 30.0) -> None:
    """Run until a signal. A transient error (database, Redis or broker unavailable) closes the
    processor without committing and starts a new one after a backoff: the batch in flight is
    replayed from the last committed offset, which idempotency makes safe. Any other error
    stops the process (non-zero exit) for its supervisor to report."""
    topics_ensure(names=definition.topics_to_ensure())
    transient = _transient_errors()
    state: dict[str, Any] = {"processor": None}
    stopping = threading.Event()
    if install_signals:
        def stop(signum: int, _frame: Any) -> None:
            logger.info("signal %s: finishing the current batch, then stopping", signum)
            stopping.set()
            if state["processor"] is not None:
                state["processor"].signal_shutdown()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    backoff = 1.0
    while not stopping.is_set():
        state["processor"] = build_processor(definition)
        logger.info("consumer %s reading %s as group %s", definition.name, definition.topic(), definition.group_id())
        started = time.monotonic()
        try:
            state["processor"].run()
            return
        except transient as error:
            from django.db import close_old_connections

            close_old_connections()
            if time.monotonic() - started > max_backoff_s:
                backoff = 1.0
            logger.error("consumer %s: %s; restarting in %.0fs from the last committed offsets", definition.name, error, backoff)
            stopping.wait(backoff)  # a service is down: wait before reconnecting (a signal ends the wait)
            backoff = min(backoff * 2, max_backoff_s)
