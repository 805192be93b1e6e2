"""Aggregate: per period, metric and dimension, the units and the sum of rated amounts of the
rated events this run settles, up to the watermark.

Ranges: a rated event is settled once. For the run's own period, the events above the highest
watermark of the period's earlier (interim) runs; for each EARLIER period that already had its
final run, the events above the highest watermark that covered it — late events, which land
here as adjustment lines with their own period."""

from __future__ import annotations

from datetime import datetime

from django.db import connection
from django.db.models import Max, Q

from catalog.models import Metric

from ..models import PricingSnapshot, RatedEvent, SettlementRun
from .context import Aggregate, SettlementContext


def _ranges(context: SettlementContext) -> dict[datetime, int]:
    """period_start -> the id above which its rated events are still unsettled."""
    runs = SettlementRun.objects.filter(subscription=context.subscription)
    own = runs.filter(period_start=context.period_start).aggregate(low=Max("watermark"))["low"] or 0
    ranges = {context.period_start: own}
    if context.final:
        for period_start in runs.filter(kind="final", period_start__lt=context.period_start).values_list(
            "period_start", flat=True
        ).distinct():
            covered = runs.filter(
                Q(period_start=period_start) | Q(kind="final", period_start__gt=period_start, period_start__lt=context.period_start)
            ).aggregate(low=Max("watermark"))["low"]
            ranges[period_start] = covered or 0
    return ranges


# PricingSnapshot rows are immutable (one per config hash, never updated): cached per process.
_SNAPSHOTS: dict[int, dict] = {}
_SNAPSHOTS_MAX = 4096


def _snapshot_configs(ids: set[int]) -> dict[int, dict]:
    missing = ids - _SNAPSHOTS.keys()
    if missing:
        if len(_SNAPSHOTS) + len(missing) > _SNAPSHOTS_MAX:
            _SNAPSHOTS.clear()
            missing = ids
        _SNAPSHOTS.update(PricingSnapshot.objects.filter(id__in=missing).values_list("id", "config"))
    return {snapshot_id: _SNAPSHOTS[snapshot_id] for snapshot_id in ids}


def run(context: SettlementContext) -> None:
    ranges = context.ranges = _ranges(context)
    periods, lows = zip(*sorted(ranges.items()))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT r.period_start, r.metric_id, r.dimension_key, SUM(r.quantity), SUM(r.amount), COUNT(*),
                   MIN(r.id), MAX(r.id), (ARRAY_AGG(r.pricing_snapshot_id ORDER BY r.id DESC))[1]
            FROM {RatedEvent._meta.db_table} r
            JOIN unnest(%s::timestamptz[], %s::bigint[]) AS p(start, low) ON r.period_start = p.start AND r.id > p.low
            WHERE r.subscription_id = %s AND r.id <= %s
            GROUP BY r.period_start, r.metric_id, r.dimension_key
            ORDER BY r.period_start, r.metric_id, r.dimension_key
            """,
            [list(periods), list(lows), context.subscription.pk, context.watermark],
        )
        rows = cursor.fetchall()
    snapshots = _snapshot_configs({row[8] for row in rows})
    codes = dict(Metric.objects.filter(id__in={row[1] for row in rows}).values_list("id", "code")) if rows else {}
    for period_start, metric_id, key, units, amount, count, first_id, last_id, snapshot_id in rows:
        context.aggregates.append(
            Aggregate(
                period_start=period_start, metric_id=metric_id, metric_code=codes[metric_id], dimension_key=key,
                units=units, amount=amount, event_count=count, rated_from_id=ranges[period_start],
                rated_to_id=last_id, config=snapshots[snapshot_id], late=period_start != context.period_start,
            )
        )
    context.log(
        "aggregate", watermark=context.watermark, groups=len(rows), events=sum(r[5] for r in rows),
        late_groups=sum(1 for a in context.aggregates if a.late),
    )
