"""Invoice moves under real concurrent transactions (threads, each its own PostgreSQL
connection): the plan is slowed between the read and the write, so without the invoice's row
lock several payments (or a payment and a void) would all see "finalized" and all write."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from billing.invoices import lifecycle
from billing.invoices.services import InvoiceTransitionRefused, invoice_mark_paid
from billing.invoicing import invoice_void_and_reissue
from billing.models import CreditNote, Invoice
from billing.settlement import settlement_run
from tests.billing.test_leases_concurrency import _race
from tests.billing.test_settlement import rate
from tests.factories import priced_setup

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def slow_plan(monkeypatch):
    real = lifecycle.transition_plan

    def slow(*args, **kwargs):
        time.sleep(0.2)
        return real(*args, **kwargs)

    monkeypatch.setattr(lifecycle, "transition_plan", slow)


def test_concurrent_payments_and_a_void_make_exactly_one_move(slow_plan):
    setup = priced_setup(rate="1")
    rate(setup, "a", "3")
    invoice = settlement_run(subscription_id=setup.subscription.pk, at=timezone.now()).invoice
    calls = [lambda n=n: invoice_mark_paid(invoice_id=invoice.pk, reference=f"TX-{n}") for n in range(3)]
    calls.append(lambda: invoice_void_and_reissue(invoice=invoice, reason="race"))
    results = _race(calls)
    winners = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, InvoiceTransitionRefused)]
    assert len(winners) == 1 and len(refused) == 3, [repr(r)[:300] for r in results]
    final = Invoice.objects.get(pk=invoice.pk)
    if final.status == "paid":
        assert {r.code for r in refused} == {"invoice_already_paid", "invoice_paid"}
        assert not CreditNote.objects.exists()
    else:
        assert final.status == "void" and {r.code for r in refused} == {"invoice_void"}
        assert CreditNote.objects.filter(invoice=final).count() == 1
