"""The dashboard's charts and projections for one customer (dashboard/insights.json): per active
subscription, its usage and spend per metric over the current period (hourly rollups), the
commitment burn-down and the forecast (billing.forecast); per wallet, its balance after each of
its newest ledger entries and its usage charges per day and metric. A fixed handful of
indexed queries whatever the customer's volume: rollups and the (wallet, -id) index, never a
scan of the rated ledger or the wallet ledger. Decimals are exact strings: JSON as it stands."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

from django.db.models import Sum
from django.db.models.functions import TruncDay
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from aforo.money import LEGACY_MINOR_UNITS, currency_minor_units, decimal_text
from catalog.models import Customer, Metric, Subscription
from wallets.selectors import wallet_balance_history, wallets_for_customer

from .forecast import commitment_burn_down, period_forecast
from .models import UsageRollup
from .selectors import customer_usage_current
from .series import GRANULARITIES, subscription_period_series

WALLET_ACTIVITY_DAYS = 7  # today and the six days before it
WALLET_PAID_MODES = ("prepaid", "hybrid")  # their rated events are debited from the wallet as rated
HOURLY_UP_TO = timedelta(days=7)  # a weekly period is charted per hour, a longer one per day


def _iso(moment: datetime) -> str:
    return moment.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z")


def _floor(moment: datetime, granularity: str) -> datetime:
    moment = moment.astimezone(dt_timezone.utc).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if granularity == "day" else moment


def _ceil(moment: datetime, granularity: str) -> datetime:
    floor = _floor(moment, granularity)
    return floor if floor == moment else floor + GRANULARITIES[granularity]


def _minor_units(currency: str) -> int:
    return currency_minor_units(currency, default=LEGACY_MINOR_UNITS)


def _subscription_insights(
    sub: dict[str, Any], *, customer_id: int, metrics: dict[str, Metric], commitment: Decimal | None, now: datetime
) -> dict[str, Any]:
    start, end = parse_datetime(sub["period_start"]), parse_datetime(sub["period_end"])
    granularity = "hour" if end - start <= HOURLY_UP_TO else "day"
    codes = sorted({row["metric"] for row in sub["metrics"] if row["metric"] in metrics})
    series = subscription_period_series(
        customer_id=customer_id, subscription_id=sub["subscription_id"], metric_ids=[metrics[c].pk for c in codes],
        granularity=granularity, start=_floor(start, granularity), end=_ceil(min(max(now, start), end), granularity),
    ) if codes else {}
    currency, charged = sub["currency"], Decimal(sub["amount_total"])
    forecast = period_forecast(charged=charged, currency=currency, period_start=start, period_end=end, now=now)
    burn = None if commitment is None else commitment_burn_down(consumed=charged, commitment=commitment)
    return {
        "subscription_id": sub["subscription_id"],
        "currency": currency,
        "period_start": sub["period_start"],
        "period_end": sub["period_end"],
        "granularity": granularity,
        "charged": decimal_text(charged),
        "forecast": {
            "amount": None if forecast.amount is None else decimal_text(forecast.amount),
            "elapsed_percent": decimal_text(forecast.elapsed_fraction * 100),
        },
        "commitment": None if burn is None else {
            "amount": decimal_text(burn.commitment), "consumed": decimal_text(burn.consumed),
            "remaining": decimal_text(burn.remaining), "percent": decimal_text(burn.percent),
            "bar_percent": decimal_text(burn.bar_percent), "met": burn.met,
        },
        "series": [
            {"metric": code, "metric_name": metrics[code].name, "unit": metrics[code].unit, "points": series[metrics[code].pk]}
            for code in codes
        ],
    }


def _wallet_activity(
    *, customer_id: int, subscriptions: list[dict[str, Any]], metrics: dict[str, Metric], now: datetime
) -> dict[str, list[dict[str, Any]]]:
    """Per currency, the usage charged to the wallet per UTC day and metric over the last
    WALLET_ACTIVITY_DAYS days, newest day first: the hourly rollups of the wallet-paid
    subscriptions, whose rated events are each debited as rated (wallets.debits) — the same sums
    as the debits, by the events' own time, in one indexed read."""
    paid = {s["subscription_id"]: s["currency"] for s in subscriptions if s["billing_mode"] in WALLET_PAID_MODES}
    if not paid or not metrics:
        return {}
    by_id = {metric.pk: metric for metric in metrics.values()}
    since = _floor(now, "day") - timedelta(days=WALLET_ACTIVITY_DAYS - 1)
    rows = (
        UsageRollup.objects.filter(
            customer_id=customer_id, metric_id__in=list(by_id), hour__gte=since, subscription_id__in=list(paid),
        )
        .annotate(day=TruncDay("hour", tzinfo=dt_timezone.utc))
        .values("subscription_id", "metric_id", "day")
        .annotate(units=Sum("units"), amount=Sum("amount"), events=Sum("event_count"))
    )
    sums: dict[tuple[str, datetime, str], dict[str, Any]] = defaultdict(
        lambda: {"units": Decimal(0), "amount": Decimal(0), "events": 0}
    )
    for row in rows:
        cell = sums[(paid[row["subscription_id"]], row["day"], by_id[row["metric_id"]].code)]
        cell["units"] += row["units"]
        cell["amount"] += row["amount"]
        cell["events"] += int(row["events"])
    activity: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (currency, day, code), cell in sorted(sums.items(), key=lambda item: (-item[0][1].timestamp(), item[0][2])):
        if cell["events"]:
            activity[currency].append({
                "day": day.date().isoformat(), "metric": code, "metric_name": metrics[code].name,
                "units": decimal_text(cell["units"]), "amount": decimal_text(cell["amount"]), "events": cell["events"],
            })
    return activity


def customer_insights(
    *, customer: Customer, usage: dict[str, Any], wallets: list[dict[str, Any]], now: datetime
) -> dict[str, Any]:
    """The charts, burn-downs and forecasts of `usage` (billing.selectors.customer_usage_current)
    and `wallets` (wallets.selectors.wallets_for_customer), read at `now`."""
    subscriptions = usage["subscriptions"]
    codes = {row["metric"] for sub in subscriptions for row in sub["metrics"]}
    metrics = {m.code: m for m in Metric.objects.filter(tenant_id=customer.tenant_id, code__in=codes)} if codes else {}
    commitments = dict(
        Subscription.objects.filter(pk__in=[s["subscription_id"] for s in subscriptions]).values_list("id", "min_commitment")
    ) if subscriptions else {}
    history = wallet_balance_history(wallet_ids=[w["wallet_id"] for w in wallets])
    activity = _wallet_activity(customer_id=customer.pk, subscriptions=subscriptions, metrics=metrics, now=now)
    currencies = {s["currency"] for s in subscriptions} | {w["currency"] for w in wallets}
    return {
        "customer_id": customer.pk,
        "as_of": _iso(now),
        "minor_units": {currency: _minor_units(currency) for currency in sorted(currencies)},
        "subscriptions": [
            _subscription_insights(
                sub, customer_id=customer.pk, metrics=metrics, commitment=commitments.get(sub["subscription_id"]), now=now,
            )
            for sub in subscriptions
        ],
        "wallets": [
            {
                "wallet_id": w["wallet_id"], "currency": w["currency"], "history": history.get(w["wallet_id"], []),
                "activity": activity.get(w["currency"], []),
            }
            for w in wallets
        ],
    }


def dashboard_insights(*, customer: Customer, now: datetime | None = None) -> dict[str, Any]:
    """What dashboard/insights.json returns and the usage page embeds for its first render."""
    now = now or timezone.now()
    usage = customer_usage_current(customer=customer, now=now)
    wallets = wallets_for_customer(customer=customer, now=now, recent_entries=0)
    return customer_insights(customer=customer, usage=usage, wallets=wallets, now=now)
