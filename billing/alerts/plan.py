"""The alerts' pure part: which thresholds a rated record crosses, and what a firing says.
No Django, no database — billing.alerts.evaluate reads what these need and writes what they
return.

Crossings of a unit threshold are exact: a running total's rated records carry the units
before and after each event, and only the event with units_before < t <= units_after crosses
t (running totals only grow: quantities are never negative), so a threshold is crossed by
exactly one event whatever the batching, the order the records are read in, or the replays.
Spend thresholds (the subscription's spend across its metrics) are crossed when the spend read
from the running totals after a batch reaches them; the firing's uniqueness (one per rule,
subscription, period, threshold) makes that exactly once too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

from aforo.money import decimal_text, quantize_to_minor_unit

HUNDRED = Decimal(100)

UNIT_KINDS = ("quota_percent", "limit_percent")
SPEND_KINDS = ("commitment_percent", "spend_amount")
ANOMALY = "anomaly"


@dataclass(frozen=True)
class Rule:
    """An effective rule, as the evaluation needs it (from notify.models.AlertRule)."""

    id: int
    kind: str
    metric_id: int | None
    metric: str | None  # the metric's code (None: every metric)
    thresholds: tuple[Decimal, ...]
    name: str = ""
    factor: Decimal | None = None
    window_minutes: int | None = None
    baseline_minutes: int | None = None
    min_units: Decimal | None = None


@dataclass(frozen=True)
class Firing:
    """A firing to record (and tell the tenant about) unless it was recorded already."""

    rule_id: int
    kind: str
    tenant_id: int
    customer_id: int
    subscription_id: int
    metric: str
    dimension_key: str
    period_start: datetime
    period_end: datetime
    threshold_key: str
    threshold: Decimal | None
    observed: Decimal
    reference: Decimal | None
    currency: str
    rated_event_id: int | None
    event_id: str
    message: str


def threshold_key(value: Decimal) -> str:
    return decimal_text(value)


def crossed(before: Decimal, after: Decimal, thresholds: Iterable[Decimal]) -> list[Decimal]:
    """The thresholds t with before < t <= after, ascending."""
    return sorted(t for t in thresholds if before < t <= after)


def percent_of(part: Decimal, whole: Decimal) -> Decimal:
    """part / whole in percent, to one decimal place, rounded down (never overstates)."""
    if whole <= 0:
        return Decimal(0)
    return (part * HUNDRED / whole).quantize(Decimal("0.1"), rounding=ROUND_DOWN)


def money(amount: Decimal, currency: str) -> str:
    """`amount` to the currency's minor unit, with its code: "347.28 USD"."""
    try:
        shown = quantize_to_minor_unit(amount, currency, rounding=ROUND_HALF_UP, default=2)
    except (InvalidOperation, ValueError):
        shown = amount
    return f"{shown:f} {currency}"


def units_text(value: Decimal) -> str:
    return decimal_text(value)


def unit_firings(
    rule: Rule, *, base: Decimal | None, units_before: Decimal, units_after: Decimal, context: dict
) -> list[Firing]:
    """The quota / limit percent thresholds this record crosses; `base` is the price's included
    units (quota_percent) or hard limit (limit_percent), None when the price has none."""
    if base is None or base <= 0:
        return []
    points = {(base * pct / HUNDRED): pct for pct in rule.thresholds}
    what = "included quota" if rule.kind == "quota_percent" else "hard limit"
    firings = []
    for point in crossed(units_before, units_after, points):
        pct = points[point]
        if rule.kind == "limit_percent" and pct == HUNDRED:
            message = f"{context['metric']}: hard limit of {units_text(base)} reached"
        else:
            message = f"{context['metric']}: {units_text(pct)}% of the {what} ({units_text(point)} of {units_text(base)})"
        firings.append(
            _firing(rule, context, threshold_key=threshold_key(pct), threshold=pct, observed=units_after, reference=base,
                    message=message)
        )
    return firings


def spend_firings(
    rule: Rule, *, spend: Decimal, commitment: Decimal | None, context: dict
) -> list[Firing]:
    """The spend thresholds `spend` has reached: amounts (spend_amount) or percents of the
    minimum commitment (commitment_percent; none without a commitment)."""
    currency = context["currency"]
    firings = []
    if rule.kind == "commitment_percent":
        if commitment is None or commitment <= 0:
            return []
        for pct in sorted(rule.thresholds):
            if spend >= commitment * pct / HUNDRED:
                message = (
                    f"{money(spend, currency)} of the {money(commitment, currency)} minimum commitment used "
                    f"({units_text(percent_of(spend, commitment))}%)"
                )
                firings.append(_firing(rule, context, threshold_key=threshold_key(pct), threshold=pct, observed=spend,
                                       reference=commitment, message=message))
        return firings
    scope = f"{context['metric']} spend" if rule.metric_id is not None else "Spend"
    for amount in sorted(rule.thresholds):
        if spend >= amount:
            message = f"{scope} this period reached {money(spend, currency)} (threshold {money(amount, currency)})"
            firings.append(_firing(rule, context, threshold_key=threshold_key(amount), threshold=amount, observed=spend,
                                   reference=None, message=message))
    return firings


def _firing(rule: Rule, context: dict, **fields) -> Firing:
    return Firing(
        rule_id=rule.id, kind=rule.kind, tenant_id=context["tenant_id"], customer_id=context["customer_id"],
        subscription_id=context["subscription_id"], metric=context.get("metric_key", ""),
        dimension_key=context.get("dimension_key", ""), period_start=context["period_start"],
        period_end=context["period_end"], currency=context["currency"], rated_event_id=context.get("rated_event_id"),
        event_id=context.get("event_id", ""), **fields,
    )


# --- anomaly ---------------------------------------------------------------------------------

DEFAULT_FACTOR = Decimal(3)
DEFAULT_WINDOW_MINUTES = 5
DEFAULT_BASELINE_MINUTES = 60
DEFAULT_MIN_UNITS = Decimal(100)


@dataclass(frozen=True)
class AnomalyVerdict:
    anomalous: bool
    window_rate: Decimal  # units per minute over the window
    baseline_rate: Decimal  # units per minute over the baseline
    established: bool  # the key has a full baseline of history


def anomaly_verdict(
    *, buckets: dict[int, Decimal], first_minute: int | None, end_minute: int, factor: Decimal, window: int,
    baseline: int, min_units: Decimal,
) -> AnomalyVerdict:
    """The method: minute buckets of units (by event time) of one subscription's metric. The
    window is the `window` minutes ending at `end_minute` (inclusive); the baseline the
    `baseline` minutes just before it. Anomalous when the key has history back to the start of
    the baseline (a new customer has no baseline to depart from), the window holds at least
    `min_units` units (small absolute spikes are noise), and the window's rate per minute is
    above `factor` times the baseline's: window_units / window > factor × baseline_units / baseline."""
    window_start = end_minute - window + 1
    baseline_start = window_start - baseline
    in_window = sum((buckets.get(m, Decimal(0)) for m in range(window_start, end_minute + 1)), Decimal(0))
    in_baseline = sum((buckets.get(m, Decimal(0)) for m in range(baseline_start, window_start)), Decimal(0))
    window_rate = in_window / window
    baseline_rate = in_baseline / baseline
    established = first_minute is not None and first_minute <= baseline_start
    anomalous = established and in_window >= min_units and window_rate > factor * baseline_rate
    return AnomalyVerdict(anomalous, window_rate, baseline_rate, established)


def anomaly_firing(rule: Rule, verdict: AnomalyVerdict, *, onset_minute: int, context: dict) -> Firing:
    ratio = (
        f"{(verdict.window_rate / verdict.baseline_rate).quantize(Decimal('0.1'), rounding=ROUND_DOWN)}x"
        if verdict.baseline_rate > 0 else "from nothing"
    )
    message = (
        f"{context['metric']}: {_rate_text(verdict.window_rate)}/min over the last {rule.window_minutes or DEFAULT_WINDOW_MINUTES} min, "
        f"{ratio} its {rule.baseline_minutes or DEFAULT_BASELINE_MINUTES}-min baseline of {_rate_text(verdict.baseline_rate)}/min"
    )
    return _firing(
        rule, {**context, "dimension_key": ""}, threshold_key=f"onset:{onset_minute}", threshold=rule.factor,
        observed=_rate_q(verdict.window_rate), reference=_rate_q(verdict.baseline_rate), message=message,
    )


def _rate_q(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


def _rate_text(value: Decimal) -> str:
    return decimal_text(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def effective_rules(
    rules: Sequence[tuple[Rule, int | None, int | None, bool]], *, subscription_id: int, rate_plan_id: int
) -> list[Rule]:
    """Of a tenant's rules — (rule, rate plan id, subscription id, active) — those that apply to
    one subscription: per (kind, metric) the subscription's override, else its plan's default,
    else the tenant's; an inactive winner silences the rest."""
    best: dict[tuple[str, int | None], tuple[int, Rule, bool]] = {}
    for rule, plan_id, sub_id, active in rules:
        if sub_id is not None:
            if sub_id != subscription_id:
                continue
            rank = 3
        elif plan_id is not None:
            if plan_id != rate_plan_id:
                continue
            rank = 2
        else:
            rank = 1
        key = (rule.kind, rule.metric_id)
        if key not in best or best[key][0] < rank:
            best[key] = (rank, rule, active)
    return [rule for _, rule, active in best.values() if active]
