"""Money budget leases: a slice of a prepaid (or hybrid) customer's wallet, as a wallet hold
(wallets.holds, reference `lease:<lease id>`) — so leases and holds reserve against each other
through the wallet's available balance, under the wallet's row lock.

Rated events that name the lease (metadata.lease_id) and carry no session_id dimension draw
from its hold first (wallets.debits: the hold's `drawn` is the lease's `consumed`). Closing the
lease releases what its hold still reserves; events still in flight after that are debited
from the wallet as they are rated, like any usage (a money lease keeps no in-flight reserve).
Renewal extends the lease and its hold; a top-up (`units`) is not offered for money leases.

Lock order: the subscription, the lease, then the wallet and its hold (the rating batch locks
wallets, then holds, and never a money lease's row)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from django.db import transaction

from aforo.exceptions import ApiError
from aforo.money import decimal_text
from metering.contexts import SubscriptionContext
from metering.selectors import billing_contexts_build
from wallets.holds import hold_close_within, hold_place_within, hold_wallet_available
from wallets.models import Hold, Wallet

from ..models import Lease
from ..periods import period_for
from . import plan
from .inputs import LeaseRequest
from .rows import lease_state, lease_store, subscription_lock

WALLET_MODES = ("prepaid", "hybrid")
HOLD_STEP = Decimal("1e-12")
_UNKNOWN = {"key": "unknown_api_key", "customer": "unknown_customer", "subscription": "unknown_subscription"}


def _subscription(*, tenant_id: int, request: LeaseRequest, now: datetime) -> SubscriptionContext:
    """The subscription a money lease draws on: the lowest-id one active now that settles against
    a wallet."""
    context = billing_contexts_build(tenant_id=tenant_id, subjects=[request.subject]).get(request.subject)
    if context is None:
        code = _UNKNOWN[request.subject.split(":", 1)[0]]
        raise ApiError(code=code, message=f"Nothing of this tenant answers to it ({code}).", status_code=404)
    if context.revoked_at is not None and now >= context.revoked_at:
        raise ApiError(code="revoked_api_key", message="The API key is revoked.", status_code=409)
    active = [s for s in context.subscriptions if s.started_at <= now and (s.ended_at is None or now < s.ended_at)]
    if not active:
        raise ApiError(code="no_active_subscription", message="No subscription is active now.", status_code=409)
    prepaid = sorted((s for s in active if s.billing_mode in WALLET_MODES), key=lambda s: s.id)
    if not prepaid:
        raise ApiError(
            code="no_wallet_billing", status_code=409, field="amount",
            message="No active subscription settles against a wallet (prepaid or hybrid): lease units instead.",
        )
    return prepaid[0]


def lease_money_create(*, tenant_id: int, request: LeaseRequest, now: datetime, same_request) -> tuple[Lease, bool]:
    """Grant min(amount, the wallet's available balance) as a hold, or 402 insufficient_funds
    below max(min_amount, any). Idempotent by key like a unit lease (`same_request` decides)."""
    sub = _subscription(tenant_id=tenant_id, request=request, now=now)
    wallet_id = (
        Wallet.objects.filter(tenant_id=tenant_id, customer_id=sub.customer_id, currency=sub.currency)
        .values_list("id", flat=True).first()
    )
    if wallet_id is None:
        raise ApiError(code="no_wallet", status_code=409, message=f"The customer has no {sub.currency} wallet.")
    start, end = period_for(cadence=sub.cadence, anchor=sub.anchor, at=now)
    with transaction.atomic(durable=True):
        subscription_lock(sub.id)
        existing = Lease.objects.select_for_update().filter(tenant_id=tenant_id, idempotency_key=request.idempotency_key).first()
        if existing is not None:
            same_request(existing, request, subscription_id=sub.id, metric_id=None, dimension_key="")
            return money_consumed_now(money_expire_if_due(existing, now=now)), False
        # Stored balances carry 26 places; a hold takes at most 12: the grant rounds down, never up.
        available = hold_wallet_available(tenant_id=tenant_id, wallet_id=wallet_id).quantize(HOLD_STEP, ROUND_DOWN)
        granted = plan.grant(requested=request.units, minimum=request.min_units, available=available)
        if granted is None:
            raise ApiError(
                code="insufficient_funds", status_code=402, field="amount", available=decimal_text(available),
                currency=sub.currency, message=f"The wallet's available balance is {decimal_text(available)} "
                f"{sub.currency}; asked for {decimal_text(request.units)}, at least {decimal_text(request.min_units)}.",
            )
        lease = Lease.objects.create(
            tenant_id=tenant_id, kind=Lease.Kind.MONEY, subscription_id=sub.id, customer_id=sub.customer_id,
            currency=sub.currency, period_start=start, period_end=end, holder=request.holder,
            idempotency_key=request.idempotency_key, requested_units=request.units, min_units=request.min_units,
            ttl_seconds=request.ttl_seconds, leased=granted, expires_at=now + timedelta(seconds=request.ttl_seconds),
            created_at=now, updated_at=now,
        )
        lease.hold, _ = hold_place_within(
            tenant_id=tenant_id, wallet_id=wallet_id, amount=granted, ttl_seconds=request.ttl_seconds,
            reference=f"lease:{lease.pk}", idempotency_key=f"lease:{lease.pk}", now=now,
        )
        lease.save(update_fields=["hold"])
        return lease, True


def money_close(lease: Lease, *, status: str, now: datetime) -> Lease:
    """Close a LOCKED active money lease: its hold released (or expired, past its TTL), what the
    hold's session drew is what it consumed."""
    hold = hold_close_within(tenant_id=lease.tenant_id, hold_id=lease.hold_id, now=now)
    lease.consumed = hold.drawn
    lease_store(lease, plan.close(lease_state(lease), status=status), now=now)
    return lease


def money_expire_if_due(lease: Lease, *, now: datetime) -> Lease:
    if lease.status == Lease.Status.ACTIVE and lease.expires_at <= now:
        money_close(lease, status=plan.EXPIRED, now=now)
    return lease


def money_extend(lease: Lease, *, expires_at: datetime, now: datetime) -> None:
    """Move a LOCKED active money lease's hold to the lease's new expiry; what it drew so far is consumed."""
    hold = hold_close_within(tenant_id=lease.tenant_id, hold_id=lease.hold_id, expires_at=expires_at, now=now)
    lease.consumed = hold.drawn


def money_consumed_now(lease: Lease) -> Lease:
    """An active money lease with `consumed` read from its hold (for display; nothing written)."""
    if lease.kind == Lease.Kind.MONEY and lease.status == Lease.Status.ACTIVE and lease.hold_id is not None:
        drawn = Hold.objects.filter(pk=lease.hold_id).values_list("drawn", flat=True).first()
        if drawn is not None:
            lease.consumed = drawn
    return lease
