"""A period with a plan change in it is ONE invoice: a part per subscription (its lines under
"<plan>, <span>"), each part's fixed fees, minimum commitment and fixed discounts prorated by time
on its own terms, the customer's coupons and taxes once over the whole invoice; settled once
whichever part is settled first, by the sweep only when the period is over for its last
subscription; voided and reissued whole; late usage of the old part on the lineage's next
invoice; every line traced to its own subscription's rated events (verify_ledger clean)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.template.loader import render_to_string

from billing.cadence import customer_settle_due, customers_due, subscription_due_periods
from billing.invoice_pdf import TEMPLATE, invoice_document_context
from billing.invoicing import invoice_void_and_reissue
from billing.models import Coupon, CouponRedemption, Discount, Invoice, InvoiceLine, SettlementRun, TaxRate
from billing.plan_change import plan_change
from billing.settlement import settlement_run
from billing.settlement.context import Line, SettlementContext
from billing.settlement.inputs import SubscriptionTerms
from billing.settlement.parts import Lineage, PeriodPart, members_of, part_label
from billing.settlement.pipeline import merge_parts
from billing.settlement.settle import lines_ordered
from billing.trace import WHOLE_INVOICE, part_headings
from billing.verification import ledger_verify
from tests.billing.test_plan_change import _new_plan
from tests.factories import priced_setup, rated_event, tenant_token

# The instants of test_proration: October 2026, the change at 11 Oct 12:00 (10.5 of 31 days).
OCT, NOV, DEC = (datetime(2026, month, 1, tzinfo=UTC) for month in (10, 11, 12))
CHANGE = datetime(2026, 10, 11, 12, tzinfo=UTC)
SECOND = datetime(2026, 10, 21, tzinfo=UTC)  # a second change: 10.5 + 9.5 + 11 days
STARTER, PRO = "Starter plan, 1 Oct – 11 Oct 12:00", "Pro plan, 11 Oct 12:00 – 1 Nov"


# Pure: headings, members, order.

def test_part_labels_name_the_plan_and_its_span_within_the_period():
    assert part_label(PeriodPart(1, "Starter plan", datetime(2026, 7, 1, tzinfo=UTC), CHANGE), period_start=OCT,
                      period_end=NOV) == STARTER
    assert part_label(PeriodPart(2, "Pro plan", CHANGE, None), period_start=OCT, period_end=NOV) == PRO
    assert part_label(PeriodPart(1, "Starter plan", OCT, CHANGE, late=True), period_start=NOV, period_end=DEC) == (
        "Starter plan, late usage")


def test_the_members_are_the_lineage_active_in_the_period():
    lineage = [Lineage(1, None, datetime(2026, 7, 1, tzinfo=UTC), CHANGE, "A"), Lineage(2, 1, CHANGE, SECOND, "B"),
               Lineage(3, 2, SECOND, None, "C")]
    assert [m.id for m in members_of(lineage, subscription_id=2, period_start=OCT, period_end=NOV)] == [1, 2, 3]
    assert [m.id for m in members_of(lineage, subscription_id=3, period_start=NOV, period_end=DEC)] == [3]
    at_boundary = [Lineage(1, None, datetime(2026, 7, 1, tzinfo=UTC), NOV, "A"), Lineage(2, 1, NOV, None, "B")]
    assert [m.id for m in members_of(at_boundary, subscription_id=1, period_start=OCT, period_end=NOV)] == [1]
    assert [m.id for m in members_of(at_boundary, subscription_id=2, period_start=NOV, period_end=DEC)] == [2]


def _context(subscription_id: int, *lines: Line) -> SettlementContext:
    context = SettlementContext(subscription=SubscriptionTerms(id=subscription_id), period_start=OCT, period_end=NOV,
                                kind="final", watermark=0, now=NOV)
    context.lines = list(lines)
    return context


def test_parts_print_in_order_then_the_whole_invoices_lines():
    old = _context(1, Line("discount", "10% off", Decimal(-1), Decimal(-1)), Line("usage", "u", Decimal(7), Decimal(7)))
    new = _context(2, Line("commitment", "true-up", Decimal(3), Decimal(3)), Line("usage", "u", Decimal(20), Decimal(20)))
    old.part, new.part, old.wallet_realtime, new.wallet_realtime = STARTER, PRO, Decimal(1), Decimal(2)
    merge_parts(new, [old])
    new.lines += [Line("tax", "VAT", Decimal(5), Decimal(5)), Line("discount", "Coupon", Decimal(-2), Decimal(-2))]
    ordered = lines_ordered(new)
    assert [(line.part, line.kind, line.subscription_id) for line in ordered] == [
        (STARTER, "usage", 1), (STARTER, "discount", 1), (PRO, "usage", 2), (PRO, "commitment", 2),
        ("", "discount", None), ("", "tax", None),
    ]
    assert new.wallet_realtime == Decimal(3)  # both parts' real-time debits, counted once
    rows = [InvoiceLine(part=line.part, kind=line.kind) for line in ordered]
    assert part_headings(rows) == [STARTER, "", PRO, "", WHOLE_INVOICE, ""]
    assert part_headings([InvoiceLine(kind="usage"), InvoiceLine(kind="tax")]) == ["", ""]  # one part: no headings


# Through the database: the prorated amounts on both sides.

@pytest.fixture
def changed():
    """Starter (1 a unit, minimum 100, 10% off) to Pro (2 a unit) at 11 Oct 12:00; 7 units before,
    10 after; a coupon of 5 and VAT 20% on the customer."""
    setup = priced_setup(rate="1", started_at=OCT)
    setup.subscription.min_commitment = Decimal(100)
    setup.subscription.save()
    setup.rate_plan.name = "Starter plan"
    setup.rate_plan.save()
    pro = _new_plan(setup, rate="2")
    pro.name = "Pro plan"
    pro.save()
    Discount.objects.create(tenant=setup.tenant, subscription=setup.subscription, kind="percent", value=Decimal(10))
    TaxRate.objects.create(tenant=setup.tenant, customer=setup.customer, name="VAT", percent=Decimal(20))
    Coupon.objects.create(tenant=setup.tenant, customer=setup.customer, code="WELCOME", currency="USD", amount=Decimal(5))
    change = plan_change(subscription=setup.subscription, rate_plan=pro, at=CHANGE, now=CHANGE - timedelta(days=1))
    setup.old, setup.new, setup.pro = change.ended, change.started, pro
    rated_event(setup, "before", "7", at=CHANGE - timedelta(microseconds=1))
    rated_event(setup, "after", "10", at=CHANGE)
    return setup


def _lines(invoice: Invoice) -> list[tuple]:
    return [(line.part, line.kind, line.amount) for line in invoice.lines.order_by("position")]


EXPECTED = [
    # 100 × 10.5/31 = 33.870967…: usage 7, true-up 26.87; 10% of 33.87 = 3.39.
    (STARTER, "usage", Decimal("7.00")), (STARTER, "commitment", Decimal("26.87")), (STARTER, "discount", Decimal("-3.39")),
    # 100 × 20.5/31 = 66.129032…: usage 10 × 2 = 20, true-up 46.13; 10% of 66.13 = 6.61.
    (PRO, "usage", Decimal("20.00")), (PRO, "commitment", Decimal("46.13")), (PRO, "discount", Decimal("-6.61")),
    # Once over the whole invoice: the coupon, then VAT 20% of 100 − 10 − 5 = 85.
    ("", "discount", Decimal("-5.00")), ("", "tax", Decimal("17.00")),
]


@pytest.mark.django_db
def test_the_period_is_one_invoice_with_both_parts_prorated_and_settling_again_changes_nothing(changed):
    first = settlement_run(subscription_id=changed.old.pk, at=OCT)
    assert first.created and _lines(first.invoice) == EXPECTED
    invoice = first.invoice
    assert (invoice.subscription_id, invoice.subtotal, invoice.discount_total, invoice.tax_total, invoice.total) == (
        changed.new.pk, Decimal("100.00"), Decimal("15.00"), Decimal("17.00"), Decimal("102.00"))
    runs = SettlementRun.objects.filter(invoice=invoice).order_by("subscription_id")
    assert [(run.subscription_id, run.kind) for run in runs] == [(changed.old.pk, "final"), (changed.new.pk, "final")]
    for subscription in (changed.old, changed.new):  # settled again, from either side: the same invoice
        again = settlement_run(subscription_id=subscription.pk, at=CHANGE)
        assert not again.created and again.invoice.pk == invoice.pk
    assert Invoice.objects.filter(customer=changed.customer).count() == 1
    assert CouponRedemption.objects.get().amount == Decimal(5)
    assert ledger_verify() == []


@pytest.mark.django_db
def test_the_sweep_waits_for_the_period_to_be_over_for_its_last_subscription(changed):
    mid = CHANGE + timedelta(days=1)  # the old part's end has passed, the successor's period has not
    assert subscription_due_periods(subscription=changed.old, now=mid) == []
    assert changed.customer.pk not in customers_due(now=mid)
    assert customer_settle_due(customer_id=changed.customer.pk, now=mid) == []
    after = NOV + timedelta(hours=1)
    assert subscription_due_periods(subscription=changed.old, now=after) == [OCT]
    results = customer_settle_due(customer_id=changed.customer.pk, now=after)
    assert [result.created for result in results] == [True, False]  # the old one's period, then the same for the new
    assert _lines(results[0].invoice) == EXPECTED
    assert changed.customer.pk not in customers_due(now=after)


@pytest.mark.django_db
def test_void_and_reissue_reissues_both_parts(changed):
    invoice = settlement_run(subscription_id=changed.new.pk, at=OCT).invoice
    reissue = invoice_void_and_reissue(invoice=invoice, reason="wrong address")
    replacement = reissue.replacement
    assert _lines(replacement) == EXPECTED and replacement.replaces_id == invoice.pk
    assert set(SettlementRun.objects.filter(invoice=replacement).values_list("subscription_id", flat=True)) == {
        changed.old.pk, changed.new.pk}
    assert not SettlementRun.objects.filter(invoice=invoice).exists()
    # The coupon given back by the void, taken again by the reissue.
    assert list(CouponRedemption.objects.exclude(invoice__status="void").values_list("amount", flat=True)) == [Decimal(5)]
    assert settlement_run(subscription_id=changed.old.pk, at=OCT).invoice.pk == replacement.pk
    assert ledger_verify() == []


@pytest.mark.django_db
def test_two_changes_in_one_period_make_one_invoice_of_three_parts(changed):
    enterprise = _new_plan(changed, rate="3")
    enterprise.name = "Enterprise plan"
    enterprise.save()
    third = plan_change(subscription=changed.new, rate_plan=enterprise, at=SECOND, now=SECOND - timedelta(days=1)).started
    rated_event(changed, "late-october", "1", at=SECOND + timedelta(days=1))
    invoice = settlement_run(subscription_id=changed.new.pk, at=OCT).invoice
    parts = [(line.part, line.kind, line.amount) for line in invoice.lines.order_by("position") if line.part]
    # Minimum 100 over 10.5 / 9.5 / 11 days: 33.87, 30.65, 35.48 (each part's own share), 10% off each.
    assert parts == [
        (STARTER, "usage", Decimal("7.00")), (STARTER, "commitment", Decimal("26.87")), (STARTER, "discount", Decimal("-3.39")),
        ("Pro plan, 11 Oct 12:00 – 21 Oct", "usage", Decimal("20.00")),
        ("Pro plan, 11 Oct 12:00 – 21 Oct", "commitment", Decimal("10.65")),
        ("Pro plan, 11 Oct 12:00 – 21 Oct", "discount", Decimal("-3.07")),
        ("Enterprise plan, 21 Oct – 1 Nov", "usage", Decimal("3.00")),
        ("Enterprise plan, 21 Oct – 1 Nov", "commitment", Decimal("32.48")),
        ("Enterprise plan, 21 Oct – 1 Nov", "discount", Decimal("-3.55")),
    ]
    assert invoice.subscription_id == third.pk and invoice.subtotal == Decimal("100.00")
    assert SettlementRun.objects.filter(invoice=invoice).count() == 3
    assert settlement_run(subscription_id=changed.old.pk, at=OCT).invoice.pk == invoice.pk
    assert ledger_verify() == []


@pytest.mark.django_db
def test_late_usage_of_the_old_part_lands_on_the_next_invoice_traced_to_its_subscription(api_client, changed):
    october = settlement_run(subscription_id=changed.new.pk, at=OCT).invoice
    late = rated_event(changed, "late-starter", "5", at=CHANGE - timedelta(days=1))  # after October was settled
    assert late.subscription_id == changed.old.pk
    november = settlement_run(subscription_id=changed.new.pk, at=NOV).invoice
    starter_late = [(line.kind, line.amount, line.period_start) for line in november.lines.order_by("position")
                    if line.part == "Starter plan, late usage"]
    # The 5 fills the old part's October shortfall (its true-up 26.87 billed it already): adjusted back.
    assert starter_late == [("late_usage", Decimal("5.00"), OCT), ("commitment", Decimal("-5.00"), OCT)]
    line = november.lines.get(kind="late_usage")
    assert line.subscription_id == changed.old.pk
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(changed.tenant)}")
    events = api_client.get(f"/api/v1/invoices/{november.pk}/lines/{line.pk}/events").json()
    assert [event["id"] for event in events["results"]] == [late.rated_event_id] and events["sum_amount"] == "5"
    assert settlement_run(subscription_id=changed.new.pk, at=NOV).invoice.pk == november.pk
    assert october.pk != november.pk and ledger_verify() == []


@pytest.mark.django_db
def test_a_change_at_a_period_boundary_is_two_invoices_as_before():
    setup = priced_setup(rate="1", started_at=OCT)
    pro = _new_plan(setup, rate="2")
    change = plan_change(subscription=setup.subscription, rate_plan=pro, at=NOV, now=CHANGE)
    rated_event(setup, "oct", "3", at=CHANGE)
    rated_event(setup, "nov", "4", at=NOV + timedelta(days=1))
    assert subscription_due_periods(subscription=change.ended, now=NOV + timedelta(hours=1)) == [OCT]
    october = settlement_run(subscription_id=change.ended.pk, at=OCT).invoice
    november = settlement_run(subscription_id=change.started.pk, at=NOV).invoice
    assert [(line.part, line.amount) for line in october.lines.all()] == [("", Decimal("3.00"))]
    assert [(line.part, line.amount) for line in november.lines.all()] == [("", Decimal("8.00"))]
    assert (october.subscription_id, november.subscription_id) == (change.ended.pk, change.started.pk)


@pytest.mark.django_db
def test_the_api_pdf_and_csv_show_both_parts(api_client, changed):
    invoice = settlement_run(subscription_id=changed.old.pk, at=OCT).invoice
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(changed.tenant)}")
    body = api_client.get(f"/api/v1/invoices/{invoice.pk}").json()
    assert body["parts"] == [
        {"subscription": changed.old.pk, "part": STARTER, "amount": "30.48"},
        {"subscription": changed.new.pk, "part": PRO, "amount": "59.52"},
    ]
    assert {run["subscription"] for run in body["settlements"]} == {changed.old.pk, changed.new.pk}
    assert body["settlement"]["subscription"] == changed.new.pk
    assert [(line["part"], line["subscription"]) for line in body["lines"]][::3] == [
        (STARTER, changed.old.pk), (PRO, changed.new.pk), ("", None)]
    listed = api_client.get(f"/api/v1/invoices?subscription={changed.old.pk}").json()
    assert [row["id"] for row in listed["results"]] == [invoice.pk]  # a part of it
    html = render_to_string(TEMPLATE, invoice_document_context(invoice=invoice))
    assert html.index(STARTER) < html.index(PRO) < html.index(WHOLE_INVOICE)
    response = api_client.get(f"/api/v1/invoices/{invoice.pk}/lines.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(row["part"], row["subscription"], row["amount"]) for row in rows] == [
        (part, str(changed.old.pk if part == STARTER else changed.new.pk) if part else "", f"{amount:.2f}")
        for part, _, amount in EXPECTED
    ]
    events = api_client.get(f"/api/v1/invoices/{invoice.pk}/events.csv")
    event_rows = list(csv.DictReader(io.StringIO(b"".join(events.streaming_content).decode())))
    assert sorted(row["event_id"] for row in event_rows) == ["after", "before"]


@pytest.mark.django_db
def test_the_admin_invoice_page_shows_the_parts_and_both_runs(admin_client, changed):
    invoice = settlement_run(subscription_id=changed.old.pk, at=OCT).invoice
    page = admin_client.get(f"/admin/billing/invoice/{invoice.pk}/change/").content.decode()
    assert f"{STARTER}: 30.48 USD" in page and f"{PRO}: 59.52 USD" in page
    for run in SettlementRun.objects.filter(invoice=invoice):
        assert f"/admin/billing/settlementrun/{run.pk}/change/" in page


@pytest.mark.django_db(transaction=True)
def test_settling_both_parts_at_once_makes_one_invoice_without_a_deadlock(changed, monkeypatch):
    """Two settlements of the combined period started from different parts at the same moment:
    the lineage is locked whole, in id order, so the second waits for the first and returns its
    invoice. (Slowed after the first lock: without the ordered lock each held its own part and
    waited for the other's, and PostgreSQL aborted one with a deadlock.)"""
    import time

    from billing.settlement import parts
    from tests.billing.test_leases_concurrency import _race

    real = parts.period_parts_read

    def slow(**kwargs):
        time.sleep(0.3)  # fault injection: widens the window between the first lock and the others
        return real(**kwargs)

    monkeypatch.setattr(parts, "period_parts_read", slow)
    results = _race([lambda: settlement_run(subscription_id=changed.old.pk, at=OCT),
                     lambda: settlement_run(subscription_id=changed.new.pk, at=OCT)])
    assert not [r for r in results if isinstance(r, Exception)], [repr(r)[:300] for r in results]
    assert sorted(r.created for r in results) == [False, True]
    assert results[0].invoice.pk == results[1].invoice.pk
    assert Invoice.objects.filter(customer=changed.customer).count() == 1
