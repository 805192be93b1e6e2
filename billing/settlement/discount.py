"""Discount: the subscription's discounts in force for the period (billing.models.terms), in
order — a percentage of what remains, or a fixed amount (on the final run only: once per
period) — of the whole invoice, or of one metric's lines; never taking the invoice, or the
metric's lines, below zero."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from aforo.money import decimal_text, quantize_to_minor_unit

from ..models import Discount
from ..periods import term_applies
from .context import ZERO, Line, SettlementContext, round_money


def in_force(context: SettlementContext, term) -> bool:
    """Whether an effective-dated term applies to the context's period (a term without a start
    applies from the subscription's)."""
    subscription = context.subscription
    return term_applies(
        cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, period_start=context.period_start,
        starts_at=term.starts_at or subscription.started_at or subscription.billing_anchor, ends_at=term.ends_at,
        periods=getattr(term, "periods", None),
    )


def _label(discount: Discount, codes: dict[int, str]) -> str:
    if discount.description:
        return discount.description
    text = f"{decimal_text(discount.value)}% off" if discount.kind == Discount.Kind.PERCENT else "Discount"
    return f"{text} {codes.get(discount.metric_id, discount.metric_id)}" if discount.metric_id else text


def run(context: SettlementContext) -> None:
    remaining = context.total()
    per_metric: dict[int, Decimal] = {}
    for line in context.lines:
        if line.metric_id is not None:
            per_metric[line.metric_id] = per_metric.get(line.metric_id, ZERO) + line.amount
    applied = []
    for discount in context.inputs.discounts:
        if discount.starts_at is not None or discount.ends_at is not None or discount.periods is not None:
            if not in_force(context, discount):
                continue
        base = remaining if discount.metric_id is None else min(remaining, per_metric.get(discount.metric_id, ZERO))
        if discount.kind == Discount.Kind.PERCENT:
            amount = round_money(base * discount.value / Decimal(100), context.currency)
        elif context.final:
            amount = context.prorated(discount.value)  # a fixed amount per period: its share of a partial one
        else:
            continue
        amount = min(amount, base)
        if amount <= ZERO:
            continue
        line = context.add(
            Line(kind="discount", description=_label(discount, context.inputs.metric_codes), amount_unrounded=-amount,
                 metric_id=discount.metric_id)
        )
        remaining += line.amount  # negative, rounded
        if discount.metric_id is not None:
            per_metric[discount.metric_id] += line.amount
        applied.append(str(amount) if discount.metric_id is None else f"{amount} on {discount.metric_id}")
    remaining = apply_coupons(context, remaining)
    context.log("discount", applied=applied, coupons=[f"{c} from {i}" for i, c in context.coupon_redemptions], subtotal=remaining)


def apply_coupons(context: SettlementContext, remaining: Decimal) -> Decimal:
    """The customer's coupons after the discounts, soonest-expiring first, each taking what it
    has left (to the currency's minor unit) up to what remains of the invoice; the rest of a
    coupon carries over to later invoices."""
    for coupon in context.coupons:
        if remaining <= ZERO:
            break
        # Down to the minor unit: a coupon never gives more than it has.
        take = min(quantize_to_minor_unit(coupon.remaining, context.currency, rounding=ROUND_DOWN, default=2), remaining)
        if take <= ZERO:
            continue
        left = coupon.remaining - take
        line = context.add(Line(
            kind="discount", description=f"Coupon {coupon.label}: {take} applied, {left.normalize():f} left",
            amount_unrounded=-take,
        ))
        remaining += line.amount
        context.coupon_redemptions.append((coupon.coupon_id, take))
    return remaining

