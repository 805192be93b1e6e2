"""Route: postpaid → the invoice is due; prepaid → the wallet pays it; hybrid → the wallet first
until it is empty, the rest invoiced. Debits already made in real time for the settled rated
events are counted, never charged twice: the wallet now takes (or gives back) only the rest —
and when a reissue recomputes a run, so is what the run's settlement already took. The stage
itself is pure: the real-time debits are read with the ledger (`realtime_debits_read`)."""

from __future__ import annotations

from decimal import Decimal

from django.db import connection

from wallets.models import WalletEntry

from ..models import RatedEvent
from .context import ZERO, SettlementContext


def realtime_debits_read(context: SettlementContext) -> None:
    """What the wallet already paid, in real time, for the rated events this run settles (read
    with the ledger, before the stages run: context.wallet_realtime)."""
    context.wallet_realtime = ZERO if context.subscription.billing_mode == "postpaid" else _realtime_debits(context)


def _realtime_debits(context: SettlementContext) -> Decimal:
    wallet = context.inputs.wallet
    if wallet is None or not context.ranges:
        return ZERO
    periods, lows = zip(*sorted(context.ranges.items()))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT COALESCE(SUM(-e.amount), 0) FROM {WalletEntry._meta.db_table} e
            JOIN {RatedEvent._meta.db_table} r ON r.id = e.rated_event_id
            JOIN unnest(%s::timestamptz[], %s::bigint[]) AS p(start, low) ON r.period_start = p.start AND r.id > p.low
            WHERE e.wallet_id = %s AND e.kind = 'debit' AND r.subscription_id = %s AND r.id <= %s
            """,
            [list(periods), list(lows), wallet.pk, context.subscription.pk, context.watermark],
        )
        return cursor.fetchone()[0]


def run(context: SettlementContext) -> None:
    mode = context.subscription.billing_mode
    total = context.total()
    if mode == "postpaid":
        context.wallet_realtime = ZERO  # a postpaid subscription's wallet is never drawn (nor read)
        context.amount_due = total
        context.log(
            "route", billing_mode=mode, total=total, wallet_realtime=ZERO, wallet_now=context.wallet_now,
            amount_due=context.amount_due,
        )
        return
    wallet = context.inputs.wallet
    rest = total - context.wallet_realtime - context.wallet_settled
    if mode == "prepaid":
        context.wallet_now = rest  # negative: the wallet gets back what real time over-took
        context.amount_due = ZERO
    else:  # hybrid
        available = ZERO if wallet is None else max(wallet.balance - wallet.held, ZERO)
        context.wallet_now = min(rest, available) if rest > 0 else rest
        context.amount_due = rest - context.wallet_now
    context.log(
        "route", billing_mode=mode, total=total, wallet_realtime=context.wallet_realtime,
        wallet_settled=context.wallet_settled, wallet_now=context.wallet_now, amount_due=context.amount_due,
    )
