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
    """Read the rated ledger for this run, before the stages: the watermark, and per (period,
    metric, dimension) the events at or below it in the run's ranges — from the running totals
    when they are exactly that (_from_totals: a period's first settlement, no late events, the
    usual case at period end), else in one pass over the events (_from_events).

    The watermark is the highest id, among the events of the run's ranges, rated at least `lag_s`
    ago. Ids are taken when a rating transaction inserts, not when it commits, so the newest may
    still be in flight: a rating transaction is far shorter than the lag, so every id below one
    rated before the cutoff is committed; later events go to the next run, never lost. With
    nothing new, the watermark stays where the subscription's earlier runs left it. A given
    `watermark` is used as it is (a recomputation of a run reads exactly what the run read)."""
    floor = max((run.watermark for run in context.inputs.runs), default=0)
    cutoff = context.now - timedelta(seconds=lag_s)
    rows = None if watermark is not None else _from_totals(context, cutoff=cutoff, floor=floor)
    if rows is None:
        rows = _from_events(context, cutoff=cutoff, floor=floor, watermark=watermark)
    context.watermark = rows[0][0]
    rows = [row[1:] for row in rows if row[1] is not None]
    snapshots = _snapshot_configs({row[7] for row in rows})
    context.ledger_rows = [(*row[:7], snapshots[row[7]], row[8]) for row in rows]
    # The period's units per (metric, key) up to the watermark: what its interim invoices billed
    # plus what this run settles; and the config its latest event was rated with.
    units = dict(context.inputs.interim_units)
    for period_start, metric_id, key, quantity, *_, config, _trial in context.ledger_rows:
        if period_start == context.period_start:
            units[(metric_id, key)] = units.get((metric_id, key), ZERO) + quantity
            context.key_configs[(metric_id, key)] = config
    context.period_units = units


def _from_totals(context: SettlementContext, *, cutoff, floor: int) -> list[tuple] | None:
    """The ledger read without reading the ledger, when the running totals ARE the answer: the
    run's own period has no earlier run (its range is the whole period), every earlier settled
    period's totals show nothing rated above what settled it (no late events), and every total
    of the period was last rated before the cutoff (all its events count). Each total is then
    exactly its events' sums (RunningTotal's invariant, checked by verify_ledger), its
    last_rated_id their highest id and its snapshot the newest one's. None: read the events."""
    own = context.period_start
    if not context.inputs.totals_complete or context.ranges[own] != 0:
        return None
    if context.subscription.trial_overlaps(own):
        return None  # a total sums trial and paid events: the events say which is which
    for period_start, low in context.ranges.items():
        if period_start != own and period_start in context.inputs.period_newest:
            newest = context.inputs.period_newest[period_start]
            if newest is None or newest > low:
                return None  # late events (or a total that cannot say): read them
    totals = sorted((t for t in context.inputs.totals if t.event_count), key=lambda t: (t.metric_id, t.dimension_key))
    if any(t.last_rated_id is None or t.updated_at is None or t.updated_at > cutoff for t in totals):
        return None
    mark = max([floor, *(t.last_rated_id for t in totals)])
    if not totals:
        return [(mark, None)]
    return [
        (mark, own, t.metric_id, t.dimension_key, t.units, t.amount, t.event_count, t.last_rated_id, t.snapshot_id, False)
        for t in totals
    ]


def _from_events(context: SettlementContext, *, cutoff, floor: int, watermark: int | None) -> list[tuple]:
    """The run's rated events, grouped, in one pass over the heap: [(watermark, period_start,
    metric_id, dimension_key, units, amount, count, highest id, newest snapshot id, trial), ...]
    (trial usage apart from the paid: its own line)."""
    periods, lows = zip(*sorted(context.ranges.items()))
    with bulk_cursor() as cursor:  # server-side binding: prepared once per connection
        cursor.execute(
            f"""
            WITH ev AS MATERIALIZED (
                SELECT r.id, r.period_start, r.metric_id, r.dimension_key, r.quantity, r.amount, r.pricing_snapshot_id,
                       r.rated_at, r.trial, CASE WHEN r.reverses_id IS NULL THEN 1 ELSE -1 END AS n
                FROM {RatedEvent._meta.db_table} r
                JOIN unnest(%s::timestamptz[], %s::bigint[]) AS p(start, low) ON r.period_start = p.start AND r.id > p.low
                WHERE r.subscription_id = %s),
            w AS (SELECT COALESCE(%s::bigint, GREATEST(COALESCE(MAX(id) FILTER (WHERE rated_at <= %s), 0), %s)) AS mark
                  FROM ev)
            SELECT w.mark, e.period_start, e.metric_id, e.dimension_key, SUM(e.quantity), SUM(e.amount), COALESCE(SUM(e.n), 0),
                   MAX(e.id), (ARRAY_AGG(e.pricing_snapshot_id ORDER BY e.id DESC))[1], COALESCE(e.trial, false)
            FROM w LEFT JOIN ev e ON e.id <= w.mark
            GROUP BY w.mark, e.period_start, e.metric_id, e.dimension_key, e.trial
            ORDER BY e.period_start, e.metric_id, e.dimension_key, e.trial DESC
            """,
            [list(periods), list(lows), context.subscription.pk, watermark, cutoff, floor],
        )
        return cursor.fetchall()


def run(context: SettlementContext) -> None:
    codes = context.inputs.metric_codes
    for period_start, metric_id, key, units, amount, count, last_id, config, *trial in context.ledger_rows:
        context.aggregates.append(
            Aggregate(
                period_start=period_start, metric_id=metric_id, metric_code=codes[metric_id], dimension_key=key,
                units=units, amount=amount, event_count=count, rated_from_id=context.ranges[period_start],
                rated_to_id=last_id, config=config, late=period_start != context.period_start,
                trial=bool(trial and trial[0]),
            )
        )
    context.log(
        "aggregate", watermark=context.watermark, groups=len(context.ledger_rows),
        events=sum(row[5] for row in context.ledger_rows),
        late_groups=sum(1 for a in context.aggregates if a.late),
    )
