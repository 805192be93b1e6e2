"""Budget lease writes: grant, renew, return, expire (the accounting is billing.leases.plan).

Lock order, everywhere: the subscription row (SELECT … FOR UPDATE), then its leases by id. The
grant check — limit − rated units − Σ reserved — reads the running total and the leases in ONE
statement under the subscription's lock, so two grants never share the same units, and a
rating batch committing meanwhile is seen whole or not at all (its running total and its
leases' `consumed` move in one transaction). The rating batch locks running totals and then
lease rows; lease writes never lock running totals, so the two cannot deadlock.

After each commit the key's reserved total goes to the Redis usage counters
(billing.leases.counters), where the entitlement check reads it."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from aforo.exceptions import ApiError
from aforo.money import decimal_text
from metering.enrichment import Resolution, resolve
from metering.selectors import billing_contexts_build
from notify.services import webhook_event_emit

from ..models import Lease, RunningTotal
from ..periods import period_for
from . import plan
from .counters import BudgetKey, lease_reservations_publish
from .inputs import LeaseRequest, RenewRequest
from .money import lease_money_create, money_close, money_consumed_now, money_extend
from .rows import lease_state, lease_store, subscription_lock

__all__ = ["LeaseRequest", "lease_create", "lease_get", "lease_renew", "lease_return", "lease_state", "leases_expire"]

_UNKNOWN_STATUS = {"unknown_api_key": 404, "unknown_customer": 404, "unknown_subscription": 404}


def _key(lease: Lease) -> BudgetKey:
    return BudgetKey(lease.subscription_id, lease.metric_id, lease.dimension_key, lease.period_start, lease.period_end)


def _publish_after_commit(lease: Lease) -> None:
    """A unit lease's key: its reserved total to Redis after commit (money leases reserve in the wallet)."""
    if lease.kind == Lease.Kind.UNITS:
        keys = [_key(lease)]
        transaction.on_commit(lambda: lease_reservations_publish(keys=keys))


def _rated_and_reserved(key: BudgetKey) -> tuple[Decimal, Decimal]:
    """The key's rated units and the units its leases reserve, read in one statement (one snapshot)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT
              COALESCE((SELECT units FROM {RunningTotal._meta.db_table} WHERE subscription_id = %(s)s
                        AND metric_id = %(m)s AND dimension_key = %(d)s AND period_start = %(p)s), 0),
              COALESCE((SELECT SUM(CASE WHEN status = 'active' THEN GREATEST(leased - consumed, 0)
                                        ELSE GREATEST(used - consumed, 0) END)
                        FROM {Lease._meta.db_table} WHERE subscription_id = %(s)s AND metric_id = %(m)s
                        AND dimension_key = %(d)s AND period_start = %(p)s
                        AND (status = 'active' OR used > consumed)), 0)
            """,
            {"s": key.subscription_id, "m": key.metric_id, "d": key.dimension_key, "p": key.period_start},
        )
        rated, reserved = cursor.fetchone()
    return rated, reserved


def _resolve(*, tenant_id: int, request: LeaseRequest, now: datetime) -> Resolution:
    context = billing_contexts_build(tenant_id=tenant_id, subjects=[request.subject]).get(request.subject)
    resolution = resolve(context, metric=request.metric, at=now, subject=request.subject, dimensions=request.dimensions)
    if not isinstance(resolution, Resolution):
        raise ApiError(
            code=resolution.reason, message=f"Nothing would rate this usage: {resolution.reason.replace('_', ' ')} "
            f"({resolution.detail}).", status_code=_UNKNOWN_STATUS.get(resolution.reason, 409),
        )
    if resolution.model.limit is None:
        raise ApiError(
            code="no_limit", message=f"The price of {request.metric!r} has no limit: there is no budget to lease "
            "(every call is allowed).", status_code=409, field="metric",
        )
    return resolution


def _same_request(
    lease: Lease, request: LeaseRequest, *, subscription_id: int, metric_id: int | None, dimension_key: str
) -> None:
    """A retry must send what the first request sent (409 idempotency_key_reused otherwise)."""
    if (
        lease.kind, lease.subscription_id, lease.metric_id, lease.dimension_key, lease.requested_units, lease.min_units,
        lease.ttl_seconds, lease.holder,
    ) != (
        request.kind, subscription_id, metric_id, dimension_key, request.units, request.min_units, request.ttl_seconds,
        request.holder,
    ):
        raise ApiError(
            code="idempotency_key_reused", status_code=409, field="idempotency_key", lease_id=lease.pk,
            message=f"idempotency_key {request.idempotency_key!r} was used for another lease request (lease "
            f"{lease.pk}); use a new key for a new lease.",
        )


def _expires_at(now: datetime, ttl_seconds: int, period_end: datetime) -> datetime:
    return min(now + timedelta(seconds=ttl_seconds), period_end)


def _retried(create, *, tenant_id: int, request: LeaseRequest, now: datetime) -> tuple[Lease, bool]:
    """The same key committed first by a request the subscription's lock did not serialize with
    (another subscription): answered as a retry of that one."""
    try:
        return create()
    except IntegrityError:
        if not Lease.objects.filter(tenant_id=tenant_id, idempotency_key=request.idempotency_key).exists():
            raise
        return create()


def lease_create(*, tenant_id: int, request: LeaseRequest, now: datetime | None = None) -> tuple[Lease, bool]:
    """Grant a lease until now + ttl. Units: min(units, available) of the limit of the price that
    would rate `request.metric` for its subject now (the period's end at the latest), or 409
    insufficient_units (with `available`) below max(min_units, any). Money: min(amount, the
    wallet's available balance) as a wallet hold (billing.leases.money), or 402
    insufficient_funds. Returns (lease, created): a retry with the same idempotency key and the
    same request returns the first lease as it is now; another request with that key is a 409
    idempotency_key_reused."""
    now = now or timezone.now()
    if request.kind == Lease.Kind.MONEY:
        def create():
            return lease_money_create(tenant_id=tenant_id, request=request, now=now, same_request=_same_request)
    else:
        resolution = _resolve(tenant_id=tenant_id, request=request, now=now)

        def create():
            return _units_create(tenant_id=tenant_id, request=request, resolution=resolution, now=now)
    return _retried(create, tenant_id=tenant_id, request=request, now=now)


def _units_create(*, tenant_id: int, request: LeaseRequest, resolution: Resolution, now: datetime) -> tuple[Lease, bool]:
    sub = resolution.subscription
    start, end = period_for(cadence=sub.cadence, anchor=sub.anchor, at=now)
    key = BudgetKey(sub.id, resolution.metric.metric_id, resolution.dimension_key, start, end)
    with transaction.atomic(durable=True):
        subscription_lock(sub.id)
        existing = Lease.objects.select_for_update().filter(tenant_id=tenant_id, idempotency_key=request.idempotency_key).first()
        if existing is not None:
            _same_request(
                existing, request, subscription_id=sub.id, metric_id=resolution.metric.metric_id,
                dimension_key=resolution.dimension_key,
            )
            return lease_expire_if_due(existing, now=now), False
        rated, reserved = _rated_and_reserved(key)
        limit = resolution.model.limit.units
        free = plan.available(limit=limit, rated=rated, reserved=reserved)
        granted = plan.grant(requested=request.units, minimum=request.min_units, available=free)
        if granted is None:
            raise ApiError(
                code="insufficient_units", status_code=409, field="units", available=decimal_text(free),
                message=f"{decimal_text(free)} units of {request.metric!r} are available this period (limit "
                f"{decimal_text(limit)}, {decimal_text(rated)} rated, {decimal_text(reserved)} leased out); asked for "
                f"{decimal_text(request.units)}, at least {decimal_text(request.min_units)}.",
            )
        lease = Lease.objects.create(
            tenant_id=tenant_id, subscription_id=sub.id, customer_id=sub.customer_id,
            metric_id=resolution.metric.metric_id, dimension_key=resolution.dimension_key, period_start=start,
            period_end=end, holder=request.holder, idempotency_key=request.idempotency_key,
            requested_units=request.units, min_units=request.min_units, ttl_seconds=request.ttl_seconds,
            leased=granted, expires_at=_expires_at(now, request.ttl_seconds, end), created_at=now, updated_at=now,
        )
        _publish_after_commit(lease)
        return lease, True


def _locked_lease(*, tenant_id: int, lease_id: int) -> Lease:
    """The lease's subscription locked, then the lease re-read under that lock (inside a transaction)."""
    subscription_id = Lease.objects.filter(pk=lease_id, tenant_id=tenant_id).values_list("subscription_id", flat=True).first()
    if subscription_id is None:
        raise ApiError(code="not_found", message=f"No lease {lease_id} in this tenant.", status_code=404)
    subscription_lock(subscription_id)
    return Lease.objects.select_for_update().get(pk=lease_id)


def lease_expire_if_due(lease: Lease, *, now: datetime) -> Lease:
    """Expire a LOCKED active lease past its expiry, whoever finds it first."""
    if lease.status == Lease.Status.ACTIVE and lease.expires_at <= now:
        if lease.kind == Lease.Kind.MONEY:
            money_close(lease, status=plan.EXPIRED, now=now)
        else:
            lease_store(lease, plan.close(lease_state(lease), status=plan.EXPIRED), now=now)
        _publish_after_commit(lease)
        _announce_expiry(lease)
    return lease


def _announce_expiry(lease: Lease) -> None:
    """lease.expired to the tenant's endpoints, in the expiry's transaction: the holder did not
    renew or return it in time (a gateway node that died, or lost its way to Aforo)."""
    webhook_event_emit(
        tenant_id=lease.tenant_id, event_type="lease.expired", event_id=f"lease.expired:{lease.pk}",
        data={
            "lease_id": lease.pk, "kind": lease.kind, "customer_id": lease.customer_id,
            "subscription_id": lease.subscription_id, "holder": lease.holder,
            "metric": lease.metric.code if lease.metric_id else None, "currency": lease.currency or None,
            "leased": decimal_text(lease.leased), "used": decimal_text(lease.used), "expired": decimal_text(lease.expired),
            "expires_at": lease.expires_at.isoformat(),
        },
    )


def _not_active(lease: Lease) -> ApiError:
    return ApiError(
        code=f"lease_{lease.status}", status_code=409, lease_status=lease.status,
        message=f"Lease {lease.pk} is {lease.status}, not active.",
    )


def lease_get(*, tenant_id: int, lease_id: int, now: datetime | None = None) -> Lease:
    """A lease as it is now: one past its expiry is expired by this read."""
    now = now or timezone.now()
    with transaction.atomic(durable=True):
        lease = Lease.objects.filter(pk=lease_id, tenant_id=tenant_id).first()
        if lease is None:
            raise ApiError(code="not_found", message=f"No lease {lease_id} in this tenant.", status_code=404)
        if lease.status == Lease.Status.ACTIVE and lease.expires_at <= now:
            lease = lease_expire_if_due(_locked_lease(tenant_id=tenant_id, lease_id=lease_id), now=now)
        return money_consumed_now(lease)


def lease_renew(*, tenant_id: int, lease_id: int, request: RenewRequest, now: datetime | None = None) -> Lease:
    """Record the units used so far, extend the lease to now + ttl (the period's end at the
    latest) and, with `units`, top it up so that `units` remain unused (as far as the limit
    allows; never takes any back). A retry changes nothing more. 409 lease_expired /
    lease_returned when it is no longer active (one past its expiry is expired by this call)."""
    now = now or timezone.now()
    with transaction.atomic(durable=True):
        lease = lease_expire_if_due(_locked_lease(tenant_id=tenant_id, lease_id=lease_id), now=now)
        if lease.status == Lease.Status.ACTIVE:
            expires_at = _expires_at(now, request.ttl_seconds, lease.period_end)
            if lease.kind == Lease.Kind.MONEY:
                if request.units is not None:
                    raise ApiError(
                        code="top_up_not_supported", field="units", status_code=400,
                        message="A money lease is renewed without a top-up: lease more money with a new lease.",
                    )
                expires_at = now + timedelta(seconds=request.ttl_seconds)
                money_extend(lease, expires_at=expires_at, now=now)
            state = plan.report(lease_state(lease), request.used)
            if request.units is not None:
                limit = _limit_now(lease, now)
                rated, reserved = _rated_and_reserved(_key(lease))
                free = plan.available(limit=limit, rated=rated, reserved=reserved)
                state = plan.top_up(state, remaining=request.units, available_units=free)
            lease.expires_at = expires_at
            lease_store(lease, state, now=now)
            _publish_after_commit(lease)
            return lease
    raise _not_active(lease)  # outside the atomic block: an expiry found here stays committed


def _limit_now(lease: Lease, now: datetime) -> Decimal:
    """The limit of the lease's price as in force now (zero when nothing prices it any more)."""
    subject = f"subscription:{lease.subscription_id}"
    context = billing_contexts_build(tenant_id=lease.tenant_id, subjects=[subject]).get(subject)
    resolution = resolve(context, metric=lease.metric.code, at=now, subject=subject)
    if not isinstance(resolution, Resolution) or resolution.model.limit is None:
        return Decimal(0)
    return resolution.model.limit.units


def lease_return(*, tenant_id: int, lease_id: int, used: Decimal, now: datetime | None = None) -> tuple[Lease, bool]:
    """Close the lease: used = min(max(used, consumed), leased), the rest returned. Units the
    holder reports used but not rated yet stay reserved until their events are rated. A retry
    with the same `used` answers the returned lease unchanged. Returns (lease, changed)."""
    now = now or timezone.now()
    with transaction.atomic(durable=True):
        lease = lease_expire_if_due(_locked_lease(tenant_id=tenant_id, lease_id=lease_id), now=now)
        if lease.status == Lease.Status.RETURNED and lease.reported == max(lease.reported, used):
            return lease, False
        if lease.status == Lease.Status.ACTIVE:
            if lease.kind == Lease.Kind.MONEY:
                lease.reported = max(lease.reported, used)
                money_close(lease, status=plan.RETURNED, now=now)
            else:
                lease_store(lease, plan.close(plan.report(lease_state(lease), used), status=plan.RETURNED), now=now)
            _publish_after_commit(lease)
            return lease, True
    raise _not_active(lease)


def leases_expire(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """The expiry sweep: expire active leases past their expiry, at most `batch_size`, one short
    transaction per subscription (its lock, then the leases re-checked). Idempotent and safe
    next to renewals, returns and other sweeps. Returns the leases expired."""
    now = now or timezone.now()
    due = list(
        Lease.objects.filter(status=Lease.Status.ACTIVE, expires_at__lte=now)
        .order_by("expires_at", "id").values_list("subscription_id", "id")[:batch_size]
    )
    by_subscription: dict[int, list[int]] = {}
    for subscription_id, lease_id in due:
        by_subscription.setdefault(subscription_id, []).append(lease_id)
    expired = 0
    for subscription_id, lease_ids in sorted(by_subscription.items()):
        with transaction.atomic(durable=True):
            subscription_lock(subscription_id)
            for lease in Lease.objects.select_for_update().filter(pk__in=lease_ids).order_by("id"):
                before = lease.status
                expired += lease_expire_if_due(lease, now=now).status != before
    return expired
