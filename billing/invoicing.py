"""Invoice corrections. A finalized invoice never changes: voiding it is the only change it
takes (status, voided_at, void_reason), and a new document — a new number, `replaces` pointing
to the voided one — takes its place as its settlement run's invoice.

Reissue copies the voided invoice's lines and figures exactly (not a recomputation): the
settlement stages cannot be replayed for an already-settled range without re-reading runs that
now exist, so a correction whose amounts differ (a discount or tax fix) is left to the
operator, typically a wallet adjustment or a credit on the next invoice. Because the totals are
identical, reissue makes no wallet entry, and every ledger invariant (line sums, usage
coverage: void invoices' lines are ignored) still holds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .models import Invoice, InvoiceLine, SettlementRun
from .settlement.settle import _number as invoice_number_take

COPIED_FIELDS = (
    "tenant_id", "customer_id", "subscription_id", "currency", "period_start", "period_end", "subtotal",
    "discount_total", "tax_total", "total", "wallet_applied", "amount_due",
)
LINE_FIELDS = (
    "position", "kind", "description", "metric_id", "dimension_key", "period_start", "units", "event_count",
    "amount_unrounded", "amount", "rated_from_id", "rated_to_id",
)


class InvoiceAlreadyVoid(Exception):
    """The invoice was voided already; `replacement` is the invoice that reissued it."""

    def __init__(self, invoice: Invoice, replacement: Invoice | None) -> None:
        super().__init__(f"invoice {invoice.number} is void already")
        self.invoice = invoice
        self.replacement = replacement


@dataclass
class Reissue:
    voided: Invoice
    replacement: Invoice


def invoice_void_and_reissue(*, invoice: Invoice, reason: str, now: datetime | None = None) -> Reissue:
    """Void `invoice` and issue its replacement (same lines and figures, new number,
    `replaces` = the voided one); its settlement run moves to the replacement. One durable
    transaction; the invoice row is locked and its status re-checked under the lock, so two
    concurrent voids make one replacement: the second raises InvoiceAlreadyVoid naming it."""
    now = now or timezone.now()
    reason = reason.strip()[:300]
    with transaction.atomic(durable=True):
        voided = Invoice.objects.select_for_update().select_related("tenant").get(pk=invoice.pk)
        if voided.status == Invoice.Status.VOID:
            raise InvoiceAlreadyVoid(voided, Invoice.objects.filter(replaces=voided).first())
        replacement = Invoice.objects.create(
            **{name: getattr(voided, name) for name in COPIED_FIELDS},
            number=invoice_number_take(tenant_id=voided.tenant_id, slug=voided.tenant.slug), status=Invoice.Status.FINALIZED, replaces=voided, issued_at=now,
        )
        InvoiceLine.objects.bulk_create(
            InvoiceLine(invoice=replacement, **{name: getattr(line, name) for name in LINE_FIELDS})
            for line in voided.lines.order_by("position")
        )
        Invoice.objects.filter(pk=voided.pk).update(status=Invoice.Status.VOID, voided_at=now, void_reason=reason)
        SettlementRun.objects.filter(invoice=voided).update(invoice=replacement)
        voided.refresh_from_db()
    return Reissue(voided, replacement)
