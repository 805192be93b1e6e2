"""Billing reads: rated records for re-publishing, and the customer's current usage (with its
hard limits and included allowances, what a gateway polls to block at the limit)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, localcontext
from functools import reduce
from operator import or_
from typing import Any

from django.db.models import Q
from django.utils import timezone

from aforo.money import decimal_text
from catalog.models import Customer, Metric, MetricConfig, RatePlanVersion, Subscription

from .models import RatedEvent, RunningTotal
from .periods import period_for
from .rating import Model, PriceBook, UsageError, compile_config


def rated_records_for_raw_events(*, raw_event_ids: Sequence[int]):
    """The rated records (as published on usage.rated.v1) of already-rated raw events."""
    from .services import RatedRecord

    rows = (
        RatedEvent.objects.filter(raw_event_id__in=list(raw_event_ids), correction__isnull=True)
        .select_related("metric", "raw_event")
        .order_by("id")
    )
    return [
        RatedRecord(
            rated_event_id=r.id,
            raw_event_id=r.raw_event_id,
            tenant_id=r.tenant_id,
            event_id=r.raw_event.event_id,
            customer_id=r.customer_id,
            subscription_id=r.subscription_id,
            metric=r.metric.code,
            dimension_key=r.dimension_key,
            quantity=r.quantity,
            units_before=r.units_before,
            units_after=r.units_after,
            amount=r.amount,
            currency=r.currency,
            rate_plan_version_id=r.rate_plan_version_id,
            period_start=r.period_start,
            period_end=r.period_end,
            timestamp=r.event_timestamp,
            rated_at=r.rated_at,
            tiers=r.tiers,
            blocked=r.blocked_units,
            trial=r.trial,
        )
        for r in rows
    ]


# --- the customer's current usage ----------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z")


PERCENT = Decimal("0.01")
EXACT = 80  # digits: no difference or quotient of stored units (38 digits, 12 places) is rounded


def _remaining(units: Decimal, of: Decimal) -> str:
    """max(of − units, 0), exact."""
    with localcontext() as ctx:
        ctx.prec = EXACT
        return decimal_text(max(of - units, Decimal(0)))


def _percent_used(units: Decimal, of: Decimal) -> str:
    """units / of × 100, to 2 places HALF_UP ("75", "33.33", "150"). `of` 0: "100" once
    anything is used, else "0". The quotient is truncated at EXACT digits before the one
    rounding, so it can never round twice (a truncated …4999 stays below the half)."""
    if of == 0:
        return "100" if units > 0 else "0"
    with localcontext() as ctx:
        ctx.prec, ctx.rounding = EXACT, ROUND_DOWN
        ratio = units * 100 / of
        return decimal_text(ratio.quantize(PERCENT, rounding=ROUND_HALF_UP))


def _limit_state(model: Model | None, units: Decimal) -> dict[str, Any] | None:
    """The price's hard limit against the units so far. `reached` (units >= limit) is when a
    gateway must refuse the next call; `exceeded` (units > limit) when usage got past it."""
    if model is None or model.limit is None:
        return None
    limit = model.limit.units
    return {
        "units": decimal_text(limit),
        "overage": model.limit.overage,
        "remaining": _remaining(units, limit),
        "reached": units >= limit,
        "exceeded": units > limit,
        "percent_used": _percent_used(units, limit),
        # Units past a "block" limit: recorded, rated at zero as they came (nothing charged).
        "blocked": decimal_text(max(units - limit, Decimal(0)) if model.blocks() else Decimal(0)),
    }


def _included_state(model: Model | None, units: Decimal) -> dict[str, Any] | None:
    """The allowance the price includes (included_free, quota, free_units, a free first tier:
    what settlement's QuotaCheck reports) against the units so far."""
    included = None if model is None else model.included_units()
    if included is None:
        return None
    return {
        "units": decimal_text(included),
        "remaining": _remaining(units, included),
        "percent_used": _percent_used(units, included),
    }


def _model_for_key(book: PriceBook | None, dimension_key: str) -> Model | None:
    """The price behind a running total's key in the version in force; None for a metric that
    version does not price or a key of an override it no longer has (prices changed mid-period)."""
    if book is None:
        return None
    try:
        return book.for_key(dimension_key)
    except UsageError:
        return None


def _metric_row(
    *, metric: Metric, dimension_key: str, units: Decimal, amount: Decimal, event_count: int, book: PriceBook | None
) -> dict[str, Any]:
    model = _model_for_key(book, dimension_key)
    return {
        "metric": metric.code,
        "metric_name": metric.name,
        "unit": metric.unit,
        "dimension_key": dimension_key,
        "units": decimal_text(units),
        "amount": decimal_text(amount),
        "event_count": event_count,
        "limit": _limit_state(model, units),
        "included": _included_state(model, units),
    }


def customer_usage_current(*, customer: Customer, now: datetime | None = None) -> dict[str, Any]:
    """Units, amount and event count so far in the current period of each of the customer's
    active subscriptions, per metric and dimension, read from the running totals (never
    summed over the rated ledger) in four queries whatever the number of subscriptions and
    metrics. Metrics priced by the rate plan version in force with no usage yet show zeros.
    Decimals are exact strings and datetimes ISO 8601 UTC: the result is JSON as it stands.

    Amounts are the usage charges rated so far (delta rating: quote(units) − quote(0));
    flat fees and period minimums are added once at settlement.

    Each row also carries `limit` and `included` (or null): the hard limit and the included
    allowance of the row's price in the version in force, against the units so far — what a
    gateway polls to block at the limit. Each config is compiled once, in Python, with no
    further query."""
    now = now or timezone.now()
    subscriptions = list(
        Subscription.objects.filter(
            tenant_id=customer.tenant_id, customer_id=customer.pk, started_at__lte=now,
        )
        .exclude(status=Subscription.Status.PAUSED)  # the rater's rule (metering.enrichment.resolve)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=now))
        .select_related("rate_plan", "offering")
        .order_by("started_at", "id")
    )
    result: dict[str, Any] = {"customer_id": customer.pk, "as_of": _iso(now), "subscriptions": []}
    if not subscriptions:
        return result
    periods = {
        s.id: period_for(cadence=s.billing_cadence, anchor=s.billing_anchor, at=now) for s in subscriptions
    }
    # The version in force per plan: published, latest effective_from <= now (DISTINCT ON).
    versions = list(
        RatePlanVersion.objects.filter(
            tenant_id=customer.tenant_id,
            rate_plan_id__in={s.rate_plan_id for s in subscriptions},
            status=RatePlanVersion.Status.PUBLISHED,
            effective_from__lte=now,
        )
        .order_by("rate_plan_id", "-effective_from")
        .distinct("rate_plan_id")
    )
    version_by_plan = {v.rate_plan_id: v.id for v in versions}
    priced: dict[int, list[Metric]] = defaultdict(list)
    books: dict[tuple[int, int], PriceBook] = {}  # (version id, metric id) -> the compiled config
    for config in MetricConfig.objects.filter(version_id__in=list(version_by_plan.values())).select_related("metric"):
        priced[config.version_id].append(config.metric)
        books[(config.version_id, config.metric_id)] = compile_config(config.config)
    current = reduce(or_, (Q(subscription_id=sid, period_start=start) for sid, (start, _) in periods.items()))
    totals: dict[int, list[RunningTotal]] = defaultdict(list)
    for total in RunningTotal.objects.filter(current, tenant_id=customer.tenant_id).select_related("metric"):
        totals[total.subscription_id].append(total)

    for subscription in subscriptions:
        start, end = periods[subscription.id]
        version_id = version_by_plan.get(subscription.rate_plan_id)
        rows = [
            _metric_row(
                metric=t.metric, dimension_key=t.dimension_key, units=t.units, amount=t.amount,
                event_count=t.event_count, book=books.get((version_id, t.metric_id)),
            )
            for t in totals[subscription.id]
        ]
        used = {t.metric_id for t in totals[subscription.id]}
        rows += [
            _metric_row(
                metric=m, dimension_key="", units=Decimal(0), amount=Decimal(0), event_count=0,
                book=books[(version_id, m.id)],
            )
            for m in priced.get(version_id, [])
            if m.id not in used
        ]
        rows.sort(key=lambda row: (row["metric"], row["dimension_key"]))
        result["subscriptions"].append(
            {
                "subscription_id": subscription.id,
                "offering": subscription.offering.name,
                "rate_plan": subscription.rate_plan.name,
                "rate_plan_version_id": version_id,
                "currency": subscription.currency,
                "billing_mode": subscription.billing_mode,
                "billing_cadence": subscription.billing_cadence,
                "period_start": _iso(start),
                "period_end": _iso(end),
                "amount_total": decimal_text(sum((t.amount for t in totals[subscription.id]), Decimal(0))),
                "metrics": rows,
            }
        )
    return result
