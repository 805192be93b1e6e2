"""The ledger's invariants, checked in SQL (aggregates and anti-joins, never a Python loop over
rows): invoices against their lines, usage lines against the rated events they trace to, the
coverage of settled periods, running totals against the rated ledger, the rated ledger's
catalog references (kept without database constraints), and the wallets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.db import connection

from catalog.models import Customer, Metric, MetricConfig, RatePlanVersion, Subscription, Tenant
from wallets.services import wallets_check

from .models import Invoice, InvoiceLine, PricingSnapshot, RatedEvent, RunningTotal, SettlementRun
from .settlement.context import MINOR_UNITS

SHOWN = 20  # offenders named per check; the rest are counted
# Allowance lines (rolled-over units, negative) are neither usage coverage nor in the subtotal
# (settle.py's subtotal is the gross charges); they count in the total like every line.
USAGE_KINDS = (InvoiceLine.Kind.USAGE, InvoiceLine.Kind.LATE_USAGE)
CHARGE_KINDS = (*USAGE_KINDS, InvoiceLine.Kind.BASE, InvoiceLine.Kind.COMMITMENT, InvoiceLine.Kind.CAP)

INVOICE, LINE, RATED, TOTAL, RUN = (
    m._meta.db_table for m in (Invoice, InvoiceLine, RatedEvent, RunningTotal, SettlementRun)
)
# The rated events of a usage line `l` of invoice `i`: its subscription, metric, dimension and
# period, id in (rated_from_id, rated_to_id].
LINE_EVENTS = """r.subscription_id = i.subscription_id AND r.metric_id = l.metric_id AND r.dimension_key = l.dimension_key
                 AND r.period_start = l.period_start AND r.id > l.rated_from_id AND r.id <= l.rated_to_id"""


def _rows(sql: str, params: Sequence[Any] = ()) -> tuple[list[tuple], int]:
    """The first SHOWN offending rows and how many there are (the query's first column is
    COUNT(*) OVER ())."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) OVER () AS offenders, q.* FROM ({sql}) q LIMIT {SHOWN}", params)
        rows = cursor.fetchall()
    return [row[1:] for row in rows], (rows[0][0] if rows else 0)


def _check(problems: list[str], sql: str, params: Sequence[Any], describe: Callable[..., str]) -> None:
    rows, count = _rows(sql, params)
    problems.extend(describe(*row) for row in rows)
    if count > len(rows):
        problems.append(f"… and {count - len(rows)} more like the above")


def _invoices(problems: list[str]) -> None:
    _check(
        problems,
        f"""
        SELECT i.number, i.total, i.subtotal, i.discount_total, i.tax_total,
               COALESCE(SUM(l.amount), 0) AS lines,
               COALESCE(SUM(l.amount) FILTER (WHERE l.kind = ANY(%s)), 0) AS charges,
               COALESCE(-SUM(l.amount) FILTER (WHERE l.kind = 'discount'), 0) AS discounts,
               COALESCE(SUM(l.amount) FILTER (WHERE l.kind = 'tax'), 0) AS taxes
        FROM {INVOICE} i LEFT JOIN {LINE} l ON l.invoice_id = i.id
        GROUP BY i.id
        HAVING i.total <> COALESCE(SUM(l.amount), 0)
            OR i.subtotal <> COALESCE(SUM(l.amount) FILTER (WHERE l.kind = ANY(%s)), 0)
            OR i.discount_total <> COALESCE(-SUM(l.amount) FILTER (WHERE l.kind = 'discount'), 0)
            OR i.tax_total <> COALESCE(SUM(l.amount) FILTER (WHERE l.kind = 'tax'), 0)
        ORDER BY i.id
        """,
        [list(CHARGE_KINDS)] * 2,
        lambda number, total, subtotal, discount, tax, lines, charges, discounts, taxes: (
            f"invoice {number}: total {total} / subtotal {subtotal} / discount {discount} / tax {tax}, "
            f"its lines sum to {lines} / {charges} / {discounts} / {taxes}"
        ),
    )
    currencies, places = zip(*MINOR_UNITS.items())
    _check(
        problems,
        f"""
        SELECT i.number, l.position, l.amount, l.amount_unrounded, round(l.amount_unrounded, COALESCE(m.places, 2))
        FROM {LINE} l JOIN {INVOICE} i ON i.id = l.invoice_id
        LEFT JOIN unnest(%s::text[], %s::int[]) AS m(currency, places) ON m.currency = i.currency
        WHERE l.amount <> round(l.amount_unrounded, COALESCE(m.places, 2))
        ORDER BY l.id
        """,
        [list(currencies), list(places)],
        lambda number, position, amount, unrounded, rounded: (
            f"invoice {number} line {position}: amount {amount} != {unrounded} rounded ({rounded})"
        ),
    )


def _usage_lines(problems: list[str]) -> None:
    _check(
        problems,
        f"""
        SELECT i.number, l.position, l.amount_unrounded, l.units, l.event_count,
               COALESCE(SUM(r.amount), 0), COALESCE(SUM(r.quantity), 0), COUNT(r.id)
        FROM {LINE} l JOIN {INVOICE} i ON i.id = l.invoice_id
        LEFT JOIN {RATED} r ON {LINE_EVENTS}
        WHERE l.kind = ANY(%s)
        GROUP BY l.id, i.number
        HAVING l.amount_unrounded <> COALESCE(SUM(r.amount), 0) OR l.units <> COALESCE(SUM(r.quantity), 0)
            OR l.event_count <> COUNT(r.id)
        ORDER BY l.id
        """,
        [list(USAGE_KINDS)],
        lambda number, position, amount, units, count, rated_amount, rated_units, rated_count: (
            f"invoice {number} line {position}: amount_unrounded {amount}, units {units}, {count} events; "
            f"its rated events sum to {rated_amount}, {rated_units} units, {rated_count} events"
        ),
    )
    _check(
        problems,
        f"""
        SELECT r.id, array_agg(i.number || ' line ' || l.position ORDER BY l.id)
        FROM {LINE} l JOIN {INVOICE} i ON i.id = l.invoice_id AND i.status <> 'void'
        JOIN {RATED} r ON {LINE_EVENTS}
        WHERE l.kind = ANY(%s)
        GROUP BY r.id HAVING COUNT(*) > 1
        ORDER BY r.id
        """,
        [list(USAGE_KINDS)],
        lambda rated_id, lines: f"rated event {rated_id} is billed by {len(lines)} usage lines: {', '.join(lines)}",
    )
    # Coverage in two steps: the periods whose rated events under the final watermark outnumber
    # the distinct events their usage lines' ranges reach — counts per period, each line's range
    # read through the rated ledger's index — and only for those, the events on no line by name (a per-event anti-join
    # over the whole ledger would not finish at millions of events).
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH settled AS (
                SELECT subscription_id, period_start, MAX(watermark) AS watermark FROM {RUN}
                WHERE kind = 'final' GROUP BY subscription_id, period_start),
            rated AS (
                SELECT r.subscription_id, r.period_start, COUNT(*) AS n FROM {RATED} r
                JOIN settled s ON s.subscription_id = r.subscription_id AND s.period_start = r.period_start
                WHERE r.id <= s.watermark GROUP BY r.subscription_id, r.period_start),
            billed AS (
                SELECT i.subscription_id, l.period_start, COUNT(DISTINCT r.id) AS n
                FROM {LINE} l JOIN {INVOICE} i ON i.id = l.invoice_id AND i.status <> 'void'
                JOIN settled s ON s.subscription_id = i.subscription_id AND s.period_start = l.period_start
                JOIN {RATED} r ON {LINE_EVENTS} AND r.id <= s.watermark
                WHERE l.kind = ANY(%s)
                GROUP BY i.subscription_id, l.period_start)
            SELECT rated.subscription_id, rated.period_start FROM rated
            LEFT JOIN billed ON billed.subscription_id = rated.subscription_id AND billed.period_start = rated.period_start
            WHERE rated.n <> COALESCE(billed.n, 0)
            """,
            [list(USAGE_KINDS)],
        )
        short = cursor.fetchall()
    if not short:
        return
    _check(
        problems,
        f"""
        SELECT r.id, r.subscription_id, r.period_start, s.watermark
        FROM {RATED} r
        JOIN unnest(%s::bigint[], %s::timestamptz[]) AS p(subscription_id, period_start)
             ON r.subscription_id = p.subscription_id AND r.period_start = p.period_start
        JOIN {RUN} s ON s.subscription_id = r.subscription_id AND s.period_start = r.period_start
                     AND s.kind = 'final' AND r.id <= s.watermark
        WHERE NOT EXISTS (
            SELECT 1 FROM {LINE} l JOIN {INVOICE} i ON i.id = l.invoice_id AND i.status <> 'void'
            WHERE l.kind = ANY(%s) AND {LINE_EVENTS})
        ORDER BY r.id
        """,
        [[sub for sub, _ in short], [start for _, start in short], list(USAGE_KINDS)],
        lambda rated_id, subscription_id, period_start, watermark: (
            f"rated event {rated_id} (subscription {subscription_id}, period {period_start:%Y-%m-%d}) is under its "
            f"period's final watermark {watermark} but on no usage line"
        ),
    )


def _runs(problems: list[str]) -> None:
    _check(
        problems,
        f"SELECT id, subscription_id, period_start, kind FROM {RUN} WHERE invoice_id IS NULL ORDER BY id",
        [],
        lambda run_id, subscription_id, period_start, kind: (
            f"settlement run {run_id} ({kind}, subscription {subscription_id}, {period_start:%Y-%m-%d}) has no invoice"
        ),
    )


def _running_totals(problems: list[str]) -> None:
    _check(
        problems,
        f"""
        SELECT COALESCE(t.subscription_id, r.subscription_id), COALESCE(t.metric_id, r.metric_id),
               COALESCE(t.dimension_key, r.dimension_key), COALESCE(t.period_start, r.period_start),
               t.units, t.amount, t.event_count, r.units, r.amount, r.event_count
        FROM {TOTAL} t
        FULL OUTER JOIN (
            SELECT subscription_id, metric_id, dimension_key, period_start,
                   SUM(quantity) AS units, SUM(amount) AS amount, COUNT(*) AS event_count
            FROM {RATED} GROUP BY subscription_id, metric_id, dimension_key, period_start
        ) r USING (subscription_id, metric_id, dimension_key, period_start)
        WHERE t.units IS DISTINCT FROM r.units OR t.amount IS DISTINCT FROM r.amount
           OR t.event_count IS DISTINCT FROM r.event_count
        ORDER BY 1, 2, 3, 4
        """,
        [],
        lambda subscription_id, metric_id, key, period_start, units, amount, count, r_units, r_amount, r_count: (
            f"running total (subscription {subscription_id}, metric {metric_id}, dimension {key!r}, "
            f"{period_start:%Y-%m-%d}): units {units}, amount {amount}, {count} events; "
            f"its rated events: units {r_units}, amount {r_amount}, {r_count} events"
        ),
    )


def _rated_references(problems: list[str]) -> None:
    """The rated ledger's catalog foreign keys carry no database constraint (see RatedEvent)."""
    references = [
        ("tenant_id", Tenant), ("subscription_id", Subscription), ("customer_id", Customer), ("metric_id", Metric),
        ("rate_plan_version_id", RatePlanVersion), ("metric_config_id", MetricConfig),
        ("pricing_snapshot_id", PricingSnapshot),
    ]
    dangling = " OR ".join(
        f"NOT EXISTS (SELECT 1 FROM {model._meta.db_table} x WHERE x.id = r.{column})" for column, model in references
    )
    names = ", ".join(f"CASE WHEN NOT EXISTS (SELECT 1 FROM {model._meta.db_table} x WHERE x.id = r.{column}) "
                      f"THEN '{column}' END" for column, model in references)
    _check(
        problems,
        f"SELECT r.id, array_remove(ARRAY[{names}], NULL) FROM {RATED} r WHERE {dangling} ORDER BY r.id",
        [],
        lambda rated_id, columns: f"rated event {rated_id}: {', '.join(columns)} point(s) to no catalog row",
    )


def ledger_verify() -> list[str]:
    """Every ledger invariant, one line per problem found (empty: all hold):
    invoices — total == sum of its rounded lines (and subtotal / discount / tax their kinds'),
    each line's amount == its amount_unrounded rounded to the currency's minor unit;
    usage and late-usage lines — amount_unrounded, units and event count == those of the rated
    events in their range; no rated event on two usage lines of live (non-void) invoices; every
    rated event of a period with a final run, at or below its watermark, on some usage line;
    every settlement run has its invoice; running totals (units, amount, event_count) == sums
    over their rated events, and no rated events without one; the rated ledger's catalog
    references exist; wallets — wallets.services.wallets_check."""
    problems: list[str] = []
    for check in (_invoices, _usage_lines, _runs, _running_totals, _rated_references):
        check(problems)
    problems.extend(wallets_check())
    return problems
