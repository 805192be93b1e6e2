"""Kafka transport: client configuration, the process-wide producer, topic management.

Nothing here knows about billing; services hand it bytes and topic names."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from django.conf import settings

logger = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """The broker did not acknowledge a write in time; nothing may be assumed written."""


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    value: bytes
    key: bytes | None = None
    timestamp_ms: int | None = None
    headers: Sequence[tuple[str, bytes]] = field(default_factory=tuple)


def client_config() -> dict[str, Any]:
    return {"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS}


def producer_config() -> dict[str, Any]:
    """Durable writes: acks from all in-sync replicas, idempotent (no duplicates on retry)."""
    return {
        **client_config(),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "compression.type": "lz4",
        "message.timeout.ms": settings.KAFKA_PRODUCE_TIMEOUT_MS,
        "socket.connection.setup.timeout.ms": max(1000, settings.KAFKA_PRODUCE_TIMEOUT_MS),
    }


_producers: dict[str, Producer] = {}
_producers_lock = threading.Lock()


def producer() -> Producer:
    """The process-wide producer for the configured cluster (created lazily, after any fork)."""
    servers = settings.KAFKA_BOOTSTRAP_SERVERS
    with _producers_lock:
        if servers not in _producers:
            _producers[servers] = Producer(producer_config())
        return _producers[servers]


def producers_close(*, timeout_s: float = 5.0) -> None:
    """Flush and drop this process's producers (shutdown, or a test pointing elsewhere)."""
    with _producers_lock:
        for client in _producers.values():
            client.flush(timeout_s)
        _producers.clear()


class _Acks:
    """Delivery outcome of one group of records, filled in by librdkafka callbacks."""

    def __init__(self, expected: int):
        self.pending = expected
        self.errors: list[str] = []
        self.done = threading.Event()
        if expected == 0:
            self.done.set()

    def callback(self, error: KafkaError | None, _message: Any) -> None:
        if error is not None:
            self.errors.append(error.str())
        self.pending -= 1
        if self.pending <= 0:
            self.done.set()


def produce_and_wait(records: Sequence[Record], *, timeout_s: float | None = None) -> None:
    """Produce every record and return only once the broker acknowledged all of them.

    Raises BrokerUnavailable if any record failed or the deadline passed. Records that did
    reach the broker stay there; callers make retries safe with idempotency keys."""
    timeout_s = timeout_s if timeout_s is not None else settings.KAFKA_PRODUCE_TIMEOUT_MS / 1000 + 1
    deadline = time.monotonic() + timeout_s
    client = producer()
    acks = _Acks(len(records))
    for record in records:
        while True:
            try:
                client.produce(
                    record.topic,
                    value=record.value,
                    key=record.key,
                    timestamp=record.timestamp_ms or 0,
                    headers=list(record.headers) or None,
                    on_delivery=acks.callback,
                )
                break
            except BufferError:
                if time.monotonic() > deadline:
                    raise BrokerUnavailable("the producer queue is full and the broker is not draining it") from None
                client.poll(0.05)
            except KafkaException as error:
                raise BrokerUnavailable(str(error)) from error
    while not acks.done.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerUnavailable(f"{acks.pending} of {len(records)} records not acknowledged in {timeout_s:.1f}s")
        client.poll(min(remaining, 0.05))
    if acks.errors:
        raise BrokerUnavailable(f"{len(acks.errors)} of {len(records)} records failed: {acks.errors[0]}")


def topics_ensure(*, names: Iterable[str], partitions: int | None = None, wait_s: float = 60.0) -> None:
    """Create the topics that do not exist yet, waiting up to `wait_s` for the broker to answer."""
    partitions = partitions or settings.KAFKA_TOPIC_PARTITIONS
    admin = AdminClient(client_config())
    deadline = time.monotonic() + wait_s
    while True:
        try:
            existing = set(admin.list_topics(timeout=2).topics)
            break
        except KafkaException as error:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"no Kafka broker answered at {settings.KAFKA_BOOTSTRAP_SERVERS}: {error}") from error
            logger.info("waiting for the Kafka broker at %s", settings.KAFKA_BOOTSTRAP_SERVERS)
    wanted = [NewTopic(name, num_partitions=partitions, replication_factor=settings.KAFKA_TOPIC_REPLICATION) for name in names if name not in existing]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, operation_timeout=10).items():
        try:
            future.result(timeout=15)
            logger.info("created topic %s (%d partitions)", name, partitions)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def usage_topics() -> list[str]:
    return [settings.KAFKA_TOPIC_USAGE, settings.KAFKA_TOPIC_USAGE_DLQ, settings.KAFKA_TOPIC_RATED]
