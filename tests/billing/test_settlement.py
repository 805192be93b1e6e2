"""The settlement pipeline on real PostgreSQL: from rated events to an invoice whose lines are
rounded once and sum to its total, each usage line traceable to the rated events it sums;
idempotent (twice, concurrently), postpaid / prepaid / hybrid routing, commitments, caps,
discounts, several taxes, late events."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from billing.models import Discount, Invoice, RatedEvent, SettlementRun, TaxRate
from billing.settlement import settlement_run
from billing.verification import ledger_verify
from catalog.models import Subscription
from tests.factories import rated_event, priced_setup
from wallets.models import Wallet
from wallets.services import wallet_create, wallet_top_up, wallets_check

DAY = timedelta(days=1)


def rate(setup, event_id, quantity, *, at=None, **dimensions):
    return rated_event(setup, event_id, quantity, at=at, dimensions=dimensions)


def settle(setup, **kwargs):
    return settlement_run(subscription_id=setup.subscription.pk, at=kwargs.pop("at", timezone.now()), **kwargs)


def lines(invoice):
    return [(line.kind, line.amount) for line in invoice.lines.order_by("position")]


@pytest.mark.django_db
def test_postpaid_usage_and_base_charge_rounded_once_and_traceable():
    setup = priced_setup(
        config={"model": "graduated", "tiers": [{"up_to": "10", "unit_amount": "0.0125", "flat_amount": "5"}, {"up_to": None, "unit_amount": "0.01"}]}
    )
    for n, quantity in enumerate(["4", "7", "2.5"]):
        rate(setup, f"e{n}", quantity)
    result = settle(setup)
    invoice = result.invoice
    # 13.5 units: 10 × 0.0125 + 3.5 × 0.01 = 0.16 (rated), + the first tier's flat fee 5 (base)
    assert lines(invoice) == [("usage", Decimal("0.16")), ("base", Decimal("5.00"))]
    assert (invoice.total, invoice.amount_due, invoice.status) == (Decimal("5.16"), Decimal("5.16"), "finalized")
    usage = invoice.lines.get(kind="usage")
    behind = RatedEvent.objects.filter(
        subscription=setup.subscription, metric_id=usage.metric_id, dimension_key=usage.dimension_key,
        period_start=usage.period_start, id__gt=usage.rated_from_id, id__lte=usage.rated_to_id,
    )
    assert behind.count() == 3 and sum(r.amount for r in behind) == usage.amount_unrounded
    assert [s["stage"] for s in result.run.stages] == ["quota_check", "aggregate", "rate", "commit", "discount", "tax", "route", "settle"]


@pytest.mark.django_db
def test_settling_twice_returns_the_same_invoice():
    setup = priced_setup(rate="1")
    rate(setup, "a", "2")
    first = settle(setup)
    again = settle(setup)
    assert first.created and not again.created and again.invoice.pk == first.invoice.pk
    assert Invoice.objects.filter(subscription=setup.subscription).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_produce_one_invoice():
    setup = priced_setup(rate="1")
    rate(setup, "a", "2")
    results = []

    def run():
        try:
            results.append(settle(setup))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(r.created for r in results) == [False, True]
    assert len({r.invoice.pk for r in results}) == 1
    assert Invoice.objects.filter(subscription=setup.subscription).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("usage", "commitment", "expected"),
    [("3", "10", [("usage", Decimal("3.00")), ("commitment", Decimal("7.00"))]),  # missed: true-up to 10
     ("12", "10", [("usage", Decimal("12.00"))]),  # hit
     ("10", "10", [("usage", Decimal("10.00"))])],  # exactly met
)
def test_minimum_commitment(usage, commitment, expected):
    setup = priced_setup(rate="1")
    Subscription.objects.filter(pk=setup.subscription.pk).update(min_commitment=Decimal(commitment))
    rate(setup, "a", usage)
    assert lines(settle(setup).invoice) == expected


@pytest.mark.django_db
def test_admin_invoice_page_shows_a_true_up_line_without_units(admin_client):
    setup = priced_setup(rate="1")
    Subscription.objects.filter(pk=setup.subscription.pk).update(min_commitment=Decimal(10))
    rate(setup, "a", "3")
    invoice = settle(setup).invoice
    assert invoice.lines.get(kind="commitment").units is None
    response = admin_client.get(f"/admin/billing/invoice/{invoice.pk}/change/")
    assert response.status_code == 200
    assert "commitment" in response.content.decode()


@pytest.mark.django_db
def test_spend_cap_caps_or_only_alerts():
    setup = priced_setup(rate="1")
    Subscription.objects.filter(pk=setup.subscription.pk).update(spend_cap=Decimal(8))
    rate(setup, "a", "11")
    capped = settle(setup)
    assert lines(capped.invoice) == [("usage", Decimal("11.00")), ("cap", Decimal("-3.00"))]
    other = priced_setup(rate="1")
    Subscription.objects.filter(pk=other.subscription.pk).update(spend_cap=Decimal(8), spend_cap_action="alert")
    rate(other, "a", "11")
    alerted = settle(other)
    assert alerted.invoice.total == Decimal(11)
    assert any("cap_alert" in stage for stage in alerted.run.stages)


@pytest.mark.django_db
def test_discounts_in_order_never_below_zero_then_several_taxes():
    setup = priced_setup(rate="1")
    Discount.objects.create(tenant=setup.tenant, subscription=setup.subscription, kind="percent", value=Decimal(10), position=1)
    Discount.objects.create(tenant=setup.tenant, subscription=setup.subscription, kind="fixed", value=Decimal(500), position=2)
    rate(setup, "a", "100")
    assert lines(settle(setup).invoice) == [("usage", Decimal("100.00")), ("discount", Decimal("-10.00")), ("discount", Decimal("-90.00"))]

    taxed = priced_setup(rate="0.333")
    TaxRate.objects.create(tenant=taxed.tenant, customer=taxed.customer, name="VAT", percent=Decimal(20))
    TaxRate.objects.create(tenant=taxed.tenant, customer=taxed.customer, name="City", percent=Decimal("1.5"))
    rate(taxed, "a", "10")
    invoice = settle(taxed).invoice
    # 3.33 rounded once; 20% of it = 0.666 → 0.67; 1.5% = 0.04995 → 0.05 (not compounding)
    assert lines(invoice) == [("usage", Decimal("3.33")), ("tax", Decimal("0.67")), ("tax", Decimal("0.05"))]
    assert invoice.total == sum(amount for _, amount in lines(invoice)) == Decimal("4.05")


@pytest.mark.django_db
def test_prepaid_counts_realtime_debits_and_takes_only_the_rest():
    setup = priced_setup(config={"model": "graduated", "tiers": [{"up_to": "5", "unit_amount": "1", "flat_amount": "2"}, {"up_to": None, "unit_amount": "0.5"}]},
                         billing_mode=Subscription.BillingMode.PREPAID)
    wallet = wallet_create(customer=setup.customer, currency="USD")
    wallet_top_up(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal(50), idempotency_key="t")
    rate(setup, "a", "4")
    rate(setup, "b", "4")  # rated 4 + 1 + 1.5 = 6.5 debited in real time
    invoice = settle(setup).invoice
    wallet.refresh_from_db()
    # invoice 6.5 usage + 2 base; real time took 6.5, settlement takes the base 2
    assert (invoice.total, invoice.wallet_applied, invoice.amount_due) == (Decimal("8.50"), Decimal("8.50"), Decimal(0))
    assert wallet.balance == Decimal("41.5")
    assert wallets_check() == []


@pytest.mark.django_db
def test_hybrid_wallet_pays_part_the_rest_is_due():
    setup = priced_setup(rate="1", billing_mode=Subscription.BillingMode.HYBRID)
    TaxRate.objects.create(tenant=setup.tenant, customer=setup.customer, name="VAT", percent=Decimal(10))
    wallet = wallet_create(customer=setup.customer, currency="USD")
    wallet_top_up(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal(5), idempotency_key="t")
    rate(setup, "a", "4")  # wallet pays 4 in real time, 1 left
    rate(setup, "b", "6")  # wallet pays 1, 5 accrue
    invoice = settle(setup).invoice
    # total 10 + 1 tax = 11; wallet paid 5 in real time and has nothing left: 6 due
    assert (invoice.total, invoice.wallet_applied, invoice.amount_due) == (Decimal(11), Decimal(5), Decimal(6))
    assert Wallet.objects.get(pk=wallet.pk).balance == 0


@pytest.mark.django_db
def test_a_late_event_lands_on_the_next_invoice_as_an_adjustment():
    start = timezone.now() - 40 * DAY
    setup = priced_setup(rate="1", started_at=start)
    last_period_day = start + 5 * DAY
    rate(setup, "old", "2", at=last_period_day)
    # (The subscription's periods start at `start`; the first one is long over.)
    first = settle(setup, at=last_period_day)
    assert lines(first.invoice) == [("usage", Decimal(2))]
    late = rate(setup, "late", "3", at=last_period_day + DAY)  # rated after its period was settled
    now_run = settle(setup)
    late_line = now_run.invoice.lines.get(kind="late_usage")
    assert late_line.amount == Decimal(3) and late_line.period_start == first.invoice.period_start
    assert late_line.rated_from_id < late.rated_event_id <= late_line.rated_to_id
    assert not SettlementRun.objects.filter(subscription=setup.subscription).exclude(invoice__isnull=False).exists()


@pytest.mark.django_db
def test_a_gap_period_settled_late_does_not_bill_late_events_a_later_period_took():
    start = timezone.now() - 85 * DAY
    setup = priced_setup(rate="1", started_at=start)
    p0, p1, p2 = (settle(setup, at=start + n * 31 * DAY + DAY, dry_run=True).context.period_start for n in range(3))
    rate(setup, "p0", "1", at=p0 + DAY)
    settle(setup, at=p0 + DAY)
    rate(setup, "late", "3", at=p0 + 2 * DAY)  # a late event of p0
    rate(setup, "p2", "2", at=p2 + DAY)
    third = settle(setup, at=p2 + DAY)  # p1 not settled yet: p2's final run takes p0's late event
    assert sorted(lines(third.invoice)) == [("late_usage", Decimal(3)), ("usage", Decimal(2))]
    second = settle(setup, at=p1 + DAY)  # the gap, settled last
    assert lines(second.invoice) == []
    assert ledger_verify() == []


@pytest.mark.django_db
def test_dry_run_writes_nothing():
    setup = priced_setup(rate="1")
    rate(setup, "a", "2")
    preview = settle(setup, dry_run=True)
    assert preview.invoice is None and preview.context.total() == Decimal(2)
    assert not Invoice.objects.exists() and not SettlementRun.objects.exists()
