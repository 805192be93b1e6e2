"""Aggregate: per period, metric and dimension, the units and the sum of rated amounts of the
rated events this run settles, up to the watermark. (`ledger_read`, called by the pipeline
before the stages so the watermark is known to all of them, reads the ledger; `run` turns what
it read into aggregates.)

Ranges (context.ranges, SettlementInputs.ranges): a rated event is settled once. For the run's
own period, the events above the highest watermark of the period's earlier (interim) runs; for
each EARLIER period that already had its final run, the events above the highest watermark that
covered it — late events, which land here as adjustment lines with their own period."""

from __future__ import annotations

from datetime import timedelta

from aforo.db import bulk_cursor

from ..models import PricingSnapshot, RatedEvent
from .context import ZERO, Aggregate, SettlementContext

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


def ledger_read(context: SettlementContext, *, lag_s: int = 0, watermark: int | None = None) -> None:
    """Read the rated ledger for this run, before the stages, in one pass over the heap: the
    watermark, and per (period, metric, dimension) the events at or below it in the run's ranges.

    The watermark is the highest id, among the events of the run's ranges, rated at least `lag_s`
    ago. Ids are taken when a rating transaction inserts, not when it commits, so the newest may
    still be in flight: a rating transaction is far shorter than the lag, so every id below one
    rated before the cutoff is committed; later events go to the next run, never lost. With
    nothing new, the watermark stays where the subscription's earlier runs left it. A given
    `watermark` is used as it is (a recomputation of a run reads exactly what the run read)."""
    periods, lows = zip(*sorted(context.ranges.items()))
    floor = max((run.watermark for run in context.inputs.runs), default=0)
    with bulk_cursor() as cursor:  # server-side binding: prepared once per connection
        cursor.execute(
            f"""
            WITH ev AS MATERIALIZED (
                SELECT r.id, r.period_start, r.metric_id, r.dimension_key, r.quantity, r.amount, r.pricing_snapshot_id,
                       r.rated_at
                FROM {RatedEvent._meta.db_table} r
                JOIN unnest(%s::timestamptz[], %s::bigint[]) AS p(start, low) ON r.period_start = p.start AND r.id > p.low
                WHERE r.subscription_id = %s),
            w AS (SELECT COALESCE(%s::bigint, GREATEST(COALESCE(MAX(id) FILTER (WHERE rated_at <= %s), 0), %s)) AS mark
                  FROM ev)
            SELECT w.mark, e.period_start, e.metric_id, e.dimension_key, SUM(e.quantity), SUM(e.amount), COUNT(e.id),
                   MAX(e.id), (ARRAY_AGG(e.pricing_snapshot_id ORDER BY e.id DESC))[1]
            FROM w LEFT JOIN ev e ON e.id <= w.mark
            GROUP BY w.mark, e.period_start, e.metric_id, e.dimension_key
            ORDER BY e.period_start, e.metric_id, e.dimension_key
            """,
            [list(periods), list(lows), context.subscription.pk, watermark, context.now - timedelta(seconds=lag_s), floor],
        )
        rows = cursor.fetchall()
    context.watermark = rows[0][0]
    rows = [row[1:] for row in rows if row[1] is not None]
    snapshots = _snapshot_configs({row[7] for row in rows})
    context.ledger_rows = [(*row[:7], snapshots[row[7]]) for row in rows]
    # The period's units per (metric, key) up to the watermark: what its interim invoices billed
    # plus what this run settles; and the config its latest event was rated with.
    units = dict(context.inputs.interim_units)
    for period_start, metric_id, key, quantity, *_, config in context.ledger_rows:
        if period_start == context.period_start:
            units[(metric_id, key)] = units.get((metric_id, key), ZERO) + quantity
            context.key_configs[(metric_id, key)] = config
    context.period_units = units


def run(context: SettlementContext) -> None:
    codes = context.inputs.metric_codes
    for period_start, metric_id, key, units, amount, count, last_id, config in context.ledger_rows:
        context.aggregates.append(
            Aggregate(
                period_start=period_start, metric_id=metric_id, metric_code=codes[metric_id], dimension_key=key,
                units=units, amount=amount, event_count=count, rated_from_id=context.ranges[period_start],
                rated_to_id=last_id, config=config, late=period_start != context.period_start,
            )
        )
    context.log(
        "aggregate", watermark=context.watermark, groups=len(context.ledger_rows),
        events=sum(row[5] for row in context.ledger_rows),
        late_groups=sum(1 for a in context.aggregates if a.late),
    )
