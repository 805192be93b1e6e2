"""Everything about one customer, for the operator admin's customer page: read only, a fixed
number of queries whatever the customer's history (each list is bounded, newest first, on an
index that starts with the customer or its subscriptions)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from django.db.models import F
from django.utils import timezone

from catalog.models import ApiKey, Customer, Subscription
from notify.models import AlertFiring
from wallets.selectors import wallets_for_customer

from .grants import allowance_grants_with_applied
from .models import AllowanceGrant, Discount, Invoice, Lease, TaxRate
from .periods import period_for
from .selectors import customer_usage_current

SHOWN = 25  # rows per list; the section links to the full admin list


def _subscription_rows(subscriptions: list[Subscription], discounts: list[Discount], now: datetime) -> list[dict[str, Any]]:
    by_subscription: dict[int, list[Discount]] = defaultdict(list)
    for discount in discounts:
        by_subscription[discount.subscription_id].append(discount)
    rows = []
    for subscription in subscriptions:
        live = subscription.started_at <= now and (subscription.ended_at is None or subscription.ended_at > now)
        period = period_for(cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, at=now) if live else None
        rows.append({"subscription": subscription, "period": period, "discounts": by_subscription[subscription.pk]})
    return rows


def customer_overview(*, customer: Customer, now: datetime | None = None) -> dict[str, Any]:
    """The customer's subscriptions (with their terms and current period), tax rates, wallets
    (balance, held, available, last entries), allowance grants, invoices, usage so far this
    period (the running totals), API keys, alerts fired in a period not yet over and active
    leases."""
    now = now or timezone.now()
    tenant_id = customer.tenant_id
    subscriptions = list(
        Subscription.objects.filter(tenant_id=tenant_id, customer_id=customer.pk)
        .select_related("offering", "rate_plan").order_by("-started_at", "-id")[:SHOWN]
    )
    subscription_ids = [s.pk for s in subscriptions]
    discounts = list(
        Discount.objects.filter(tenant_id=tenant_id, subscription_id__in=subscription_ids).select_related("metric")
    )
    grants = allowance_grants_with_applied(
        AllowanceGrant.objects.filter(tenant_id=tenant_id, subscription_id__in=subscription_ids)
        .select_related("metric", "subscription").order_by("-period_start", "-id")
    )[:SHOWN]
    return {
        "subscriptions": _subscription_rows(subscriptions, discounts, now),
        "tax_rates": list(TaxRate.objects.filter(tenant_id=tenant_id, customer_id=customer.pk).select_related("metric")[:SHOWN]),
        "wallets": wallets_for_customer(customer=customer, now=now, recent_entries=5),
        "allowance_grants": list(grants),
        "invoices": list(
            Invoice.objects.filter(tenant_id=tenant_id, customer_id=customer.pk).order_by("-issued_at", "-id")[:SHOWN]
        ),
        "usage": customer_usage_current(customer=customer, now=now),
        "api_keys": list(
            ApiKey.objects.filter(tenant_id=tenant_id, app__team__customer_id=customer.pk)
            .select_related("app").order_by(F("revoked_at").asc(nulls_first=True), "-id")[:SHOWN]  # active first
        ),
        "alerts": list(
            AlertFiring.objects.filter(tenant_id=tenant_id, customer_id=customer.pk, period_end__gt=now)
            .select_related("rule").order_by("-triggered_at", "-id")[:SHOWN]
        ),
        "leases": list(
            Lease.objects.filter(tenant_id=tenant_id, customer_id=customer.pk, status=Lease.Status.ACTIVE)
            .select_related("metric").order_by("expires_at", "id")[:SHOWN]
        ),
        "as_of": now,
    }
