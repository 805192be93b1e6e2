"""Credit grants: promotional or paid credit inside a customer's wallet (wallets.models.CreditGrant).

A grant enters the wallet as a `grant` entry (+amount), so balance == sum(entries) keeps holding
and paid balance = balance − Σ remaining of the active grants. It is consumed before the paid
balance, in (priority, soonest expiry, oldest) order (wallets.plan.grants_allocate), only in
[starts_at, expires_at):
- prepaid and hybrid: by every wallet debit — the rating batch's (wallets.debits), settlement's
  wallet part (wallet_settlement_charge, via grants_take_for);
- postpaid: at settlement, a stage after tax applies the usable grants to the invoice as
  "Credit grant" lines (billing.settlement.credit_grants): credit_grants_invoice_settle writes
  one `grant_use` entry per grant; a void gives the voided invoice's part back (`grant_return`)
  to the grants still usable, and the reissue takes again;
- expiry is an event of the ledger: a `grant_expiry` entry (−remaining) dated the grant's
  expires_at (credit_grants_expire, the beat sweep); a void, a `grant_void` entry.
Every part of a grant a ledger entry takes or gives back is a CreditGrantDraw, so under the
wallet lock: remaining == amount − Σ draws + Σ its grant_expiry/grant_void entries
(credit_grants_check). Lock order: the wallet row, then its grants (by id).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from aforo.money import currency_is_valid, decimal_text
from catalog.models import Customer

from .models import CreditGrant, CreditGrantDraw, Wallet, WalletEntry
from .plan import GrantState, grant_order, grants_allocate
from .services import ZERO, WalletError, _amount, _apply, _key, _key_reused, _locked_wallet, _whole_minor_units

MAX_PRIORITY = 1000
MAX_NAME = 200
MAX_REASON = 500
ACTIVE, CONSUMED = CreditGrant.Status.ACTIVE, CreditGrant.Status.CONSUMED


def _state(grant: CreditGrant) -> GrantState:
    return GrantState(grant.pk, grant.wallet_id, grant.priority, grant.starts_at, grant.expires_at, grant.amount, grant.remaining)


def _locked_grants(wallet_id: int, *, consumed_too: bool = False) -> dict[int, CreditGrant]:
    """The wallet's active (and consumed) grants, locked by id: the caller holds the wallet lock."""
    statuses = [ACTIVE, CONSUMED] if consumed_too else [ACTIVE]
    return {g.pk: g for g in CreditGrant.objects.select_for_update().filter(wallet_id=wallet_id, status__in=statuses).order_by("id")}


def _draws_record(
    grants: dict[int, CreditGrant], parts: Sequence[tuple[int, Decimal]], entry: WalletEntry, now: datetime,
    *, invoice_id: int | None = None,
) -> None:
    """The parts an entry took from (+) or gave back to (−) locked grants, and their new remaining."""
    for grant_id, part in parts:
        grant = grants[grant_id]
        grant.remaining -= part
        grant.status = CONSUMED if grant.remaining == 0 else ACTIVE
        grant.save(update_fields=["remaining", "status"])
        CreditGrantDraw.objects.create(
            tenant_id=entry.tenant_id, grant=grant, entry=entry, amount=part, invoice_id=invoice_id, created_at=now
        )


# --- granting, voiding, expiring ---------------------------------------------------------------


def _text(value: object, field: str, *, required: bool, limit: int) -> str:
    if not isinstance(value, str) or "\x00" in value or len(value.strip()) > limit or (required and not value.strip()):
        need = f"1 to {limit}" if required else f"at most {limit}"
        raise WalletError(f"invalid_{field}", f"{field} must be {need} characters", field=field, status=400)
    return value.strip()


def _grant_terms(
    *, kind: str, priority: int, starts_at: datetime, expires_at: datetime | None, now: datetime
) -> None:
    if kind not in CreditGrant.Kind.values:
        raise WalletError("invalid_kind", f"kind must be one of {', '.join(CreditGrant.Kind.values)}", field="kind", status=400)
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= MAX_PRIORITY:
        raise WalletError("invalid_priority", f"priority must be an integer 0 to {MAX_PRIORITY}", field="priority", status=400)
    for name, moment in (("starts_at", starts_at), ("expires_at", expires_at)):
        if moment is not None and (not isinstance(moment, datetime) or timezone.is_naive(moment)):
            raise WalletError(f"invalid_{name}", f"{name} must be a date-time with its time zone", field=name, status=400)
    if expires_at is not None and expires_at <= starts_at:
        raise WalletError("invalid_expires_at", "expires_at must be after starts_at", field="expires_at", status=400)
    if expires_at is not None and expires_at <= now:
        raise WalletError("invalid_expires_at", "expires_at is in the past: the grant would be expired", field="expires_at", status=400)


@transaction.atomic(durable=True)
def credit_grant_create(
    *, customer: Customer, currency: str, amount: Decimal, name: str, idempotency_key: str,
    kind: str = CreditGrant.Kind.PROMOTIONAL, priority: int = 100, starts_at: datetime | None = None,
    expires_at: datetime | None = None, reason: str = "", now: datetime | None = None,
) -> tuple[CreditGrant, bool]:
    """Grant `amount` (more than zero, whole minor units of `currency`) to the customer's wallet
    in `currency` (created empty if missing): a CreditGrant and its `grant` entry (+amount), in
    one durable transaction under the wallet lock. Returns (grant, created); a retry with the
    same key returns the first grant; the same key with other terms is a 409
    idempotency_key_reused. 400s name the field: invalid_currency, invalid_amount, invalid_kind,
    invalid_priority (0–1000), invalid_expires_at (after starts_at, in the future), invalid_name."""
    now = now or timezone.now()
    code = currency.strip().upper() if isinstance(currency, str) else None
    if not currency_is_valid(code):
        raise WalletError("invalid_currency", f"currency {currency!r} is not an active ISO 4217 code", field="currency", status=400)
    amount = _amount(amount)
    _whole_minor_units(amount, code)
    name = _text(name, "name", required=True, limit=MAX_NAME)
    reason = _text(reason, "reason", required=False, limit=MAX_REASON)
    starts_at = starts_at or now
    _grant_terms(kind=kind, priority=priority, starts_at=starts_at, expires_at=expires_at, now=now)
    key = f"grant:{_key(idempotency_key)}"
    wallet, _ = Wallet.objects.get_or_create(customer=customer, currency=code, defaults={"tenant_id": customer.tenant_id})
    wallet = _locked_wallet(tenant_id=customer.tenant_id, wallet_id=wallet.pk)
    existing = CreditGrant.objects.filter(wallet=wallet, idempotency_key=key).first()
    if existing is not None:
        if (existing.amount, existing.name, existing.kind, existing.priority, existing.expires_at) != (
            amount, name, kind, priority, expires_at
        ):
            raise _key_reused(idempotency_key, f"the grant {existing.pk} ({decimal_text(existing.amount)} {code})")
        return existing, False
    grant = CreditGrant.objects.create(
        tenant_id=wallet.tenant_id, wallet=wallet, name=name, kind=kind, amount=amount, remaining=amount,
        priority=priority, starts_at=starts_at, expires_at=expires_at, reason=reason, idempotency_key=key, created_at=now,
    )
    _apply(wallet, kind=WalletEntry.Kind.GRANT, amount=amount, held_change=ZERO, idempotency_key=key, now=now,
           reference=name[:200], reason=reason, grant_id=grant.pk)
    return grant, True


def _grant_locked(tenant_id: int, grant_id: int) -> tuple[Wallet, CreditGrant]:
    wallet_id = CreditGrant.objects.filter(pk=grant_id, tenant_id=tenant_id).values_list("wallet_id", flat=True).first()
    if wallet_id is None:
        raise WalletError("not_found", f"No credit grant {grant_id} in this tenant.", status=404)
    wallet = _locked_wallet(tenant_id=tenant_id, wallet_id=wallet_id)
    return wallet, CreditGrant.objects.select_for_update().get(pk=grant_id)


def _close(wallet: Wallet, grant: CreditGrant, *, kind: str, status: str, at: datetime, now: datetime) -> None:
    """What the grant has left leaves the wallet (one entry dated `at`), and the grant is closed."""
    if grant.remaining:
        _apply(wallet, kind=kind, amount=-grant.remaining, held_change=ZERO, idempotency_key=f"{kind}:{grant.pk}",
               now=at, reference=grant.name[:200], grant_id=grant.pk)
    grant.remaining, grant.status, grant.resolved_at = ZERO, status, now
    grant.save(update_fields=["remaining", "status", "resolved_at", "void_reason"])


@transaction.atomic(durable=True)
def credit_grant_void(*, tenant_id: int, grant_id: int, reason: str, now: datetime | None = None) -> tuple[CreditGrant, bool]:
    """Void a grant: what it has left leaves the wallet (a `grant_void` entry); what it paid
    stays paid. `reason` is required (400 reason_required). Returns (grant, changed): voiding a
    voided grant again changes nothing; an expired one is a 409 grant_expired."""
    if not isinstance(reason, str) or not reason.strip() or len(reason.strip()) > MAX_REASON or "\x00" in reason:
        raise WalletError("reason_required", f"a void needs its reason, 1 to {MAX_REASON} characters", field="reason", status=400)
    now = now or timezone.now()
    wallet, grant = _grant_locked(tenant_id, grant_id)
    if grant.status == CreditGrant.Status.VOIDED:
        return grant, False
    if grant.status == CreditGrant.Status.EXPIRED:
        raise WalletError("grant_expired", f"Credit grant {grant.pk} expired at {grant.expires_at:%Y-%m-%dT%H:%M:%SZ}.")
    grant.void_reason = reason.strip()
    _close(wallet, grant, kind=WalletEntry.Kind.GRANT_VOID, status=CreditGrant.Status.VOIDED, at=now, now=now)
    return grant, True


def credit_grants_expire(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """The beat sweep: active grants whose expires_at has passed, at most `batch_size`, one short
    transaction per wallet (its lock, then the grants re-checked). What each has left leaves the
    wallet as a `grant_expiry` entry dated its expires_at (keyed per grant: once). Consumption
    never waited for this: from expires_at on no debit draws on the grant. Returns grants expired."""
    now = now or timezone.now()
    due = CreditGrant.objects.filter(status=ACTIVE, expires_at__lte=now).order_by("expires_at", "id")
    by_wallet: dict[tuple[int, int], list[int]] = defaultdict(list)
    for wallet_id, tenant_id, grant_id in due.values_list("wallet_id", "tenant_id", "id")[:batch_size]:
        by_wallet[(wallet_id, tenant_id)].append(grant_id)
    expired = 0
    for (wallet_id, tenant_id), grant_ids in sorted(by_wallet.items()):
        with transaction.atomic(durable=True):
            wallet = _locked_wallet(tenant_id=tenant_id, wallet_id=wallet_id)
            for grant in CreditGrant.objects.select_for_update().filter(pk__in=grant_ids, status=ACTIVE, expires_at__lte=now).order_by("id"):
                _close(wallet, grant, kind=WalletEntry.Kind.GRANT_EXPIRY, status=CreditGrant.Status.EXPIRED,
                       at=grant.expires_at, now=now)
                expired += 1
    return expired


# --- consumption outside the rating batch -------------------------------------------------------


def usable_balance(wallet: Wallet, now: datetime) -> Decimal:
    """The wallet's available balance less what its grants not usable now still hold."""
    unusable = sum(
        (g.remaining for g in CreditGrant.objects.filter(wallet=wallet, status=ACTIVE) if not _state(g).usable(now)), ZERO
    )
    return wallet.available - unusable


def grants_take_for(wallet: Wallet, entry: WalletEntry, now: datetime) -> None:
    """A wallet debit (entry.amount < 0) consumes the usable grants first; a credit gives back
    (wallets.plan.grants_allocate). The caller holds the wallet lock and wrote `entry`."""
    grants = _locked_grants(wallet.pk, consumed_too=entry.amount > 0)
    if grants:
        _draws_record(grants, grants_allocate([_state(g) for g in grants.values()], -entry.amount, now), entry, now)


# --- postpaid settlement ------------------------------------------------------------------------


class GrantBalance(NamedTuple):
    grant_id: int
    name: str
    remaining: Decimal


def _invoice_drawn(wallet_id: int, invoice_id: int) -> dict[int, Decimal]:
    """What an invoice's Credit grant lines took from each grant, net of what was given back."""
    rows = (
        CreditGrantDraw.objects.filter(grant__wallet_id=wallet_id, invoice_id=invoice_id)
        .values("grant_id").annotate(total=Sum("amount")).values_list("grant_id", "total")
    )
    return {grant_id: total for grant_id, total in rows if total}


def credit_grants_for_invoice(
    *, customer_id: int, currency: str, now: datetime, giving_back: int | None = None
) -> list[GrantBalance]:
    """The customer's grants in `currency` usable at `now`, locked (wallet first), in consumption
    order with what each has left — plus, for a reissue, what the voided invoice `giving_back`
    took from it (credit_grants_invoice_settle gives that back before taking again)."""
    wallet = Wallet.objects.filter(customer_id=customer_id, currency=currency).first()
    if wallet is None:
        return []
    wallet = Wallet.objects.select_for_update().get(pk=wallet.pk)
    grants = _locked_grants(wallet.pk, consumed_too=giving_back is not None)
    back = _invoice_drawn(wallet.pk, giving_back) if giving_back is not None else {}
    states = sorted((_state(g) for g in grants.values() if _state(g).usable(now)), key=grant_order)
    balances = [GrantBalance(s.id, grants[s.id].name, s.remaining + back.get(s.id, ZERO)) for s in states]
    return [b for b in balances if b.remaining > 0]


def credit_grants_invoice_settle(
    *, tenant_id: int, customer_id: int, currency: str, invoice_id: int, draws: Sequence[tuple[int, Decimal]],
    key: str, reference: str, now: datetime, giving_back: int | None = None,
) -> None:
    """In the settlement's transaction: first the voided invoice `giving_back`'s grant parts go
    back (a `grant_return` entry each, to the grants still usable: an expired or voided grant's
    part stays spent, as it would have expired), then each of `draws` (grant id, amount) is a
    `grant_use` entry paying invoice `invoice_id`. Idempotent per `key`."""
    assert connection.in_atomic_block, "credit_grants_invoice_settle must run inside the settlement transaction"
    if not draws and giving_back is None:
        return
    wallet = Wallet.objects.filter(customer_id=customer_id, currency=currency).first()
    if wallet is None:
        return
    wallet = _locked_wallet(tenant_id=tenant_id, wallet_id=wallet.pk)
    grants = _locked_grants(wallet.pk, consumed_too=True)
    if WalletEntry.objects.filter(wallet=wallet, idempotency_key__startswith=f"{key}:").exists():
        return
    moves: list[tuple[str, int, Decimal, int]] = []
    if giving_back is not None:
        for grant_id, taken in sorted(_invoice_drawn(wallet.pk, giving_back).items()):
            if grant_id in grants and _state(grants[grant_id]).usable(now) and taken > 0:
                moves.append((WalletEntry.Kind.GRANT_RETURN, grant_id, -taken, giving_back))
    moves += [(WalletEntry.Kind.GRANT_USE, grant_id, amount, invoice_id) for grant_id, amount in draws if amount > 0]
    for kind, grant_id, part, invoice in moves:
        entry = _apply(wallet, kind=kind, amount=-part, held_change=ZERO, idempotency_key=f"{key}:{kind}:{grant_id}",
                       now=now, reference=reference[:200], grant_id=grant_id)
        _draws_record(grants, [(grant_id, part)], entry, now, invoice_id=invoice)


# --- the invariant ------------------------------------------------------------------------------


def credit_grants_check() -> list[str]:
    """Every grant against its draws and ledger entries: remaining == amount − Σ draws + Σ its
    grant_expiry/grant_void entries; its grant entry == amount; status agrees with remaining;
    no draw took from a grant at or after its expiry; a grant_use/grant_return entry equals its
    draws, a debit's draws never exceed it. One line per problem."""
    grant, draw, entry = CreditGrant._meta.db_table, CreditGrantDraw._meta.db_table, WalletEntry._meta.db_table
    problems: list[str] = []
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT g.id, g.amount, g.remaining, g.status,
                   COALESCE((SELECT SUM(amount) FROM {draw} WHERE grant_id = g.id), 0),
                   COALESCE((SELECT SUM(amount) FROM {entry} WHERE grant_id = g.id AND kind IN ('grant_expiry', 'grant_void')), 0),
                   (SELECT SUM(amount) FROM {entry} WHERE grant_id = g.id AND kind = 'grant'),
                   (SELECT COUNT(*) FROM {draw} d WHERE d.grant_id = g.id AND d.amount > 0 AND d.created_at >= g.expires_at)
            FROM {grant} g ORDER BY g.id
            """
        )
        for grant_id, amount, remaining, status, drawn, closed, granted, late in cursor.fetchall():
            if remaining != amount - drawn + closed:
                problems.append(f"credit grant {grant_id}: remaining {remaining} != amount {amount} − drawn {drawn} + closed {closed}")
            if granted != amount:
                problems.append(f"credit grant {grant_id}: its grant entry is {granted}, its amount {amount}")
            if (status == ACTIVE) != (remaining > 0):
                problems.append(f"credit grant {grant_id}: status {status} with remaining {remaining}")
            if late:
                problems.append(f"credit grant {grant_id}: {late} draw(s) at or after its expiry")
        cursor.execute(
            f"""
            SELECT e.id, e.kind, e.amount, SUM(d.amount) FROM {entry} e JOIN {draw} d ON d.entry_id = e.id
            GROUP BY e.id
            HAVING (e.kind IN ('grant_use', 'grant_return') AND SUM(d.amount) <> -e.amount)
                OR (e.kind NOT IN ('grant_use', 'grant_return') AND (SIGN(SUM(d.amount)) = SIGN(e.amount) OR ABS(SUM(d.amount)) > ABS(e.amount)))
            ORDER BY e.id LIMIT 20
            """
        )
        problems += [f"wallet entry {i} ({kind} {amount}): its grant draws sum to {total}" for i, kind, amount, total in cursor.fetchall()]
    return problems


def grants_of_wallets(wallet_ids: Sequence[int], *, with_closed: bool = False) -> dict[int, list[CreditGrant]]:
    """The wallets' grants in consumption order (active and consumed; closed ones too if asked)."""
    grants = CreditGrant.objects.filter(wallet_id__in=list(wallet_ids))
    if not with_closed:
        grants = grants.filter(Q(status=ACTIVE) | Q(status=CONSUMED))
    by_wallet: dict[int, list[CreditGrant]] = defaultdict(list)
    for g in sorted(grants, key=lambda g: grant_order(_state(g))):
        by_wallet[g.wallet_id].append(g)
    return by_wallet
