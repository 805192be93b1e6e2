"""Settle: the invoice (its number, lines and totals), the wallet's part, and the run marked
done with its watermark — in the pipeline's one transaction."""

from __future__ import annotations

from decimal import Decimal

from django.db import connection
from django.db.models import Q, Sum

from datetime import datetime

from aforo.db import bulk_cursor, unnest_rows
from wallets.models import WalletEntry
from wallets.debits import wallet_settlement_charge

from ..invoices import lifecycle
from ..invoices.webhooks import invoice_event_emit
from ..models import Invoice, InvoiceCounter, InvoiceLine, RolloverGrant, SettlementRun
from .context import ZERO, Line, SettlementContext, round_money
from .coupons import coupon_redemptions_write
from .credit_grants import credit_grants_write

# How an invoice reads, whatever order the stages added its lines in: charges, then what reduces
# them, then discounts and taxes, then the credit grants that pay it (postpaid).
LINE_ORDER = ("usage", "late_usage", "base", "overage", "allowance", "commitment", "cap", "discount", "tax", "credit_grant")


def _number(*, tenant_id: int, slug: str) -> str:
    """The tenant's next invoice number, gapless: the counter row stays locked (by the UPDATE)
    until the settlement transaction ends, so every run of the tenant serialises from here to its
    commit. One statement once the row exists."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {InvoiceCounter._meta.db_table} SET next_number = next_number + 1 WHERE tenant_id = %s RETURNING next_number - 1",
            [tenant_id],
        )
        row = cursor.fetchone()
    if row is not None:
        number = row[0]
    else:
        counter, _ = InvoiceCounter.objects.select_for_update().get_or_create(tenant_id=tenant_id)
        number = counter.next_number
        counter.next_number += 1
        counter.save(update_fields=["next_number"])
    return f"{slug.upper()[:12]}-{number:06d}"


def wallet_key(run: SettlementRun) -> str:
    """The idempotency key of a run's wallet entry; a reissue's entries extend it."""
    return f"settlement:{run.subscription_id}:{run.period_start:%Y-%m-%dT%H:%M}:{run.kind}:{run.sequence}"


def wallet_settled(run: SettlementRun, wallet_id: int | None) -> Decimal:
    """What the run's settlement, and reissues of its invoice, took from the wallet so far (−: gave)."""
    if wallet_id is None:
        return ZERO
    key = wallet_key(run)
    taken = WalletEntry.objects.filter(
        Q(idempotency_key=key) | Q(idempotency_key__startswith=f"{key}:reissue:") | Q(idempotency_key=f"settlement:{run.pk}"),
        wallet_id=wallet_id,
    ).aggregate(total=Sum("amount"))["total"]
    return -(taken or ZERO)


def _persist(invoice: Invoice, lines: list[InvoiceLine], settlements: list[SettlementRun]) -> None:
    """The invoice, its lines and (a new settlement) its runs — one, or one per part of a
    combined invoice — in one statement, INSERTs chained by the invoice's new id: the settlement
    of a period is a handful of rows, and round trips, not the rows, were its cost."""
    tables = {model: model._meta.db_table for model in (Invoice, InvoiceLine, SettlementRun)}
    invoice_columns, invoice_rows, invoice_params = unnest_rows(Invoice, [invoice])
    line_columns, line_rows, line_params = unnest_rows(InvoiceLine, lines, skip=["invoice_id"])
    run_columns, run_rows, run_params = unnest_rows(SettlementRun, settlements, skip=["invoice_id"])
    with bulk_cursor() as cursor:
        cursor.execute(
            f"""
            WITH invoice AS (INSERT INTO {tables[Invoice]} ({invoice_columns}) SELECT * FROM {invoice_rows} RETURNING id),
            lines AS (INSERT INTO {tables[InvoiceLine]} (invoice_id, {line_columns})
                      SELECT invoice.id, l.* FROM invoice, {line_rows} AS l),
            run AS (INSERT INTO {tables[SettlementRun]} (invoice_id, {run_columns})
                    SELECT invoice.id, r.* FROM invoice, {run_rows} AS r RETURNING id, subscription_id)
            SELECT invoice.id, (SELECT json_object_agg(subscription_id, id) FROM run) FROM invoice
            """,
            [*invoice_params, *line_params, *run_params],
        )
        invoice.pk, run_ids = cursor.fetchone()
    invoice._state.adding, invoice._state.db = False, "default"
    for settlement in settlements:  # one run per subscription on an invoice
        settlement.pk, settlement.invoice = run_ids[str(settlement.subscription_id)], invoice
        settlement._state.adding, settlement._state.db = False, "default"


def _document(
    context: SettlementContext, *, wallet_key: str, reference: str, replaces: Invoice | None = None,
    finalize_after: datetime | None = None,
) -> tuple[Invoice, list[InvoiceLine]]:
    """The wallet's part (taken under `wallet_key`), then the invoice (its number still to be
    taken; a draft until `finalize_after`, else finalized now) and its lines, unsaved."""
    subscription = context.subscription
    taken = ZERO
    if context.wallet_now:
        taken = wallet_settlement_charge(
            tenant_id=subscription.tenant_id, customer_id=subscription.customer_id, currency=context.currency,
            amount=context.wallet_now, at_most_available=subscription.billing_mode == "hybrid",
            idempotency_key=wallet_key, reference=reference, now=context.now,
        )
        context.amount_due += context.wallet_now - taken  # hybrid: what the wallet no longer had
    total = context.total()
    # Real-time debits are exact, so what remains due can carry fractions of a cent: it is
    # rounded once like a line, and the invoice shows the wallet's part as total − amount due.
    context.amount_due = round_money(context.amount_due, context.currency)
    invoice = Invoice(
        tenant_id=subscription.tenant_id, customer_id=subscription.customer_id, subscription_id=subscription.id,
        currency=context.currency, period_start=context.period_start, period_end=context.period_end,
        subtotal=context.total("usage", "late_usage", "base", "commitment", "cap"),
        discount_total=-context.total("discount"), tax_total=context.total("tax"), total=total,
        wallet_applied=total - context.amount_due, amount_due=context.amount_due, issued_at=context.now, replaces=replaces,
    )
    _issue(invoice, context, finalize_after=finalize_after)
    lines = [
        InvoiceLine(
            position=position, kind=line.kind, description=line.description[:300], metric_id=line.metric_id,
            dimension_key=line.dimension_key, period_start=line.period_start, units=line.units, event_count=line.event_count,
            amount_unrounded=line.amount_unrounded, amount=line.amount, rated_from_id=line.rated_from_id,
            rated_to_id=line.rated_to_id, subscription_id=line.subscription_id, part=line.part[:200],
            trial=line.trial,
        )
        for position, line in enumerate(lines_ordered(context), start=1)
    ]
    context.log("settle", total=total, wallet_taken=taken, amount_due=context.amount_due)
    return invoice, lines


def lines_ordered(context: SettlementContext) -> list[Line]:
    """The invoice's lines in print order (pure): kind by kind (LINE_ORDER); on a combined
    invoice part by part first (the parts' order: oldest first, the primary last), then the
    lines of the whole invoice (coupons, taxes)."""
    order = {subscription_id: index for index, subscription_id in enumerate(
        [*(part.subscription.id for part in context.parts), context.subscription.id]
    )} if context.parts else {}
    whole = len(order)

    def key(line: Line) -> tuple[int, int]:
        group = (order.get(line.subscription_id, whole) if line.part else whole) if order else 0
        return group, LINE_ORDER.index(line.kind)

    return sorted(context.lines, key=key)


def _issue(invoice: Invoice, context: SettlementContext, *, finalize_after: datetime | None) -> None:
    """Draft until `finalize_after` (the subscription's grace), or finalized now with its due
    date from the net terms. Only the document's status: the wallet's part is taken either way."""
    if finalize_after is not None and finalize_after > context.now:
        invoice.status, invoice.finalize_after = Invoice.Status.DRAFT, finalize_after
        return
    invoice.status, invoice.finalized_at = Invoice.Status.FINALIZED, context.now
    invoice.due_at = lifecycle.due_date(finalized_at=context.now, net_terms_days=context.subscription.net_terms_days)


def _numbered(context: SettlementContext, invoice: Invoice) -> None:
    """The invoice's number, taken as late as possible: the tenant's counter row stays locked
    from here to the commit, and every settlement of the tenant waits for it."""
    invoice.number = _number(tenant_id=invoice.tenant_id, slug=context.inputs.tenant_slug)
    stage, *rest = context.stages[-1].items()
    context.stages[-1] = dict([stage, ("invoice", invoice.number), *rest])  # the settle log names it first


def _run_of(context: SettlementContext) -> SettlementRun:
    subscription = context.subscription
    return SettlementRun(
        tenant_id=subscription.tenant_id, subscription_id=subscription.id, period_start=context.period_start,
        period_end=context.period_end, kind=context.kind, watermark=context.watermark, created_at=context.now,
        sequence=0 if context.final else context.inputs.interim_count(context.period_start) + 1,
    )


def run(context: SettlementContext, *, parts: list[SettlementContext] = ()) -> SettlementRun:
    """The wallet's part, the invoice and its lines, then the invoice number (as late as
    possible: the counter row stays locked until the commit), and last the invoice, lines and
    run in one statement, the run complete with its stage log (the unique constraint on the run
    still guards the period). A combined invoice (`parts`: the period's other parts, each with
    its stage log) gets one run per part; `context`'s — the primary's, returned — holds the
    wallet's part (its key) and the invoice's stages."""
    subscription = context.subscription
    settlement = _run_of(context)
    reference = f"settlement of the period from {context.period_start:%Y-%m-%d}" + ("" if context.final else f" (interim {settlement.sequence})")
    grace_end = lifecycle.finalize_after(settled_at=context.now, grace_hours=subscription.invoice_grace_hours)
    invoice, lines = _document(context, wallet_key=wallet_key(settlement), reference=reference, finalize_after=grace_end)
    _numbered(context, invoice)
    settlement.stages = context.stages
    others = [_run_of(part) for part in parts]
    for other, part in zip(others, parts, strict=True):
        other.stages = [*part.stages, {"stage": "settle", "invoice": invoice.number, "part": part.part,
                                       "combined_with": subscription.id}]
    _persist(invoice, lines, [*others, settlement])
    coupon_redemptions_write(context, invoice)
    credit_grants_write(context, invoice, key=wallet_key(settlement))
    for other, part in zip(others, parts, strict=True):
        _carry_forward_write(part, other)
    _carry_forward_write(context, settlement)
    _invoice_finalized(invoice, kind=settlement.kind)
    return settlement


def _invoice_finalized(invoice: Invoice, *, kind: str) -> None:
    """invoice.finalized to the tenant's webhook endpoints, after the settlement commits; a
    draft tells them when it is finalized (billing.invoices.services.invoice_finalize)."""
    if invoice.status == Invoice.Status.FINALIZED:
        invoice_event_emit(invoice=invoice, event_type="invoice.finalized", kind=kind)


def _carry_forward_write(context: SettlementContext, settlement: SettlementRun) -> None:
    """The run's rollover carry-forward (its complete carried balance: the Rollover stage's
    lots), with the run, in the settlement's transaction."""
    if context.carry_forward:
        RolloverGrant.objects.bulk_create(
            RolloverGrant(
                tenant_id=settlement.tenant_id, run=settlement, subscription_id=settlement.subscription_id,
                metric_id=lot.metric_id, earned_period_start=lot.earned_period_start,
                last_period_start=lot.last_period_start, units=lot.units,
            )
            for lot in context.carry_forward
        )


def reissue(context: SettlementContext, *, settlement: SettlementRun, voided: Invoice) -> Invoice:
    """The replacement of `voided`, recomputed by `context` (settlement_recompute): a new number,
    `replaces` = voided; the wallet takes or gives back only the difference (keyed per voided
    invoice, so it happens once). The replacement of a draft is a draft until the same moment;
    of an issued invoice, finalized now. `settlement`: the run whose wallet key the invoice's
    wallet entries extend (a combined invoice's primary run; `context.parts` the other parts).
    The caller voids the old document and moves the runs."""
    invoice, lines = _document(
        context, wallet_key=f"{wallet_key(settlement)}:reissue:{voided.pk}", reference=f"reissue of invoice {voided.number}",
        replaces=voided, finalize_after=voided.finalize_after if voided.status == Invoice.Status.DRAFT else None,
    )
    _numbered(context, invoice)
    _persist(invoice, lines, [])
    coupon_redemptions_write(context, invoice)
    credit_grants_write(context, invoice, key=f"{wallet_key(settlement)}:reissue:{voided.pk}")
    _invoice_finalized(invoice, kind=f"reissue of {voided.number}")
    return invoice
