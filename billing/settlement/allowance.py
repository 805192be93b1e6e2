"""Allowance: the rolled-over units the Rollover stage drew for a metric, applied to the
period's usage of it and priced with the events' config snapshot (the aggregate's), per
dimension key in key order: credit = quote(used) − quote(max(used − allowance, 0)), with `used`
the key's units of the whole period up to the watermark. A negative `allowance` line per key,
never below zero and never more than that key's usage line. Per-transaction models
(percentage) price transactions, not units: they take no allowance (logged as skipped)."""

from __future__ import annotations

from billing.rating import compile_config, text

from .context import ZERO, Line, SettlementContext


def _apply(context: SettlementContext, metric_id: int, units) -> dict:
    remaining, credited, skipped = units, ZERO, []
    aggregates = sorted(
        (a for a in context.aggregates if a.metric_id == metric_id and not a.late), key=lambda a: a.dimension_key
    )
    for aggregate in aggregates:
        if remaining <= ZERO:
            break
        model = compile_config(aggregate.config).for_key(aggregate.dimension_key)
        if model.uses_events:
            skipped.append(aggregate.dimension_key)
            continue
        used = context.period_units.get((metric_id, aggregate.dimension_key), aggregate.units)
        applied = min(used, remaining)
        credit = model.quote(used) - model.quote(max(used - remaining, ZERO))
        credit = max(min(credit, aggregate.amount), ZERO)
        remaining -= applied
        if credit > ZERO:
            where = f" ({aggregate.dimension_key})" if aggregate.dimension_key else ""
            context.add(
                Line(
                    kind="allowance", description=f"{aggregate.metric_code}{where}: {text(applied)} rolled-over units applied",
                    amount_unrounded=-credit, metric_id=metric_id, dimension_key=aggregate.dimension_key,
                    period_start=aggregate.period_start, units=applied,
                )
            )
            credited += credit
    return {"metric_id": metric_id, "units": text(units), "unapplied": text(remaining), "credit": text(credited), "skipped": skipped}


def run(context: SettlementContext) -> None:
    if not context.allowances:
        return  # silent unless Rollover handed over units
    applied = [_apply(context, metric_id, units) for metric_id, units in sorted(context.allowances.items())]
    context.log("allowance", applied=applied)
