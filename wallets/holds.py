"""Escrow holds on a wallet: place (reserve an amount for a metered session, with a TTL),
commit (charge the actual amount, at most the hold), release, and expiry. Each operation runs in
its own transaction under the wallet's row lock and is idempotent per key."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from aforo.money import decimal_text
from notify.services import webhook_event_emit

from .models import Hold, Wallet, WalletEntry
from .services import (
    MAX_HOLD_TTL_S,
    ZERO,
    InsufficientFunds,
    WalletError,
    _amount,
    _apply,
    _key,
    _key_reused,
    _locked_wallet,
)


@transaction.atomic(durable=True)
def hold_place(
    *, tenant_id: int, wallet_id: int, amount: Decimal, ttl_seconds: int, reference: str, idempotency_key: str,
    now: datetime | None = None,
) -> tuple[Hold, bool]:
    """Reserve `amount` of the available balance until now + ttl_seconds. Returns (hold,
    created); a retry with the same key returns the first hold as it is now. InsufficientFunds
    when the available balance (seen under the wallet lock) is less than the amount."""
    return hold_place_within(
        tenant_id=tenant_id, wallet_id=wallet_id, amount=amount, ttl_seconds=ttl_seconds, reference=reference,
        idempotency_key=idempotency_key, now=now,
    )


def hold_place_within(
    *, tenant_id: int, wallet_id: int, amount: Decimal, ttl_seconds: int, reference: str, idempotency_key: str,
    now: datetime | None = None,
) -> tuple[Hold, bool]:
    """hold_place inside the caller's transaction (an orchestrator that owns it: a money budget
    lease, billing.leases). The caller must take no wallet lock after a lock of its own that the
    rating batch takes after wallets (see wallets.services' lock order)."""
    assert transaction.get_connection().in_atomic_block, "hold_place_within must run inside a transaction"
    amount = _amount(amount)
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or not 1 <= ttl_seconds <= MAX_HOLD_TTL_S:
        raise WalletError("invalid_ttl", f"ttl_seconds must be 1 to {MAX_HOLD_TTL_S}", field="ttl_seconds", status=400)
    if not isinstance(reference, str) or not 1 <= len(reference) <= 200:
        raise WalletError("invalid_reference", "reference must be 1 to 200 characters", field="reference", status=400)
    _key(idempotency_key)
    now = now or timezone.now()
    wallet = _locked_wallet(tenant_id=tenant_id, wallet_id=wallet_id)
    existing = Hold.objects.filter(wallet=wallet, idempotency_key=idempotency_key).first()
    if existing is not None:
        ttl = round((existing.expires_at - existing.created_at).total_seconds())
        if (existing.amount, existing.reference, ttl) != (amount, reference, ttl_seconds):
            raise _key_reused(
                idempotency_key, f"a hold of {decimal_text(existing.amount)} for {existing.reference!r} ({ttl} s)"
            )
        return existing, False
    if wallet.available < amount:
        raise InsufficientFunds(available=wallet.available, needed=amount, currency=wallet.currency)
    hold = Hold.objects.create(
        tenant_id=tenant_id, wallet=wallet, amount=amount, reference=reference, idempotency_key=idempotency_key,
        expires_at=now + timedelta(seconds=ttl_seconds), created_at=now,
    )
    _apply(
        wallet, kind=WalletEntry.Kind.HOLD, amount=ZERO, held_change=amount, idempotency_key=f"hold:{hold.pk}",
        now=now, hold=hold, reference=reference,
    )
    return hold, True


def _locked_hold(*, tenant_id: int, hold_id: int) -> tuple[Wallet, Hold]:
    """The hold's wallet locked, then the hold re-read under that lock."""
    wallet_id = Hold.objects.filter(pk=hold_id, tenant_id=tenant_id).values_list("wallet_id", flat=True).first()
    if wallet_id is None:
        raise WalletError("not_found", f"No hold {hold_id} in this tenant.", status=404)
    wallet = _locked_wallet(tenant_id=tenant_id, wallet_id=wallet_id)
    return wallet, Hold.objects.select_for_update().get(pk=hold_id)


def _resolve(wallet: Wallet, hold: Hold, *, status: str, kind: str, charge: Decimal, now: datetime) -> None:
    remaining = hold.amount - hold.drawn
    _apply(
        wallet, kind=kind, amount=-charge, held_change=-remaining, idempotency_key=f"hold:{hold.pk}:{status}",
        now=now, hold=hold, reference=hold.reference,
    )
    hold.status = status
    hold.resolved_at = now
    if status == Hold.Status.COMMITTED:
        hold.committed_amount = charge
    hold.save(update_fields=["status", "resolved_at", "committed_amount"])
    if status == Hold.Status.EXPIRED:
        webhook_event_emit(
            tenant_id=hold.tenant_id, event_type="hold.expired", event_id=f"hold.expired:{hold.pk}",
            data={
                "hold_id": hold.pk, "wallet_id": wallet.pk, "customer_id": wallet.customer_id, "currency": wallet.currency,
                "amount": decimal_text(hold.amount), "drawn": decimal_text(hold.drawn), "released": decimal_text(remaining),
                "reference": hold.reference, "expired_at": now.isoformat(),
            },
        )


def _not_active(hold: Hold) -> WalletError:
    return WalletError(
        f"hold_{hold.status}", f"Hold {hold.pk} is {hold.status}, not active.", hold_status=hold.status,
    )


def _expire_if_due(wallet: Wallet, hold: Hold, now: datetime) -> bool:
    """An active hold past its TTL is expired right here, whoever finds it first."""
    if hold.status == Hold.Status.ACTIVE and hold.expires_at <= now:
        _resolve(wallet, hold, status=Hold.Status.EXPIRED, kind=WalletEntry.Kind.HOLD_EXPIRY, charge=ZERO, now=now)
        return True
    return False


def hold_commit(
    *, tenant_id: int, hold_id: int, amount: Decimal, allow_over_capture: bool = False, now: datetime | None = None
) -> tuple[Hold, bool]:
    """Charge `amount` for the hold's purpose as one ledger entry traceable to the hold and
    release the rest of the reservation. `amount` is on top of what rated events of the
    session already drew from the hold (zero: nothing more to charge) and is exact, like the
    usage it pays for (no minor-unit rounding: holds and commits are charges, not payments).

    More than the part still held (amount − drawn) is refused with 409 `exceeds_hold` (the
    hold's `amount`, `drawn`, `remaining` and the `excess` in the error) unless
    `allow_over_capture` is True, and then only if the available balance covers the excess
    (else InsufficientFunds). Idempotent: committing a committed hold with the same amount
    returns it unchanged, whatever `allow_over_capture` says (a retry charges nothing).
    Returns (hold, changed)."""
    amount = _amount(amount, allow_zero=True)
    if not isinstance(allow_over_capture, bool):
        raise WalletError(
            "invalid_allow_over_capture", "allow_over_capture must be true or false", field="allow_over_capture",
            status=400,
        )
    now = now or timezone.now()
    with transaction.atomic(durable=True):
        wallet, hold = _locked_hold(tenant_id=tenant_id, hold_id=hold_id)
        expired = _expire_if_due(wallet, hold, now)
        if not expired and hold.status == Hold.Status.COMMITTED and hold.committed_amount == amount:
            return hold, False
        if not expired and hold.status == Hold.Status.ACTIVE:
            excess = amount - (hold.amount - hold.drawn)
            if excess > 0 and not allow_over_capture:
                raise _exceeds_hold(hold, amount=amount, excess=excess, currency=wallet.currency)
            if excess > 0 and wallet.available < excess:
                raise InsufficientFunds(available=wallet.available, needed=excess, currency=wallet.currency)
            _resolve(wallet, hold, status=Hold.Status.COMMITTED, kind=WalletEntry.Kind.HOLD_COMMIT, charge=amount, now=now)
            return hold, True
    raise _not_active(hold)  # outside the atomic block: an expiry found here stays committed


def _exceeds_hold(hold: Hold, *, amount: Decimal, excess: Decimal, currency: str) -> WalletError:
    remaining = hold.amount - hold.drawn
    drawn = ""
    if hold.drawn:
        drawn = f", {decimal_text(hold.drawn)} already drawn by its session, {decimal_text(remaining)} left"
    return WalletError(
        "exceeds_hold",
        f"Hold {hold.pk} reserved {decimal_text(hold.amount)} {currency}{drawn}; committing {decimal_text(amount)} "
        f"{currency} would charge {decimal_text(excess)} {currency} more than it holds. Send allow_over_capture: true "
        "to charge the excess to the available balance.",
        field="amount", amount=hold.amount, drawn=hold.drawn, remaining=remaining, excess=excess, currency=currency,
    )


def hold_release(*, tenant_id: int, hold_id: int, now: datetime | None = None) -> tuple[Hold, bool]:
    """Give the reservation back, charging nothing. Idempotent. Returns (hold, changed)."""
    now = now or timezone.now()
    with transaction.atomic(durable=True):
        wallet, hold = _locked_hold(tenant_id=tenant_id, hold_id=hold_id)
        expired = _expire_if_due(wallet, hold, now)
        if not expired and hold.status == Hold.Status.RELEASED:
            return hold, False
        if not expired and hold.status == Hold.Status.ACTIVE:
            _resolve(wallet, hold, status=Hold.Status.RELEASED, kind=WalletEntry.Kind.HOLD_RELEASE, charge=ZERO, now=now)
            return hold, True
    raise _not_active(hold)


def hold_wallet_available(*, tenant_id: int, wallet_id: int) -> Decimal:
    """The wallet's available balance, read under its row lock (inside the caller's transaction):
    what a hold placed next in the same transaction may take."""
    return _locked_wallet(tenant_id=tenant_id, wallet_id=wallet_id).available


def hold_close_within(*, tenant_id: int, hold_id: int, expires_at: datetime | None = None,
                      now: datetime | None = None) -> Hold:
    """Inside the caller's transaction, under the wallet's lock: with `expires_at`, move an active
    hold's expiry there; without, release what an active hold still reserves, charging nothing
    (its session's rated events paid as they were rated). A hold past its TTL is expired instead,
    and a hold no longer active is returned as it is. Returns the hold as it is now."""
    now = now or timezone.now()
    wallet, hold = _locked_hold(tenant_id=tenant_id, hold_id=hold_id)
    if _expire_if_due(wallet, hold, now) or hold.status != Hold.Status.ACTIVE:
        return hold
    if expires_at is not None:
        hold.expires_at = expires_at
        hold.save(update_fields=["expires_at"])
    else:
        _resolve(wallet, hold, status=Hold.Status.RELEASED, kind=WalletEntry.Kind.HOLD_RELEASE, charge=ZERO, now=now)
    return hold


def holds_expire(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """The HoldExpiryScheduler's sweep: expire active holds past their TTL, at most
    `batch_size`, one short transaction per wallet (wallet lock, then the holds re-checked).
    Idempotent and safe next to commits, releases and other sweeps. Returns holds expired."""
    now = now or timezone.now()
    due = list(
        Hold.objects.filter(status=Hold.Status.ACTIVE, expires_at__lte=now)
        .order_by("expires_at", "id")
        .values_list("wallet_id", "tenant_id", "id")[:batch_size]
    )
    by_wallet: dict[tuple[int, int], list[int]] = {}
    for wallet_id, tenant_id, hold_id in due:
        by_wallet.setdefault((wallet_id, tenant_id), []).append(hold_id)
    expired = 0
    for (wallet_id, tenant_id), hold_ids in sorted(by_wallet.items()):
        with transaction.atomic(durable=True):
            wallet = _locked_wallet(tenant_id=tenant_id, wallet_id=wallet_id)
            for hold in Hold.objects.select_for_update().filter(pk__in=hold_ids).order_by("id"):
                expired += _expire_if_due(wallet, hold, now)
    return expired
