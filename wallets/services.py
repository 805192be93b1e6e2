"""Wallet writes. Every check-then-write locks the wallet row first (SELECT … FOR UPDATE) and
re-reads what it checks under that lock; every change is one append-only WalletEntry with a
unique idempotency key, written in the same transaction as the wallet's new balance and held
amount. A retried request with the same idempotency key returns the first result and changes
nothing; the same key with different parameters is refused. The API-facing writes are each one
durable transaction: when they return, the result is committed (what a retry will find).

Lock order, everywhere: wallet rows (by id), then their holds. Hence no deadlocks between the
API, the expiry sweep and the consumer's real-time debits.

Money-safety rules (aforo.money holds the currency table):
- A wallet's currency is an active ISO 4217 code with a minor unit (400 invalid_currency).
- Top-ups and adjustments move money in or out of the wallet, so they are whole minor units of
  its currency (400 invalid_amount naming `amount` and the `minor_unit`). Holds, commits and the
  rated stream's debits are charges for usage and stay exact (a rated $0.003 is $0.003).
- A commit charges at most what the hold still reserves unless the caller says
  `allow_over_capture` (409 exceeds_hold, with the hold's `amount`); then the excess must be
  covered by the available balance (402 insufficient_funds).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from aforo.db import bulk_cursor
from aforo.money import LEGACY_MINOR_UNITS, currency_is_valid, decimal_text, is_multiple_of_minor_unit, minor_unit
from catalog.models import Customer

from .models import Hold, LowBalanceAlert, Wallet, WalletEntry
from .plan import DebitPlan, HoldState, RatedCharge, WalletState, crossed, debits_plan

ZERO = Decimal(0)
MAX_AMOUNT = Decimal("1e15")
MAX_PLACES = 12
MAX_HOLD_TTL_S = 7 * 24 * 3600
MAX_KEY = 150  # client idempotency keys; stored with a short prefix in 200-character columns


class WalletError(Exception):
    """A wallet operation refused: a stable `code`, a message, the HTTP status it maps to and
    extra fields for the error body (e.g. the available amount)."""

    status = 409

    def __init__(self, code: str, message: str, *, field: str | None = None, status: int | None = None, **extra: Any):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.extra = extra
        if status is not None:
            self.status = status


class InsufficientFunds(WalletError):
    status = 402

    def __init__(self, *, available: Decimal, needed: Decimal, currency: str):
        super().__init__(
            "insufficient_funds",
            f"The wallet's available balance {decimal_text(available)} {currency} does not cover "
            f"{decimal_text(needed)} {currency}.",
            available=available, needed=needed, currency=currency,
        )


def _amount(value: Decimal, field: str = "amount", *, allow_zero: bool = False) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise WalletError("invalid_amount", f"{field} must be a finite decimal", field=field, status=400)
    if value < 0 or (value == 0 and not allow_zero):
        what = "zero or more" if allow_zero else "more than zero"
        raise WalletError("invalid_amount", f"{field} must be {what}, got {value}", field=field, status=400)
    if value > MAX_AMOUNT or value.as_tuple().exponent < -MAX_PLACES:  # type: ignore[operator]
        raise WalletError(
            "invalid_amount", f"{field} must be at most {MAX_AMOUNT:,f} with at most {MAX_PLACES} decimal places",
            field=field, status=400,
        )
    return value


def _key(value: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_KEY:
        raise WalletError(
            "invalid_idempotency_key", f"idempotency_key must be 1 to {MAX_KEY} characters", field="idempotency_key",
            status=400,
        )
    return value


def _crossed(thresholds: Iterable[Decimal | str], before: Decimal, after: Decimal) -> list[Decimal]:
    """Thresholds the available balance fell below with this change (once per crossing)."""
    return crossed([Decimal(str(x)) for x in thresholds], before, after)


def _apply(
    wallet: Wallet, *, kind: str, amount: Decimal, held_change: Decimal, idempotency_key: str, now: datetime,
    hold: Hold | None = None, reference: str = "",
) -> WalletEntry:
    """Append one entry to a LOCKED wallet and move its balance and held amount with it."""
    before = wallet.available
    wallet.balance += amount
    wallet.held += held_change
    wallet.updated_at = now
    wallet.save(update_fields=["balance", "held", "updated_at"])
    entry = WalletEntry.objects.create(
        tenant_id=wallet.tenant_id, wallet=wallet, kind=kind, amount=amount, held_change=held_change,
        balance_after=wallet.balance, held_after=wallet.held, hold=hold, reference=reference,
        idempotency_key=idempotency_key, created_at=now,
    )
    for threshold in _crossed(wallet.low_balance_thresholds, before, wallet.available):
        LowBalanceAlert.objects.create(
            tenant_id=wallet.tenant_id, wallet=wallet, threshold=threshold, available_before=before,
            available_after=wallet.available, entry=entry, created_at=now,
        )
    return entry


def _locked_wallet(*, tenant_id: int, wallet_id: int) -> Wallet:
    try:
        return Wallet.objects.select_for_update().get(pk=wallet_id, tenant_id=tenant_id)
    except Wallet.DoesNotExist:
        raise WalletError("not_found", f"No wallet {wallet_id} in this tenant.", status=404) from None


# --- wallets ----------------------------------------------------------------------------------


def wallet_create(*, customer: Customer, currency: str, low_balance_thresholds: Iterable[Decimal] = ()) -> Wallet:
    """A customer's wallet in `currency` (one per customer and currency): an active ISO 4217
    code (case-insensitive), never a test or no-currency code such as XTS or XXX."""
    code = currency.strip().upper() if isinstance(currency, str) else None
    if not currency_is_valid(code):
        raise WalletError(
            "invalid_currency", f"currency {currency!r} is not an active ISO 4217 currency code, such as USD",
            field="currency", status=400,
        )
    currency = code
    thresholds = _thresholds(low_balance_thresholds)
    try:
        with transaction.atomic():
            return Wallet.objects.create(
                tenant_id=customer.tenant_id, customer=customer, currency=currency,
                low_balance_thresholds=thresholds,
            )
    except IntegrityError:
        existing = Wallet.objects.get(customer=customer, currency=currency)
        raise WalletError(
            "wallet_exists", f"Customer {customer.pk} already has a {currency} wallet ({existing.pk}).", wallet_id=existing.pk
        ) from None


def _thresholds(values: Iterable[Decimal]) -> list[str]:
    """Distinct thresholds, highest first, as decimal strings."""
    return [str(t) for t in sorted({_amount(Decimal(t), "low_balance_thresholds", allow_zero=True) for t in values}, reverse=True)]


def wallet_thresholds_set(*, tenant_id: int, wallet_id: int, low_balance_thresholds: Iterable[Decimal]) -> Wallet:
    """Replace the low-balance thresholds (only that column: balance and held are the ledger's)."""
    thresholds = _thresholds(low_balance_thresholds)
    with transaction.atomic():
        wallet = _locked_wallet(tenant_id=tenant_id, wallet_id=wallet_id)
        wallet.low_balance_thresholds = thresholds
        wallet.save(update_fields=["low_balance_thresholds"])
    return wallet


def wallet_top_up(
    *, tenant_id: int, wallet_id: int, amount: Decimal, idempotency_key: str, reference: str = "", now: datetime | None = None
) -> tuple[WalletEntry, bool]:
    """Add money: more than zero, in whole minor units of the wallet's currency (1.005 USD or
    1.5 JPY is a 400 invalid_amount: a top-up is a real payment in). Returns (entry, created);
    a retry with the same key returns the first entry."""
    return _money_entry(
        tenant_id=tenant_id, wallet_id=wallet_id, kind=WalletEntry.Kind.TOP_UP, amount=_amount(amount),
        idempotency_key=idempotency_key, reference=reference, now=now,
    )


def wallet_adjust(
    *, tenant_id: int, wallet_id: int, amount: Decimal, idempotency_key: str, reference: str, now: datetime | None = None
) -> tuple[WalletEntry, bool]:
    """An operator's correction, positive or negative, with the reason in `reference`; in whole
    minor units of the wallet's currency, like a top-up (money moved in or out by hand)."""
    if not isinstance(amount, Decimal) or not amount or not amount.is_finite():
        raise WalletError("invalid_amount", "amount must be a non-zero decimal", field="amount", status=400)
    if not isinstance(reference, str) or not reference.strip() or len(reference) > 200:
        raise WalletError("invalid_reference", "an adjustment needs its reason (1 to 200 characters)", field="reference", status=400)
    _amount(abs(amount))
    return _money_entry(
        tenant_id=tenant_id, wallet_id=wallet_id, kind=WalletEntry.Kind.ADJUSTMENT, amount=amount,
        idempotency_key=idempotency_key, reference=reference, now=now,
    )


@transaction.atomic(durable=True)
def _money_entry(
    *, tenant_id: int, wallet_id: int, kind: str, amount: Decimal, idempotency_key: str, reference: str,
    now: datetime | None,
) -> tuple[WalletEntry, bool]:
    """A top-up or adjustment: one entry, at most once per idempotency key, in whole minor
    units of the wallet's currency."""
    key = f"{kind}:{_key(idempotency_key)}"
    wallet = _locked_wallet(tenant_id=tenant_id, wallet_id=wallet_id)
    _whole_minor_units(amount, wallet.currency)
    existing = WalletEntry.objects.filter(wallet=wallet, idempotency_key=key).first()
    if existing is not None:
        if existing.amount != amount:
            what = "a top-up" if kind == WalletEntry.Kind.TOP_UP else "an adjustment"
            raise _key_reused(idempotency_key, f"{what} of {decimal_text(existing.amount)}")
        return existing, False
    entry = _apply(
        wallet, kind=kind, amount=amount, held_change=ZERO, idempotency_key=key, now=now or timezone.now(),
        reference=reference,
    )
    return entry, True


def _whole_minor_units(amount: Decimal, currency: str) -> None:
    """Money moved in or out (top-ups, adjustments) is whole minor units: 1.005 USD is not a
    payment anyone can make. A legacy wallet whose currency predates the ISO table counts in
    hundredths."""
    if not is_multiple_of_minor_unit(amount, currency, default=LEGACY_MINOR_UNITS):
        unit = minor_unit(currency, default=LEGACY_MINOR_UNITS)
        raise WalletError(
            "invalid_amount",
            f"amount {decimal_text(amount)} {currency} is finer than the currency's minor unit ({decimal_text(unit)} "
            f"{currency}): top-ups and adjustments are whole minor units",
            field="amount", status=400, minor_unit=unit, currency=currency,
        )


def _key_reused(key: str, first: str) -> WalletError:
    return WalletError(
        "idempotency_key_reused", f"Idempotency key {key!r} was already used for {first} with other parameters.",
        field="idempotency_key",
    )


# --- holds ------------------------------------------------------------------------------------


@transaction.atomic(durable=True)
def hold_place(
    *, tenant_id: int, wallet_id: int, amount: Decimal, ttl_seconds: int, reference: str, idempotency_key: str,
    now: datetime | None = None,
) -> tuple[Hold, bool]:
    """Reserve `amount` of the available balance until now + ttl_seconds. Returns (hold,
    created); a retry with the same key returns the first hold as it is now. InsufficientFunds
    when the available balance (seen under the wallet lock) is less than the amount."""
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


# --- real time: debits of rated events ---------------------------------------------------------


def _wallets_lock(cursor, charges: Sequence[RatedCharge], now: datetime) -> dict[tuple[int, str], WalletState]:
    """Create the missing wallets empty, lock every wallet the charges touch (in id order: no
    deadlock between consumers) and read them, by (customer, currency)."""
    keys = sorted({(c.tenant_id, c.customer_id, c.currency) for c in charges})
    tenants, customers, currencies = (list(column) for column in zip(*keys))
    cursor.execute(
        f"""
        INSERT INTO {Wallet._meta.db_table}
            (tenant_id, customer_id, currency, balance, held, low_balance_thresholds, created_at, updated_at)
        SELECT t, c, cur, 0, 0, '[]'::jsonb, %s, %s FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) AS x(t, c, cur)
        ON CONFLICT (customer_id, currency) DO NOTHING
        """,
        [now, now, tenants, customers, currencies],
    )
    cursor.execute(
        f"""
        SELECT id, tenant_id, customer_id, currency, balance, held, low_balance_thresholds
        FROM {Wallet._meta.db_table}
        WHERE (customer_id, currency) IN (SELECT * FROM unnest(%s::bigint[], %s::text[]))
        ORDER BY id FOR UPDATE
        """,
        [customers, currencies],
    )
    wallets: dict[tuple[int, str], WalletState] = {}
    for wallet_id, tenant_id, customer_id, currency, balance, held, thresholds in cursor.fetchall():
        thresholds = json.loads(thresholds) if isinstance(thresholds, str) else thresholds
        wallets[(customer_id, currency)] = WalletState(wallet_id, tenant_id, balance, held, tuple(Decimal(str(t)) for t in thresholds))
    return wallets


def _session_holds_lock(
    cursor, charges: Sequence[RatedCharge], wallets: dict[tuple[int, str], WalletState], now: datetime
) -> dict[tuple[int, str], HoldState]:
    """Lock and read the oldest active hold of each (wallet, session) the charges name."""
    sessions = sorted({(wallets[(c.customer_id, c.currency)].id, c.session) for c in charges if c.session})
    if not sessions:
        return {}
    cursor.execute(
        f"""
        SELECT id, wallet_id, reference, amount, drawn FROM {Hold._meta.db_table}
        WHERE status = 'active' AND expires_at > %s
          AND (wallet_id, reference) IN (SELECT * FROM unnest(%s::bigint[], %s::text[]))
        ORDER BY id FOR UPDATE
        """,
        [now, [w for w, _ in sessions], [s for _, s in sessions]],
    )
    holds: dict[tuple[int, str], HoldState] = {}
    for hold_id, wallet_id, reference, amount, drawn in cursor.fetchall():
        holds.setdefault((wallet_id, reference), HoldState(hold_id, amount, drawn))  # the oldest active one
    return holds


def _debits_write(cursor, plan: DebitPlan, now: datetime) -> None:
    """The plan's entries, the wallets' and holds' new figures, and the alerts."""
    columns = [list(c) for c in zip(*plan.entries)]
    cursor.execute(
        f"""
        INSERT INTO {WalletEntry._meta.db_table}
            (tenant_id, wallet_id, amount, held_change, balance_after, held_after, hold_id, rated_event_id,
             reference, idempotency_key, kind, created_at)
        SELECT *, 'debit', %s FROM unnest(%s::bigint[], %s::bigint[], %s::numeric[], %s::numeric[],
            %s::numeric[], %s::numeric[], %s::bigint[], %s::bigint[], %s::text[], %s::text[])
        RETURNING id
        """,
        [now, *columns],
    )
    entry_ids = [row[0] for row in cursor.fetchall()]
    cursor.execute(
        f"""
        UPDATE {Wallet._meta.db_table} AS w SET balance = x.balance, held = x.held, updated_at = %s
        FROM unnest(%s::bigint[], %s::numeric[], %s::numeric[]) AS x(id, balance, held) WHERE w.id = x.id
        """,
        [now, list(plan.wallets), [w.balance for w in plan.wallets.values()], [w.held for w in plan.wallets.values()]],
    )
    if plan.holds:
        cursor.execute(
            f"""
            UPDATE {Hold._meta.db_table} AS h SET drawn = x.drawn
            FROM unnest(%s::bigint[], %s::numeric[]) AS x(id, drawn) WHERE h.id = x.id
            """,
            [list(plan.holds), [h.drawn for h in plan.holds.values()]],
        )
    if plan.alerts:
        LowBalanceAlert.objects.bulk_create(
            LowBalanceAlert(
                tenant_id=a.tenant_id, wallet_id=a.wallet_id, threshold=a.threshold, available_before=a.available_before,
                available_after=a.available_after, entry_id=entry_ids[a.entry], created_at=now,
            )
            for a in plan.alerts
        )


def wallet_charges_record(*, charges: Sequence[RatedCharge], now: datetime) -> None:
    """Event-triggered settlement, inside the rating transaction (the caller's): lock and read
    the wallets and the sessions' holds → plan the debits (wallets.plan.debits_plan, pure: prepaid
    pays exactly, hybrid's wallet pays first, a session's hold is drawn first, thresholds fire once
    per crossing) → write them (a few bulk statements per batch, not per event). The event is
    rated and kept whatever its wallet holds. Idempotent per rated event (the entry's key is
    rated:<id>, and a rated event is created once). Missing wallets are created empty."""
    if not charges:
        return
    assert connection.in_atomic_block, "wallet_charges_record must run inside the rating transaction"
    with bulk_cursor() as cursor:  # arrays bound server-side, as the rating batch does
        wallets = _wallets_lock(cursor, charges, now)
        holds = _session_holds_lock(cursor, charges, wallets, now)
        plan = debits_plan(charges, wallets, holds)
        if plan.entries:
            _debits_write(cursor, plan, now)


# --- the invariant ------------------------------------------------------------------------------


def wallets_check(*, wallet_ids: Sequence[int] | None = None) -> list[str]:
    """Every wallet's balance and held amount against its ledger (sum of amounts, sum of held
    changes, the last entry's running figures) and against its active holds. Returns what is
    off, one line per problem; empty when all agree."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT w.id, w.balance, w.held,
                   COALESCE(SUM(e.amount), 0), COALESCE(SUM(e.held_change), 0),
                   (SELECT balance_after FROM {WalletEntry._meta.db_table} WHERE wallet_id = w.id ORDER BY id DESC LIMIT 1),
                   (SELECT held_after FROM {WalletEntry._meta.db_table} WHERE wallet_id = w.id ORDER BY id DESC LIMIT 1),
                   (SELECT COALESCE(SUM(amount - drawn), 0) FROM {Hold._meta.db_table}
                     WHERE wallet_id = w.id AND status = 'active')
            FROM {Wallet._meta.db_table} w LEFT JOIN {WalletEntry._meta.db_table} e ON e.wallet_id = w.id
            WHERE %s::bigint[] IS NULL OR w.id = ANY(%s::bigint[])
            GROUP BY w.id ORDER BY w.id
            """,
            [None if wallet_ids is None else list(wallet_ids)] * 2,
        )
        problems = []
        for wallet_id, balance, held, ledger_sum, held_sum, last_balance, last_held, active in cursor.fetchall():
            if balance != ledger_sum:
                problems.append(f"wallet {wallet_id}: balance {balance} != sum of its ledger {ledger_sum}")
            if held != held_sum:
                problems.append(f"wallet {wallet_id}: held {held} != sum of its ledger's held changes {held_sum}")
            if held != active:
                problems.append(f"wallet {wallet_id}: held {held} != what its active holds still reserve {active}")
            if last_balance is not None and (last_balance, last_held) != (balance, held):
                problems.append(
                    f"wallet {wallet_id}: last entry says balance {last_balance} / held {last_held}, wallet has {balance} / {held}"
                )
    return problems


# --- settlement ---------------------------------------------------------------------------------


def wallet_settlement_charge(
    *, tenant_id: int, customer_id: int, currency: str, amount: Decimal, at_most_available: bool, idempotency_key: str,
    reference: str, now: datetime,
) -> Decimal:
    """Settlement's part of an invoice (billing.settlement.settle), inside its transaction:
    take `amount` from the customer's wallet (a negative amount gives it back), at most what is
    available when `at_most_available` (hybrid). Returns what was taken. Idempotent per key."""
    assert connection.in_atomic_block, "wallet_settlement_charge must run inside the settlement transaction"
    wallet_id = Wallet.objects.filter(customer_id=customer_id, currency=currency).values_list("id", flat=True).first()
    if wallet_id is None or not amount:
        return ZERO
    wallet = _locked_wallet(tenant_id=tenant_id, wallet_id=wallet_id)
    existing = WalletEntry.objects.filter(wallet=wallet, idempotency_key=idempotency_key).first()
    if existing is not None:
        return -existing.amount
    if at_most_available and amount > 0:
        amount = min(amount, max(wallet.available, ZERO))
    if amount:
        _apply(wallet, kind=WalletEntry.Kind.DEBIT, amount=-amount, held_change=ZERO, idempotency_key=idempotency_key, now=now, reference=reference)
    return amount
