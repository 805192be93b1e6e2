"""Reading a replay's records from Kafka: the DLQ topic whole, or an offset range of one
partition of the usage topic. Partitions are assigned directly (no consumer group is joined and
nothing is committed: what was replayed is recorded in the database, billing.models.ReplayItem).

A partition is read to its end as the broker reports it (partition EOF) or to the range's last
offset. Dead letters written after the run started are not the run's (`not_after_ms`): a record
this run re-produced that the consumer dead-letters again waits for the next run."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from django.conf import settings

from aforo.kafka import BrokerUnavailable, client_config

from .plan import SourceRecord, dead_letter_timestamp_ms

CHUNK = 500
IDLE_TIMEOUT_S = 15.0  # no record and no end of partition for this long: the broker is not answering


class NoSuchPartition(Exception):
    """The topic has no partition of that number."""


def _reader() -> Consumer:
    return Consumer(
        {
            **client_config(),
            "group.id": f"aforo-replay-{uuid.uuid4().hex[:12]}",  # never joined, never committed
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 50,
        }
    )


def topic_partitions(*, topic: str, timeout_s: float | None = None) -> list[int]:
    """The topic's partitions (raises BrokerUnavailable when no broker answers within
    `timeout_s`, default KAFKA_METADATA_TIMEOUT_S)."""
    reader = _reader()
    try:
        metadata = reader.list_topics(topic, timeout=timeout_s or settings.KAFKA_METADATA_TIMEOUT_S).topics.get(topic)
    except KafkaException as error:
        raise BrokerUnavailable(str(error)) from error
    finally:
        reader.close()
    if metadata is None or metadata.error is not None:
        return []
    return sorted(metadata.partitions)


def records_read(
    *, topic: str, starts: dict[int, int] | None = None, last: dict[int, int] | None = None,
    not_after_ms: int | None = None, dead_letters: bool = False, limit: int | None = None,
) -> Iterator[list[SourceRecord]]:
    """The records of `topic` in chunks, partition by partition in offset order. `starts`:
    partition → first offset (None: every partition from its beginning); `last`: partition →
    last offset read (inclusive; None: to the end). `dead_letters`: the records are DLQ copies
    (their original arrival time is in a header)."""
    reader = _reader()
    try:
        if starts is None:
            starts = {p: OFFSET_BEGINNING for p in topic_partitions(topic=topic)}
        pending = set(starts)
        if not pending:
            return
        reader.assign([TopicPartition(topic, p, offset) for p, offset in starts.items()])
        taken = 0
        idle_since = time.monotonic()
        while pending:
            chunk: list[SourceRecord] = []
            for message in reader.consume(num_messages=CHUNK, timeout=0.5):
                partition = message.partition()
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(partition)
                        continue
                    raise BrokerUnavailable(error.str())
                if partition not in pending:
                    continue
                offset = message.offset()
                if offset < starts[partition]:  # an offset past the end resets to the earliest: not the range's
                    continue
                if last is not None and offset > last[partition]:
                    pending.discard(partition)
                    continue
                stamp = message.timestamp()[1]
                if not_after_ms is not None and stamp > not_after_ms:
                    pending.discard(partition)  # written after the run started: the next run's
                    continue
                headers = tuple(message.headers() or ())
                chunk.append(
                    SourceRecord(
                        topic=topic, partition=partition, offset=offset, key=message.key(), value=message.value() or b"",
                        headers=headers, timestamp_ms=dead_letter_timestamp_ms(headers, stamp) if dead_letters else stamp,
                    )
                )
                if last is not None and offset >= last[partition]:
                    pending.discard(partition)
                if limit is not None and taken + len(chunk) >= limit:
                    pending.clear()
                    break
            if chunk:
                taken += len(chunk)
                idle_since = time.monotonic()
                yield chunk
            elif time.monotonic() - idle_since > IDLE_TIMEOUT_S:
                raise BrokerUnavailable(f"no record nor end of partition from {topic} in {IDLE_TIMEOUT_S:.0f}s")
    finally:
        reader.close()
