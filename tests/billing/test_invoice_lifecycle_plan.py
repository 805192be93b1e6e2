"""The invoice lifecycle's pure plan (billing.invoices.lifecycle): every (status, action) pair,
allowed or refused, the no-op retries and their conflicts, and the derived due/overdue rules.
No database."""

from datetime import datetime, timedelta, timezone

import pytest

from billing.invoices import lifecycle as lc
from billing.invoices.lifecycle import InvoiceState, transition_plan

ALLOWED = {
    ("draft", "finalize"): ("finalized", False),
    ("draft", "void"): ("void", False),  # never issued: no credit note
    ("finalized", "pay"): ("paid", False),
    ("finalized", "mark_uncollectible"): ("uncollectible", False),
    ("finalized", "void"): ("void", True),
    ("uncollectible", "pay"): ("paid", False),  # a late payment
    ("uncollectible", "void"): ("void", True),
}
NOOPS = {("finalized", "finalize"), ("paid", "finalize"), ("uncollectible", "finalize")}
REFUSED = {
    ("draft", "pay"): "invoice_draft",
    ("draft", "mark_uncollectible"): "invoice_draft",
    ("paid", "void"): "invoice_paid",
    ("paid", "mark_uncollectible"): "invoice_paid",
    ("void", "finalize"): "invoice_void",
    ("void", "pay"): "invoice_void",
    ("void", "mark_uncollectible"): "invoice_void",
    ("void", "void"): "invoice_void",
}


@pytest.mark.parametrize("status", lc.STATUSES)
@pytest.mark.parametrize("action", lc.ACTIONS)
def test_every_status_and_action_is_allowed_a_noop_or_refused(status, action):
    state = InvoiceState(status=status, payment_reference="TX-1", uncollectible_reason="gone")
    plan = transition_plan(state, action=action, reference="TX-1", reason="gone")
    if (status, action) in ALLOWED:
        assert (plan.to, plan.credit_note, plan.refused) == (*ALLOWED[(status, action)], "")
    elif (status, action) in REFUSED:
        assert plan.to is None and plan.refused == REFUSED[(status, action)] and plan.message
    else:  # the retries: paid again with TX-1, uncollectible again for "gone", finalize of an issued invoice
        assert (status, action) in NOOPS | {("paid", "pay"), ("uncollectible", "mark_uncollectible")}
        assert plan.is_noop


def test_a_retry_that_disagrees_is_refused_with_its_own_code():
    paid = InvoiceState(status="paid", payment_reference="TX-1")
    assert transition_plan(paid, action="pay", reference="TX-1").is_noop
    other = transition_plan(paid, action="pay", reference="TX-2")
    assert other.refused == "invoice_already_paid" and "TX-1" in other.message
    written_off = InvoiceState(status="uncollectible", uncollectible_reason="bankrupt")
    assert transition_plan(written_off, action="mark_uncollectible", reason="bankrupt").is_noop
    assert transition_plan(written_off, action="mark_uncollectible", reason="other").refused == "invoice_already_uncollectible"


def test_the_void_of_a_paid_invoice_says_why():
    plan = transition_plan(InvoiceState(status="paid"), action="void")
    assert plan.refused == "invoice_paid" and "paid" in plan.message


def test_an_unknown_action_is_a_programming_error():
    with pytest.raises(ValueError):
        transition_plan(InvoiceState(status="draft"), action="refund")


def test_due_dates_overdue_and_payment_status():
    issued = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
    assert lc.due_date(finalized_at=issued, net_terms_days=30) == datetime(2026, 12, 1, 12, tzinfo=timezone.utc)
    assert lc.due_date(finalized_at=issued, net_terms_days=0) == issued
    due = issued + timedelta(days=30)
    assert not lc.is_overdue(status="finalized", due_at=due, now=due)  # due that moment, not yet overdue
    assert lc.is_overdue(status="finalized", due_at=due, now=due + timedelta(seconds=1))
    assert lc.is_overdue(status="uncollectible", due_at=due, now=due + timedelta(days=1))
    for status in ("paid", "void", "draft"):
        assert not lc.is_overdue(status=status, due_at=due, now=due + timedelta(days=1))
    later = due + timedelta(days=1)
    assert [lc.payment_status(status=s, due_at=due, now=later) for s in lc.STATUSES] == [
        "draft", "overdue", "paid", "void", "overdue"
    ]
    assert [lc.payment_status(status=s, due_at=due, now=issued) for s in lc.STATUSES] == [
        "draft", "due", "paid", "void", "uncollectible"
    ]


def test_the_grace_period():
    settled = datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert lc.finalize_after(settled_at=settled, grace_hours=0) is None
    assert lc.finalize_after(settled_at=settled, grace_hours=48) == settled + timedelta(hours=48)
