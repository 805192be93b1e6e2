"""The earlier periods a final run bills late usage of: what the invoices issued before this run
charged for each (discounts and taxes aside) and the commitment terms it was settled with —
read after the ledger (which says which periods have late events), before the stages, for the
Commit stage to adjust each from these alone.

A line belongs to the period it names (`period_start`: usage, late usage, base, allowance, and
commitment and cap lines since they carry it) or else to its invoice's period (commitment and
cap lines of invoices issued before they did), and to its own subscription's part of a combined
invoice (`subscription`; null: the invoice's only one). Only the invoices the subscription's settlement
runs hold now count — a voided invoice's replacement holds its run — and a recomputation (a
reissue) counts only those of the runs before the one it recomputes: it sees what that run saw.

The terms are those the period's final run logged (the Commit stage logs them; a reissue of it,
its recomputation's) — its metric minimums too; a run from before they were logged: the terms
of this run (and no metric minimums: they did not exist)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection

from ..models import InvoiceLine, SettlementRun
from .commit import CHARGES
from .context import ZERO, SettlementContext
from .inputs import LatePeriod, SubscriptionTerms

KINDS = (*CHARGES, "commitment", "cap")


def late_periods_read(context: SettlementContext) -> None:
    """context.late_periods: one LatePeriod per earlier period among the rows this run settles
    (context.ledger_rows). Nothing to read, and no query, when there are none."""
    periods = sorted({row[0] for row in context.ledger_rows if row[0] != context.period_start})
    if not periods:
        return
    run_table, line_table = SettlementRun._meta.db_table, InvoiceLine._meta.db_table
    before = context.inputs.before_run
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT COALESCE(l.period_start, r.period_start) AS period, l.kind, l.metric_id, SUM(l.amount)
            FROM {run_table} r JOIN {line_table} l ON l.invoice_id = r.invoice_id
            WHERE r.subscription_id = %s AND (%s::bigint IS NULL OR r.id < %s) AND l.kind = ANY(%s)
              AND (l.subscription_id IS NULL OR l.subscription_id = r.subscription_id)
              AND COALESCE(l.period_start, r.period_start) = ANY(%s::timestamptz[])
            GROUP BY 1, 2, 3
            """,
            [context.subscription.pk, before, before, list(KINDS), periods],
        )
        sums = cursor.fetchall()
    logs = dict(
        SettlementRun.objects.filter(
            subscription_id=context.subscription.pk, kind=SettlementRun.Kind.FINAL, period_start__in=periods
        ).values_list("period_start", "stages")
    )
    ids = {code: metric_id for metric_id, code in context.inputs.metric_codes.items()}
    context.late_periods = {
        period: _late_period(period, [row[1:] for row in sums if row[0] == period], logs.get(period),
                             context.subscription, ids)
        for period in periods
    }


def _late_period(
    period: datetime, sums: list[tuple[str, int | None, Decimal]], stages: Any, now: SubscriptionTerms, ids: dict[str, int],
) -> LatePeriod:
    """A commitment line of a metric is its metric minimum's; one of none, the commitment's."""
    by_kind: dict[str, Decimal] = {}
    metric_charged: dict[int, Decimal] = {}
    metric_committed: dict[int, Decimal] = {}
    for kind, metric_id, total in sums:
        if kind == "commitment" and metric_id is not None:
            metric_committed[metric_id] = metric_committed.get(metric_id, ZERO) + total
            continue
        by_kind[kind] = by_kind.get(kind, ZERO) + total
        if kind in CHARGES and metric_id is not None:
            metric_charged[metric_id] = metric_charged.get(metric_id, ZERO) + total
    terms = settled_terms(stages if isinstance(stages, list) else [])
    if terms is None:
        minimum, cap, action = now.min_commitment, now.spend_cap, now.spend_cap_action
        minimums: dict[int, Decimal] = {}
    else:
        minimum, cap = _decimal(terms.get("min_commitment")), _decimal(terms.get("spend_cap"))
        action = terms.get("spend_cap_action") or "cap"
        logged = terms.get("metric_minimums") if isinstance(terms.get("metric_minimums"), dict) else {}
        minimums = {ids[code]: Decimal(amount) for code, amount in logged.items() if code in ids}
    return LatePeriod(
        period_start=period, charged=sum((by_kind.get(kind, ZERO) for kind in CHARGES), ZERO),
        committed=by_kind.get("commitment", ZERO), capped=by_kind.get("cap", ZERO),
        min_commitment=minimum, spend_cap=cap, spend_cap_action=action,
        metric_charged=metric_charged, metric_committed=metric_committed, metric_minimums=minimums,
    )


def settled_terms(stages: list) -> dict | None:
    """The commitment terms a run's stage log recorded (its latest reissue's, if any); None when
    the log predates them."""
    found = None
    for entry in stages:
        if not isinstance(entry, dict):
            continue
        if entry.get("stage") == "reissue":
            found = settled_terms(entry.get("stages") or []) or found
        elif entry.get("stage") == "commit" and "min_commitment" in entry:
            found = entry
    return found


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)
