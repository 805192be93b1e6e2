"""The ledger read from the running totals (billing.settlement.aggregate._from_totals) against
the read from the events (_from_events), on real rating and PostgreSQL: where the totals path
applies it answers exactly what the events answer; where it cannot (an earlier run of the
period, late events, an event rated after the cutoff, hand-built inputs) it declines."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import RatedEvent
from billing.settlement import aggregate
from billing.settlement.context import SettlementContext
from billing.settlement.inputs import SettlementInputs, SubscriptionTerms, inputs_load
from catalog.models import Subscription
from tests.billing.test_settlement import DAY, rate, settle
from tests.factories import priced_setup

OVERRIDES = {
    "model": "per_unit", "rate": "0.5",
    "overrides": [{"match": {"region": "eu"}, "price": {"model": "per_unit", "rate": "0.75"}}],
}


def loaded(setup, *, at=None, now=None) -> SettlementContext:
    """A final run's context as the pipeline builds it (inputs_load, ranges)."""
    subscription = SubscriptionTerms.of(Subscription.objects.get(pk=setup.subscription.pk))
    preview = settle(setup, at=at or timezone.now(), dry_run=True).context
    inputs = inputs_load(subscription, preview.period_start)
    context = SettlementContext(
        subscription=subscription, period_start=preview.period_start, period_end=preview.period_end, kind="final",
        watermark=0, now=now or timezone.now(), inputs=inputs,
    )
    context.ranges = inputs.ranges(context.period_start, final=True)
    return context


def both(context, *, lag_s=0):
    cutoff = context.now - timedelta(seconds=lag_s)
    floor = max((run.watermark for run in context.inputs.runs), default=0)
    return (
        aggregate._from_totals(context, cutoff=cutoff, floor=floor),
        aggregate._from_events(context, cutoff=cutoff, floor=floor, watermark=None),
    )


@pytest.mark.django_db
def test_a_periods_first_settlement_reads_the_totals_and_they_say_what_the_events_say():
    setup = priced_setup(config=OVERRIDES)
    for n, (quantity, region) in enumerate((("3", "eu"), ("4", ""), ("0.5", "eu"), ("7", ""))):
        rate(setup, f"e{n}", quantity, **({"region": region} if region else {}))
    totals, events = both(loaded(setup))
    assert totals is not None and totals == events
    newest = RatedEvent.objects.order_by("-id").first()
    assert totals[0][0] == newest.pk  # the watermark: the newest event
    assert [(row[2], row[3], row[4], row[6]) for row in totals] == [
        (setup.metric.pk, "", Decimal(11), 2), (setup.metric.pk, "region=eu", Decimal("3.5"), 2)
    ]


@pytest.mark.django_db
def test_after_an_earlier_settled_period_with_nothing_late_the_totals_still_serve():
    start = timezone.now() - 45 * DAY
    setup = priced_setup(rate="1", started_at=start)
    rate(setup, "old", "2", at=start + DAY)
    settle(setup, at=start + DAY)
    rate(setup, "now", "5")
    context = loaded(setup)
    assert len(context.ranges) == 2  # the earlier period is looked at for late events
    totals, events = both(context)
    assert totals is not None and totals == events


@pytest.mark.django_db
def test_late_events_of_an_earlier_period_are_read_from_the_events():
    start = timezone.now() - 45 * DAY
    setup = priced_setup(rate="1", started_at=start)
    rate(setup, "old", "2", at=start + DAY)
    settle(setup, at=start + DAY)
    rate(setup, "late", "3", at=start + 2 * DAY)  # rated after its period was settled
    rate(setup, "now", "5")
    totals, events = both(loaded(setup))
    assert totals is None
    assert sorted(row[4] for row in events) == [Decimal(3), Decimal(5)]  # the late group and this period's


@pytest.mark.django_db
def test_an_earlier_run_of_the_period_or_a_recent_event_sends_the_read_to_the_events():
    setup = priced_setup(rate="1")
    Subscription.objects.filter(pk=setup.subscription.pk).update(invoice_threshold=Decimal(1))
    rate(setup, "a", "2")
    recent = loaded(setup)
    assert both(recent, lag_s=60)[0] is None  # rated within the lag: the events decide what counts
    settle(setup, kind="interim")
    rate(setup, "b", "3")
    totals, events = both(loaded(setup))
    assert totals is None and [row[4] for row in events] == [Decimal(3)]  # only what the interim run left


@pytest.mark.django_db
def test_hand_built_inputs_never_take_the_totals_path():
    setup = priced_setup(rate="1")
    rate(setup, "a", "2")
    context = loaded(setup)
    context.inputs = SettlementInputs(totals=context.inputs.totals)  # not from inputs_load
    assert both(context)[0] is None
