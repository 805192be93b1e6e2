"""Wallet reads for people: the customer dashboard's wallets, holds and recent ledger entries."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

from django.db.models import Count, F
from django.utils import timezone

from aforo.money import decimal_text
from catalog.models import Customer

from .models import CreditGrant, Hold, Wallet, WalletEntry
from .plan import GrantState, grant_order

RECENT_ENTRIES = 10
MAX_HOLDS_SHOWN = 50  # per wallet; `active_hold_count` says how many there are in all
# What a customer reads for each kind of ledger entry.
ENTRY_LABELS = {
    WalletEntry.Kind.TOP_UP: "Top-up",
    WalletEntry.Kind.DEBIT: "Usage",
    WalletEntry.Kind.HOLD: "Hold placed",
    WalletEntry.Kind.HOLD_COMMIT: "Hold charged",
    WalletEntry.Kind.HOLD_RELEASE: "Hold released",
    WalletEntry.Kind.HOLD_EXPIRY: "Hold expired",
    WalletEntry.Kind.ADJUSTMENT: "Adjustment",
    WalletEntry.Kind.GRANT: "Credit granted",
    WalletEntry.Kind.GRANT_EXPIRY: "Credit expired",
    WalletEntry.Kind.GRANT_VOID: "Credit voided",
    WalletEntry.Kind.GRANT_USE: "Credit applied to invoice",
    WalletEntry.Kind.GRANT_RETURN: "Credit returned (invoice voided)",
}
MAX_GRANTS_SHOWN = 50  # per customer: active and consumed, in consumption order


def _iso(moment: datetime) -> str:
    return moment.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z")


def _first_per_wallet(model, wallet_ids: list[int], *, where: str, order_by: tuple[str, ...], limit: int) -> dict[int, list]:
    """The first `limit` rows of each wallet by `order_by` (column names, "-" for descending)
    in ONE query: a LATERAL join that walks each wallet's own index (wallet_entry_recent,
    hold_active_reference), so the cost grows with the number of wallets and `limit`, never
    with the size of the ledger."""
    columns = [f"{name.lstrip('-')} DESC" if name.startswith("-") else name for name in order_by]
    rows = model.objects.raw(
        f"""
        SELECT r.* FROM unnest(%s::bigint[]) AS w(id)
        CROSS JOIN LATERAL (
            SELECT * FROM {model._meta.db_table} WHERE wallet_id = w.id AND {where}
            ORDER BY {", ".join(columns)} LIMIT %s
        ) AS r
        ORDER BY w.id, {", ".join(f"r.{column}" for column in columns)}
        """,
        [wallet_ids, limit],
    )
    by_wallet: dict[int, list] = defaultdict(list)
    for row in rows:
        by_wallet[row.wallet_id].append(row)
    return by_wallet


def _hold_row(hold: Hold, now: datetime) -> dict[str, Any]:
    return {
        "hold_id": hold.pk,
        "reference": hold.reference,
        "amount": decimal_text(hold.amount),
        "drawn": decimal_text(hold.drawn),
        "remaining": decimal_text(hold.amount - hold.drawn),
        "expires_at": _iso(hold.expires_at),
        # 0 once due: the hold still reserves its remaining amount until the expiry sweep.
        "expires_in_seconds": max(int((hold.expires_at - now).total_seconds()), 0),
    }


def _entry_row(entry: WalletEntry) -> dict[str, Any]:
    return {
        "entry_id": entry.pk,
        "kind": entry.kind,
        "kind_label": ENTRY_LABELS.get(entry.kind, entry.kind),
        "amount": decimal_text(entry.amount),
        "held_change": decimal_text(entry.held_change),
        "balance_after": decimal_text(entry.balance_after),
        "available_after": decimal_text(entry.balance_after - entry.held_after),
        "reference": entry.reference,
        "created_at": _iso(entry.created_at),
    }


def _grant_row(grant: CreditGrant, currency: str, now: datetime) -> dict[str, Any]:
    state = GrantState(grant.pk, grant.wallet_id, grant.priority, grant.starts_at, grant.expires_at, grant.amount, grant.remaining)
    return {
        "grant_id": grant.pk,
        "wallet_id": grant.wallet_id,
        "currency": currency,
        "name": grant.name,
        "kind": grant.kind,
        "amount": decimal_text(grant.amount),
        "remaining": decimal_text(grant.remaining),
        "priority": grant.priority,
        "starts_at": _iso(grant.starts_at),
        "expires_at": _iso(grant.expires_at) if grant.expires_at else None,
        "status": grant.status,
        "usable_now": state.usable(now) and grant.remaining > 0,
    }


def credit_grants_for_customer(*, customer: Customer, now: datetime | None = None) -> list[dict[str, Any]]:
    """The customer's active and consumed credit grants (every currency), in consumption order
    per wallet, each with what it has left and its expiry (at most MAX_GRANTS_SHOWN). One query."""
    now = now or timezone.now()
    grants = list(
        CreditGrant.objects.filter(tenant_id=customer.tenant_id, wallet__customer_id=customer.pk,
                                   status__in=[CreditGrant.Status.ACTIVE, CreditGrant.Status.CONSUMED])
        .select_related("wallet").order_by("-id")[:MAX_GRANTS_SHOWN]
    )
    grants.sort(key=lambda g: (g.wallet.currency, grant_order(
        GrantState(g.pk, g.wallet_id, g.priority, g.starts_at, g.expires_at, g.amount, g.remaining))))
    return [_grant_row(g, g.wallet.currency, now) for g in grants]


def wallets_for_customer(
    *, customer: Customer, now: datetime | None = None, recent_entries: int = RECENT_ENTRIES
) -> list[dict[str, Any]]:
    """Each wallet of the customer (by currency) with its balance, held and available amounts,
    its active holds (soonest expiry first, at most MAX_HOLDS_SHOWN, with their count) and its
    `recent_entries` newest ledger entries (newest first). Five queries whatever the number of
    wallets, holds and entries (one without wallets). Decimals are exact strings and datetimes ISO 8601 UTC: JSON as it stands.
    A negative available amount is a prepaid shortfall: shown as it is, never clamped."""
    now = now or timezone.now()
    wallets = list(
        Wallet.objects.filter(tenant_id=customer.tenant_id, customer_id=customer.pk).order_by("currency", "id")
    )
    if not wallets:
        return []
    wallet_ids = [wallet.pk for wallet in wallets]
    holds = _first_per_wallet(
        Hold, wallet_ids, where="status = 'active'", order_by=("expires_at", "id"), limit=MAX_HOLDS_SHOWN
    )
    hold_counts = dict(
        Hold.objects.filter(wallet_id__in=wallet_ids, status=Hold.Status.ACTIVE)
        .values("wallet_id").annotate(count=Count("id")).values_list("wallet_id", "count")
    )
    entries = _first_per_wallet(WalletEntry, wallet_ids, where="TRUE", order_by=("-id",), limit=recent_entries)
    grants: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in credit_grants_for_customer(customer=customer, now=now):
        grants[row["wallet_id"]].append(row)
    result = []
    for wallet in wallets:
        available = wallet.available
        thresholds = sorted((Decimal(str(t)) for t in wallet.low_balance_thresholds), reverse=True)
        result.append(
            {
                "wallet_id": wallet.pk,
                "currency": wallet.currency,
                "balance": decimal_text(wallet.balance),
                "held": decimal_text(wallet.held),
                "available": decimal_text(available),
                "low_balance": any(available < threshold for threshold in thresholds),
                "low_balance_thresholds": [decimal_text(t) for t in thresholds],
                "updated_at": _iso(wallet.updated_at),
                "active_hold_count": hold_counts.get(wallet.pk, 0),
                "holds": [_hold_row(hold, now) for hold in holds[wallet.pk]],
                "recent_entries": [_entry_row(entry) for entry in entries[wallet.pk]],
                "credit_grants": grants[wallet.pk],
                "granted_remaining": decimal_text(
                    sum((Decimal(g["remaining"]) for g in grants[wallet.pk] if g["status"] == "active"), Decimal(0))
                ),
            }
        )
    return result


BALANCE_HISTORY_POINTS = 200  # per wallet: the newest entries, read on the (wallet, -id) index


def wallet_balance_history(*, wallet_ids: list[int], limit: int = BALANCE_HISTORY_POINTS) -> dict[int, list[dict[str, str]]]:
    """Each wallet's balance after each of its `limit` newest ledger entries, oldest first
    ({"at", "balance"}): one LATERAL query on wallet_entry_recent, whatever the ledger's size."""
    if not wallet_ids:
        return {}
    newest = _first_per_wallet(WalletEntry, wallet_ids, where="TRUE", order_by=("-id",), limit=limit)
    return {
        wallet_id: [
            {"at": _iso(entry.created_at), "balance": decimal_text(entry.balance_after)}
            for entry in reversed(newest[wallet_id])
        ]
        for wallet_id in wallet_ids
    }


ENTRIES_PER_PAGE = 50


def wallet_entries_page(*, wallet: Wallet, before: int | None = None, per_page: int = ENTRIES_PER_PAGE) -> dict[str, Any]:
    """One page of a wallet's ledger, newest first (keyset on the (wallet, -id) index: ?before=ID
    costs the same at any depth). `next_before` is the id to pass for the next page, or None."""
    entries = WalletEntry.objects.filter(wallet_id=wallet.pk).order_by("-id")
    if before is not None:
        entries = entries.filter(id__lt=before)
    page = list(entries[: per_page + 1])
    has_next = len(page) > per_page
    page = page[:per_page]
    return {
        "entries": [_entry_row(entry) for entry in page],
        "next_before": page[-1].pk if has_next else None,
    }


BELOW_ZERO_SHOWN = 50


def wallets_below_zero(*, tenant_id: int | None, limit: int = BELOW_ZERO_SHOWN) -> dict[str, Any]:
    """Wallets whose available balance (balance − held) is below zero, a prepaid shortfall (the
    wallet admin's "available: negative" filter), the most negative first, at most `limit` of
    them with their total count. `tenant_id` None: every tenant's (a superuser)."""
    wallets = Wallet.objects.filter(balance__lt=F("held"))
    if tenant_id is not None:
        wallets = wallets.filter(tenant_id=tenant_id)
    return {
        "count": wallets.count(),
        "wallets": list(wallets.select_related("customer").order_by(F("balance") - F("held"), "id")[:limit]),
    }
