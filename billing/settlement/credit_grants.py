"""Credit grants on a postpaid invoice: after tax, the customer's usable credit grants in the
invoice's currency pay it, in (priority, soonest expiry, oldest) order, each up to what it has
left (down to the minor unit) and never below zero — one "Credit grant <name>" line each,
reducing the amount due. Prepaid and hybrid subscriptions' grants are consumed by the wallet's
debits instead (in real time and by Route's wallet part), never here.

The read locks the wallet and its grants (wallets.grants.credit_grants_for_invoice); the write,
after the invoice exists, is one `grant_use` entry per grant (credit_grants_invoice_settle). A
reissue reads the grants as if the voided invoice's parts were back, and its write gives them
back first (`grant_return`), then takes again: void gives back, reissue retakes, once (keyed)."""

from __future__ import annotations

from decimal import ROUND_DOWN

from aforo.money import decimal_text, quantize_to_minor_unit
from wallets.grants import credit_grants_for_invoice, credit_grants_invoice_settle

from ..models import Invoice
from .context import ZERO, Line, SettlementContext


def credit_grants_read(context: SettlementContext, *, giving_back: int | None = None) -> None:
    """The usable grants of a postpaid subscription's customer, locked, with what each has left
    (plus what `giving_back`, a voided invoice, took from it)."""
    if context.subscription.billing_mode != "postpaid":
        return
    context.credit_grants = credit_grants_for_invoice(
        customer_id=context.subscription.customer_id, currency=context.currency, now=context.now, giving_back=giving_back
    )
    context.credit_grants_giving_back = giving_back


def run(context: SettlementContext) -> None:
    remaining = context.total()
    for grant in context.credit_grants:
        if remaining <= ZERO:
            break
        take = min(quantize_to_minor_unit(grant.remaining, context.currency, rounding=ROUND_DOWN, default=2), remaining)
        if take <= ZERO:
            continue
        left = grant.remaining - take
        line = context.add(Line(
            kind="credit_grant", description=f"Credit grant {grant.name}: {take} applied, {decimal_text(left)} left",
            amount_unrounded=-take,
        ))
        remaining += line.amount
        context.credit_grant_draws.append((grant.grant_id, take))
    if context.credit_grants:
        context.log("credit_grants", applied=[f"{amount} from {grant_id}" for grant_id, amount in context.credit_grant_draws],
                    total=remaining)


def credit_grants_write(context: SettlementContext, invoice: Invoice, *, key: str) -> None:
    """The invoice's grant parts (and a reissue's give-back of the voided invoice's), in the
    settlement's transaction, after the invoice is persisted."""
    if context.subscription.billing_mode != "postpaid":
        return
    credit_grants_invoice_settle(
        tenant_id=invoice.tenant_id, customer_id=invoice.customer_id, currency=invoice.currency, invoice_id=invoice.pk,
        draws=context.credit_grant_draws, key=f"grant:{key}", reference=f"invoice {invoice.number}", now=context.now,
        giving_back=context.credit_grants_giving_back,
    )
