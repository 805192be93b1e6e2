"""The embedded broker's consumer-group trap, and the way out of it.

Tansu 0.6 keeps a group's leader when that leader sends LeaveGroup while the group rebalances:
no member, present or future, is ever assigned a partition again (consumers.group). A consumer
therefore leaves only from a settled group, and every (re)start repairs a group already wedged
— keeping its committed offsets."""

from __future__ import annotations

import signal
import threading

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient

from aforo.kafka import produce_and_wait
from consumers.group import describe
from tests.conftest import wait_for
from tests.consumers.test_usage_consumer import _consumer_process, produce, rated_count
from tests.factories import priced_setup

pytestmark = pytest.mark.kafka


def _committed_total(kafka) -> int:
    admin = AdminClient({"bootstrap.servers": kafka["bootstrap"]})
    group = ConsumerGroupTopicPartitions(kafka["group"])
    partitions = admin.list_consumer_group_offsets([group], request_timeout=10)[kafka["group"]].result().topic_partitions
    return sum(tp.offset for tp in partitions if tp.offset >= 0)


def _member(kafka) -> tuple[Consumer, threading.Event]:
    consumer = Consumer({
        "bootstrap.servers": kafka["bootstrap"], "group.id": kafka["group"], "enable.auto.commit": False,
        "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
    })
    assigned = threading.Event()
    consumer.subscribe([kafka["usage"]], on_assign=lambda c, partitions: assigned.set())
    return consumer, assigned


def _wedge(kafka) -> None:
    """The leader leaves while a second member is joining; the second then leaves too."""
    for _ in range(5):
        leader, assigned = _member(kafka)
        wait_for(lambda: leader.poll(0.1) is None and assigned.is_set(), timeout=30, message="the leader holds the partitions")
        joining, _ = _member(kafka)
        joining.poll(0.5)
        leader.close()
        joining.close()
        if describe(kafka["bootstrap"], kafka["group"]).wedged:
            return
    pytest.fail("could not wedge the group in five tries")


def test_a_consumer_starting_on_a_wedged_group_repairs_it_and_keeps_its_offsets(kafka, transactional_db):
    setup = priced_setup()
    produce_and_wait([produce(kafka, setup, f"before-{i}", key_suffix=f"-{i}") for i in range(6)])
    first = _consumer_process(kafka)
    try:
        wait_for(lambda: rated_count(setup.tenant) == 6 and _committed_total(kafka) == 6, timeout=60)
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)

    _wedge(kafka)
    produce_and_wait([produce(kafka, setup, f"after-{i}", key_suffix=f"-{i}") for i in range(3)])
    consumer = _consumer_process(kafka, KAFKA_NO_ASSIGNMENT_WARN_S="120")
    try:
        wait_for(lambda: rated_count(setup.tenant) == 9, timeout=60, message="the repaired group is assigned and rates")
        wait_for(lambda: _committed_total(kafka) == 9, timeout=30, message="offsets continue where they stopped")
    finally:
        consumer.send_signal(signal.SIGTERM)
        output = consumer.communicate(timeout=60)[0].decode()
    assert "is wedged on the embedded broker" in output and "restoring its 2 committed offsets" in output, output[-3000:]
    assert "replayed" not in output or "'replayed': 0" in output  # nothing read twice: the offsets were kept


def test_sigterm_while_another_consumer_joins_does_not_wedge_the_group(kafka, transactional_db):
    """A leaving leader waits until the group has settled; the consumer that was joining gets
    the partitions within seconds (its own wedge fallback is pushed out of the way)."""
    setup = priced_setup()
    leader = _consumer_process(kafka)
    produce_and_wait([produce(kafka, setup, "warm-up")])
    wait_for(lambda: rated_count(setup.tenant) == 1, timeout=60, message="the first consumer holds the group")
    joining = _consumer_process(kafka, KAFKA_NO_ASSIGNMENT_WARN_S="120")
    try:
        threading.Event().wait(0.5)  # the second consumer is joining: the group is rebalancing
        leader.send_signal(signal.SIGTERM)
        leader_output = leader.communicate(timeout=60)[0].decode()
        assert leader.returncode == 0, leader_output[-2000:]
        produce_and_wait([produce(kafka, setup, f"later-{i}", key_suffix=f"-{i}") for i in range(4)])
        wait_for(lambda: rated_count(setup.tenant) == 5, timeout=25, message="the joining consumer got the partitions")
        assert not describe(kafka["bootstrap"], kafka["group"]).wedged
    finally:
        joining.send_signal(signal.SIGTERM)
        joining.communicate(timeout=60)
    assert "leaving after" in leader_output
