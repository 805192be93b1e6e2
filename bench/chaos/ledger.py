"""The ledger and the usage topic's offsets, read directly (not through the proxies)."""

from __future__ import annotations

from typing import Any

from bench.chaos.platform import BOOTSTRAP, CONSUMER_GROUP, DATABASE, TOPIC_USAGE, now


class Ledger:
    def __init__(self, tenant_id: int):
        import psycopg

        self.tenant_id = tenant_id
        self.connection = psycopg.connect(f"postgres://postgres@127.0.0.1:5432/{DATABASE}", autocommit=True)

    def rows(self, sql: str) -> list[tuple]:
        return self.connection.execute(sql, {"tenant": self.tenant_id}).fetchall()

    def scalar(self, sql: str) -> Any:
        return self.rows(sql)[0][0]

    def rated_count(self) -> int:
        return self.scalar("SELECT count(*) FROM billing_ratedevent WHERE tenant_id = %(tenant)s")

    def stored_ids(self) -> set[str]:
        return {row[0] for row in self.rows("SELECT event_id FROM metering_rawevent WHERE tenant_id = %(tenant)s")}

    def close(self) -> None:
        self.connection.close()


class Offsets:
    """The usage topic's end offsets and the consumer group's committed offsets, read by clients
    that never join the group. Tansu (0.6) reports a partition's high watermark as its last record
    batch's FIRST offset + 1, so the true end is found by reading that last batch, with a consumer
    made for the purpose: librdkafka 2.16 segfaults polling a consumer that was created before a
    broker restart and assigned after it."""

    CONFIG = {"bootstrap.servers": BOOTSTRAP, "group.id": CONSUMER_GROUP, "enable.auto.commit": False, "log_level": 0}

    def __init__(self) -> None:
        from confluent_kafka import Consumer

        self.reader = Consumer(self.CONFIG)

    def _partitions(self) -> list:
        from confluent_kafka import TopicPartition

        metadata = self.reader.list_topics(TOPIC_USAGE, timeout=2).topics[TOPIC_USAGE]
        if metadata.error is not None:
            raise KeyError(str(metadata.error))
        return [TopicPartition(TOPIC_USAGE, p) for p in metadata.partitions]

    def committed(self) -> int | None:
        """Offsets the group committed since the broker last started; None if the broker did not answer."""
        from confluent_kafka import KafkaException

        try:
            return sum(max(tp.offset, 0) for tp in self.reader.committed(self._partitions(), timeout=2))
        except (KafkaException, KeyError):
            return None

    def _end(self, partition) -> int:
        from confluent_kafka import Consumer, TopicPartition

        low, high = self.reader.get_watermark_offsets(partition, timeout=2)
        if high <= low:
            return high
        tail = Consumer({**self.CONFIG, "fetch.wait.max.ms": 10, "enable.partition.eof": True})
        try:
            tail.assign([TopicPartition(TOPIC_USAGE, partition.partition, high - 1)])
            end, deadline = high, now() + 3
            while now() < deadline:
                message = tail.poll(0.2)
                if message is None:
                    continue
                if message.error():  # partition EOF: the batch is read
                    break
                end = max(end, message.offset() + 1)
            return end
        finally:
            tail.close()

    def read(self) -> tuple[int, int] | None:
        """(records in the topic, offsets committed by the group) since the broker last started."""
        from confluent_kafka import KafkaException

        try:
            partitions = self._partitions()
            committed = sum(max(tp.offset, 0) for tp in self.reader.committed(partitions, timeout=2))
            return sum(self._end(tp) for tp in partitions), committed
        except (KafkaException, KeyError):
            return None

    def describe(self) -> str:
        read = self.read()
        if read is None:
            return "unknown (the broker did not answer)"
        return f"{read[0]:,} records since the broker last started, {read[1]:,} committed (lag {read[0] - read[1]:,})"

    def close(self) -> None:
        self.reader.close()
