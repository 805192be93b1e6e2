"""The invoice lifecycle's services on real PostgreSQL: due dates from net terms, the draft grace
period and its beat task, payments and write-offs (idempotent retries, conflicts), voids with
their credit notes (gapless numbers per tenant) and the webhook events."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.invoices.services import (
    InvoiceInputInvalid,
    InvoiceTransitionRefused,
    invoice_finalize,
    invoice_mark_paid,
    invoice_mark_uncollectible,
    invoices_finalize_due,
)
from billing.invoicing import InvoiceAlreadyVoid, invoice_void_and_reissue
from billing.models import CreditNote, Invoice
from billing.settlement import settlement_run
from billing.tasks import invoices_finalize_drafts
from billing.verification import ledger_verify
from notify.models import WebhookDelivery
from notify.services import webhook_endpoint_create
from tests.billing.test_settlement import rate
from tests.factories import priced_setup


def settle(setup, **kwargs):
    return settlement_run(subscription_id=setup.subscription.pk, at=kwargs.pop("at", timezone.now()), **kwargs).invoice


def terms(setup, **fields):
    for name, value in fields.items():
        setattr(setup.subscription, name, value)
    setup.subscription.save(update_fields=list(fields))


@pytest.fixture
def settled():
    setup = priced_setup(rate="0.5")
    rate(setup, "a", "10")
    setup.invoice = settle(setup)
    return setup


@pytest.mark.django_db
def test_settled_at_once_by_default_due_after_the_net_terms(settled):
    invoice = settled.invoice
    assert (invoice.status, invoice.finalize_after) == ("finalized", None)
    assert invoice.finalized_at == invoice.issued_at
    assert invoice.due_at == invoice.finalized_at + timedelta(days=30)  # the default net terms


@pytest.mark.django_db
def test_net_terms_zero_is_due_on_issue_and_45_is_45_days():
    for days in (0, 45):
        setup = priced_setup(rate="1")
        terms(setup, net_terms_days=days)
        rate(setup, "a", "1")
        invoice = settle(setup)
        assert invoice.due_at == invoice.finalized_at + timedelta(days=days)


@pytest.mark.django_db
def test_a_grace_period_keeps_the_settled_invoice_a_draft_until_the_sweep(settled):
    setup = priced_setup(rate="1")
    terms(setup, invoice_grace_hours=24, net_terms_days=10)
    rate(setup, "a", "3")
    now = timezone.now()
    draft = settle(setup, at=now, now=now)
    assert (draft.status, draft.finalized_at, draft.due_at) == ("draft", None, None)
    assert draft.finalize_after == now + timedelta(hours=24)
    assert settle(setup, at=now).pk == draft.pk  # settlement stays idempotent

    assert invoices_finalize_due(now=now + timedelta(hours=23)) == 0  # still in its grace
    assert Invoice.objects.get(pk=draft.pk).status == "draft"
    later = now + timedelta(hours=24, minutes=1)
    assert invoices_finalize_due(now=later) == 1
    final = Invoice.objects.get(pk=draft.pk)
    assert (final.status, final.finalized_at, final.due_at) == ("finalized", later, later + timedelta(days=10))
    assert final.finalize_after is None and invoices_finalize_due(now=later) == 0
    # settled's invoice (no grace) was never a draft: the sweep did not touch it
    assert Invoice.objects.get(pk=settled.invoice.pk).finalized_at == settled.invoice.finalized_at


@pytest.mark.django_db
def test_the_beat_task_finalizes_drafts_past_their_grace():
    setup = priced_setup(rate="1")
    terms(setup, invoice_grace_hours=1)
    rate(setup, "a", "3")
    past = timezone.now() - timedelta(hours=2)
    draft = settlement_run(subscription_id=setup.subscription.pk, at=timezone.now(), now=past).invoice
    assert draft.status == "draft"
    assert invoices_finalize_drafts.apply().get() == 1  # the task, run the way a worker runs it
    assert Invoice.objects.get(pk=draft.pk).status == "finalized"
    from aforo.celery import app

    assert app.conf.beat_schedule["invoice-drafts-finalize"]["task"] == "billing.tasks.invoices_finalize_drafts"


@pytest.mark.django_db
def test_finalize_now_ends_the_grace_and_is_idempotent():
    setup = priced_setup(rate="1")
    terms(setup, invoice_grace_hours=72)
    rate(setup, "a", "3")
    draft = settle(setup)
    first = invoice_finalize(invoice_id=draft.pk)
    again = invoice_finalize(invoice_id=draft.pk)
    assert (first.changed, again.changed) == (True, False)
    assert again.invoice.finalized_at == first.invoice.finalized_at and again.invoice.status == "finalized"


@pytest.mark.django_db
def test_mark_paid_once_retry_is_a_noop_other_reference_refused(settled):
    paid_at = timezone.now() - timedelta(days=1)
    first = invoice_mark_paid(invoice_id=settled.invoice.pk, reference="  TX-881 ", paid_at=paid_at)
    assert first.changed and (first.invoice.status, first.invoice.paid_at, first.invoice.payment_reference) == (
        "paid", paid_at, "TX-881"
    )
    retry = invoice_mark_paid(invoice_id=settled.invoice.pk, reference="TX-881")
    assert not retry.changed and retry.invoice.paid_at == paid_at  # the first payment's time stays
    with pytest.raises(InvoiceTransitionRefused) as refused:
        invoice_mark_paid(invoice_id=settled.invoice.pk, reference="TX-999")
    assert refused.value.code == "invoice_already_paid"
    with pytest.raises(InvoiceTransitionRefused) as refused:
        invoice_void_and_reissue(invoice=settled.invoice, reason="oops")
    assert refused.value.code == "invoice_paid"
    assert Invoice.objects.get(pk=settled.invoice.pk).status == "paid" and not CreditNote.objects.exists()


@pytest.mark.django_db
def test_payment_inputs_are_validated(settled):
    for reference, field in (("", "reference"), ("   ", "reference"), ("x" * 201, "reference"), ("a\nb", "reference"),
                             (None, "reference")):
        with pytest.raises(InvoiceInputInvalid) as invalid:
            invoice_mark_paid(invoice_id=settled.invoice.pk, reference=reference)
        assert invalid.value.field == field
    with pytest.raises(InvoiceInputInvalid) as invalid:
        invoice_mark_paid(invoice_id=settled.invoice.pk, reference="TX", paid_at=timezone.now() + timedelta(minutes=5))
    assert invalid.value.field == "paid_at"
    with pytest.raises(InvoiceInputInvalid):
        invoice_mark_uncollectible(invoice_id=settled.invoice.pk, reason="")
    assert Invoice.objects.get(pk=settled.invoice.pk).status == "finalized"


@pytest.mark.django_db
def test_uncollectible_then_a_late_payment(settled):
    written_off = invoice_mark_uncollectible(invoice_id=settled.invoice.pk, reason="customer unreachable")
    assert written_off.invoice.status == "uncollectible" and written_off.invoice.uncollectible_at is not None
    assert not invoice_mark_uncollectible(invoice_id=settled.invoice.pk, reason="customer unreachable").changed
    with pytest.raises(InvoiceTransitionRefused) as refused:
        invoice_mark_uncollectible(invoice_id=settled.invoice.pk, reason="another")
    assert refused.value.code == "invoice_already_uncollectible"
    paid = invoice_mark_paid(invoice_id=settled.invoice.pk, reference="late-1").invoice
    assert (paid.status, paid.uncollectible_reason) == ("paid", "customer unreachable")


@pytest.mark.django_db
def test_a_draft_cannot_be_paid_or_written_off():
    setup = priced_setup(rate="1")
    terms(setup, invoice_grace_hours=5)
    rate(setup, "a", "1")
    draft = settle(setup)
    for call in (lambda: invoice_mark_paid(invoice_id=draft.pk, reference="TX"),
                 lambda: invoice_mark_uncollectible(invoice_id=draft.pk, reason="x")):
        with pytest.raises(InvoiceTransitionRefused) as refused:
            call()
        assert refused.value.code == "invoice_draft"


@pytest.mark.django_db
def test_voiding_an_issued_invoice_issues_a_credit_note_numbered_gapless_per_tenant(settled):
    reissue = invoice_void_and_reissue(invoice=settled.invoice, reason="wrong address")
    note = reissue.credit_note
    slug = settled.tenant.slug.upper()[:12]
    assert (note.number, note.invoice_id, note.amount, note.currency, note.reason) == (
        f"CN-{slug}-000001", settled.invoice.pk, Decimal("5"), settled.invoice.currency, "wrong address"
    )
    # the replacement is finalized (issued now); written off, then voided: the second credit note
    invoice_mark_uncollectible(invoice_id=reissue.replacement.pk, reason="gone")
    second = invoice_void_and_reissue(invoice=reissue.replacement, reason="again").credit_note
    assert second.number == f"CN-{slug}-000002"
    # another tenant counts from 1
    other = priced_setup(rate="1")
    rate(other, "x", "1")
    third = invoice_void_and_reissue(invoice=settle(other), reason="r").credit_note
    assert third.number == f"CN-{other.tenant.slug.upper()[:12]}-000001"
    with pytest.raises(InvoiceAlreadyVoid):
        invoice_void_and_reissue(invoice=settled.invoice, reason="twice")
    assert CreditNote.objects.filter(tenant=settled.tenant).count() == 2 and ledger_verify() == []
    with pytest.raises(IntegrityError), transaction.atomic():  # once per invoice, in the database
        CreditNote.objects.create(tenant=settled.tenant, customer=settled.customer, invoice=settled.invoice,
                                  number="CN-X", currency="USD", amount=1, reason="dup")


@pytest.mark.django_db
def test_voiding_a_draft_issues_no_credit_note_and_the_replacement_stays_a_draft():
    setup = priced_setup(rate="1")
    terms(setup, invoice_grace_hours=12)
    rate(setup, "a", "2")
    draft = settle(setup)
    reissue = invoice_void_and_reissue(invoice=draft, reason="fix before it goes out")
    assert reissue.credit_note is None and not CreditNote.objects.exists()
    assert (reissue.replacement.status, reissue.replacement.finalize_after) == ("draft", draft.finalize_after)


@pytest.mark.django_db
def test_every_lifecycle_event_goes_to_the_webhook_outbox(settled):
    webhook_endpoint_create(tenant_id=settled.tenant.pk, url="https://hooks.example.com/aforo", event_types=["*"])
    invoice_mark_uncollectible(invoice_id=settled.invoice.pk, reason="gone")
    invoice_mark_paid(invoice_id=settled.invoice.pk, reference="TX-1")
    invoice_mark_paid(invoice_id=settled.invoice.pk, reference="TX-1")  # a retry: no second event
    rate(settled, "b", "1")
    setup = priced_setup(tenant=settled.tenant, rate="1")
    rate(setup, "c", "1")
    invoice = settle(setup)
    invoice_void_and_reissue(invoice=invoice, reason="r")
    events = list(WebhookDelivery.objects.order_by("id").values_list("event_type", "event_id"))
    assert events[:2] == [("invoice.uncollectible", f"invoice.uncollectible:{settled.invoice.pk}"),
                          ("invoice.paid", f"invoice.paid:{settled.invoice.pk}")]
    assert [t for t, _ in events[2:]] == ["invoice.finalized", "invoice.finalized", "invoice.voided"]
    voided = WebhookDelivery.objects.get(event_type="invoice.voided").payload["data"]
    assert voided["status"] == "void" and voided["credit_note"].startswith("CN-") and voided["reason"] == "r"
