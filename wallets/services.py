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
- An adjustment (an operator's correction) needs its reason, stored on its ledger entry (400
  reason_required), and a debit that would take the balance below zero is refused (409
  negative_balance_not_allowed, with `balance` and `balance_after`) unless the caller
  explicitly allows a negative balance.
- A commit charges at most what the hold still reserves unless the caller says
  `allow_over_capture` (409 exceeds_hold, with the hold's `amount`); then the excess must be
  covered by the available balance (402 insufficient_funds).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from aforo.money import LEGACY_MINOR_UNITS, currency_is_valid, decimal_text, is_multiple_of_minor_unit, minor_unit
from catalog.models import Customer
from notify.services import webhook_event_emit

from .models import Hold, LowBalanceAlert, Wallet, WalletEntry
from .plan import AdjustmentPlan, adjustment_plan, crossed

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
    hold: Hold | None = None, reference: str = "", reason: str = "", grant_id: int | None = None,
) -> WalletEntry:
    """Append one entry to a LOCKED wallet and move its balance and held amount with it."""
    before = wallet.available
    wallet.balance += amount
    wallet.held += held_change
    wallet.updated_at = now
    wallet.save(update_fields=["balance", "held", "updated_at"])
    entry = WalletEntry.objects.create(
        tenant_id=wallet.tenant_id, wallet=wallet, kind=kind, amount=amount, held_change=held_change,
        balance_after=wallet.balance, held_after=wallet.held, hold=hold, reference=reference, reason=reason,
        idempotency_key=idempotency_key, created_at=now, grant_id=grant_id,
    )
    for threshold in _crossed(wallet.low_balance_thresholds, before, wallet.available):
        alert = LowBalanceAlert.objects.create(
            tenant_id=wallet.tenant_id, wallet=wallet, threshold=threshold, available_before=before,
            available_after=wallet.available, entry=entry, created_at=now,
        )
        low_balance_notify([alert])
    return entry


def low_balance_notify(alerts: Sequence[LowBalanceAlert]) -> None:
    """wallet.low_balance to the tenants' webhook endpoints (after the rating transaction commits).
    Thresholds are crossed rarely: a query for the wallets' owners is no cost per event."""
    owners = dict(
        (wallet_id, (customer_id, currency))
        for wallet_id, customer_id, currency in Wallet.objects.filter(pk__in={a.wallet_id for a in alerts}).values_list(
            "id", "customer_id", "currency"
        )
    )
    for alert in alerts:
        customer_id, currency = owners[alert.wallet_id]
        webhook_event_emit(
            tenant_id=alert.tenant_id, event_type="wallet.low_balance", event_id=f"wallet.low_balance:{alert.pk}",
            data={
                "wallet_id": alert.wallet_id, "customer_id": customer_id, "currency": currency,
                "threshold": decimal_text(alert.threshold), "available_before": decimal_text(alert.available_before),
                "available_after": decimal_text(alert.available_after), "entry_id": alert.entry_id,
            },
        )


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


MAX_REASON = 500


def _reason(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > MAX_REASON:
        raise WalletError(
            "reason_required", f"an adjustment needs its reason: 1 to {MAX_REASON} characters saying why the balance "
            "is corrected", field="reason", status=400,
        )
    return value.strip()


def _adjustment_plan(wallet: Wallet, amount: Decimal, *, allow_negative_balance: bool) -> AdjustmentPlan:
    """The adjustment's figures, or the refusal (409 negative_balance_not_allowed) of one that
    would take the balance below zero without the operator explicitly allowing it."""
    _whole_minor_units(amount, wallet.currency)
    plan = adjustment_plan(
        balance=wallet.balance, held=wallet.held, amount=amount, allow_negative_balance=allow_negative_balance
    )
    if plan.refused:
        currency = wallet.currency
        raise WalletError(
            "negative_balance_not_allowed",
            f"This adjustment would take the balance from {decimal_text(plan.balance_before)} {currency} to "
            f"{decimal_text(plan.balance_after)} {currency}: below zero, the customer would owe the difference. "
            "If that is intended (e.g. recovering money already spent), allow a negative balance explicitly.",
            field="amount", status=409, balance=plan.balance_before, balance_after=plan.balance_after, currency=currency,
        )
    return plan


def wallet_adjustment_preview(
    *, tenant_id: int, wallet_id: int, amount: Decimal, reason: str, allow_negative_balance: bool = False
) -> AdjustmentPlan:
    """What `wallet_adjust` would do now (read without a lock: the write re-checks under it),
    raising the same refusals: the admin's confirmation step shows it."""
    _adjustment_amount(amount)
    _reason(reason)
    wallet = Wallet.objects.filter(pk=wallet_id, tenant_id=tenant_id).first()
    if wallet is None:
        raise WalletError("not_found", f"No wallet {wallet_id} in this tenant.", status=404)
    return _adjustment_plan(wallet, amount, allow_negative_balance=allow_negative_balance)


def _adjustment_amount(amount: object) -> Decimal:
    if not isinstance(amount, Decimal) or not amount or not amount.is_finite():
        raise WalletError("invalid_amount", "amount must be a non-zero decimal", field="amount", status=400)
    _amount(abs(amount))
    return amount


def wallet_adjust(
    *, tenant_id: int, wallet_id: int, amount: Decimal, idempotency_key: str, reason: str, reference: str = "",
    allow_negative_balance: bool = False, now: datetime | None = None,
) -> tuple[WalletEntry, bool]:
    """An operator's correction, positive or negative, in whole minor units of the wallet's
    currency (money moved in or out by hand, like a top-up). `reason` (required, 1–500
    characters) is stored on the ledger entry; `reference` is optional (a ticket, a payment).
    A debit that would take the balance below zero is a 409 negative_balance_not_allowed unless
    `allow_negative_balance` (checked under the wallet lock). A retry with the same key returns
    the first entry, whatever the balance is now."""
    _adjustment_amount(amount)
    reason = _reason(reason)
    if not isinstance(reference, str) or len(reference) > 200:
        raise WalletError("invalid_reference", "reference is at most 200 characters", field="reference", status=400)
    return _money_entry(
        tenant_id=tenant_id, wallet_id=wallet_id, kind=WalletEntry.Kind.ADJUSTMENT, amount=amount,
        idempotency_key=idempotency_key, reference=reference, now=now, reason=reason,
        allow_negative_balance=allow_negative_balance,
    )


@transaction.atomic(durable=True)
def _money_entry(
    *, tenant_id: int, wallet_id: int, kind: str, amount: Decimal, idempotency_key: str, reference: str,
    now: datetime | None, reason: str = "", allow_negative_balance: bool = False,
) -> tuple[WalletEntry, bool]:
    """A top-up or adjustment: one entry, at most once per idempotency key, in whole minor
    units of the wallet's currency; an adjustment under the negative-balance rule too."""
    key = f"{kind}:{_key(idempotency_key)}"
    wallet = _locked_wallet(tenant_id=tenant_id, wallet_id=wallet_id)
    _whole_minor_units(amount, wallet.currency)
    existing = WalletEntry.objects.filter(wallet=wallet, idempotency_key=key).first()
    if existing is not None:
        if existing.amount != amount:
            what = "a top-up" if kind == WalletEntry.Kind.TOP_UP else "an adjustment"
            raise _key_reused(idempotency_key, f"{what} of {decimal_text(existing.amount)}")
        return existing, False
    if kind == WalletEntry.Kind.ADJUSTMENT:
        _adjustment_plan(wallet, amount, allow_negative_balance=allow_negative_balance)
    entry = _apply(
        wallet, kind=kind, amount=amount, held_change=ZERO, idempotency_key=key, now=now or timezone.now(),
        reference=reference, reason=reason,
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
