"""Discount: the subscription's discounts in order — percent of what remains, or a fixed amount
(on the final run only: once per period) — never taking the subtotal below zero."""

from __future__ import annotations

from decimal import Decimal

from ..models import Discount
from .context import ZERO, Line, SettlementContext, round_money


def run(context: SettlementContext) -> None:
    remaining = context.total()
    applied = []
    for discount in context.inputs.discounts:
        if discount.kind == Discount.Kind.PERCENT:
            amount = round_money(remaining * discount.value / Decimal(100), context.currency)
        elif context.final:
            amount = discount.value
        else:
            continue
        amount = min(amount, remaining)
        if amount <= ZERO:
            continue
        label = discount.description or (f"{discount.value}% off" if discount.kind == Discount.Kind.PERCENT else "Discount")
        context.add(Line(kind="discount", description=label, amount_unrounded=-amount))
        remaining += context.lines[-1].amount  # negative, rounded
        applied.append(str(amount))
    context.log("discount", applied=applied, subtotal=remaining)
