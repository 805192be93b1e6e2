"""Tax: each of the customer's tax rates on the discounted subtotal, side by side (not compounding)."""

from __future__ import annotations

from decimal import Decimal

from ..models import TaxRate
from .context import Line, SettlementContext


def run(context: SettlementContext) -> None:
    base = context.total()
    rates = list(TaxRate.objects.filter(customer_id=context.subscription.customer_id).order_by("id"))
    for rate in rates:
        context.add(Line(kind="tax", description=f"{rate.name} {rate.percent}% of {base}", amount_unrounded=base * rate.percent / Decimal(100)))
    context.log("tax", base=base, rates=[f"{r.name} {r.percent}%" for r in rates], tax=context.total("tax"))
