"""The parts of a period's invoice. A plan change (billing.plan_change) ends a subscription at an
instant and starts its successor there (`changed_from`), so one billing period can hold several
subscriptions of one lineage: A until the change, B from it (and C after a second change). Their
period is settled ONCE, into one invoice with one part per subscription (its lines labelled by
plan and span), one final SettlementRun per part on that invoice, and `Invoice.subscription` the
period's last one — the subscription that goes on.

Which parts a final settlement of period P takes (`period_parts_read`):
- the lineage's subscriptions active within P (their [started_at, ended_at) meets P), that have no
  final run for P yet — the period's *members*, in order; the last is the invoice's subscription;
- and each earlier subscription of the lineage (ended before P) with late usage — events rated
  after its periods were settled: as a *late part* (its late lines and their commitment
  adjustments only; it is not active in P, so no base charge, true-up or cap of P). A subscription
  that ended has no next run of its own; its late usage lands on its lineage's next invoice.

A change exactly at a period boundary shares no period: each side is settled alone, as before.
Parts are decided, and then the members locked, under the requested subscription's row lock
(pipeline.settlement_run); the late parts are not locked — they have ended, and the unique
constraint of their run guards the period like any other run's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from catalog.models import RatePlan, Subscription

from ..models import RunningTotal, SettlementRun


@dataclass(frozen=True)
class Lineage:
    """One subscription of a plan-change lineage, as the lineage query reads it."""

    id: int
    changed_from_id: int | None
    started_at: datetime
    ended_at: datetime | None
    plan_name: str


@dataclass(frozen=True)
class PeriodPart:
    """A part of a period's invoice: one subscription's share of the period (a member) or its late
    usage only (`late`)."""

    subscription_id: int
    plan_name: str
    started_at: datetime
    ended_at: datetime | None
    late: bool = False


def _day(at: datetime) -> str:
    """1 Nov, or 16 Nov 10:00 when not at midnight (UTC, as every instant Aforo prints)."""
    text = f"{at.day} {at:%b}"
    return text if (at.hour, at.minute, at.second, at.microsecond) == (0, 0, 0, 0) else f"{text} {at:%H:%M}"


def _plan(name: str) -> str:
    return name


def part_label(part: PeriodPart, *, period_start: datetime, period_end: datetime) -> str:
    """How the invoice heads the part's lines: "Starter plan, 1 Nov – 16 Nov 10:00" (its span
    within the period), or "Starter plan, late usage". Pure."""
    if part.late:
        return f"{_plan(part.plan_name)}, late usage"
    start = max(part.started_at, period_start)
    end = period_end if part.ended_at is None else min(part.ended_at, period_end)
    return f"{_plan(part.plan_name)}, {_day(start)} – {_day(end)}"


def members_of(lineage: list[Lineage], *, subscription_id: int, period_start: datetime, period_end: datetime) -> list[Lineage]:
    """The lineage's subscriptions active within [period_start, period_end), oldest first: a block
    around `subscription_id` (successors start where their predecessor ends). Just that
    subscription when it is not active in the period itself (settled on demand outside its
    span: as before). Pure."""

    def active(row: Lineage) -> bool:
        return row.started_at < period_end and (row.ended_at is None or row.ended_at > period_start)

    requested = next(row for row in lineage if row.id == subscription_id)
    if not active(requested):
        return [requested]
    return [row for row in lineage if active(row)]


def lineage_read(*, subscription_id: int) -> list[Lineage]:
    """The subscription's plan-change lineage, oldest first: its predecessors (changed_from,
    transitively) and successors, with each one's plan name — one recursive query."""
    table, plans = Subscription._meta.db_table, RatePlan._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH RECURSIVE back(id, changed_from_id) AS (
                SELECT id, changed_from_id FROM {table} WHERE id = %(id)s
                UNION ALL SELECT s.id, s.changed_from_id FROM {table} s JOIN back b ON s.id = b.changed_from_id),
            forth(id) AS (
                SELECT id FROM {table} WHERE id = %(id)s
                UNION ALL SELECT s.id FROM {table} s JOIN forth f ON s.changed_from_id = f.id)
            SELECT s.id, s.changed_from_id, s.started_at, s.ended_at, p.name
            FROM {table} s JOIN {plans} p ON p.id = s.rate_plan_id
            WHERE s.id IN (SELECT id FROM back UNION SELECT id FROM forth)
            ORDER BY s.started_at, s.id
            """,
            {"id": subscription_id},
        )
        return [Lineage(*row) for row in cursor.fetchall()]


def late_ancestors_read(*, ids: list[int]) -> set[int]:
    """Of the ended subscriptions `ids`, those with rated events above what settled their period
    (the highest watermark of a final run of that period or a later one): late usage."""
    if not ids:
        return set()
    totals, runs = RunningTotal._meta.db_table, SettlementRun._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT DISTINCT t.subscription_id FROM {totals} t
            WHERE t.subscription_id = ANY(%s) AND EXISTS (
                SELECT 1 FROM {runs} r WHERE r.subscription_id = t.subscription_id AND r.kind = 'final'
                  AND r.period_start = t.period_start)
              AND (t.last_rated_id IS NULL OR t.last_rated_id > (
                SELECT MAX(r.watermark) FROM {runs} r WHERE r.subscription_id = t.subscription_id AND r.kind = 'final'
                  AND r.period_start >= t.period_start))
            """,
            [ids],
        )
        return {row[0] for row in cursor.fetchall()}


def period_parts_read(*, subscription: Subscription, period_start: datetime, period_end: datetime) -> list[PeriodPart]:
    """The parts a final settlement of `subscription`'s period would take (see the module), oldest
    first, the requested subscription among them; the other members are locked here, in id
    order. [] when the subscription has no lineage (no plan change before or after it): the
    usual one-part settlement, and no query."""
    if subscription.changed_from_id is None and not getattr(subscription, "has_successor", True):
        return []
    locked = {subscription.pk}
    for _ in range(3):  # read, lock, read again: a plan change committed meanwhile adds a member
        lineage = lineage_read(subscription_id=subscription.pk)
        members = members_of(lineage, subscription_id=subscription.pk, period_start=period_start, period_end=period_end)
        others = sorted(row.id for row in members if row.id not in locked)
        if not others:
            break
        list(Subscription.objects.select_for_update().filter(pk__in=others).order_by("pk").values_list("pk"))
        locked.update(others)
    first = members[0]
    earlier = [row for row in lineage if row.started_at < first.started_at and row.ended_at is not None
               and row.ended_at <= period_start]
    late = late_ancestors_read(ids=[row.id for row in earlier])
    return [
        *(PeriodPart(row.id, row.plan_name, row.started_at, row.ended_at, late=True) for row in earlier if row.id in late),
        *(PeriodPart(row.id, row.plan_name, row.started_at, row.ended_at) for row in members),
    ]
