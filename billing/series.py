"""A customer's usage over time, per hour or per day, from the hourly rollups (billing.rollups):
one indexed range read of at most a few thousand rows, never a scan of the rated ledger."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from django.db.models import F, Sum
from django.db.models.functions import TruncDay

from aforo.money import decimal_text
from catalog.models import Customer, Metric

from .models import UsageRollup

GRANULARITIES = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
MAX_BUCKETS = 24 * 93  # three months of hours, or about 6 years of days


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def usage_series(
    *, customer: Customer, metric: Metric, granularity: str, start: datetime, end: datetime
) -> dict[str, Any]:
    """Units, amount, blocked units and events per bucket in [start, end) (UTC hours or days,
    `start` and `end` on bucket boundaries), over all of the customer's subscriptions and
    dimension keys; every bucket present, zeros included, oldest first. Amounts are the rated
    usage charges (flat fees and minimums are settled once per period, not spread over time)."""
    rows = UsageRollup.objects.filter(customer_id=customer.pk, metric_id=metric.pk, hour__gte=start, hour__lt=end)
    bucket = TruncDay("hour", tzinfo=timezone.utc) if granularity == "day" else F("hour")
    sums = {
        r["bucket"]: r
        for r in rows.annotate(bucket=bucket).values("bucket").annotate(
            units=Sum("units"), amount=Sum("amount"), blocked=Sum("blocked_units"), events=Sum("event_count"),
        )
    }
    step = GRANULARITIES[granularity]
    points = []
    at = start
    zero = Decimal(0)
    while at < end:
        found = sums.get(at)
        points.append(
            {
                "start": _iso(at),
                "units": decimal_text(found["units"] if found else zero),
                "amount": decimal_text(found["amount"] if found else zero),
                "blocked_units": decimal_text(found["blocked"] if found else zero),
                "events": int(found["events"]) if found else 0,
            }
        )
        at += step
    return {
        "customer_id": customer.pk, "metric": metric.code, "metric_name": metric.name, "granularity": granularity,
        "from": _iso(start), "to": _iso(end), "points": points,
    }


def subscription_period_series(
    *, customer_id: int, subscription_id: int, metric_ids: list[int], granularity: str, start: datetime, end: datetime
) -> dict[int, list[dict[str, Any]]]:
    """The dashboard's charts: units and amount per bucket in [start, end) (bucket boundaries)
    of one subscription, for each of `metric_ids`, every bucket present (zeros included), oldest
    first — ONE range read of the hourly rollups on their (customer, metric, hour) index."""
    rows = UsageRollup.objects.filter(
        customer_id=customer_id, metric_id__in=metric_ids, hour__gte=start, hour__lt=end, subscription_id=subscription_id,
    )
    bucket = TruncDay("hour", tzinfo=timezone.utc) if granularity == "day" else F("hour")
    sums: dict[tuple[int, datetime], dict] = {
        (r["metric_id"], r["bucket"]): r
        for r in rows.annotate(bucket=bucket).values("metric_id", "bucket").annotate(units=Sum("units"), amount=Sum("amount"))
    }
    step = GRANULARITIES[granularity]
    starts = []
    at = start
    while at < end:
        starts.append(at)
        at += step
    zero = {"units": Decimal(0), "amount": Decimal(0)}
    return {
        metric_id: [
            {
                "start": _iso(at),
                "units": decimal_text(sums.get((metric_id, at), zero)["units"]),
                "amount": decimal_text(sums.get((metric_id, at), zero)["amount"]),
            }
            for at in starts
        ]
        for metric_id in metric_ids
    }
