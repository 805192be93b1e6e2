"""The usage consumer against the real broker and database: duplicates, poison messages,
crash between the database commit and the offset commit, clean shutdown, rated records,
catalog changes reaching the next batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import orjson
import pytest
from django.db import connection
from django.utils import timezone

from billing.models import RatedEvent, RunningTotal
from billing.rating import quote
from catalog import services as catalog_services
from aforo.kafka import Record, produce_and_wait
from metering.models import RawEvent, UnmatchedUsage
from billing.usage import unmatched_usage_replay
from tests.conftest import read_topic, wait_for
from tests.factories import AppFactory, TeamFactory, priced_setup

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).resolve().parents[2]


def produce(kafka, setup, event_id, quantity="1", *, key_suffix="", at=None, **overrides):
    body = {
        "event_id": event_id,
        "api_key": setup.api_key,
        "metric": setup.metric.code,
        "quantity": quantity,
        "timestamp": (at or timezone.now()).isoformat(),
        **overrides,
    }
    return Record(
        topic=kafka["usage"],
        key=f"{setup.tenant.id}:{setup.api_key}{key_suffix}".encode(),
        value=orjson.dumps(body),
    )


def rated_count(tenant) -> int:
    return RatedEvent.objects.filter(tenant=tenant).count()


def test_the_same_event_twice_is_counted_once(kafka, usage_consumer):
    setup = priced_setup(rate="0.5")
    usage_consumer()
    # Same event_id through two partitions (different keys) and twice in one partition.
    produce_and_wait([produce(kafka, setup, "dup", "2"), produce(kafka, setup, "dup", "2", key_suffix="-x")])
    produce_and_wait([produce(kafka, setup, "dup", "2"), produce(kafka, setup, "other", "1")])
    wait_for(lambda: rated_count(setup.tenant) == 2)
    total = RunningTotal.objects.get(subscription=setup.subscription)
    assert (total.units, total.amount, total.event_count) == (Decimal("3"), Decimal("1.5"), 2)
    assert RawEvent.objects.filter(tenant=setup.tenant, event_id="dup").count() == 1


def test_poison_messages_go_to_the_dlq_with_a_reason_and_the_next_message_is_rated(kafka, usage_consumer):
    setup = priced_setup()
    usage_consumer()
    good_key = f"{setup.tenant.id}:{setup.api_key}".encode()
    poison = [
        Record(topic=kafka["usage"], key=good_key, value=b"\xff not json"),
        Record(topic=kafka["usage"], key=good_key, value=orjson.dumps({"event_id": "neg", "api_key": "k", "metric": "m", "quantity": "-1", "timestamp": timezone.now().isoformat()})),
        Record(topic=kafka["usage"], key=b"no-tenant-here", value=b'{"n": 1}'),
        Record(topic=kafka["usage"], key=b"999999999:k", value=b'{"n": 2}'),
        Record(topic=kafka["usage"], key=good_key, value=b'{"n": 3}', headers=(("schema_version", b"2"),)),
    ]
    produce_and_wait(poison)
    produce_and_wait([produce(kafka, setup, "after-poison")])
    wait_for(lambda: rated_count(setup.tenant) == 1, message="the good message after the poison is rated")

    dlq = read_topic(kafka["bootstrap"], kafka["dlq"], expect=5)
    by_value = {m.value(): dict(m.headers()) for m in dlq}
    assert set(by_value) == {r.value for r in poison}  # original bytes, untouched
    reasons = sorted(h["reason"].decode().split(":")[0] for h in by_value.values())
    assert reasons == ["missing_tenant", "negative_quantity", "undecodable", "unknown_tenant", "unsupported_schema_version"]
    assert all(h["original_topic"] == kafka["usage"].encode() for h in by_value.values())
    assert not RawEvent.objects.filter(event_id="neg").exists()


def test_rated_records_are_published(kafka, usage_consumer):
    setup = priced_setup(rate="0.25", included_free="1")
    usage_consumer()
    produce_and_wait([produce(kafka, setup, "r1", "1"), produce(kafka, setup, "r2", "3")])
    records = read_topic(kafka["bootstrap"], kafka["rated"], expect=2)
    by_event = {orjson.loads(r.value())["event_id"]: orjson.loads(r.value()) for r in records}
    assert by_event["r1"]["amount"] == "0"
    assert Decimal(by_event["r2"]["amount"]) == Decimal("0.75")
    assert by_event["r2"]["subscription_id"] == setup.subscription.id
    assert by_event["r2"]["rate_plan_version_id"] == setup.version.id


def test_delta_rating_sums_to_the_price_of_the_total_across_batches_and_partitions(kafka, usage_consumer, settings):
    settings.USAGE_BATCH_MAX_SIZE = 7  # many small batches
    setup = priced_setup(rate="0.003", included_free="100")
    usage_consumer()
    quantities = [str(Decimal(i % 13) + Decimal("0.25")) for i in range(150)]
    produce_and_wait(
        [produce(kafka, setup, f"e{i}", q, key_suffix="-b" if i % 2 else "") for i, q in enumerate(quantities)]
    )
    wait_for(lambda: rated_count(setup.tenant) == 150, timeout=30)
    units = sum(Decimal(q) for q in quantities)
    config = setup.metric_config.config
    total = RunningTotal.objects.get(subscription=setup.subscription)
    assert total.units == units
    assert total.amount == quote(config, units) - quote(config, 0)
    assert sum(RatedEvent.objects.filter(subscription=setup.subscription).values_list("amount", flat=True)) == total.amount


def test_a_price_change_reaches_the_next_batch(kafka, usage_consumer):
    setup = priced_setup(rate="1")
    usage_consumer()
    produce_and_wait([produce(kafka, setup, "before", "1")])
    wait_for(lambda: rated_count(setup.tenant) == 1)
    draft = catalog_services.rate_plan_version_revise(version=setup.version, effective_from=timezone.now())
    catalog_services.metric_config_set(version=draft, metric=setup.metric, config={"model": "per_unit", "rate": "5"})
    catalog_services.rate_plan_version_publish(version=draft)
    produce_and_wait([produce(kafka, setup, "after", "1")])
    wait_for(lambda: rated_count(setup.tenant) == 2)
    after = RatedEvent.objects.get(raw_event__event_id="after", tenant=setup.tenant)
    assert (after.amount, after.rate_plan_version_id) == (Decimal("5"), draft.id)


def test_unknown_key_is_unmatched_then_rated_by_replay_once_the_key_exists(kafka, usage_consumer):
    setup = priced_setup(rate="2")
    usage_consumer()
    produce_and_wait([produce(kafka, setup, "early", "3", api_key="sk_live_not_yet_issued")])
    unmatched = wait_for(lambda: UnmatchedUsage.objects.filter(tenant=setup.tenant).first())
    assert unmatched.reason == "unknown_api_key"

    app = AppFactory(team=TeamFactory(customer=setup.customer, tenant=setup.tenant), tenant=setup.tenant)
    catalog_services.api_key_create(app=app, secret="sk_live_not_yet_issued")
    counts, rated = unmatched_usage_replay(tenant_id=setup.tenant.id)
    assert counts == {"rated": 1, "still_unmatched": 0}
    assert [r.amount for r in rated] == [Decimal("6")]
    assert unmatched_usage_replay(tenant_id=setup.tenant.id)[0] == {"rated": 0, "still_unmatched": 0}
    # New events with that key are now rated directly (the negative cache entry is gone).
    produce_and_wait([produce(kafka, setup, "later", "1", api_key="sk_live_not_yet_issued")])
    wait_for(lambda: rated_count(setup.tenant) == 2)
    assert RunningTotal.objects.get(subscription=setup.subscription).amount == Decimal("8")


def _consumer_process(kafka, **env) -> subprocess.Popen:
    """`manage.py run_consumer usage` as a separate process on this test's database and topics."""
    database = connection.settings_dict
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "aforo.settings.test",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "KAFKA_BOOTSTRAP_SERVERS": kafka["bootstrap"],
        "KAFKA_TOPIC_USAGE": kafka["usage"],
        "KAFKA_TOPIC_USAGE_DLQ": kafka["dlq"],
        "KAFKA_TOPIC_RATED": kafka["rated"],
        "KAFKA_CONSUMER_GROUP_USAGE": kafka["group"],
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_consumer", "usage"],
        cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def test_crash_between_database_commit_and_offset_commit_double_counts_nothing(kafka, transactional_db):
    setup = priced_setup(rate="0.1")
    produce_and_wait([produce(kafka, setup, f"c{i}", "1") for i in range(20)])

    crashing = _consumer_process(kafka, AFORO_CONSUMER_STEP_WRAPPER="tests.consumers.faults.crash_after_persist")
    assert crashing.wait(timeout=60) == 70, crashing.stdout.read().decode()[-2000:]
    committed_before_crash = rated_count(setup.tenant)
    assert committed_before_crash > 0  # the batch reached the database, its offsets did not reach Kafka

    produce_and_wait([produce(kafka, setup, "c-after", "1")])
    restarted = _consumer_process(kafka)
    try:
        wait_for(lambda: rated_count(setup.tenant) == 21, timeout=60)
        # Replayed records are re-published (at least once) before their offsets are committed.
        rated_topic = read_topic(kafka["bootstrap"], kafka["rated"], expect=21)
        assert {orjson.loads(r.value())["event_id"] for r in rated_topic} == {f"c{i}" for i in range(20)} | {"c-after"}
    finally:
        restarted.send_signal(signal.SIGTERM)
        output = restarted.communicate(timeout=60)[0].decode()
    assert restarted.returncode == 0, output[-2000:]
    total = RunningTotal.objects.get(subscription=setup.subscription)
    assert (total.units, total.amount, total.event_count) == (Decimal("21"), Decimal("2.1"), 21)
    assert RawEvent.objects.filter(tenant=setup.tenant).count() == 21


@pytest.mark.parametrize("consumers", [1, 2])
def test_a_database_outage_holds_the_batch_and_the_consumers_stay_in_their_group(kafka, transactional_db, consumers):
    """Every consumer meets the outage at once (the fault injection fails its first two
    attempts). Each holds its batch (arroyo backpressure) and retries after a backoff, without
    rebuilding its processor: no LeaveGroup, no rebalance — with two consumers failing together,
    leaving mid-rebalance is what wedged the embedded broker's group for good."""
    setup = priced_setup(rate="1")
    produce_and_wait([produce(kafka, setup, f"d{i}", "2", key_suffix=f"-{i % 4}") for i in range(10)])
    processes = [_consumer_process(kafka, AFORO_CONSUMER_STEP_WRAPPER="tests.consumers.faults.database_down") for _ in range(consumers)]
    try:
        wait_for(lambda: rated_count(setup.tenant) == 10, timeout=90)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        outputs = [process.communicate(timeout=60)[0].decode() for process in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-2000:]
        assert "restarting in" not in output, output[-2000:]  # the processor was never torn down
    assert any("holding the batch" in output for output in outputs)
    total = RunningTotal.objects.get(subscription=setup.subscription)
    assert (total.units, total.amount, total.event_count) == (Decimal("20"), Decimal("20"), 10)


def test_sigterm_finishes_the_batch_and_commits(kafka, transactional_db):
    setup = priced_setup()
    consumer = _consumer_process(kafka)
    produce_and_wait([produce(kafka, setup, f"s{i}") for i in range(5)])
    try:
        wait_for(lambda: rated_count(setup.tenant) == 5, timeout=60)
    finally:
        consumer.send_signal(signal.SIGTERM)
        output = consumer.communicate(timeout=60)[0].decode()
    assert consumer.returncode == 0, output[-2000:]
    assert "finishing the current batch" in output
    # Offsets were committed: a new consumer in the group finds nothing to redo.
    from confluent_kafka import Consumer, TopicPartition

    reader = Consumer({"bootstrap.servers": kafka["bootstrap"], "group.id": kafka["group"]})
    try:
        partitions = reader.list_topics(kafka["usage"], timeout=10).topics[kafka["usage"]].partitions
        committed = reader.committed([TopicPartition(kafka["usage"], p) for p in partitions], timeout=10)
    finally:
        reader.close()
    assert sum(max(tp.offset, 0) for tp in committed) == 5


def test_events_are_rated_in_the_period_of_their_timestamp(kafka, usage_consumer):
    setup = priced_setup(rate="1")
    usage_consumer()
    long_ago = timezone.now() - timedelta(days=45)
    produce_and_wait([produce(kafka, setup, "old", "2", at=long_ago), produce(kafka, setup, "new", "3")])
    wait_for(lambda: rated_count(setup.tenant) == 2)
    totals = list(RunningTotal.objects.filter(subscription=setup.subscription).order_by("period_start"))
    assert [t.units for t in totals] == [Decimal("2"), Decimal("3")]
    assert totals[0].period_end <= totals[1].period_start
    assert totals[0].period_start <= long_ago < totals[0].period_end
    assert RawEvent.objects.get(event_id="old", tenant=setup.tenant).is_late is True


def test_one_poison_record_of_each_kind_goes_to_the_dlq_and_the_rest_of_the_batch_is_rated(kafka, usage_consumer, settings):
    """Producers may write to Kafka directly, so the consumer meets what the API refuses, and
    records the ledger cannot take although they are valid (here: a running total that would
    overflow its column). Each goes to the DLQ alone; the good records around it — in the same
    batch — are rated; the consumer keeps running."""
    settings.USAGE_BATCH_MAX_TIME_S = 1.0  # one batch for everything below
    setup = priced_setup(rate="1")
    full = priced_setup(tenant=setup.tenant, rate="1")  # a second key, whose running total is nearly full
    usage_consumer()
    produce_and_wait([produce(kafka, full, "fill", "1")])
    wait_for(lambda: rated_count(setup.tenant) == 1)
    RunningTotal.objects.filter(subscription=full.subscription).update(units=Decimal("99999999999999999999999999"))

    key = f"{setup.tenant.id}:{setup.api_key}".encode()
    body = lambda **fields: orjson.dumps(  # noqa: E731
        {"event_id": uuid4().hex, "api_key": setup.api_key, "metric": setup.metric.code, "quantity": "1",
         "timestamp": timezone.now().isoformat(), **fields}
    )
    deep_metadata = body(metadata="M").replace(b'"M"', b'{"a":' * 500 + b"1" + b"}" * 500)
    poison = [
        (Record(topic=kafka["usage"], key=key, value=b"\xff not json"), "undecodable"),
        (Record(topic=kafka["usage"], key=b"no-tenant", value=body()), "missing_tenant"),
        (Record(topic=kafka["usage"], key=b"999999999:k", value=body()), "unknown_tenant"),
        (Record(topic=kafka["usage"], key=key, value=body(dimensions={"region": "eu\x00"})), "invalid_dimensions"),
        (Record(topic=kafka["usage"], key=key, value=body(metadata={"k\x00": 1})), "invalid_metadata"),
        (Record(topic=kafka["usage"], key=key, value=deep_metadata), "invalid_metadata"),
        (Record(topic=kafka["usage"], key=key, value=body(timestamp="0001-01-01T00:00:00+14:00")), "invalid_timestamp"),
        (Record(topic=kafka["usage"], key=key, value=body(quantity="１２")), "invalid_quantity"),
        (Record(topic=kafka["usage"], key=key, value=body(api_key=None, customer_id=str(setup.customer.id))), "invalid_customer_id"),
        (Record(topic=kafka["usage"], key=f"{setup.tenant.id}:{full.api_key}".encode(),
                value=orjson.dumps({"event_id": "overflow", "api_key": full.api_key, "metric": full.metric.code,
                                    "quantity": "10", "timestamp": timezone.now().isoformat()})), "unstorable"),
    ]
    good = [produce(kafka, setup, f"good-{i}", "2") for i in range(6)]
    interleaved = [record for pair in zip(good, [p[0] for p in poison[:5]]) for record in pair]
    produce_and_wait(interleaved + [p[0] for p in poison[5:]] + good[5:])

    dlq = read_topic(kafka["bootstrap"], kafka["dlq"], expect=len(poison), timeout=30)
    reasons = {m.value(): dict(m.headers())["reason"].decode() for m in dlq}
    assert set(reasons) == {record.value for record, _ in poison}  # exactly those, original bytes
    for record, kind in poison:
        assert reasons[record.value].startswith(kind) or f"{kind}:" in reasons[record.value], (kind, reasons[record.value])
    wait_for(lambda: rated_count(setup.tenant) == 1 + len(good), timeout=30, message="the good records are rated")
    assert RunningTotal.objects.get(subscription=setup.subscription).units == Decimal(2 * len(good))
    assert not RawEvent.objects.filter(tenant=setup.tenant, event_id="overflow").exists()
    # Still running: a record sent after all that is rated.
    produce_and_wait([produce(kafka, setup, "after-poison", "1")])
    wait_for(lambda: rated_count(setup.tenant) == 2 + len(good), message="the consumer is still rating")
