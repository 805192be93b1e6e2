"""Tax: each of the customer's tax rates on the discounted subtotal, side by side (not compounding)."""

from __future__ import annotations

from decimal import Decimal

from .context import Line, SettlementContext


def run(context: SettlementContext) -> None:
    base = context.total()
    rates = context.inputs.tax_rates
    for rate in rates:
        context.add(Line(kind="tax", description=f"{rate.name} {rate.percent}% of {base}", amount_unrounded=base * rate.percent / Decimal(100)))
    context.log("tax", base=base, rates=[f"{r.name} {r.percent}%" for r in rates], tax=context.total("tax"))
