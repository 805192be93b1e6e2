"""Settle: the invoice (its number, lines and totals), the wallet's part, and the run marked
done with its watermark — in the pipeline's one transaction."""

from __future__ import annotations

from django.db import connection

from catalog.models import Tenant
from wallets.services import wallet_settlement_charge

from ..models import Invoice, InvoiceCounter, InvoiceLine, SettlementRun
from .context import ZERO, SettlementContext, round_money


def _number(tenant: Tenant) -> str:
    """The tenant's next invoice number, gapless: the counter row stays locked (by the UPDATE)
    until the settlement transaction ends, so every run of the tenant serialises from here to its
    commit. One statement once the row exists."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {InvoiceCounter._meta.db_table} SET next_number = next_number + 1 WHERE tenant_id = %s RETURNING next_number - 1",
            [tenant.pk],
        )
        row = cursor.fetchone()
    if row is not None:
        number = row[0]
    else:
        counter, _ = InvoiceCounter.objects.select_for_update().get_or_create(tenant=tenant)
        number = counter.next_number
        counter.next_number += 1
        counter.save(update_fields=["next_number"])
    return f"{tenant.slug.upper()[:12]}-{number:06d}"


def run(context: SettlementContext) -> SettlementRun:
    subscription = context.subscription
    settlement = SettlementRun.objects.create(
        tenant_id=subscription.tenant_id, subscription=subscription, period_start=context.period_start,
        period_end=context.period_end, kind=context.kind,
        sequence=0 if context.final else SettlementRun.objects.filter(
            subscription=subscription, period_start=context.period_start, kind="interim"
        ).count() + 1,
        watermark=context.watermark, created_at=context.now,
    )
    number = _number(subscription.tenant)
    taken = ZERO
    if context.wallet_now:
        taken = wallet_settlement_charge(
            tenant_id=subscription.tenant_id, customer_id=subscription.customer_id, currency=context.currency,
            amount=context.wallet_now, at_most_available=subscription.billing_mode == "hybrid",
            idempotency_key=f"settlement:{settlement.pk}", reference=f"invoice {number}", now=context.now,
        )
        context.amount_due += context.wallet_now - taken  # hybrid: what the wallet no longer had
    total = context.total()
    # Real-time debits are exact, so what remains due can carry fractions of a cent: it is
    # rounded once like a line, and the invoice shows the wallet's part as total − amount due.
    context.amount_due = round_money(context.amount_due, context.currency)
    invoice = Invoice.objects.create(
        tenant_id=subscription.tenant_id, customer_id=subscription.customer_id, subscription=subscription, number=number,
        currency=context.currency, period_start=context.period_start, period_end=context.period_end,
        subtotal=context.total("usage", "late_usage", "base", "commitment", "cap"),
        discount_total=-context.total("discount"), tax_total=context.total("tax"), total=total,
        wallet_applied=total - context.amount_due, amount_due=context.amount_due, issued_at=context.now,
    )
    InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=invoice, position=position, kind=line.kind, description=line.description[:300], metric_id=line.metric_id,
            dimension_key=line.dimension_key, period_start=line.period_start, units=line.units, event_count=line.event_count,
            amount_unrounded=line.amount_unrounded, amount=line.amount, rated_from_id=line.rated_from_id,
            rated_to_id=line.rated_to_id,
        )
        for position, line in enumerate(context.lines, start=1)
    )
    context.log("settle", invoice=number, total=total, wallet_taken=taken, amount_due=context.amount_due)
    settlement.invoice = invoice
    settlement.stages = context.stages
    settlement.save(update_fields=["invoice", "stages"])
    return settlement
