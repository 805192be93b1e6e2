"""Allowance grants: free units of a metric for one billing period of a subscription, applied
by that period's final settlement run (billing.settlement.allowance). A period whose FINAL run
exists never applies a grant again: creating one for it, or withdrawing one from it (it is part
of that invoice), raises AllowanceGrantPeriodSettled. The check runs under the subscription's
row lock, the lock the settlement run holds, so a grant is either settled with its period or
refused, never silently lost. A create may carry the caller's idempotency key (unique per
subscription): a retry with the same key and parameters returns the first grant and changes
nothing; the same key with other parameters raises AllowanceGrantKeyReused. Used by the API
(billing.api.allowance_grants) and the admin."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet

from billing.rating import text
from catalog.models import Metric, Subscription

from .models import AllowanceGrant, SettlementRun
from .periods import period_for


class AllowanceGrantPeriodSettled(Exception):
    """The grant's period has a final settlement run: it can no longer be granted or withdrawn."""

    def __init__(self, *, run: SettlementRun):
        self.run = run
        super().__init__(f"The period starting {run.period_start:%Y-%m-%d} is settled already.")


class AllowanceGrantKeyReused(Exception):
    """The idempotency key names an earlier grant of the subscription with other parameters."""

    def __init__(self, *, grant: AllowanceGrant):
        self.grant = grant
        super().__init__(
            f"Idempotency key {grant.idempotency_key!r} was already used for grant {grant.pk} "
            f"({text(grant.units)} of metric {grant.metric_id} for the period from {grant.period_start:%Y-%m-%d}) with "
            "other parameters."
        )


def _final_run(*, subscription_id: int, period_start: datetime) -> SettlementRun | None:
    return SettlementRun.objects.filter(
        subscription_id=subscription_id, period_start=period_start, kind=SettlementRun.Kind.FINAL
    ).first()


def allowance_grants_with_applied(queryset: QuerySet[AllowanceGrant]) -> QuerySet[AllowanceGrant]:
    """`queryset` annotated with `applied`: whether the grant's period has its final run."""
    final_runs = SettlementRun.objects.filter(
        subscription_id=OuterRef("subscription_id"), period_start=OuterRef("period_start"),
        kind=SettlementRun.Kind.FINAL,
    )
    return queryset.annotate(applied=Exists(final_runs))


def allowance_grant_period(*, grant: AllowanceGrant) -> tuple[datetime, datetime]:
    """The billing period [start, end) of the subscription that contains the grant's period_start."""
    subscription = grant.subscription
    return period_for(cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, at=grant.period_start)


def allowance_grant_save(*, grant: AllowanceGrant) -> AllowanceGrant:
    """Validate (model clean: same tenant, units > 0, not before the subscription started) and
    save a new or changed grant; its `period_start` is stored as its period's start. Under the
    subscription's row lock (the settlement run's): raises AllowanceGrantPeriodSettled when the
    target period — or, for a change, the stored grant's period — has its final run.
    Not durable: the admin's change view already runs in a transaction (the lock is then held
    until that commits); from the API this is the top-level transaction."""
    with transaction.atomic():
        grant.subscription = Subscription.objects.select_for_update().get(pk=grant.subscription_id)
        grant.full_clean()
        periods = [allowance_grant_period(grant=grant)[0]]
        if grant.pk is not None:
            periods += AllowanceGrant.objects.filter(pk=grant.pk).values_list("period_start", flat=True)
        for period_start in periods:
            if (run := _final_run(subscription_id=grant.subscription_id, period_start=period_start)) is not None:
                raise AllowanceGrantPeriodSettled(run=run)
        grant.save()
    return grant


def allowance_grant_create(
    *, subscription: Subscription, metric: Metric, units: Decimal, at: datetime, description: str = "",
    idempotency_key: str = "",
) -> tuple[AllowanceGrant, bool]:
    """Grant `units` of `metric` free for the period of `subscription` containing `at`. Returns
    (grant, created): with an `idempotency_key` already used for this subscription, the grant it
    made when the parameters are the same (created False, even if its period has been settled
    since), AllowanceGrantKeyReused when they are not."""
    grant = AllowanceGrant(
        tenant_id=subscription.tenant_id, subscription=subscription, metric=metric, period_start=at, units=units,
        description=description, idempotency_key=idempotency_key,
    )
    with transaction.atomic():
        if idempotency_key:
            locked = Subscription.objects.select_for_update().get(pk=subscription.pk)  # as the save would
            first = AllowanceGrant.objects.filter(subscription=locked, idempotency_key=idempotency_key).first()
            if first is not None:
                start, _ = period_for(cadence=locked.billing_cadence, anchor=locked.billing_anchor, at=at)
                same = (first.metric_id, first.units, first.period_start, first.description) == (
                    metric.pk, units, start, description
                )
                if not same:
                    raise AllowanceGrantKeyReused(grant=first)
                return first, False
        return allowance_grant_save(grant=grant), True


def allowance_grant_delete(*, grant: AllowanceGrant) -> None:
    """Withdraw a grant whose period is not settled (AllowanceGrantPeriodSettled otherwise: an
    applied grant is part of an invoice). Under the subscription's row lock; not durable, like
    allowance_grant_save (the admin's delete view runs in a transaction)."""
    with transaction.atomic():
        Subscription.objects.select_for_update().filter(pk=grant.subscription_id).first()
        stored = AllowanceGrant.objects.filter(pk=grant.pk).first()
        if stored is None:
            return  # withdrawn concurrently: the outcome the caller asked for
        if (run := _final_run(subscription_id=stored.subscription_id, period_start=stored.period_start)) is not None:
            raise AllowanceGrantPeriodSettled(run=run)
        stored.delete()
