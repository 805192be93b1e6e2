"""aforo.kafka.produce_later against the real broker: the records arrive, done() turns true
without blocking once they are acknowledged, and a broker that never answers makes wait() raise
BrokerUnavailable instead of hanging."""

from __future__ import annotations

import pytest

from aforo.kafka import BrokerUnavailable, Record, produce_later, producers_close
from tests.conftest import read_topic, wait_for

pytestmark = pytest.mark.kafka


def test_records_produced_later_are_acknowledged_and_arrive(kafka):
    delivery = produce_later([Record(kafka["rated"], f"r{i}".encode(), b"k", 1_796_000_000_000) for i in range(50)])
    wait_for(delivery.done, timeout=20, message="the broker acknowledged the records")
    delivery.wait()  # returns at once
    values = sorted(r.value() for r in read_topic(kafka["bootstrap"], kafka["rated"], expect=50))
    assert values == sorted(f"r{i}".encode() for i in range(50))
    assert all(r.timestamp()[1] == 1_796_000_000_000 for r in read_topic(kafka["bootstrap"], kafka["rated"], expect=50))


def test_nothing_to_deliver_is_done_at_once(kafka):
    delivery = produce_later([])
    assert delivery.done()
    delivery.wait()


def test_a_broker_that_never_answers_raises_instead_of_hanging(settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"  # nothing listens there
    settings.KAFKA_PRODUCE_TIMEOUT_MS = 500
    try:
        delivery = produce_later([Record("nowhere", b"x")])
        with pytest.raises(BrokerUnavailable):
            delivery.wait()
    finally:
        producers_close(timeout_s=0)  # drop the producer aimed at nowhere (it would retry for the rest of the run)
