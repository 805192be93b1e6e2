"""The backtest's reads: the rated ledger of one metric over a range of periods, grouped in SQL
per (subscription, period, rated key, candidate key, trial) — one pass over the tenant's
(tenant, period_start, id) index range — the configs the newest event of each group was rated
with, and, only for a candidate priced per transaction, the event quantities in rating order.

The candidate key is the candidate config's dimension override each event falls in, computed in
SQL from the raw event's dimensions (a CASE over the overrides, most specific first, as
PriceBook.select picks them); without overrides every event is the base price's ("")."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db.models import Q

from aforo.db import bulk_cursor
from billing.models import PricingSnapshot, RatedEvent
from billing.periods import period_for
from billing.rating import PriceBook
from catalog.models import Customer, RatePlanVersion, Subscription
from metering.models import RawEvent
from metering.selectors import billing_contexts_build

from .plan import KeyUsage


def _candidate_key_sql(book: PriceBook) -> tuple[str, list]:
    """The SQL expression of an event's candidate dimension key and its parameters."""
    if not book.overrides:
        return "''", []
    whens, params = [], []
    for override in book.overrides:
        conditions = []
        for name, values in override.match:
            conditions.append("raw.dimensions ->> %s = ANY(%s::text[])")
            params += [name, sorted(values)]
        whens.append(f"WHEN {' AND '.join(conditions)} THEN %s::text")
        params.append(override.key)
    return f"CASE {' '.join(whens)} ELSE '' END", params


def _selection(*, tenant_id: int, metric_id: int, rate_plan_id: int | None, start: datetime, end: datetime) -> tuple[str, list]:
    where = "r.tenant_id = %s AND r.period_start >= %s AND r.period_start < %s AND r.metric_id = %s"
    params: list = [tenant_id, start, end, metric_id]
    if rate_plan_id is not None:
        versions = list(RatePlanVersion.objects.filter(tenant_id=tenant_id, rate_plan_id=rate_plan_id).values_list("id", flat=True))
        where += " AND r.rate_plan_version_id = ANY(%s::bigint[])"
        params.append(versions)
    return where, params


def _from(book: PriceBook) -> str:
    join = f" JOIN {RawEvent._meta.db_table} raw ON raw.id = r.raw_event_id" if book.overrides else ""
    return f"{RatedEvent._meta.db_table} r{join}"


def usage_groups(
    *, tenant_id: int, metric_id: int, rate_plan_id: int | None, start: datetime, end: datetime, candidate: PriceBook
) -> list[KeyUsage]:
    """The metric's rated events whose period starts in [start, end), grouped."""
    key_sql, key_params = _candidate_key_sql(candidate)
    where, params = _selection(tenant_id=tenant_id, metric_id=metric_id, rate_plan_id=rate_plan_id, start=start, end=end)
    with bulk_cursor() as cursor:
        cursor.execute(
            f"""
            SELECT r.subscription_id, r.customer_id, r.currency, r.period_start, r.dimension_key, {key_sql} AS candidate_key,
                   r.trial, SUM(r.quantity), SUM(r.amount), SUM(CASE WHEN r.reverses_id IS NULL THEN 1 ELSE -1 END), MAX(r.id)
            FROM {_from(candidate)}
            WHERE {where}
            GROUP BY 1, 2, 3, 4, 5, 6, 7
            """,
            [*key_params, *params],
        )
        return [KeyUsage(*row) for row in cursor.fetchall()]


def newest_configs(*, event_ids: set[int]) -> dict[int, dict]:
    """Rated event id -> the config it was rated with (its pricing snapshot's)."""
    with bulk_cursor() as cursor:
        cursor.execute(
            f"SELECT id, pricing_snapshot_id FROM {RatedEvent._meta.db_table} WHERE id = ANY(%s::bigint[])", [sorted(event_ids)]
        )
        snapshot_of = dict(cursor.fetchall())
    configs = dict(PricingSnapshot.objects.filter(id__in=set(snapshot_of.values())).values_list("id", "config"))
    return {event_id: configs[snapshot_id] for event_id, snapshot_id in snapshot_of.items()}


def transactions(
    *, tenant_id: int, metric_id: int, rate_plan_id: int | None, start: datetime, end: datetime, candidate: PriceBook
) -> dict[tuple[int, datetime, str], tuple[list[Decimal], list[Decimal]]]:
    """Per (subscription, period, candidate key): the event quantities in rating order (id), all
    and the trial's. Only for a candidate priced per transaction: one array per key, built in
    SQL (a timestamp per event row cost more to load than the pricing itself)."""
    key_sql, key_params = _candidate_key_sql(candidate)
    where, params = _selection(tenant_id=tenant_id, metric_id=metric_id, rate_plan_id=rate_plan_id, start=start, end=end)
    with bulk_cursor() as cursor:
        cursor.execute(
            f"""
            SELECT r.subscription_id, r.period_start, {key_sql} AS candidate_key, ARRAY_AGG(r.quantity ORDER BY r.id),
                   COALESCE(ARRAY_AGG(r.quantity ORDER BY r.id) FILTER (WHERE r.trial), '{{}}')
            FROM {_from(candidate)}
            WHERE {where} AND r.reverses_id IS NULL
              AND NOT EXISTS (SELECT 1 FROM {RatedEvent._meta.db_table} x WHERE x.reverses_id = r.id)
            GROUP BY 1, 2, 3
            """,
            [*key_params, *params],
        )
        return {(subscription_id, period_start, key): (every, trial) for subscription_id, period_start, key, every, trial in cursor}


def idle_periods(
    *, tenant_id: int, metric_code: str, rate_plan_id: int | None, start: datetime, end: datetime,
    seen: set[tuple[int, datetime]],
) -> list[tuple[int, int, str, datetime, dict]]:
    """The periods starting in [start, end) of the tenant's subscriptions (on `rate_plan_id`, if
    given) that the metric's version prices and that have no usage of it (not in `seen`):
    (subscription, customer, currency, period start, the base config in force at the start). A
    candidate with a zero-usage charge (a flat fee, a minimum) charges them too."""
    subscriptions = Subscription.objects.filter(tenant_id=tenant_id, started_at__lt=end).filter(
        Q(ended_at__isnull=True) | Q(ended_at__gt=start)
    )
    if rate_plan_id is not None:
        subscriptions = subscriptions.filter(rate_plan_id=rate_plan_id)
    idle: dict[int, list[datetime]] = {}
    for sub_id, cadence, anchor, started_at, ended_at in subscriptions.values_list(
        "id", "billing_cadence", "billing_anchor", "started_at", "ended_at"
    ).iterator(chunk_size=2000):
        period_start, period_end = period_for(cadence=cadence, anchor=anchor, at=max(start, started_at))
        while period_start < end and (ended_at is None or period_start < ended_at):
            if period_start >= start and (sub_id, period_start) not in seen:
                idle.setdefault(sub_id, []).append(period_start)
            period_start, period_end = period_for(cadence=cadence, anchor=anchor, at=period_end)
    if not idle:
        return []
    contexts = billing_contexts_build(tenant_id=tenant_id, subjects=[f"subscription:{sub_id}" for sub_id in idle])
    found = []
    for sub_id, starts in sorted(idle.items()):
        context = contexts.get(f"subscription:{sub_id}")
        if context is None:
            continue
        subscription = next(s for s in context.subscriptions if s.id == sub_id)
        for period_start in starts:
            version = subscription.version_at(period_start)
            if version is not None and metric_code in version.metrics:
                found.append((sub_id, subscription.customer_id, subscription.currency, period_start,
                              version.metrics[metric_code].config))
    return found


def customer_names(*, tenant_id: int, customer_ids: set[int]) -> dict[int, str]:
    return dict(Customer.objects.filter(tenant_id=tenant_id, id__in=customer_ids).values_list("id", "name"))
