"""The usage consumer's publish step in arroyo's style: a mock next step (the commit), and
stand-in deliveries whose acknowledgement the test controls. The batch goes on only once its
records are acknowledged, in order; a full pipeline waits for the oldest; a failed publish keeps
the batch (its offsets uncommitted) and raises the outage."""

from __future__ import annotations

from datetime import datetime, timezone
from unittest import mock

import pytest
from arroyo.types import Message, Partition, Topic, Value

from aforo.kafka import BrokerUnavailable
from billing.usage import BatchOutcome
from consumers.usage import steps

PARTITION = Partition(Topic("usage"), 0)


class FakeDelivery:
    def __init__(self, records):
        self.records = records
        self.acknowledged = False
        self.failure: Exception | None = None
        self.waited = 0

    def done(self) -> bool:
        """As aforo.kafka.Delivery: true once acknowledged, or once a record failed (wait() then
        publishes them again)."""
        return self.acknowledged or self.failure is not None or self.waited > 0

    def wait(self) -> None:
        self.waited += 1
        if self.failure is not None:
            raise self.failure
        self.acknowledged = True


@pytest.fixture
def published(monkeypatch):
    deliveries: list[FakeDelivery] = []

    def publish_later(*, records):
        deliveries.append(FakeDelivery(records))
        return deliveries[-1]

    monkeypatch.setattr(steps, "rated_records_publish_later", publish_later)
    return deliveries


def batch(offset: int, rated: int = 2) -> Message[BatchOutcome]:
    outcome = BatchOutcome(rated=[object()] * rated)
    return Message(Value(outcome, {PARTITION: offset}, datetime.now(timezone.utc)))


def committed(next_step: mock.Mock) -> list[dict]:
    return [call.args[0].committable for call in next_step.submit.call_args_list]


def test_a_batch_goes_on_once_acknowledged_and_batches_stay_in_order(published):
    commit = mock.Mock()
    step = steps.PublishStep(commit)
    step.submit(batch(10))
    step.submit(batch(20))
    assert committed(commit) == []  # nothing acknowledged yet: no offset moves
    published[1].acknowledged = True
    step.poll()
    assert committed(commit) == []  # the second is done, the first is not: order holds
    published[0].acknowledged = True
    step.poll()
    assert committed(commit) == [{PARTITION: 10}, {PARTITION: 20}]
    assert commit.submit.call_args_list[0].args[0].payload == 2  # the number of rated records published


def test_a_full_pipeline_waits_for_the_oldest_batch(published):
    commit = mock.Mock()
    step = steps.PublishStep(commit, max_pending=2)
    step.submit(batch(1))
    step.submit(batch(2))
    step.submit(batch(3))  # two in flight: the oldest is waited for first
    assert published[0].waited == 1 and committed(commit) == [{PARTITION: 1}]


def test_a_failed_publish_keeps_the_batch_and_raises_the_outage(published):
    commit = mock.Mock()
    step = steps.PublishStep(commit)
    step.submit(batch(5))
    published[0].failure = BrokerUnavailable("broker gone")
    with pytest.raises(BrokerUnavailable):
        step.poll()
    assert committed(commit) == []
    published[0].failure = None  # the broker is back: the next poll publishes it again
    step.poll()
    assert committed(commit) == [{PARTITION: 5}]


def test_join_waits_for_every_batch_in_flight(published):
    commit = mock.Mock()
    step = steps.PublishStep(commit)
    step.submit(batch(7))
    step.submit(batch(8))
    step.join(timeout=1.0)
    assert committed(commit) == [{PARTITION: 7}, {PARTITION: 8}]
    commit.join.assert_called_once()
