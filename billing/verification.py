"""The ledger's invariants, checked in SQL (aggregates and anti-joins, never a Python loop over
rows): invoices against their lines, usage lines against the rated events they trace to, the
coverage of settled periods, running totals against the rated ledger, the rated ledger's
catalog references (kept without database constraints), and the wallets.

Every check reads whole tables, so every plan is set-based and linear in the ledger: each check
scans each table once, joined by hash (or merge) on whole keys. A usage line's events are a range within
its key, (subscription, metric, dimension, period); a rated event is joined to the lines of its
key only, so the cost is rated events x usage lines per key (one per run that settled the key's
period: its final run, interim runs, late adjustments, reissues)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connection, transaction

from aforo.money import ISO_4217_MINOR_UNITS, LEGACY_MINOR_UNITS
from catalog.models import Customer, Metric, MetricConfig, RatePlanVersion, Subscription, Tenant
from metering.models import RawEvent
from wallets.grants import credit_grants_check
from wallets.services import wallets_check

from .models import Invoice, InvoiceLine, PricingSnapshot, RatedEvent, RunningTotal, SettlementRun, UsageRollup

SHOWN = 20  # offenders named per check; the rest are counted
# Allowance lines (rolled-over units, negative) are neither usage coverage nor in the subtotal
# (settle.py's subtotal is the gross charges); they count in the total like every line.
USAGE_KINDS = (InvoiceLine.Kind.USAGE, InvoiceLine.Kind.LATE_USAGE)
CHARGE_KINDS = (*USAGE_KINDS, InvoiceLine.Kind.BASE, InvoiceLine.Kind.COMMITMENT, InvoiceLine.Kind.CAP)

INVOICE, LINE, RATED, TOTAL, RUN, ROLLUP = (
    m._meta.db_table for m in (Invoice, InvoiceLine, RatedEvent, RunningTotal, SettlementRun, UsageRollup)
)
# For the checks' transaction only (set_config(..., is_local)): no nested loops. The settlement
# tables are often unanalyzed when verify_ledger runs (just settled, autovacuum not yet by), and
# a nested loop over an outer side estimated at a few rows repeats its inner side per real row:
# the coverage check's were quadratic (every usage line paired with every settled period: 20 s at
# 1M rated events and 2,000 subscriptions). Every join here has an equality key to hash on.
PLANNER_SETTINGS = {"enable_nestloop": "off"}
# The usage and late-usage lines with their subscription (a combined invoice's part's, else the
# invoice's), number and liveness (not
# void). MATERIALIZED: the rated ledger is joined to them on the whole key, never on part of it
# before the invoice is (a hash bucket per metric and period would hold every subscription's lines).
USAGE_LINES = f"""usage_lines AS MATERIALIZED (
    SELECT l.id, l.position, l.amount_unrounded, l.units, l.event_count, l.metric_id, l.dimension_key,
           l.period_start, l.rated_from_id, l.rated_to_id, l.trial, i.number,
           COALESCE(l.subscription_id, i.subscription_id) AS subscription_id, i.status <> 'void' AS live
    FROM {LINE} l JOIN {INVOICE} i ON i.id = l.invoice_id
    WHERE l.kind = ANY(%s))"""
# The rated events `r` of a usage line `u`: its subscription, metric, dimension and period, id in
# (rated_from_id, rated_to_id] — trial usage on a line of its own (trial = true).
# A rated row's event count: 1, or −1 for a re-rating's reversal row (RatedEvent.reverses).
EVENTS = "CASE WHEN reverses_id IS NULL THEN 1 ELSE -1 END"
LINE_EVENTS = """r.subscription_id = u.subscription_id AND r.metric_id = u.metric_id
                 AND r.dimension_key = u.dimension_key AND r.period_start = u.period_start
                 AND r.trial = u.trial AND r.id > u.rated_from_id AND r.id <= u.rated_to_id"""


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
    currencies, places = zip(*ISO_4217_MINOR_UNITS.items())
    _check(
        problems,
        f"""
        SELECT i.number, l.position, l.amount, l.amount_unrounded,
               round(l.amount_unrounded, COALESCE(m.places, %s::int))
        FROM {LINE} l JOIN {INVOICE} i ON i.id = l.invoice_id
        LEFT JOIN unnest(%s::text[], %s::int[]) AS m(currency, places) ON m.currency = i.currency
        WHERE l.amount <> round(l.amount_unrounded, COALESCE(m.places, %s::int))
        ORDER BY l.id
        """,
        [LEGACY_MINOR_UNITS, list(currencies), list(places), LEGACY_MINOR_UNITS],
        lambda number, position, amount, unrounded, rounded: (
            f"invoice {number} line {position}: amount {amount} != {unrounded} rounded ({rounded})"
        ),
    )


def _usage_lines(problems: list[str]) -> None:
    """Each usage line's amount_unrounded, units and event count against the rated events of its
    range (voided invoices' lines too): one hash join of the rated ledger to the lines on their
    whole key, then a sum per line. A rated event probes only the lines of its own key."""
    _check(
        problems,
        f"""
        WITH {USAGE_LINES},
        rated AS (
            SELECT u.id, SUM(r.amount) AS amount, SUM(r.quantity) AS units, SUM({EVENTS}) AS n
            FROM usage_lines u JOIN {RATED} r ON {LINE_EVENTS}
            GROUP BY u.id)
        SELECT u.number, u.position, u.amount_unrounded, u.units, u.event_count,
               COALESCE(e.amount, 0), COALESCE(e.units, 0), COALESCE(e.n, 0)
        FROM usage_lines u LEFT JOIN rated e ON e.id = u.id
        WHERE u.amount_unrounded <> COALESCE(e.amount, 0) OR u.units <> COALESCE(e.units, 0)
           OR u.event_count <> COALESCE(e.n, 0)
        ORDER BY u.id
        """,
        [list(USAGE_KINDS)],
        lambda number, position, amount, units, count, rated_amount, rated_units, rated_count: (
            f"invoice {number} line {position}: amount_unrounded {amount}, units {units}, {count} events; "
            f"its rated events sum to {rated_amount}, {rated_units} units, {rated_count} events"
        ),
    )


def _overlapping_lines(problems: list[str]) -> None:
    """No rated event on two usage lines of live (non-void) invoices, proven on the lines alone and
    only then named from the rated ledger. Two lines share an event only within one key; there,
    with the key's live lines ordered by (rated_from_id, rated_to_id), if an event e is on lines A
    and B, B after A, then the line right after A (B, or one between) starts at or below from_B,
    below e, so below to_A: some line starts below the previous line's rated_to_id (LAG). Such keys
    are only candidates (ranges may meet where no event is): their rated events are joined to the
    lines to name each event billed twice — what counting lines per event over the whole ledger
    would name, without that count over every rated event."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH {USAGE_LINES}
            SELECT DISTINCT subscription_id, metric_id, dimension_key, period_start FROM (
                SELECT u.*, LAG(u.rated_to_id) OVER (
                    PARTITION BY u.subscription_id, u.metric_id, u.dimension_key, u.period_start, u.trial
                    ORDER BY u.rated_from_id, u.rated_to_id, u.id
                ) AS previous_to
                FROM usage_lines u WHERE u.live) ordered
            WHERE rated_from_id < previous_to
            """,
            [list(USAGE_KINDS)],
        )
        keys = cursor.fetchall()
    if not keys:
        return
    _check(
        problems,
        f"""
        WITH {USAGE_LINES}
        SELECT r.id, array_agg(u.number || ' line ' || u.position ORDER BY u.id)
        FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::timestamptz[])
             AS k(subscription_id, metric_id, dimension_key, period_start)
        JOIN usage_lines u ON u.live AND u.subscription_id = k.subscription_id AND u.metric_id = k.metric_id
                          AND u.dimension_key = k.dimension_key AND u.period_start = k.period_start
        JOIN {RATED} r ON {LINE_EVENTS}
        GROUP BY r.id HAVING COUNT(*) > 1
        ORDER BY r.id
        """,
        [list(USAGE_KINDS), *(list(column) for column in zip(*keys))],
        lambda rated_id, lines: f"rated event {rated_id} is billed by {len(lines)} usage lines: {', '.join(lines)}",
    )


def _coverage(problems: list[str]) -> None:
    """Every rated event of a period with a final run, at or below its watermark (the highest of the
    period's final runs), on some usage line of a live invoice: each such event named, by one hash
    anti-join of the rated ledger to the live lines on their whole key."""
    _check(
        problems,
        f"""
        WITH {USAGE_LINES},
        settled AS (
            SELECT subscription_id, period_start, MAX(watermark) AS watermark FROM {RUN}
            WHERE kind = 'final' GROUP BY subscription_id, period_start)
        SELECT r.id, r.subscription_id, r.period_start, s.watermark
        FROM {RATED} r
        JOIN settled s ON s.subscription_id = r.subscription_id AND s.period_start = r.period_start
        WHERE r.id <= s.watermark AND NOT EXISTS (SELECT 1 FROM usage_lines u WHERE u.live AND {LINE_EVENTS})
        ORDER BY r.id
        """,
        [list(USAGE_KINDS)],
        lambda rated_id, subscription_id, period_start, watermark: (
            f"rated event {rated_id} (subscription {subscription_id}, period {period_start:%Y-%m-%d}) is under its "
            f"period's final watermark {watermark} but on no usage line"
        ),
    )


def _commitments(problems: list[str]) -> None:
    """Per subscription and period, over live invoices: its commitment lines (a true-up, and the
    adjustments later invoices made for its late usage) never sum below zero, and its cap lines
    never above: an adjustment takes back at most what the period's true-up billed, or gives
    back at most what its cap took. A line belongs to its own period_start, else its invoice's, and
    to its own subscription (a combined invoice's part), else its invoice's."""
    _check(
        problems,
        f"""
        SELECT COALESCE(l.subscription_id, i.subscription_id), COALESCE(l.period_start, i.period_start) AS period,
               COALESCE(SUM(l.amount) FILTER (WHERE l.kind = 'commitment'), 0),
               COALESCE(SUM(l.amount) FILTER (WHERE l.kind = 'cap'), 0)
        FROM {LINE} l JOIN {INVOICE} i ON i.id = l.invoice_id
        WHERE l.kind IN ('commitment', 'cap') AND i.status <> 'void'
        GROUP BY 1, 2
        HAVING COALESCE(SUM(l.amount) FILTER (WHERE l.kind = 'commitment'), 0) < 0
            OR COALESCE(SUM(l.amount) FILTER (WHERE l.kind = 'cap'), 0) > 0
        ORDER BY 1, 2
        """,
        [],
        lambda subscription_id, period_start, committed, capped: (
            f"subscription {subscription_id}, period {period_start:%Y-%m-%d}: its commitment lines sum to "
            f"{committed} and its cap lines to {capped} (a true-up below zero, or a cap that adds)"
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
               t.units, t.amount, t.event_count, t.last_rated_id, t.pricing_snapshot_id,
               r.units, r.amount, r.event_count, r.last_id, n.pricing_snapshot_id
        FROM {TOTAL} t
        FULL OUTER JOIN (
            SELECT subscription_id, metric_id, dimension_key, period_start,
                   SUM(quantity) AS units, SUM(amount) AS amount, SUM({EVENTS}) AS event_count, MAX(id) AS last_id
            FROM {RATED} GROUP BY subscription_id, metric_id, dimension_key, period_start
        ) r USING (subscription_id, metric_id, dimension_key, period_start)
        LEFT JOIN {RATED} n ON n.id = r.last_id
        WHERE t.units IS DISTINCT FROM r.units OR t.amount IS DISTINCT FROM r.amount
           OR t.event_count IS DISTINCT FROM r.event_count OR t.last_rated_id IS DISTINCT FROM r.last_id
           OR t.pricing_snapshot_id IS DISTINCT FROM n.pricing_snapshot_id
        ORDER BY 1, 2, 3, 4
        """,
        [],
        lambda subscription_id, metric_id, key, period_start, units, amount, count, last, snapshot, r_units, r_amount,
        r_count, r_last, r_snapshot: (
            f"running total (subscription {subscription_id}, metric {metric_id}, dimension {key!r}, "
            f"{period_start:%Y-%m-%d}): units {units}, amount {amount}, {count} events, newest event {last} "
            f"(snapshot {snapshot}); its rated events: units {r_units}, amount {r_amount}, {r_count} events, "
            f"newest {r_last} (snapshot {r_snapshot})"
        ),
    )


def _rollups(problems: list[str]) -> None:
    """Each hourly usage rollup == the rated events of its (subscription, metric, key, hour)."""
    _check(
        problems,
        f"""
        SELECT COALESCE(u.subscription_id, r.subscription_id), COALESCE(u.metric_id, r.metric_id),
               COALESCE(u.dimension_key, r.dimension_key), COALESCE(u.hour, r.hour),
               u.units, u.amount, u.blocked_units, u.event_count, r.units, r.amount, r.blocked, r.event_count
        FROM {ROLLUP} u
        FULL OUTER JOIN (
            SELECT subscription_id, metric_id, dimension_key, date_trunc('hour', event_timestamp) AS hour,
                   SUM(quantity) AS units, SUM(amount) AS amount, SUM(blocked_units) AS blocked, SUM({EVENTS}) AS event_count
            FROM {RATED} GROUP BY 1, 2, 3, 4
        ) r USING (subscription_id, metric_id, dimension_key, hour)
        WHERE u.units IS DISTINCT FROM r.units OR u.amount IS DISTINCT FROM r.amount
           OR u.blocked_units IS DISTINCT FROM r.blocked OR u.event_count IS DISTINCT FROM r.event_count
        ORDER BY 1, 2, 3, 4
        """,
        [],
        lambda subscription_id, metric_id, key, hour, units, amount, blocked, count, r_units, r_amount, r_blocked, r_count: (
            f"usage rollup (subscription {subscription_id}, metric {metric_id}, dimension {key!r}, {hour:%Y-%m-%d %H}:00): "
            f"units {units}, amount {amount}, blocked {blocked}, {count} events; its rated events: units {r_units}, "
            f"amount {r_amount}, blocked {r_blocked}, {r_count} events"
        ),
    )


def _rated_references(problems: list[str]) -> None:
    """The rated ledger's foreign keys carry no database constraint (see RatedEvent)."""
    references = [
        ("raw_event_id", RawEvent), ("tenant_id", Tenant), ("subscription_id", Subscription), ("customer_id", Customer), ("metric_id", Metric),
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
        lambda rated_id, columns: f"rated event {rated_id}: {', '.join(columns)} point(s) to no row",
    )


def _wallets(problems: list[str]) -> None:
    problems.extend(wallets_check())


def _credit_grants(problems: list[str]) -> None:
    problems.extend(credit_grants_check())


CHECKS: tuple[tuple[str, Callable[[list[str]], None]], ...] = (
    ("invoices", _invoices), ("usage_lines", _usage_lines), ("overlapping_lines", _overlapping_lines),
    ("coverage", _coverage), ("commitments", _commitments), ("runs", _runs), ("running_totals", _running_totals), ("rollups", _rollups),
    ("rated_references", _rated_references), ("wallets", _wallets), ("credit_grants", _credit_grants),
)


def ledger_verify(*, timings: dict[str, float] | None = None) -> list[str]:
    """Every ledger invariant, one line per problem found (empty: all hold):
    invoices — total == sum of its rounded lines (and subtotal / discount / tax their kinds'),
    each line's amount == its amount_unrounded rounded to the currency's minor unit;
    usage and late-usage lines — amount_unrounded, units and event count == those of the rated
    events in their range; no rated event on two usage lines of live (non-void) invoices; every
    rated event of a period with a final run, at or below its watermark, on some usage line;
    each period's commitment lines (true-up and late adjustments) sum to zero or more, its cap
    lines to zero or less; every settlement run has its invoice; running totals (units, amount, event_count, newest
    event and its snapshot) == those of their rated events, and no rated events without one; each
    hourly usage rollup == its rated events, and none missing; the rated ledger's catalog
    references exist; wallets — wallets.services.wallets_check; credit grants — remaining ==
    amount − draws + expiry/void entries, no draw after expiry (wallets.grants.credit_grants_check).
    `timings`, when given, receives each check's wall-clock seconds under its name (CHECKS)."""
    problems: list[str] = []
    with transaction.atomic():  # read only: the transaction scopes PLANNER_SETTINGS
        previous = _planner_settings(PLANNER_SETTINGS)
        for name, check in CHECKS:
            began = time.perf_counter()
            check(problems)
            if timings is not None:
                timings[name] = time.perf_counter() - began
        _planner_settings(previous)  # a caller's enclosing transaction keeps its own
    return problems


def _planner_settings(settings: dict[str, str]) -> dict[str, str]:
    """Set these for the rest of the current transaction; returns their values before."""
    names, values = list(settings), list(settings.values())
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, current_setting(name) FROM unnest(%s::text[]) AS name", [names])
        previous = dict(cursor.fetchall())
        cursor.execute(
            "SELECT set_config(name, value, true) FROM unnest(%s::text[], %s::text[]) AS s(name, value)",
            [names, values],
        )
    return previous
