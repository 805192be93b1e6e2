"""Reading the usage topic over a window of record time, to name the events behind a
difference: which records of a tenant (and subjects) the topic holds there, where the usage
consumer group stands on each partition, and which records the ingest API produced.

Bounded: from offsets_for_times(start − skew) to the end of each partition (partition EOF), stopping a partition at its first record past end + skew (record timestamps come from
several web servers: a little out of order), and at `max_records` records read in all."""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from django.conf import settings

from aforo.kafka import BrokerUnavailable, client_config

from ..validation import api_key_subject

SKEW = timedelta(seconds=30)


@dataclass(frozen=True)
class TopicRecord:
    event_id: str
    subject: str
    partition: int
    offset: int
    timestamp_ms: int
    via_api: bool


@dataclass
class TopicScan:
    records: list[TopicRecord] = field(default_factory=list)
    committed: dict[int, int] = field(default_factory=dict)  # partition → the group's next offset (−1: none)
    truncated: bool = False

    def consumed(self, record: TopicRecord) -> bool:
        """Whether the usage consumer group has committed past this record."""
        return record.offset < self.committed.get(record.partition, -1)


def _tenant_subject(key: bytes | None, value: bytes | None, headers) -> tuple[int | None, str, str, bool]:
    tenant_id, via_api = None, False
    for name, header in headers or ():
        if name == "tenant_id" and header.isascii() and header.isdigit():
            tenant_id = int(header)
        elif name == "via" and header == b"api":
            via_api = True
    if tenant_id is None and key and key.split(b":", 1)[0].isdigit() and key.split(b":", 1)[0].isascii():
        tenant_id = int(key.split(b":", 1)[0])
    try:
        body = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return tenant_id, "", "", via_api
    if not isinstance(body, dict):
        return tenant_id, "", "", via_api
    event_id = body.get("event_id") if isinstance(body.get("event_id"), str) else ""
    if isinstance(body.get("api_key"), str):
        subject = api_key_subject(body["api_key"])
    elif body.get("customer_id") is not None:
        subject = f"customer:{body['customer_id']}"
    elif body.get("subscription_id") is not None:
        subject = f"subscription:{body['subscription_id']}"
    else:
        subject = ""
    return tenant_id, subject, event_id, via_api


def usage_topic_scan(
    *, tenant_id: int, start: datetime, end: datetime, subjects: Collection[str] | None = None,
    max_records: int = 200_000, timeout_s: float = 20.0,
) -> TopicScan:
    """The tenant's usage records with a record timestamp in [start, end) (and a subject among
    `subjects`, when given), and the usage group's committed offsets. Raises BrokerUnavailable
    when the broker does not answer."""
    topic = settings.KAFKA_TOPIC_USAGE
    consumer = Consumer(
        {
            **client_config(),
            # Only to read the group's committed offsets: assign() never joins the group, and
            # nothing is committed.
            "group.id": settings.KAFKA_CONSUMER_GROUP_USAGE,
            "client.id": f"aforo-reconcile-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    scan = TopicScan()
    try:
        metadata = consumer.list_topics(topic, timeout=5)
        partitions = sorted(metadata.topics[topic].partitions) if topic in metadata.topics else []
        if not partitions:
            return scan
        start_ms = int((start - SKEW).timestamp() * 1000)
        stop_ms = int((end + SKEW).timestamp() * 1000)
        wanted = consumer.offsets_for_times([TopicPartition(topic, p, start_ms) for p in partitions], timeout=5)
        scan.committed = {tp.partition: tp.offset for tp in consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=5)}
        assign = [tp for tp in wanted if tp.offset >= 0]  # −1 (OFFSET_END): nothing at or after start
        if not assign:
            return scan
        consumer.assign(assign)
        open_partitions = {tp.partition for tp in assign}
        start_ms_exact, end_ms_exact = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        read = 0
        deadline = time.monotonic() + timeout_s
        while open_partitions and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=0.2):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:  # caught up with the partition
                        open_partitions.discard(message.partition())
                    continue
                partition, offset, stamp = message.partition(), message.offset(), message.timestamp()[1]
                if partition not in open_partitions:
                    continue
                if stamp > stop_ms:
                    open_partitions.discard(partition)
                    continue
                read += 1
                if read > max_records:
                    scan.truncated = True
                    return scan
                if not start_ms_exact <= stamp < end_ms_exact:
                    continue
                record_tenant, subject, event_id, via_api = _tenant_subject(message.key(), message.value(), message.headers())
                if record_tenant != tenant_id or (subjects is not None and subject not in subjects):
                    continue
                scan.records.append(TopicRecord(event_id, subject, partition, offset, stamp, via_api))
        scan.truncated = scan.truncated or bool(open_partitions)
        return scan
    except KafkaException as error:
        raise BrokerUnavailable(f"reading {topic}: {error}") from error
    finally:
        consumer.close()
