"""Settlement cadences on real PostgreSQL (Celery eager): the beat sweep settles every period
that is over once, run twice or concurrently; threshold invoices are raised from the running
totals as events are rated, and the period-end invoice covers only the rest."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from celery._state import _set_task_join_will_block
from django.db import connection
from django.utils import timezone

from aforo.celery import app
from billing.cadence import customers_due
from billing.models import Invoice, InvoiceLine, RatedEvent, SettlementRun
from billing.settlement import settlement_run
from billing.tasks import settle_interim, settlement_sweep
from billing.verification import ledger_verify
from catalog.models import Subscription
from tests.billing.test_settlement import rate
from tests.factories import priced_setup

DAY = timedelta(days=1)


def test_the_sweep_is_in_the_one_beat_schedule():
    assert app.conf.beat_schedule["settlement-sweep"]["task"] == "billing.tasks.settlement_sweep"


def subscriptions_for_the_sweep():
    """An old subscription with two periods over, a young one with none, and one canceled
    mid-period five days ago (its last, partial period is over)."""
    now = timezone.now()
    old = priced_setup(rate="1", started_at=now - 70 * DAY)
    rate(old, "p1", "1", at=now - 65 * DAY)
    rate(old, "p2", "2", at=now - 30 * DAY)
    rate(old, "p3", "4")
    young = priced_setup(rate="1", started_at=now - 10 * DAY)
    rate(young, "y", "8")
    canceled = priced_setup(rate="1", started_at=now - 20 * DAY)
    rate(canceled, "c", "16", at=now - 6 * DAY)
    Subscription.objects.filter(pk=canceled.subscription.pk).update(status="canceled", ended_at=now - 5 * DAY)
    return old, young, canceled


def invoiced(setup) -> list[Decimal]:
    return [i.total for i in Invoice.objects.filter(subscription=setup.subscription).order_by("period_start")]


@pytest.mark.django_db
def test_the_sweep_settles_periods_that_are_over_once(django_assert_num_queries):
    old, young, canceled = subscriptions_for_the_sweep()
    with django_assert_num_queries(1):
        due = customers_due(now=timezone.now())
    assert due == sorted([old.customer.pk, canceled.customer.pk])
    assert settlement_sweep() == 2
    assert (invoiced(old), invoiced(young), invoiced(canceled)) == ([1, 2], [], [16])
    numbers = list(Invoice.objects.filter(subscription=old.subscription).order_by("period_start").values_list("number", flat=True))
    assert numbers == sorted(numbers)  # oldest period first
    assert settlement_sweep() == 0  # nothing due any more
    assert Invoice.objects.count() == 3 and ledger_verify() == []


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_settle_each_period_once():
    old, young, canceled = subscriptions_for_the_sweep()
    errors: list[BaseException] = []

    def sweep():
        try:
            settlement_sweep()
        except Exception as error:  # noqa: BLE001 - surfaced below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # Eager apply() saves and restores Celery's process-wide "join will block" flag; two threads
    # interleaving can leave it set, which breaks any later test that calls result.get().
    _set_task_join_will_block(False)
    assert errors == []
    assert (invoiced(old), invoiced(young), invoiced(canceled)) == ([1, 2], [], [16])
    assert SettlementRun.objects.count() == 3


def rate_committed(setup, capture, event_id, quantity):
    """Rate one event and run what its batch leaves for after commit (the threshold task)."""
    with capture(execute=True):
        return rate(setup, event_id, quantity)


def usage(invoice) -> Decimal:
    return sum(line.amount_unrounded for line in invoice.lines.filter(kind__in=["usage", "late_usage"]))


@pytest.mark.django_db
def test_threshold_invoices_mid_period_and_the_final_covers_only_the_rest(django_capture_on_commit_callbacks):
    setup = priced_setup(rate="1")
    Subscription.objects.filter(pk=setup.subscription.pk).update(invoice_threshold=Decimal(10))

    def interim():
        return Invoice.objects.filter(subscription=setup.subscription, settlement_runs__kind="interim").order_by("settlement_runs__sequence")

    rate_committed(setup, django_capture_on_commit_callbacks, "a", "4")
    assert not interim().exists()  # accrued 4
    rate_committed(setup, django_capture_on_commit_callbacks, "b", "7")
    assert [i.total for i in interim()] == [11]  # accrued 11 ≥ 10: both events invoiced now
    rate_committed(setup, django_capture_on_commit_callbacks, "c", "3")
    assert interim().count() == 1  # 14 accrued, 11 invoiced: 3 < 10
    assert settle_interim(setup.subscription.pk) is None  # the task re-checks: nothing due, nothing written
    rate_committed(setup, django_capture_on_commit_callbacks, "d", "8")
    assert [i.total for i in interim()] == [11, 11]  # 22 − 11 ≥ 10
    assert list(SettlementRun.objects.filter(kind="interim").values_list("sequence", flat=True).order_by("sequence")) == [1, 2]
    rate_committed(setup, django_capture_on_commit_callbacks, "e", "2")
    final = settlement_run(subscription_id=setup.subscription.pk, at=timezone.now()).invoice
    assert final.total == 2 and usage(final) == 2  # only the rest
    every = Invoice.objects.filter(subscription=setup.subscription)
    rated = sum(RatedEvent.objects.filter(subscription=setup.subscription).values_list("amount", flat=True))
    assert sum(usage(invoice) for invoice in every) == rated == 24
    assert ledger_verify() == []
    rate_committed(setup, django_capture_on_commit_callbacks, "f", "30")  # after the final run: no interim
    assert interim().count() == 2


@pytest.mark.django_db
def test_threshold_hot_path_is_one_query_and_nothing_without_a_threshold(django_capture_on_commit_callbacks, django_assert_num_queries):
    from billing import services

    plain = priced_setup(rate="1")
    rate_committed(plain, django_capture_on_commit_callbacks, "a", "500")
    assert not Invoice.objects.exists()
    subscription = plain.subscription
    with django_assert_num_queries(1):
        services._interim_invoices_enqueue(current={(subscription.pk, subscription.started_at)})


@pytest.mark.django_db
def test_a_threshold_at_exactly_the_accrued_charges_invoices(django_capture_on_commit_callbacks):
    setup = priced_setup(rate="0.5", billing_mode=Subscription.BillingMode.POSTPAID)
    Subscription.objects.filter(pk=setup.subscription.pk).update(invoice_threshold=Decimal(5))
    rate_committed(setup, django_capture_on_commit_callbacks, "a", "10")
    [line] = InvoiceLine.objects.filter(invoice__settlement_runs__kind="interim")
    assert (line.kind, line.amount) == ("usage", Decimal(5))
