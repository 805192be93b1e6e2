"""The invoice lifecycle's webhook events (invoice.finalized, invoice.paid, invoice.voided,
invoice.uncollectible) through notify's outbox: recorded in the caller's transaction, sent
after it commits. Each happens at most once per invoice, so its event id is the type and the
invoice id (receivers deduplicate on it)."""

from __future__ import annotations

from typing import Any

from aforo.money import decimal_text
from notify.services import webhook_event_emit

from ..models import Invoice


def _iso(moment) -> str | None:
    return None if moment is None else moment.isoformat()


def invoice_event_emit(*, invoice: Invoice, event_type: str, **extra: Any) -> None:
    """`event_type` about `invoice` to the tenant's endpoints that want it, with the invoice's
    figures and lifecycle dates and `extra`."""
    webhook_event_emit(
        tenant_id=invoice.tenant_id, event_type=event_type, event_id=f"{event_type}:{invoice.pk}",
        data={
            "invoice_id": invoice.pk, "number": invoice.number, "status": invoice.status,
            "customer_id": invoice.customer_id, "subscription_id": invoice.subscription_id,
            "currency": invoice.currency, "total": decimal_text(invoice.total),
            "amount_due": decimal_text(invoice.amount_due), "period_start": invoice.period_start.isoformat(),
            "period_end": invoice.period_end.isoformat(), "replaces": invoice.replaces_id,
            "finalized_at": _iso(invoice.finalized_at), "due_at": _iso(invoice.due_at), **extra,
        },
    )
