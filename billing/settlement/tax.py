"""Tax: the customer's tax rates in force for the period, on the discounted subtotal, side by side
(not compounding). A rate with a metric applies to that metric's lines instead of the general
rates (a jurisdiction taxing one service differently): the lines are split into the parts each
set of rates taxes — one part per metric that has rates of its own, the rest in the general
part — each part with its own lines' discounts, and the invoice-wide discounts shared among the
parts in proportion to their amounts before them. Without metric rates: one part, the whole
discounted subtotal, as before."""

from __future__ import annotations

from decimal import Decimal

from aforo.money import decimal_text

from .context import ZERO, Line, SettlementContext
from .discount import in_force


def _parts(context: SettlementContext, metrics: set[int]) -> dict[int | None, Decimal]:
    """Part (a metric with its own rates, or None) → its taxable amount (unrounded share of the
    invoice-wide discounts)."""
    own: dict[int | None, Decimal] = {}
    shared = ZERO
    for line in context.lines:
        if line.kind == "discount" and line.metric_id is None:
            shared += line.amount
            continue
        part = line.metric_id if line.metric_id in metrics else None
        own[part] = own.get(part, ZERO) + line.amount
    gross = sum((amount for amount in own.values() if amount > ZERO), ZERO)
    if shared and gross:
        return {part: amount + (shared * amount / gross if amount > ZERO else ZERO) for part, amount in own.items()}
    return own


def run(context: SettlementContext) -> None:
    rates = [
        rate for rate in context.inputs.tax_rates
        if (rate.starts_at is None and rate.ends_at is None) or in_force(context, rate)
    ]
    by_metric = {rate.metric_id for rate in rates if rate.metric_id is not None}
    if not by_metric:
        base = context.total()
        for rate in rates:
            context.add(Line(kind="tax", description=f"{rate.name} {decimal_text(rate.percent)}% of {base}", amount_unrounded=base * rate.percent / Decimal(100)))
        context.log("tax", base=base, rates=[f"{r.name} {r.percent}%" for r in rates], tax=context.total("tax"))
        return
    parts = _parts(context, by_metric)
    codes = context.inputs.metric_codes
    bases = {}
    for part, amount in sorted(parts.items(), key=lambda item: (item[0] is not None, item[0] or 0)):
        base = max(amount, ZERO).quantize(Decimal("0.000001"))
        bases["general" if part is None else codes.get(part, str(part))] = base
        for rate in rates:
            if rate.metric_id != part:
                continue
            where = "" if part is None else f" {codes.get(part, part)}"
            context.add(Line(
                kind="tax", description=f"{rate.name} {decimal_text(rate.percent)}% of {base}{where}",
                amount_unrounded=base * rate.percent / Decimal(100), metric_id=part,
            ))
    context.log("tax", bases=bases, rates=[f"{r.name} {r.percent}%" + (f" ({r.metric_id})" if r.metric_id else "") for r in rates], tax=context.total("tax"))
