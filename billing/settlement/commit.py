"""Commit: the minimum-spend commitment (a true-up line on the final run when the period's
charges fall below it) and the maximum-spend cap (a negative line capping them, or an alert
only, per the subscription's spend_cap_action), each period against its own charges.

The run's own period: its charges are its own lines (usage, base, overage, allowance) plus its
interim invoices' — never the late_usage lines of an earlier period this invoice also carries,
so late usage neither shrinks this period's true-up nor uses up its cap room.

Each earlier period with late usage on this invoice: the late usage is billed in full as its
own late_usage line (Rate), and this stage adds that period's adjustments so that, over all its
invoices, the period is charged max(minimum, usage) — min(cap, …) when it is capped — under the
terms it was settled with: a commitment line "<October> commitment adjustment" (the late usage
fills the shortfall its true-up billed) and a cap line "<October> spend cap adjustment" (what
takes the period past its cap), each carrying that period's period_start. An adjustment never
moves the period's charge by more than its late usage does, the other way (a guard for histories
settled under other terms). The Discount stage comes after (Commit before Discount): discounts
are shares of what this stage leaves, late lines and adjustments included.

Per-metric minimums (the terms' metric_minimums) come first: on the final run, a metric whose
own charges in the period (its usage, base, overage and allowance lines, and its interim
invoices') fall below its minimum — prorated like the commitment — gets a true-up line
"Minimum for <metric name>", a commitment line OF THAT METRIC (a discount or tax of the metric
applies to it). The overall minimum commitment and the cap then compare the period's charges
with those true-ups included. Late usage of a metric of an earlier period adjusts that period's
minimum for the metric first (a commitment line of the metric carrying that period), then its
overall commitment and cap with what the metric adjustment left — never the current period's.

The terms are those of the version governing the period (catalog.terms; a late period's: those
its final run logged here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from aforo.money import decimal_text, money_display

from .context import ZERO, Line, SettlementContext
from .inputs import LatePeriod

# Net of what Allowance took back (free units): what is charged. ("overage" lines, a take-back of
# units past a "block" limit, are those of invoices settled before such units were rated at zero.)
CHARGES = ("usage", "late_usage", "base", "overage", "allowance")
# The run's own period's charges on this invoice: every charge but late usage (of other periods).
OWN_CHARGES = tuple(kind for kind in CHARGES if kind != "late_usage")


@dataclass(frozen=True)
class LateAdjustment:
    """An earlier period's adjustments for `late` more usage (0: no line)."""

    commitment: Decimal
    cap: Decimal
    over_cap: bool  # charged past its cap after the late usage (what an "alert" cap reports)
    metric: dict[int, Decimal] = field(default_factory=dict)  # per metric id: its minimum's adjustment (no 0s)


def _bounded(amount: Decimal, late: Decimal) -> Decimal:
    """`amount` within [0, −late] (or [−late, 0]): an adjustment takes back at most the late usage,
    and gives back at most what late usage took away."""
    low, high = sorted((ZERO, -late))
    return min(max(amount, low), high)


def late_adjustment(period: LatePeriod, late: Decimal, by_metric: dict[int, Decimal] | None = None) -> LateAdjustment:
    """The adjustments of `period` for `late` more usage (`by_metric`: its part per metric id).
    First each metric minimum's, for that metric's late usage: its shortfall after the late
    usage less what its minimum's lines billed. Then the commitment and cap: the period's
    shortfall under its minimum and its excess over its cap, with the late usage and the metric
    adjustments, less what its lines already say (the true-up billed, the cap taken). Each moves
    the period's charge by at most what reaches it, the other way. Pure."""
    metric: dict[int, Decimal] = {}
    for metric_id, minimum in sorted(period.metric_minimums.items()):
        late_of_metric = (by_metric or {}).get(metric_id, ZERO)
        if not late_of_metric or minimum <= ZERO:  # a minimum of 0 is none
            continue
        shortfall = max(minimum - period.metric_charged.get(metric_id, ZERO) - late_of_metric, ZERO)
        adjustment = _bounded(shortfall - period.metric_committed.get(metric_id, ZERO), late_of_metric)
        if adjustment:
            metric[metric_id] = adjustment
    moved = late + sum(metric.values(), ZERO)
    after = period.charged + sum(period.metric_committed.values(), ZERO) + moved
    commitment = cap = ZERO
    if period.min_commitment is not None:
        commitment = _bounded(max(period.min_commitment - after, ZERO) - period.committed, moved)
    over = period.spend_cap is not None and after > period.spend_cap
    if period.spend_cap is not None and period.spend_cap_action == "cap":
        cap = _bounded(-max(after - period.spend_cap, ZERO) - period.capped, moved)
    return LateAdjustment(commitment=commitment, cap=cap, over_cap=over, metric=metric)


def _label(start: datetime, cadence: str) -> str:
    return f"{start:%B}" if cadence == "monthly" else f"Week of {start:%Y-%m-%d}"


def _money(amount: Decimal, currency: str) -> str:
    return f"{money_display(amount, currency)} {currency}"


def _late_lines(context: SettlementContext, period: LatePeriod, late: Decimal, by_metric: dict[int, Decimal]) -> dict[str, Any]:
    """`period`'s adjustment lines for its `late` usage on this invoice; what the log says of it."""
    adjustment = late_adjustment(period, late, by_metric)
    currency, start = context.currency, period.period_start

    def heading(term: str) -> str:
        label = _label(start, context.subscription.billing_cadence)
        return f"{label} {term} adjustment (period from {start:%Y-%m-%d}): "

    for metric_id, amount in adjustment.metric.items():
        name, minimum = _metric_name(context, metric_id), _money(period.metric_minimums[metric_id], currency)
        metric_late = _money(by_metric[metric_id], currency)
        if amount < ZERO:
            text = f"{_money(-amount, currency)} of its {metric_late} late {name} usage within its {minimum} minimum"
        else:
            text = f"its late {name} usage takes it {_money(amount, currency)} below its {minimum} minimum"
        context.add(Line(kind="commitment", description=heading(f"minimum for {name}") + text, amount_unrounded=amount,
                         metric_id=metric_id, period_start=start))
    of_late = f"of its {_money(late, currency)} late usage"
    if adjustment.commitment:
        minimum = _money(period.min_commitment, currency)
        if adjustment.commitment < ZERO:
            text = f"{_money(-adjustment.commitment, currency)} {of_late} within its {minimum} minimum commitment"
        else:
            text = f"its late usage takes it {_money(adjustment.commitment, currency)} below its {minimum} minimum commitment"
        context.add(Line(kind="commitment", description=heading("commitment") + text,
                         amount_unrounded=adjustment.commitment, period_start=start))
    if adjustment.cap:
        cap = _money(period.spend_cap, currency)
        if adjustment.cap < ZERO:
            text = f"{_money(-adjustment.cap, currency)} {of_late} above its {cap} spend cap"
        else:
            text = f"its late usage gives back {_money(adjustment.cap, currency)} of its {cap} spend cap reduction"
        context.add(Line(kind="cap", description=heading("spend cap") + text, amount_unrounded=adjustment.cap,
                         period_start=start))
    done: dict[str, Any] = {
        "period_start": start.isoformat(), "late": str(late), "charged_before": str(period.charged),
        "commitment_adjustment": str(adjustment.commitment), "cap_adjustment": str(adjustment.cap),
    }
    if adjustment.metric:
        done["metric_adjustments"] = {context.inputs.metric_codes.get(k, str(k)): str(v) for k, v in adjustment.metric.items()}
    if adjustment.over_cap and period.spend_cap_action != "cap":
        done["cap_alert"] = f"charges {period.charged + late} exceed the spend cap {period.spend_cap}"
    return done


def minimum_for(context: SettlementContext) -> Decimal | None:
    """The period's minimum commitment: the subscription's, prorated by time in a period it
    started or ended within (exact; rounded only as the true-up line is)."""
    minimum = context.subscription.min_commitment
    return None if minimum is None else context.prorated(minimum)


def _metric_name(context: SettlementContext, metric_id: int) -> str:
    return context.inputs.metric_names.get(metric_id) or context.inputs.metric_codes.get(metric_id) or str(metric_id)


def metric_minimums_for(context: SettlementContext) -> dict[int, tuple[Decimal, Decimal]]:
    """Per metric id: (its minimum, prorated like the commitment; the terms' own figure). A code
    the tenant no longer has is left out (the Commit log keeps the terms as they were)."""
    ids = {code: metric_id for metric_id, code in context.inputs.metric_codes.items()}
    return {
        ids[code]: (context.prorated(amount), amount)
        for code, amount in context.subscription.metric_minimums if code in ids and amount > ZERO
    }


def _metric_true_ups(context: SettlementContext) -> dict[str, str]:
    """The final run's "Minimum for <metric>" true-up lines; {code: amount} for the log."""
    done: dict[str, str] = {}
    if not context.final:
        return done
    for metric_id, (minimum, own) in sorted(metric_minimums_for(context).items()):
        charges = sum(
            (line.amount for line in context.lines if line.metric_id == metric_id and line.kind in OWN_CHARGES), ZERO
        ) + context.inputs.interim_metric.get(metric_id, ZERO)
        if charges >= minimum:
            continue
        shown = decimal_text(own) + (context.proration_text() if minimum != own else "")
        line = context.add(Line(
            kind="commitment", description=f"Minimum for {_metric_name(context, metric_id)} {shown}: true-up",
            amount_unrounded=minimum - charges, metric_id=metric_id, period_start=context.period_start,
        ))
        done[context.inputs.metric_codes[metric_id]] = str(line.amount)
    return done


def _own_period(context: SettlementContext) -> dict[str, Any]:
    subscription = context.subscription
    metric_true_ups = _metric_true_ups(context)
    # The metric minimums' true-ups count toward the commitment and the cap like charges.
    charges = context.total(*OWN_CHARGES) + context.previously_invoiced + context.total_of_metric_minimums()
    done: dict[str, Any] = {"charges": charges}
    if metric_true_ups:
        done["metric_true_ups"] = metric_true_ups
    minimum = minimum_for(context)
    if context.final and minimum is not None and charges < minimum:
        true_up = minimum - charges
        shown = decimal_text(subscription.min_commitment) + (context.proration_text() if minimum != subscription.min_commitment else "")
        context.add(Line(kind="commitment", description=f"Minimum commitment {shown}: true-up",
                         amount_unrounded=true_up, period_start=context.period_start))
        done["true_up"] = true_up
    if subscription.spend_cap is not None and charges > subscription.spend_cap:
        over = min(charges - subscription.spend_cap, context.total(*OWN_CHARGES) + context.total_of_metric_minimums())
        if subscription.spend_cap_action == "cap" and over > ZERO:
            context.add(Line(kind="cap", description=f"Spend cap {decimal_text(subscription.spend_cap)}", amount_unrounded=-over,
                             period_start=context.period_start))
            done["capped"] = over
        else:
            done["cap_alert"] = f"charges {charges} exceed the spend cap {subscription.spend_cap}"
    return done


def run(context: SettlementContext) -> None:
    subscription = context.subscription
    done = _own_period(context)
    late: dict[datetime, Decimal] = {}
    late_by_metric: dict[datetime, dict[int, Decimal]] = {}
    for line in context.lines:
        if line.kind == "late_usage" and line.period_start is not None:
            late[line.period_start] = late.get(line.period_start, ZERO) + line.amount
            if line.metric_id is not None:
                of_period = late_by_metric.setdefault(line.period_start, {})
                of_period[line.metric_id] = of_period.get(line.metric_id, ZERO) + line.amount
    adjusted = [
        _late_lines(context, context.late_periods[start], amount, late_by_metric.get(start, {}))
        for start, amount in sorted(late.items()) if start in context.late_periods
    ]
    if adjusted:
        done["late_periods"] = adjusted
    # The terms the period was settled with: a later run adjusting its late usage reads them here.
    # `subscription_min_commitment`: the subscription's own figure before proration — what a
    # reissue of this run settles with again (pipeline.settlement_recompute), whatever it is now.
    # `metric_minimums` (prorated, by code) and `subscription_metric_minimums` likewise, and the
    # version the terms come from (`terms_version`; None: the subscription's own fields).
    minimums = metric_minimums_for(context)
    codes = context.inputs.metric_codes
    context.log(
        "commit", **done, min_commitment=minimum_for(context), spend_cap=subscription.spend_cap,
        spend_cap_action=subscription.spend_cap_action, subscription_min_commitment=subscription.min_commitment,
        metric_minimums={codes[k]: str(prorated) for k, (prorated, _) in sorted(minimums.items())},
        subscription_metric_minimums={code: str(amount) for code, amount in subscription.metric_minimums},
        terms_version=subscription.terms_version_id,
    )
