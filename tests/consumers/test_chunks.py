"""consumers.chunks, pure: how records read a batch at a time become chunks arroyo can commit,
and what happens to the read-ahead on pause, seek, revocation and errors. librdkafka's consumer
is replaced by a stand-in returning prepared messages (no broker: this is the splitting logic;
tests/consumers/test_usage_consumer.py runs the real thing)."""

from __future__ import annotations

from arroyo.errors import ConsumerError
from arroyo.types import BrokerValue, Partition, Topic
from confluent_kafka import KafkaError

import pytest

from consumers.chunks import ChunkBuffer, ChunkingKafkaConsumer

TOPIC = Topic("usage")
CONFIG = {"bootstrap.servers": "127.0.0.1:1", "group.id": "g", "enable.auto.commit": False, "enable.auto.offset.store": False, "auto.offset.reset": "earliest"}


class Message:
    def __init__(self, partition: int, offset: int, error: KafkaError | None = None):
        self._partition, self._offset, self._error = partition, offset, error

    def error(self):
        return self._error

    def topic(self):
        return TOPIC.name

    def partition(self):
        return self._partition

    def offset(self):
        return self._offset

    def timestamp(self):
        return (1, 1_796_000_000_000 + self._offset)


class Librdkafka:
    """Stands in for confluent_kafka.Consumer: consume() hands out prepared lists."""

    def __init__(self):
        self.batches: list[list[Message]] = []
        self.sought: list[tuple[int, int]] = []
        self.paused: list[int] = []

    def consume(self, num_messages, timeout):
        assert num_messages == 500
        return self.batches.pop(0) if self.batches else []

    def seek(self, tp):
        self.sought.append((tp.partition, tp.offset))

    def pause(self, tps):
        self.paused += [tp.partition for tp in tps]


@pytest.fixture
def consumer():
    kafka = ChunkingKafkaConsumer(CONFIG, chunk_size=500)
    fake = Librdkafka()
    kafka._KafkaConsumer__consumer = fake
    kafka._positions.update({Partition(TOPIC, 0): 10, Partition(TOPIC, 1): 20})  # as arroyo's assignment sets them
    return kafka, fake


def offsets(value: BrokerValue) -> list[int]:
    return [m.offset() for m in value.payload]


def test_records_become_one_chunk_per_run_of_a_partition_and_commit_after_the_run(consumer):
    kafka, fake = consumer
    fake.batches = [[Message(0, 10), Message(0, 11), Message(1, 20), Message(1, 21), Message(0, 12)]]
    first, second, third = kafka.poll(1.0), kafka.poll(1.0), kafka.poll(1.0)
    assert [(c.partition.index, offsets(c)) for c in (first, second, third)] == [(0, [10, 11]), (1, [20, 21]), (0, [12])]
    assert first.committable == {Partition(TOPIC, 0): 12} and third.committable == {Partition(TOPIC, 0): 13}
    assert kafka.tell() == {Partition(TOPIC, 0): 13, Partition(TOPIC, 1): 22}
    assert kafka.poll(1.0) is None


def test_the_position_moves_only_when_a_chunk_is_handed_over(consumer):
    kafka, fake = consumer
    fake.batches = [[Message(0, 10), Message(1, 20)]]
    kafka.poll(1.0)
    assert kafka.tell() == {Partition(TOPIC, 0): 11, Partition(TOPIC, 1): 20}  # partition 1's chunk still pending


def test_records_behind_the_position_and_of_unassigned_partitions_are_dropped(consumer):
    kafka, fake = consumer
    fake.batches = [[Message(0, 8), Message(0, 9), Message(0, 10), Message(7, 1)], [Message(0, 10), Message(0, 11)]]
    assert offsets(kafka.poll(1.0)) == [10]
    assert offsets(kafka.poll(1.0)) == [11]  # 10 was read ahead already: not handed over twice


def test_pausing_drops_the_read_ahead_and_seeks_back_to_the_position(consumer):
    kafka, fake = consumer
    fake.batches = [[Message(0, 10), Message(1, 20), Message(1, 21), Message(0, 11)]]
    assert offsets(kafka.poll(1.0)) == [10]
    kafka.pause([Partition(TOPIC, 1)])
    assert (1, 20) in fake.sought  # arroyo's pause seeks to the handed-over position
    assert [(c.partition.index, offsets(c)) for c in (kafka.poll(1.0),)] == [(0, [11])]
    assert kafka.poll(1.0) is None


def test_revocation_drops_the_read_ahead_of_revoked_partitions(consumer):
    kafka, fake = consumer
    fake.batches = [[Message(0, 10), Message(1, 20), Message(0, 11)]]
    kafka.poll(1.0)
    kafka._forget([Partition(TOPIC, 1)])  # what the revocation callback does
    assert offsets(kafka.poll(1.0)) == [11]


def test_an_error_after_good_records_is_raised_once_they_are_handed_over(consumer):
    kafka, fake = consumer
    fake.batches = [[Message(0, 10), Message(0, -1, KafkaError(KafkaError._FAIL)), Message(0, 11)]]
    assert offsets(kafka.poll(1.0)) == [10]
    with pytest.raises(ConsumerError):
        kafka.poll(1.0)
    assert kafka.poll(1.0) is None  # the records after the error are fetched again by librdkafka


def test_without_a_chunk_size_it_is_arroyos_consumer():
    kafka = ChunkingKafkaConsumer(CONFIG)
    kafka._KafkaConsumer__consumer = type("C", (), {"poll": lambda self, *a: None})()
    assert kafka.poll(0.0) is None


def test_a_chunk_buffer_is_ready_at_its_size_or_its_wait_after_the_first_chunk():
    now = [100.0]
    buffer = ChunkBuffer(max_records=5, max_wait_s=0.1, clock=lambda: now[0])
    chunk = lambda n: BrokerValue([Message(0, i) for i in range(n)], Partition(TOPIC, 0), n - 1, None)  # noqa: E731
    assert buffer.is_empty and not buffer.is_ready
    now[0] = 200.0  # a long time after the buffer was made: its clock has not started
    buffer.append(chunk(2))
    assert not buffer.is_ready
    now[0] = 200.09
    assert not buffer.is_ready
    now[0] = 200.1
    assert buffer.is_ready and buffer.readiness_reason == "time"
    fresh = buffer.new()
    fresh.append(chunk(3))
    fresh.append(chunk(2))
    assert fresh.is_ready and fresh.readiness_reason == "size" and len(fresh.buffer) == 2
