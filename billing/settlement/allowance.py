"""Allowance (final runs): free units applied to the period's usage of a metric — the rolled-over
units the Rollover stage drew, then the units granted for the period (AllowanceGrant) — priced
with the events' config snapshot (the aggregate's), per dimension key in key order:
credit = quote(used) − quote(max(used − allowance, 0)), with `used` the key's units of the whole
period up to the watermark (at most a "block" limit: what is beyond it was rated at zero).
A negative `allowance` line per key, never below zero and never more than that key's usage line
(when interim invoices billed most of the key's usage, the line says its credit was limited to
this invoice's usage, and the log lists the key under "limited"). Granted units lapse with the
period; per-transaction models (percentage) price transactions, not units: they take no
allowance (logged as skipped)."""

from __future__ import annotations

from decimal import Decimal

from billing.rating import compile_config, text

from .context import ZERO, Line, SettlementContext


def _apply(context: SettlementContext, metric_id: int, rolled: Decimal, granted: Decimal) -> dict:
    units = rolled + granted
    remaining, credited, skipped, limited = units, ZERO, [], []
    aggregates = sorted(
        # Trial usage lines charge nothing to credit; the key's `used` counts their units (the
        # period's first), so the credit is the worth of its top — paid — units.
        (a for a in context.aggregates if a.metric_id == metric_id and not a.late and not a.trial),
        key=lambda a: a.dimension_key
    )
    source = " + ".join(
        part for part, amount in ((f"{text(rolled)} rolled over", rolled), (f"{text(granted)} granted", granted)) if amount
    )
    for aggregate in aggregates:
        if remaining <= ZERO:
            break
        model = compile_config(aggregate.config).for_key(aggregate.dimension_key)
        if model.uses_events:
            skipped.append(aggregate.dimension_key)
            continue
        used = context.period_units.get((metric_id, aggregate.dimension_key), aggregate.units)
        if model.limit is not None and model.limit.overage == "block":
            used = min(used, model.limit.units)  # what is beyond a blocked limit was rated at zero
        applied = min(used, remaining)
        worth = model.quote(used) - model.quote(max(used - remaining, ZERO))
        credit = max(min(worth, aggregate.amount), ZERO)
        remaining -= applied
        if credit > ZERO:
            where = f" ({aggregate.dimension_key})" if aggregate.dimension_key else ""
            note = ""
            if credit < worth:  # earlier (interim) invoices billed the rest of these units
                limited.append(aggregate.dimension_key)
                note = f"; credit {text(credit)} of {text(worth)}, limited to this invoice's usage"
            context.add(
                Line(
                    kind="allowance",
                    description=f"{aggregate.metric_code}{where}: {text(applied)} free units applied ({source}){note}",
                    amount_unrounded=-credit, metric_id=metric_id, dimension_key=aggregate.dimension_key,
                    period_start=aggregate.period_start, units=applied,
                )
            )
            credited += credit
    return {
        "metric_id": metric_id, "rolled_over": text(rolled), "granted": text(granted), "units": text(units),
        "unapplied": text(remaining), "credit": text(credited), "skipped": skipped, "limited": limited,
    }


def run(context: SettlementContext) -> None:
    if not context.final:
        return
    granted: dict[int, Decimal] = {}
    for grant in context.inputs.grants:
        granted[grant.metric_id] = granted.get(grant.metric_id, ZERO) + grant.units
    metrics = sorted(context.allowances.keys() | granted.keys())
    if not metrics:
        return  # silent unless there are free units to apply
    applied = [_apply(context, m, context.allowances.get(m, ZERO), granted.get(m, ZERO)) for m in metrics]
    context.log("allowance", applied=applied)
