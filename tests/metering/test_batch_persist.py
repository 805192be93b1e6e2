"""The consumer's batch service without Kafka: idempotency, replay detection, unmatched usage,
and concurrent batches on the same running total (row locks, no lost update)."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from billing.models import RatedEvent, RunningTotal
from metering.enrichment import EnrichmentCache
from metering.models import RawEvent, UnmatchedUsage
from billing.usage import IncomingEvent, usage_batch_record
from metering.validation import validate_event
from tests.factories import priced_setup


def incoming(setup, event_id, quantity="1", *, offset=None, api_key=None, partition=0):
    now = timezone.now()
    event = validate_event(
        {
            "event_id": event_id,
            "api_key": api_key or setup.api_key,
            "metric": setup.metric.code,
            "quantity": quantity,
            "timestamp": (now - timedelta(seconds=1)).isoformat(),
        },
        now=now,
    )
    return IncomingEvent(setup.tenant.id, event.subject, event, now, partition, offset)


@pytest.mark.django_db
def test_batch_rates_new_events_and_counts_repeats():
    setup = priced_setup(rate="2")
    outcome = usage_batch_record(
        events=[incoming(setup, "a", offset=1), incoming(setup, "b", "3", offset=2), incoming(setup, "a", offset=3)],
        cache=EnrichmentCache(),
    )
    assert (outcome.new, outcome.duplicates, outcome.replayed, len(outcome.rated)) == (2, 1, 0, 2)
    assert [r.amount for r in outcome.rated] == [Decimal(2), Decimal(6)]
    assert [(r.units_before, r.units_after) for r in outcome.rated] == [(0, 1), (1, 4)]


@pytest.mark.django_db
def test_replay_of_the_same_records_republishes_without_recounting():
    setup = priced_setup(rate="2")
    batch = [incoming(setup, "a", offset=10), incoming(setup, "b", offset=11)]
    first = usage_batch_record(events=batch, cache=EnrichmentCache())
    replay = usage_batch_record(events=batch, cache=EnrichmentCache())
    assert (replay.new, replay.replayed, replay.duplicates) == (0, 2, 0)
    assert [r.rated_event_id for r in replay.rated] == [r.rated_event_id for r in first.rated]
    # The same event_id from another Kafka position is a client duplicate: counted, not republished.
    resent = usage_batch_record(events=[incoming(setup, "a", offset=99)], cache=EnrichmentCache())
    assert (resent.new, resent.replayed, resent.duplicates, resent.rated) == (0, 0, 1, [])
    total = RunningTotal.objects.get(subscription=setup.subscription)
    assert (total.units, total.amount, total.event_count) == (Decimal(2), Decimal(4), 2)


@pytest.mark.django_db
def test_unmatched_events_are_stored_not_rated():
    setup = priced_setup()
    outcome = usage_batch_record(events=[incoming(setup, "z", api_key="sk_live_unknown")], cache=EnrichmentCache())
    assert (outcome.new, outcome.unmatched, outcome.rated) == (1, 1, [])
    row = UnmatchedUsage.objects.get(raw_event__event_id="z")
    assert row.reason == "unknown_api_key" and row.tenant_id == setup.tenant.id
    assert RawEvent.objects.get(event_id="z", tenant=setup.tenant).api_key_prefix == "sk_live_unknown"[:16]


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_on_one_running_total_lose_no_update():
    setup = priced_setup(rate="0.5", included_free="10")
    errors: list[BaseException] = []

    def worker(prefix: str) -> None:
        try:
            cache = EnrichmentCache()
            for n in range(10):
                usage_batch_record(
                    events=[incoming(setup, f"{prefix}-{n}-{i}", "1.5") for i in range(20)], cache=cache
                )
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(p,)) for p in ("t1", "t2", "t3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    total = RunningTotal.objects.get(subscription=setup.subscription)
    assert total.event_count == 600 and total.units == Decimal(900)
    assert total.amount == (Decimal(900) - 10) * Decimal("0.5")
    amounts = RatedEvent.objects.filter(subscription=setup.subscription).values_list("amount", flat=True)
    assert sum(amounts) == total.amount
    # Every event saw a distinct slice of the running total: no two share units_before.
    befores = RatedEvent.objects.filter(subscription=setup.subscription).values_list("units_before", flat=True)
    assert len(set(befores)) == 600


def incoming_for(setup, event_id, quantity="1", **subject):
    now = timezone.now()
    event = validate_event(
        {"event_id": event_id, "metric": setup.metric.code, "quantity": quantity,
         "timestamp": (now - timedelta(seconds=1)).isoformat(), **subject},
        now=now,
    )
    return IncomingEvent(setup.tenant.id, event.subject, event, now)


@pytest.mark.django_db
def test_events_may_name_the_customer_or_the_subscription_instead_of_a_key():
    setup = priced_setup(rate="3")
    outcome = usage_batch_record(
        events=[
            incoming_for(setup, "by-customer", "1", customer_id=setup.customer.id),
            incoming_for(setup, "by-subscription", "2", subscription_id=setup.subscription.id),
        ],
        cache=EnrichmentCache(),
    )
    assert [(r.subscription_id, r.amount) for r in outcome.rated] == [(setup.subscription.id, 3), (setup.subscription.id, 6)]
    raw = RawEvent.objects.get(tenant=setup.tenant, event_id="by-customer")
    assert (raw.subject, raw.api_key_prefix) == (f"customer:{setup.customer.id}", "")


@pytest.mark.django_db
def test_unknown_and_other_tenants_customers_and_subscriptions_are_unmatched():
    mine, theirs = priced_setup(), priced_setup()
    outcome = usage_batch_record(
        events=[
            incoming_for(mine, "their-customer", customer_id=theirs.customer.id),
            incoming_for(mine, "their-subscription", subscription_id=theirs.subscription.id),
            incoming_for(mine, "no-such-customer", customer_id=987654321),
        ],
        cache=EnrichmentCache(),
    )
    assert (outcome.new, outcome.unmatched, outcome.rated) == (3, 3, [])
    reasons = dict(UnmatchedUsage.objects.filter(tenant=mine.tenant).values_list("raw_event__event_id", "reason"))
    assert reasons == {
        "their-customer": "unknown_customer",
        "their-subscription": "unknown_subscription",
        "no-such-customer": "unknown_customer",
    }
    assert not RatedEvent.objects.filter(subscription=theirs.subscription).exists()


@pytest.mark.django_db
def test_a_paused_subscription_named_directly_rates_nothing():
    from catalog.models import Subscription

    setup = priced_setup()
    setup.subscription.status = Subscription.Status.PAUSED
    setup.subscription.save()
    outcome = usage_batch_record(events=[incoming_for(setup, "p", subscription_id=setup.subscription.id)], cache=EnrichmentCache())
    assert outcome.unmatched == 1
    assert UnmatchedUsage.objects.get(raw_event__event_id="p").reason == "no_active_subscription"
