"""What every lease write shares: the subscription's row lock (taken first, always) and the
lease row as a plan state and back."""

from __future__ import annotations

from datetime import datetime

from catalog.models import Subscription

from ..models import Lease
from . import plan


def subscription_lock(subscription_id: int) -> None:
    """SELECT … FOR UPDATE the subscription: the first lock of every lease write."""
    list(Subscription.objects.select_for_update().filter(pk=subscription_id).values_list("id"))


def lease_state(lease: Lease) -> plan.LeaseState:
    """The lease's accounting figures (billing.leases.plan)."""
    return plan.LeaseState(
        lease.status, lease.leased, lease.consumed, lease.reported, lease.used, lease.returned, lease.expired,
        lease.overrun,
    )


def lease_store(lease: Lease, state: plan.LeaseState, *, now: datetime) -> None:
    """Write a LOCKED lease's new figures (and its closing time, when it closes)."""
    for name in plan.LeaseState._fields:
        setattr(lease, name, getattr(state, name))
    lease.updated_at = now
    if state.status != plan.ACTIVE and lease.closed_at is None:
        lease.closed_at = now
    lease.save()
