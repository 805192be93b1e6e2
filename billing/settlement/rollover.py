"""Rollover (final runs, subscriptions with a RolloverPolicy): the units carried into this
period and what this period carries forward.

Per policy (one metric): the lots the latest earlier final run left (RolloverGrant) that have
not expired are available here; the period's usage beyond its included units draws on them,
soonest-expiring first, and what it draws is handed to the Allowance stage to price. The lots
left over that are still usable after this period, plus this period's unused included units
(included − used, never below zero; the carried total capped at cap_units), are this run's
carry-forward, persisted with the run (settle.run) in the settlement's transaction. Usage is the
period's rated units up to the watermark, interim invoices' events included.

A gap period — one settled after a LATER period's final run (`settle --period` out of order;
the sweep settles oldest first) — takes no part: the later run already carried the balance
past it and may have drawn on it, so this period neither draws lots nor earns any (its usage is
billed as it stands), and the log says why. Nothing is drawn twice, and the chain stays the
one the later run saw."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from billing.rating import text

from ..periods import period_for
from .context import ZERO, CarriedLot, SettlementContext
from .inputs import Lot, RolloverTerms


def _later_period_start(context: SettlementContext, periods: int) -> datetime:
    """The start of the period `periods` after this one (1: the next)."""
    start = context.period_end
    subscription = context.subscription
    for _ in range(periods - 1):
        start = period_for(cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, at=start)[1]
    return start


def _draw(lots: list[CarriedLot], wanted: Decimal) -> Decimal:
    """Take up to `wanted` units from `lots` in order, in place; returns what was taken."""
    taken = ZERO
    for lot in lots:
        take = min(lot.units, wanted - taken)
        lot.units -= take
        taken += take
    return taken


def _settle_policy(context: SettlementContext, policy: RolloverTerms, grants: list[Lot]) -> dict:
    used = sum((u for (m, _), u in context.period_units.items() if m == policy.metric_id), ZERO)
    mine = [g for g in grants if g.metric_id == policy.metric_id]
    live = [
        CarriedLot(g.metric_id, g.earned_period_start, g.last_period_start, g.units)
        for g in mine if g.last_period_start >= context.period_start
    ]
    carried_in = sum((lot.units for lot in live), ZERO)
    drawn = _draw(live, max(used - policy.included_units, ZERO))
    if drawn > ZERO:
        context.allowances[policy.metric_id] = drawn
    survivors = [lot for lot in live if lot.units > ZERO and lot.last_period_start > context.period_start]
    kept = sum((lot.units for lot in survivors), ZERO)
    unused = max(policy.included_units - used, ZERO)
    room = unused if policy.cap_units is None else max(policy.cap_units - kept, ZERO)
    earned = min(unused, room)
    if earned > ZERO:
        survivors.append(
            CarriedLot(
                policy.metric_id, context.period_start, _later_period_start(context, policy.expires_after_periods), earned
            )
        )
    context.carry_forward.extend(survivors)
    return {
        "metric": policy.metric_code, "included": policy.included_units, "used": used, "carried_in": carried_in,
        "expired": sum((g.units for g in mine), ZERO) - carried_in, "drawn": drawn, "unused": unused,
        "earned": earned, "carried_forward": kept + earned,
    }


def run(context: SettlementContext) -> None:
    if not context.final or not context.inputs.has_rollover:
        return
    policies = context.inputs.rollover_policies
    if not policies:
        return  # nothing to carry: the stage stays silent (no log entry)
    later = [r.period_start for r in context.inputs.runs if r.kind == "final" and r.period_start > context.period_start]
    if later:
        context.log(
            "rollover", skipped=f"the period from {min(later):%Y-%m-%d} was settled first and carried the balance past "
            "this one: it neither draws carried units nor carries any forward",
        )
        return
    summaries = [_settle_policy(context, policy, context.inputs.carried_lots) for policy in policies]
    context.log("rollover", metrics=[{k: (text(v) if isinstance(v, Decimal) else v) for k, v in s.items()} for s in summaries])
