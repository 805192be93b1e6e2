"""Kafka transport: client configuration, the process-wide producer, topic management.

Nothing here knows about billing; services hand it bytes and topic names."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from django.conf import settings

logger = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """The broker did not acknowledge a write in time; nothing may be assumed written."""


class Record(NamedTuple):
    topic: str
    value: bytes
    key: bytes | None = None
    timestamp_ms: int | None = None
    headers: Sequence[tuple[str, bytes]] = ()


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


# Errors after which an idempotent producer can never deliver again: librdkafka raises them as
# fatal (`KafkaError.fatal()`), e.g. UNKNOWN_PRODUCER_ID once a restarted broker has forgotten
# the producer id after a sequence gap, or an epoch the broker calls fenced. The only way on is a
# new producer (a new producer id); the records it failed were never acknowledged, so the
# caller's retry (idempotent on event ids downstream) is safe.
_UNUSABLE_CODES = frozenset(
    {
        KafkaError._FATAL,
        KafkaError._FENCED,
        KafkaError.UNKNOWN_PRODUCER_ID,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.PRODUCER_FENCED,
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
        KafkaError.INVALID_PRODUCER_ID_MAPPING,
    }
)


def _unusable(error: KafkaError) -> bool:
    return error.fatal() or error.code() in _UNUSABLE_CODES


class ProducerUnusable(Exception):
    """This producer instance can never deliver again (see _UNUSABLE_CODES); replace it."""


class _Slot:
    """One cluster's producer and whether librdkafka declared it unusable (its error_cb)."""

    def __init__(self) -> None:
        self.unusable: str | None = None
        self.client = Producer({**producer_config(), "error_cb": self._on_error})

    def _on_error(self, error: KafkaError) -> None:
        if _unusable(error):
            self.unusable = error.str()


_producers: dict[str, _Slot] = {}
_producers_lock = threading.Lock()
replacements = {"count": 0}  # producers replaced in this process (reported by health checks)


def _slot() -> _Slot:
    servers = settings.KAFKA_BOOTSTRAP_SERVERS
    with _producers_lock:
        slot = _producers.get(servers)
        if slot is None or slot.unusable:
            if slot is not None:
                _discard(slot)
            slot = _producers[servers] = _Slot()
        return slot


def _discard(slot: _Slot) -> None:
    """Drop an unusable producer. Its queued records are purged (never acknowledged, so never
    reported written); callers retry with a new producer. Holds _producers_lock."""
    replacements["count"] += 1
    logger.warning("replacing the Kafka producer: %s", slot.unusable or "unusable")
    try:
        slot.client.purge()
        slot.client.flush(0)
    except KafkaException:
        pass
    for servers, current in list(_producers.items()):
        if current is slot:
            del _producers[servers]


def producer() -> Producer:
    """The process-wide producer for the configured cluster (created lazily, after any fork;
    replaced once librdkafka declares it unusable)."""
    return _slot().client


def producers_close(*, timeout_s: float = 5.0) -> None:
    """Flush and drop this process's producers (shutdown, or a test pointing elsewhere)."""
    with _producers_lock:
        for slot in _producers.values():
            try:
                slot.client.flush(timeout_s)
            except KafkaException:
                pass
        _producers.clear()


class _Acks:
    """Delivery outcome of one group of records, filled in by librdkafka callbacks."""

    def __init__(self, expected: int):
        self.pending = expected
        self.errors: list[KafkaError] = []
        self.done = threading.Event()
        if expected == 0:
            self.done.set()

    def callback(self, error: KafkaError | None, _message: Any) -> None:
        if error is not None:
            self.errors.append(error)
        self.pending -= 1
        if self.pending <= 0:
            self.done.set()


def _raise_for(error: KafkaError | KafkaException, slot: _Slot) -> None:
    """Fatal: the producer is unusable, retry with a new one now. Anything else (a timeout, the
    broker unreachable): BrokerUnavailable, and the producer is replaced before its next use —
    after a broker restart that forgot its producer id, librdkafka may retry the stale id until
    every record times out (never fatal), so keeping it would fail every write from then on."""
    kafka_error = error.args[0] if isinstance(error, KafkaException) else error
    text = kafka_error.str() if isinstance(kafka_error, KafkaError) else str(kafka_error)
    if isinstance(kafka_error, KafkaError) and _unusable(kafka_error):
        slot.unusable = text
        raise ProducerUnusable(text)
    slot.unusable = f"records not delivered ({text})"
    raise BrokerUnavailable(text)


def _send(slot: _Slot, records: Sequence[Record], deadline: float) -> _Acks:
    """Hand every record to librdkafka (waiting while its queue is full); returns their acks."""
    client = slot.client
    acks = _Acks(len(records))
    callback = acks.callback
    try:
        for topic, value, key, timestamp_ms, headers in records:
            while True:
                try:
                    client.produce(
                        topic, value=value, key=key, timestamp=timestamp_ms or 0, headers=list(headers) or None,
                        on_delivery=callback,
                    )
                    break
                except BufferError:
                    if time.monotonic() > deadline:
                        slot.unusable = "queue full"  # see _raise_for
                        raise BrokerUnavailable("the producer queue is full and the broker is not draining it") from None
                    client.poll(0.05)
    except KafkaException as error:  # produce() on a producer librdkafka gave up
        _raise_for(error, slot)
    return acks


def _settle(slot: _Slot, acks: _Acks, total: int, deadline: float, *, wait: bool) -> bool:
    """Serve delivery callbacks; True once every record was acknowledged. Raises as
    produce_and_wait does when one failed, the producer became unusable or the deadline passed.
    `wait`: block until then; else only look."""
    client = slot.client
    try:
        client.poll(0)
        while not acks.done.is_set():
            if slot.unusable:
                raise ProducerUnusable(slot.unusable)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                slot.unusable = "records not acknowledged in time"  # see _raise_for
                raise BrokerUnavailable(f"{acks.pending} of {total} records not acknowledged in time")
            if not wait:
                return False
            client.poll(min(remaining, 0.05))
    except KafkaException as error:  # poll() on a producer librdkafka gave up
        _raise_for(error, slot)
    if acks.errors:
        unusable = next((e for e in acks.errors if _unusable(e)), None)
        _raise_for(unusable or acks.errors[0], slot)
    return True


def _produce_once(slot: _Slot, records: Sequence[Record], deadline: float) -> None:
    _settle(slot, _send(slot, records, deadline), len(records), deadline, wait=True)


def produce_and_wait(records: Sequence[Record], *, timeout_s: float | None = None) -> None:
    """Produce every record and return only once the broker acknowledged all of them.

    Raises BrokerUnavailable if any record failed or the deadline passed; the next call then
    starts from a new producer. A producer librdkafka declares unusable (fatal, fenced) is
    replaced at once and the records are sent once more with the new one. Records that did
    reach the broker stay there; callers make retries safe with idempotency keys."""
    timeout_s = timeout_s if timeout_s is not None else settings.KAFKA_PRODUCE_TIMEOUT_MS / 1000 + 1
    deadline = time.monotonic() + timeout_s
    for attempt in (1, 2):
        slot = _slot()
        try:
            _produce_once(slot, records, deadline if attempt == 1 else max(deadline, time.monotonic() + 1.0))
            return
        except ProducerUnusable as error:
            if attempt == 2:
                raise BrokerUnavailable(f"the producer failed twice, the second time new: {error}") from None
            logger.warning("Kafka producer unusable (%s); retrying with a new one", error)


class Delivery:
    """Records produced without waiting (produce_later): `done()` says, without blocking, whether
    the broker acknowledged them all; `wait()` blocks until it has, or — when one of them was not
    acknowledged — produces them all once more with produce_and_wait (the caller's records are
    idempotent: a record delivered twice is what at-least-once allows). Raises as
    produce_and_wait does."""

    def __init__(self, records: Sequence[Record], timeout_s: float | None = None) -> None:
        self.records = records
        self.timeout_s = timeout_s if timeout_s is not None else settings.KAFKA_PRODUCE_TIMEOUT_MS / 1000 + 1
        self._deadline = time.monotonic() + self.timeout_s
        self._slot = _slot()
        self._acks: _Acks | None = None
        self._delivered = not records
        if records:
            try:
                self._acks = _send(self._slot, records, self._deadline)
            except (BrokerUnavailable, ProducerUnusable):
                self._acks = None  # not all sent: wait() sends them again

    def done(self) -> bool:
        if self._delivered:
            return True
        if self._acks is None:
            return True  # nothing more to wait for: wait() decides
        try:
            self._delivered = _settle(self._slot, self._acks, len(self.records), self._deadline, wait=False)
        except (BrokerUnavailable, ProducerUnusable):
            self._acks = None
            return True
        return self._delivered

    def wait(self) -> None:
        if self._delivered:
            return
        if self._acks is not None:
            try:
                _settle(self._slot, self._acks, len(self.records), self._deadline, wait=True)
                self._delivered = True
                return
            except (BrokerUnavailable, ProducerUnusable) as error:
                logger.warning("%d records not acknowledged (%s); producing them again", len(self.records), error)
                self._acks = None
        produce_and_wait(self.records, timeout_s=self.timeout_s)
        self._delivered = True


def produce_later(records: Sequence[Record]) -> Delivery:
    """Produce `records` and return at once; the Delivery tells when the broker acknowledged them."""
    return Delivery(records)


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
    return [settings.KAFKA_TOPIC_USAGE, settings.KAFKA_TOPIC_USAGE_DLQ, settings.KAFKA_TOPIC_RATED, settings.KAFKA_TOPIC_RATED_DLQ]
