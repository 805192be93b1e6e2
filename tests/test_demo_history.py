"""seed_demo's history: past usage rated through the real pipeline code and settled, once."""

from decimal import Decimal

import pytest
from django.db.models import Sum

from billing.models import Invoice, InvoiceLine, RatedEvent
from billing.periods import period_for
from aforo.demo.seed import demo_seed
from catalog.models import Subscription
from wallets.models import WalletEntry
from wallets.services import wallets_check


@pytest.mark.django_db
def test_history_is_rated_and_settled_once():
    seeded = demo_seed(history=True)
    assert seeded["history"]["events"] > 1000 and seeded["history"]["invoices"] >= 9  # 3 customers x 3+ past months
    assert RatedEvent.objects.filter(raw_event__event_id__startswith="history-").count() == seeded["history"]["events"]
    for customer in seeded["customers"]:
        subscription = Subscription.objects.get(pk=customer["subscription_id"])
        invoices = Invoice.objects.filter(subscription=subscription)
        starts = sorted(invoices.values_list("period_start", flat=True))
        assert starts[0] == subscription.billing_anchor and len(starts) == len(set(starts)) >= 3
        for invoice in invoices:
            assert period_for(cadence="monthly", anchor=subscription.billing_anchor, at=invoice.period_start)[0] == invoice.period_start
            usage = invoice.lines.filter(kind="usage").aggregate(total=Sum("amount_unrounded"))["total"] or Decimal(0)
            rated = RatedEvent.objects.filter(subscription=subscription, period_start=invoice.period_start).aggregate(
                total=Sum("amount")
            )["total"]
            assert usage == rated
    for customer in seeded["customers"]:  # the books: past invoices paid, each customer's newest due
        newest, *older = Invoice.objects.filter(subscription_id=customer["subscription_id"]).order_by("-period_start", "-id")
        assert newest.status == Invoice.Status.FINALIZED and newest.due_at is not None and older
        assert all(i.status == Invoice.Status.PAID and i.payment_reference == f"DEMO-TRANSFER-{i.number}" for i in older)
    globex = next(c for c in seeded["customers"] if c["billing_mode"] == "prepaid")
    assert WalletEntry.objects.filter(wallet_id=globex["wallet_id"], kind="debit").count() > 100
    # The back-fill stands for past API traffic: accepted and received balance, month by month.
    from datetime import timedelta

    from django.utils import timezone

    from metering.reconciliation.report import period_parse, reconciliation_report

    month = timezone.now() - timedelta(days=40)
    report = reconciliation_report(tenant_id=seeded["tenant"]["id"], period=period_parse(f"{month:%Y-%m}", now=timezone.now()),
                                   scan=False)
    assert report.totals.accepted > 0 and report.totals.difference == 0 and report.balanced, report.totals
    again = demo_seed(history=True)
    assert again["history"] == seeded["history"]  # nothing rated or settled twice
    assert reconciliation_report(tenant_id=seeded["tenant"]["id"], period=period_parse(f"{month:%Y-%m}", now=timezone.now()),
                                 scan=False).totals == report.totals  # seeding again counts nothing twice
    assert InvoiceLine.objects.count() == InvoiceLine.objects.distinct().count()
    assert wallets_check() == []

