"""Credit notes: issued, inside the void's transaction (billing.invoicing), for an invoice the
customer was issued (finalized or uncollectible). Numbered gapless per tenant from their own
counter row, which stays locked (by the UPDATE) until that transaction ends, exactly as
invoice numbers are (billing.settlement.settle)."""

from __future__ import annotations

from datetime import datetime

from django.db import connection

from ..models import CreditNote, CreditNoteCounter, Invoice


def credit_note_number(*, tenant_id: int, slug: str) -> str:
    """The tenant's next credit note number: CN-<SLUG>-000001, then 000002, … with no gaps
    (the counter moves only in a transaction that also writes the credit note)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {CreditNoteCounter._meta.db_table} SET next_number = next_number + 1 WHERE tenant_id = %s "
            "RETURNING next_number - 1",
            [tenant_id],
        )
        row = cursor.fetchone()
    if row is not None:
        number = row[0]
    else:
        counter, _ = CreditNoteCounter.objects.select_for_update().get_or_create(tenant_id=tenant_id)
        number = counter.next_number
        counter.next_number += 1
        counter.save(update_fields=["next_number"])
    return f"CN-{slug.upper()[:12]}-{number:06d}"


def credit_note_issue(*, invoice: Invoice, reason: str, now: datetime) -> CreditNote:
    """The credit note of a voided `invoice`: its whole total, in its currency. The caller holds
    the invoice's row lock inside a transaction; the unique invoice makes it once per invoice."""
    return CreditNote.objects.create(
        tenant_id=invoice.tenant_id, customer_id=invoice.customer_id, invoice=invoice,
        number=credit_note_number(tenant_id=invoice.tenant_id, slug=invoice.tenant.slug),
        currency=invoice.currency, amount=invoice.total, reason=reason, created_at=now,
    )
