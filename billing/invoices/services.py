"""The invoice lifecycle's writes: finalize (a draft, now), mark paid, mark uncollectible, and
the beat's sweep of drafts whose grace is over. Each is lock → pure plan → write: one durable
transaction takes the invoice's row lock, asks billing.invoices.lifecycle.transition_plan what
the move is (a new status, a no-op retry, or a refusal with a stable code), writes it, and
records the webhook event (sent after the commit). Voiding is billing.invoicing (it reissues)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from catalog.terms import terms_version_for_period

from . import lifecycle
from ..models import Invoice
from .webhooks import invoice_event_emit

REFERENCE_MAX, REASON_MAX = 200, 300


class InvoiceInputInvalid(ValueError):
    """An argument a person typed is not acceptable; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InvoiceTransitionRefused(Exception):
    """The move is not allowed from the invoice's status (or contradicts what happened): `code`
    is stable (billing.invoices.lifecycle), the message says why."""

    def __init__(self, invoice: Invoice, code: str, message: str) -> None:
        super().__init__(f"invoice {invoice.number}: {message}")
        self.invoice = invoice
        self.code = code
        self.message = f"Invoice {invoice.number}: {message}"


@dataclass
class InvoiceChange:
    invoice: Invoice  # as it is after the call (re-read)
    changed: bool  # False: a retry of what had happened already (a no-op)


def invoice_text_check(value: object, *, field: str, max_length: int) -> str:
    """A payment reference or a reason: non-empty once stripped, printable, at most max_length."""
    if not isinstance(value, str) or not value.strip():
        raise InvoiceInputInvalid(field, "required: a non-empty text.")
    value = value.strip()
    if len(value) > max_length:
        raise InvoiceInputInvalid(field, f"at most {max_length} characters (got {len(value)}).")
    if not value.isprintable():
        raise InvoiceInputInvalid(field, "printable characters only (no control characters or line breaks).")
    return value


def paid_at_check(paid_at: datetime | None, *, now: datetime) -> datetime:
    """When the payment arrived: timezone-aware, not in the future; default now."""
    if paid_at is None:
        return now
    if timezone.is_naive(paid_at):
        raise InvoiceInputInvalid("paid_at", "a date-time with a timezone (e.g. 2026-11-30T10:00:00Z).")
    if paid_at > now:
        raise InvoiceInputInvalid("paid_at", f"must not be in the future (now is {now.isoformat()}).")
    return paid_at


def _planned(invoice_id: int, action: str, **inputs: str) -> tuple[Invoice, lifecycle.Transition]:
    """The invoice under its row lock and the plan of `action` on it (refusals raised)."""
    # Only the invoice row (of=self): the joined subscription stays unlocked, so this never
    # orders itself against settlement and void, which lock the subscription first.
    invoice = Invoice.objects.select_for_update(of=("self",)).select_related("subscription").get(pk=invoice_id)
    state = lifecycle.InvoiceState(
        status=invoice.status, payment_reference=invoice.payment_reference,
        uncollectible_reason=invoice.uncollectible_reason,
    )
    plan = lifecycle.transition_plan(state, action=action, **inputs)
    if plan.refused:
        raise InvoiceTransitionRefused(invoice, plan.refused, plan.message)
    return invoice, plan


def _write(invoice: Invoice, event_type: str, **fields) -> None:
    for name, value in fields.items():
        setattr(invoice, name, value)
    invoice.save(update_fields=list(fields))
    invoice_event_emit(invoice=invoice, event_type=event_type)


def invoice_finalize(*, invoice_id: int, now: datetime | None = None) -> InvoiceChange:
    """Finalize a draft now (whatever its grace): finalized_at = now, due_at from the
    subscription's net terms; invoice.finalized is sent. A finalized (or paid, uncollectible)
    invoice is left as it is; a void one is refused (`invoice_void`)."""
    now = now or timezone.now()
    with transaction.atomic(durable=True):
        invoice, plan = _planned(invoice_id, lifecycle.FINALIZE)
        if plan.is_noop:
            return InvoiceChange(invoice, False)
        # Net terms of the version governing the invoice's period (catalog.terms), like its lines.
        version = terms_version_for_period(subscription=invoice.subscription, period_start=invoice.period_start)
        net_terms_days = (version or invoice.subscription).net_terms_days
        due_at = lifecycle.due_date(finalized_at=now, net_terms_days=net_terms_days)
        _write(invoice, "invoice.finalized", status=plan.to, finalized_at=now, due_at=due_at, finalize_after=None)
    return InvoiceChange(invoice, True)


def invoice_mark_paid(
    *, invoice_id: int, reference: object, paid_at: datetime | None = None, now: datetime | None = None
) -> InvoiceChange:
    """Record the payment of a finalized (or uncollectible: a late payment) invoice with its
    reference and time (default now; never in the future). Paying it again with the same
    reference is a no-op; with another, InvoiceTransitionRefused `invoice_already_paid`."""
    now = now or timezone.now()
    reference = invoice_text_check(reference, field="reference", max_length=REFERENCE_MAX)
    paid_at = paid_at_check(paid_at, now=now)
    with transaction.atomic(durable=True):
        invoice, plan = _planned(invoice_id, lifecycle.PAY, reference=reference)
        if plan.is_noop:
            return InvoiceChange(invoice, False)
        _write(invoice, "invoice.paid", status=plan.to, paid_at=paid_at, payment_reference=reference)
    return InvoiceChange(invoice, True)


def invoice_mark_uncollectible(*, invoice_id: int, reason: object, now: datetime | None = None) -> InvoiceChange:
    """Write off a finalized invoice (it stays owed: a late payment can still mark it paid).
    Again with the same reason: a no-op; with another, `invoice_already_uncollectible`."""
    now = now or timezone.now()
    reason = invoice_text_check(reason, field="reason", max_length=REASON_MAX)
    with transaction.atomic(durable=True):
        invoice, plan = _planned(invoice_id, lifecycle.MARK_UNCOLLECTIBLE, reason=reason)
        if plan.is_noop:
            return InvoiceChange(invoice, False)
        _write(invoice, "invoice.uncollectible", status=plan.to, uncollectible_at=now, uncollectible_reason=reason)
    return InvoiceChange(invoice, True)


def invoices_finalize_due(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Finalize the drafts whose grace is over (finalize_after <= now), up to `batch_size`,
    oldest first, each in its own transaction (one slow or refused invoice holds up no other:
    a draft voided meanwhile is skipped). Returns how many were finalized."""
    now = now or timezone.now()
    due = list(
        Invoice.objects.filter(status=Invoice.Status.DRAFT, finalize_after__lte=now)
        .order_by("finalize_after", "id")
        .values_list("id", flat=True)[:batch_size]
    )
    finalized = 0
    for invoice_id in due:
        try:
            finalized += invoice_finalize(invoice_id=invoice_id, now=now).changed
        except InvoiceTransitionRefused:
            continue
    return finalized
