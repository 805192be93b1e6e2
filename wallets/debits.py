"""Debits a wallet takes without a request of its own: in real time, for the rated events of
prepaid and hybrid subscriptions (wallet_charges_record, inside the rating transaction: lock and
read → wallets.plan.debits_plan → bulk writes), and at settlement, for an invoice's wallet part
(wallet_settlement_charge)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from django.db import connection

from aforo.db import bulk_cursor

from .grants import grants_take_for, usable_balance
from .models import CreditGrant, CreditGrantDraw, Hold, LowBalanceAlert, Wallet, WalletEntry
from .plan import DebitPlan, GrantState, HoldState, RatedCharge, WalletState, debits_plan
from .services import ZERO, _apply, _locked_wallet, low_balance_notify


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


GRANT_COLUMNS = "id, wallet_id, priority, starts_at, expires_at, amount, remaining"


def _grants_lock(
    cursor, charges: Sequence[RatedCharge], wallets: dict[tuple[int, str], WalletState]
) -> dict[int, list[GrantState]]:
    """Lock and read the active grants of the batch's wallets (after the wallets and holds: the
    lock order everywhere), and the consumed ones too of a wallet a prepaid negative delta may
    give back to. One indexed statement per batch (the partial index on active grants); a
    wallet without grants costs nothing more."""
    wallet_ids = sorted({w.id for w in wallets.values()})
    giving_back = sorted(
        {wallets[(c.customer_id, c.currency)].id for c in charges if c.amount < 0 and c.billing_mode == "prepaid"}
    )
    table = CreditGrant._meta.db_table
    if giving_back:
        cursor.execute(
            f"""
            SELECT {GRANT_COLUMNS} FROM {table}
            WHERE (wallet_id = ANY(%s::bigint[]) AND status = 'active')
               OR (wallet_id = ANY(%s::bigint[]) AND status = 'consumed')
            ORDER BY id FOR UPDATE
            """,
            [wallet_ids, giving_back],
        )
    else:
        cursor.execute(
            f"SELECT {GRANT_COLUMNS} FROM {table} WHERE wallet_id = ANY(%s::bigint[]) AND status = 'active' ORDER BY id FOR UPDATE",
            [wallet_ids],
        )
    grants: dict[int, list[GrantState]] = {}
    for row in cursor.fetchall():
        grants.setdefault(row[1], []).append(GrantState(*row))
    return grants


def _draws_write(cursor, plan: DebitPlan, entry_ids: list[int], rated_event_ids: list[int | None], now: datetime) -> None:
    """The plan's grant draws (each naming its entry) and the moved grants' new remaining."""
    cursor.execute(
        f"""
        INSERT INTO {CreditGrantDraw._meta.db_table} (tenant_id, grant_id, entry_id, amount, rated_event_id, created_at)
        SELECT t, g, e, a, r, %s FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::numeric[], %s::bigint[])
            AS x(t, g, e, a, r)
        """,
        [
            now, [d.tenant_id for d in plan.draws], [d.grant_id for d in plan.draws],
            [entry_ids[d.entry] for d in plan.draws], [d.amount for d in plan.draws],
            [rated_event_ids[d.entry] for d in plan.draws],
        ],
    )
    cursor.execute(
        f"""
        UPDATE {CreditGrant._meta.db_table} AS g
        SET remaining = x.remaining, status = CASE WHEN x.remaining = 0 THEN 'consumed' ELSE 'active' END
        FROM unnest(%s::bigint[], %s::numeric[]) AS x(id, remaining) WHERE g.id = x.id
        """,
        [list(plan.grants), [g.remaining for g in plan.grants.values()]],
    )


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
    if plan.draws:
        _draws_write(cursor, plan, entry_ids, [e.rated_event_id for e in plan.entries], now)
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
        alerts = LowBalanceAlert.objects.bulk_create(
            LowBalanceAlert(
                tenant_id=a.tenant_id, wallet_id=a.wallet_id, threshold=a.threshold, available_before=a.available_before,
                available_after=a.available_after, entry_id=entry_ids[a.entry], created_at=now,
            )
            for a in plan.alerts
        )
        low_balance_notify(alerts)


def wallet_charges_record(*, charges: Sequence[RatedCharge], now: datetime) -> None:
    """Event-triggered settlement, inside the rating transaction (the caller's): lock and read
    the wallets and the sessions' holds → plan the debits (wallets.plan.debits_plan, pure: prepaid
    pays exactly, hybrid's wallet pays first, a session's hold is drawn first, thresholds fire once
    per crossing, usable credit grants pay before the paid balance) → write them (a few bulk
    statements per batch, not per event; two more when grants moved). The event is
    rated and kept whatever its wallet holds. Idempotent per rated event (the entry's key is
    rated:<id>, and a rated event is created once). Missing wallets are created empty."""
    if not charges:
        return
    assert connection.in_atomic_block, "wallet_charges_record must run inside the rating transaction"
    with bulk_cursor() as cursor:  # arrays bound server-side, as the rating batch does
        wallets = _wallets_lock(cursor, charges, now)
        holds = _session_holds_lock(cursor, charges, wallets, now)
        grants = _grants_lock(cursor, charges, wallets)
        plan = debits_plan(charges, wallets, holds, grants, now)
        if plan.entries:
            _debits_write(cursor, plan, now)


def wallet_settlement_charge(
    *, tenant_id: int, customer_id: int, currency: str, amount: Decimal, at_most_available: bool, idempotency_key: str,
    reference: str, now: datetime,
) -> Decimal:
    """Settlement's part of an invoice (billing.settlement.settle), inside its transaction:
    take `amount` from the customer's wallet (a negative amount gives it back), at most what is
    available when `at_most_available` (hybrid; less what grants not usable now hold). Credit
    grants pay first, as in real time. Returns what was taken. Idempotent per key."""
    assert connection.in_atomic_block, "wallet_settlement_charge must run inside the settlement transaction"
    wallet_id = Wallet.objects.filter(customer_id=customer_id, currency=currency).values_list("id", flat=True).first()
    if wallet_id is None or not amount:
        return ZERO
    wallet = _locked_wallet(tenant_id=tenant_id, wallet_id=wallet_id)
    existing = WalletEntry.objects.filter(wallet=wallet, idempotency_key=idempotency_key).first()
    if existing is not None:
        return -existing.amount
    if at_most_available and amount > 0:
        amount = min(amount, max(usable_balance(wallet, now), ZERO))
    if amount:
        entry = _apply(
            wallet, kind=WalletEntry.Kind.DEBIT, amount=-amount, held_change=ZERO, idempotency_key=idempotency_key,
            now=now, reference=reference,
        )
        grants_take_for(wallet, entry, now)  # usable credit grants pay first (a give-back returns to them)
    return amount
