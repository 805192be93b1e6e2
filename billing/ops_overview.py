"""Billing reads for the operator admin's overview page: revenue by calendar month and the
usage trend by day. Bounded reads only: invoices of two months, hourly rollups of 14 days
(never the rated ledger). `tenant_id` None means every tenant (a superuser)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate, TruncMonth
from django.utils import timezone

from catalog.models import Customer, Metric

from .models import Invoice, UsageRollup

TREND_DAYS = 14


def _customers(tenant_id: int | None):
    """The customers whose rows are read (a subquery): the tenant's, or every tenant's."""
    customers = Customer.objects.all() if tenant_id is None else Customer.objects.filter(tenant_id=tenant_id)
    return customers.values("pk")


def month_start(moment: datetime) -> datetime:
    """The first instant (UTC) of the calendar month containing `moment`."""
    moment = moment.astimezone(dt_timezone.utc)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def revenue_by_month(*, tenant_id: int | None, now: datetime | None = None) -> dict[str, Any]:
    """Invoice totals issued this calendar month and last (UTC), per currency; void invoices
    are left out (their replacements count). One grouped query over two months of invoices."""
    now = now or timezone.now()
    this_month = month_start(now)
    last_month = month_start(this_month - timedelta(days=1))
    # Through the (customer, -issued_at) index: two months of each customer's invoices.
    invoices = Invoice.objects.filter(
        customer_id__in=_customers(tenant_id), issued_at__gte=last_month, issued_at__lt=now
    ).exclude(status=Invoice.Status.VOID)
    if tenant_id is not None:
        invoices = invoices.filter(tenant_id=tenant_id)
    grouped = (
        invoices.annotate(month=TruncMonth("issued_at", tzinfo=dt_timezone.utc))
        .values("month", "currency").annotate(total=Sum("total"), count=Count("id")).order_by("currency")
    )
    by_currency: dict[str, dict[str, Any]] = {}
    for row in grouped:
        entry = by_currency.setdefault(
            row["currency"], {"currency": row["currency"], "this": Decimal(0), "last": Decimal(0), "this_count": 0, "last_count": 0}
        )
        which = "this" if row["month"] >= this_month else "last"
        entry[which] += row["total"]
        entry[f"{which}_count"] += row["count"]
    return {"this_month": this_month, "last_month": last_month, "currencies": sorted(by_currency.values(), key=lambda e: e["currency"])}


def usage_trend(*, tenant_id: int | None, now: datetime | None = None, days: int = TREND_DAYS) -> dict[str, Any]:
    """Rated events and amount per day (UTC) of the last `days` days, from the hourly rollups,
    amounts per currency (the subscription's). Read through the rollups' (customer, metric,
    hour) index, customer by customer (and the tenant's metrics when scoped)."""
    now = now or timezone.now()
    first_day = now.astimezone(dt_timezone.utc).date() - timedelta(days=days - 1)
    since = datetime.combine(first_day, datetime.min.time(), tzinfo=dt_timezone.utc)
    rollups = UsageRollup.objects.filter(customer_id__in=_customers(tenant_id), hour__gte=since, hour__lte=now)
    if tenant_id is not None:
        metrics = Metric.objects.filter(tenant_id=tenant_id).values("pk")
        rollups = rollups.filter(tenant_id=tenant_id, metric_id__in=metrics)
    grouped = (
        rollups.annotate(day=TruncDate("hour", tzinfo=dt_timezone.utc))
        .values("day", "subscription__currency").annotate(events=Sum("event_count"), amount=Sum("amount"))
    )
    events: dict[date, int] = defaultdict(int)
    amounts: dict[date, dict[str, Decimal]] = defaultdict(dict)
    currencies: set[str] = set()
    for row in grouped:
        events[row["day"]] += row["events"] or 0
        currency = row["subscription__currency"]
        currencies.add(currency)
        amounts[row["day"]][currency] = amounts[row["day"]].get(currency, Decimal(0)) + (row["amount"] or Decimal(0))
    rows = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        rows.append({"day": day, "events": events[day], "amounts": [(c, amounts[day].get(c, Decimal(0))) for c in sorted(currencies)]})
    return {"days": rows, "currencies": sorted(currencies), "max_events": max((r["events"] for r in rows), default=0)}
