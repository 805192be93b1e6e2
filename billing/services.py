"""Billing writes: rating a batch of resolved events into the rated ledger and running totals.

Delta rating (ARCHITECTURE.md §4.3): each event is charged by its model's `rate_event`
(quote(after) − quote(before); percentage: the change of max(fees, min_fee)) against the
running state of its (subscription, metric, dimension, period), read under a row lock inside
the caller's transaction, so for every key sum(amount) == quote(total) − quote(0) whatever the
batch boundaries, arrival order or number of consumers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from django.conf import settings
from django.db import connection, transaction

from aforo.copy import copy_rows, ids_take, jsonb, numeric
from aforo.db import bulk_cursor
from aforo.stages import stage
from aforo.kafka import Delivery, Record, produce_and_wait, produce_later
from billing.rating import TierDelta
from billing.rating.plan import EventToRate, TotalState, ratings_plan
from catalog.models import Subscription
from wallets.plan import RatedCharge

from .counters import CounterWrite, usage_counters_write
from .models import InvoiceLine, PricingSnapshot, RatedEvent, RunningTotal, SettlementRun
from .periods import period_for
from .rated_wire import RatedWire
from .rollups import usage_rollups_add
from .trials.services import trial_events_classify

if TYPE_CHECKING:
    from metering.enrichment import Resolution

WALLET_MODES = ("prepaid", "hybrid")  # subscriptions whose rated events settle against a wallet as they are rated
TotalKey = tuple[int, int, str, datetime]  # (subscription, metric, dimension_key, period_start)
RATED_TABLE = RatedEvent._meta.db_table


class RatingInput(NamedTuple):
    raw_event_id: int
    tenant_id: int
    event_id: str
    quantity: Decimal
    timestamp: datetime
    resolution: Resolution
    session: str = ""  # the event's session_id dimension (a wallet hold with that reference pays first)
    lease_id: Any = None  # the event's metadata.lease_id, as sent (billing.leases.attribution parses it)


class RatedRecord(NamedTuple):
    """A rated event as published on usage.rated.v1 (a NamedTuple: built once per event on the
    consumer's hot path)."""

    rated_event_id: int
    raw_event_id: int
    tenant_id: int
    event_id: str
    customer_id: int
    subscription_id: int
    metric: str
    dimension_key: str
    quantity: Decimal
    units_before: Decimal
    units_after: Decimal
    amount: Decimal
    currency: str
    rate_plan_version_id: int
    period_start: datetime
    period_end: datetime
    timestamp: datetime
    rated_at: datetime
    tiers: list[dict[str, Any]] | None = None
    blocked: Decimal = Decimal(0)  # units past a "block" limit: recorded, rated at zero
    trial: bool = False  # trial usage (billing.trials): rated at zero

    def to_wire(self) -> bytes:
        """The record's bytes on usage.rated.v1 (billing.rated_wire; the contract is orjson's JSON
        of these fields, decimals as plain exact text)."""
        return RatedWire().encode(self)

    @property
    def key(self) -> bytes:
        return f"{self.tenant_id}:{self.subscription_id}".encode()


def _rated_wire(records: Sequence[RatedRecord]) -> list[Record]:
    """usage.rated.v1 records: keyed tenant:subscription, timestamped at rating."""
    topic = settings.KAFKA_TOPIC_RATED
    stamps: dict[datetime, int] = {}
    encode = RatedWire().encode
    return [
        Record(
            topic, encode(r), f"{r.tenant_id}:{r.subscription_id}".encode(),
            stamps.get(r.rated_at) or stamps.setdefault(r.rated_at, int(r.rated_at.timestamp() * 1000)),
        )
        for r in records
    ]


def rated_records_publish(*, records: Sequence[RatedRecord]) -> None:
    """Produce rated records to usage.rated.v1 and return once the broker acknowledged them;
    raises BrokerUnavailable otherwise."""
    if records:
        produce_and_wait(_rated_wire(records))


def rated_records_publish_later(*, records: Sequence[RatedRecord]) -> Delivery:
    """Produce rated records to usage.rated.v1 and return at once; the Delivery says when the
    broker acknowledged them (the usage consumer's publish step)."""
    return produce_later(_rated_wire(records))


def _table(model: Any) -> str:
    return model._meta.db_table


def _lock_running_totals(rows: dict[TotalKey, tuple], *, now: datetime) -> dict[TotalKey, TotalState]:
    """Make sure a running total exists for every key, lock them all (stable order: no
    deadlock between consumers) and return their state by key."""
    keys = sorted(rows)
    columns = list(zip(*[(*k, *rows[k]) for k in keys]))
    with bulk_cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {_table(RunningTotal)}
                (subscription_id, metric_id, dimension_key, period_start, tenant_id, customer_id,
                 period_end, currency, units, amount, event_count, transaction_fees, updated_at)
            SELECT s, m, d, ps, t, c, pe, cur, 0, 0, 0, 0, %s
            FROM unnest(%b::bigint[], %b::bigint[], %b::text[], %b::timestamptz[], %b::bigint[],
                        %b::bigint[], %b::timestamptz[], %b::text[]) AS x(s, m, d, ps, t, c, pe, cur)
            ORDER BY s, m, d, ps
            ON CONFLICT (subscription_id, metric_id, dimension_key, period_start) DO NOTHING
            """,
            [now, *[list(c) for c in columns]],
        )
        cursor.execute(
            f"""
            SELECT id, subscription_id, metric_id, dimension_key, period_start, units, amount, event_count,
                   transaction_fees
            FROM {_table(RunningTotal)}
            WHERE (subscription_id, metric_id, dimension_key, period_start) IN (
                SELECT * FROM unnest(%b::bigint[], %b::bigint[], %b::text[], %b::timestamptz[]))
            ORDER BY id
            FOR UPDATE
            """,
            [list(c) for c in columns[:4]],
        )
        return {(s, m, d, ps): TotalState(row_id, *state) for row_id, s, m, d, ps, *state in cursor.fetchall()}


def _snapshot_ids(configs: dict[str, dict]) -> dict[str, int]:
    hashes = sorted(configs)
    with bulk_cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {_table(PricingSnapshot)} (config_hash, config, created_at)
            SELECT h, c, now() FROM unnest(%b::text[], %b::jsonb[]) AS x(h, c)
            ON CONFLICT (config_hash) DO NOTHING
            """,
            [hashes, [orjson.dumps(configs[h]).decode() for h in hashes]],
        )
        cursor.execute(f"SELECT config_hash, id FROM {_table(PricingSnapshot)} WHERE config_hash = ANY(%b)", [hashes])
        return dict(cursor.fetchall())


_RATED_COLUMNS = (
    "id", "tenant_id", "raw_event_id", "subscription_id", "customer_id", "metric_id", "dimension_key",
    "rate_plan_version_id", "metric_config_id", "pricing_snapshot_id", "period_start", "period_end", "event_timestamp",
    "quantity", "units_before", "units_after", "amount", "currency", "tiers", "rated_at", "blocked_units",
    "trial",
)
_RATED_TYPES = (
    "int8", "int8", "int8", "int8", "int8", "int8", "text", "int8", "int8", "int8", "timestamptz", "timestamptz",
    "timestamptz", "numeric", "numeric", "numeric", "numeric", "text", "jsonb", "timestamptz", "numeric",
    "bool",
)


def _periods(inputs: Sequence[RatingInput]) -> list[tuple[datetime, datetime]]:
    """Each event's billing period (most events of a subscription share one: computed once)."""
    periods: list[tuple[datetime, datetime]] = []
    last_period: dict[int, tuple[datetime, datetime]] = {}
    for item in inputs:
        sub = item.resolution.subscription
        start, end = last_period.get(sub.id) or (item.timestamp, item.timestamp)
        if not start <= item.timestamp < end:
            start, end = last_period[sub.id] = period_for(cadence=sub.cadence, anchor=sub.anchor, at=item.timestamp)
        periods.append((start, end))
    return periods


def rated_events_record_batch(*, inputs: Sequence[RatingInput], rated_at: datetime) -> list[RatedRecord]:
    """Rate resolved events, in order, and write their rated events and running totals:
    lock and read the running totals (SQL) → plan the ratings (billing.rating.plan, pure) →
    write (binary COPY of the rated rows, one UPDATE of the totals). Returns the rated records.

    Must run inside the caller's transaction (the one that wrote the raw events): rated
    events, running totals and raw events commit or roll back together."""
    if not inputs:
        return []
    assert connection.in_atomic_block, "rated_events_record_batch must run inside a transaction"

    periods = _periods(inputs)
    keys: list[TotalKey] = []
    total_rows: dict[TotalKey, tuple] = {}
    for item, (start, end) in zip(inputs, periods):
        resolution = item.resolution
        sub = resolution.subscription
        key = (sub.id, resolution.metric.metric_id, resolution.dimension_key, start)
        keys.append(key)
        if key not in total_rows:
            total_rows[key] = (item.tenant_id, sub.customer_id, end, sub.currency)

    with stage("ledger.rated.read"):
        totals = _lock_running_totals(total_rows, now=rated_at)
        snapshot_ids = _snapshot_ids({i.resolution.metric.config_hash: i.resolution.metric.config for i in inputs})
    with stage("trials"):
        free = trial_events_classify(inputs=inputs, now=rated_at)  # after the totals: the lock order
    with stage("rate"):
        planned, totals_after = ratings_plan(
            [EventToRate(key, item.quantity, item.resolution.model, is_free) for key, item, is_free in zip(keys, inputs, free)],
            totals,
        )

    with stage("ledger.rated.write"), bulk_cursor() as cursor:
        ids = ids_take(cursor, RATED_TABLE, len(inputs))
        records = [
            RatedRecord(
                rated_id, item.raw_event_id, item.tenant_id, item.event_id, (res := item.resolution).subscription.customer_id,
                res.subscription.id, res.metric.code, res.dimension_key, item.quantity, plan.units_before,
                plan.units_after, plan.amount, res.subscription.currency, res.version_id, start, end, item.timestamp,
                rated_at, _tiers_wire(plan.tiers), plan.blocked, plan.free,
            )
            for rated_id, item, plan, (start, end) in zip(ids, inputs, planned, periods)
        ]
        copy_rows(
            cursor, RATED_TABLE, _RATED_COLUMNS, _RATED_TYPES,
            (
                (
                    r.rated_event_id, r.tenant_id, r.raw_event_id, r.subscription_id, r.customer_id,
                    item.resolution.metric.metric_id, r.dimension_key, r.rate_plan_version_id,
                    item.resolution.metric.metric_config_id, snapshot_ids[item.resolution.metric.config_hash],
                    r.period_start, r.period_end, r.timestamp, numeric(r.quantity), numeric(r.units_before), numeric(r.units_after), r.amount,
                    r.currency, None if r.tiers is None else jsonb(r.tiers), rated_at, numeric(r.blocked), r.trial,
                )
                for r, item in zip(records, inputs)
            ),
        )
        usage_rollups_add(records=records, metric_ids=[item.resolution.metric.metric_id for item in inputs], now=rated_at)
        # Each total's newest event (its highest id) and the snapshot that event was rated with.
        newest: dict[TotalKey, tuple[int, int]] = {}
        for key, rated_id, item in zip(keys, ids, inputs):
            newest[key] = (rated_id, snapshot_ids[item.resolution.metric.config_hash])  # ids ascend
        moved = list(totals_after.items())
        cursor.execute(
            f"""
            UPDATE {_table(RunningTotal)} AS rt
            SET units = x.units, amount = x.amount, event_count = x.event_count,
                transaction_fees = x.fees, updated_at = %s, last_rated_id = x.last_id, pricing_snapshot_id = x.snapshot_id
            FROM unnest(%b::bigint[], %b::numeric[], %b::numeric[], %b::bigint[], %b::numeric[], %b::bigint[], %b::bigint[])
                AS x(id, units, amount, event_count, fees, last_id, snapshot_id)
            WHERE rt.id = x.id
            """,
            [
                rated_at, *[list(column) for column in zip(*[state for _, state in moved])],
                [newest[key][0] for key, _ in moved], [newest[key][1] for key, _ in moved],
            ],
        )

    writes = [  # (subscription, metric, dimension key, period start) + end, version, units, amount
        CounterWrite(*total, total_rows[total][2], newest[total][0], state.units, state.amount) for total, state in moved
    ]
    transaction.on_commit(lambda: usage_counters_write(writes=writes))  # what a check reads is committed
    _interim_invoices_enqueue(
        current={(sub, start) for (sub, _, _, start), (_, _, end, _) in total_rows.items() if start <= rated_at < end}
    )
    return records


def rated_charges(*, inputs: Sequence[RatingInput], records: Sequence[RatedRecord]) -> list[RatedCharge]:
    """What the wallets pay in real time of these rated events: those of prepaid and hybrid
    subscriptions (wallets.debits.wallet_charges_record)."""
    return [
        RatedCharge(
            rated_event_id=r.rated_event_id, tenant_id=r.tenant_id, customer_id=r.customer_id, currency=r.currency,
            billing_mode=item.resolution.subscription.billing_mode, amount=r.amount, session=item.session,
            event_id=r.event_id,
        )
        for item, r in zip(inputs, records)
        if item.resolution.subscription.billing_mode in WALLET_MODES and not r.trial
    ]


def _interim_invoices_enqueue(*, current: set[tuple[int, datetime]]) -> None:
    """Threshold-triggered invoicing, from the running totals just updated: for the touched
    subscriptions with an invoice_threshold, whose current period's accrued charges (running
    totals' amounts, less the rated amounts this period's interim invoices covered) reach it and which have
    no final run yet, enqueue billing.tasks.settle_interim after the batch commits.
    One indexed query per batch (by subscription id; the subqueries only run for subscriptions
    that have a threshold). The task re-checks under the subscription's lock, so a duplicate
    enqueue (the next batch, before the task ran) does nothing. It waits out the settlement
    watermark lag so that the events that crossed the threshold are under its watermark."""
    if not current:
        return
    subscriptions, starts = zip(*sorted(current))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT s.id FROM {_table(Subscription)} s
            JOIN unnest(%s::bigint[], %s::timestamptz[]) AS t(subscription_id, period_start) ON s.id = t.subscription_id
            WHERE s.invoice_threshold IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM {_table(SettlementRun)} r WHERE r.subscription_id = s.id
                              AND r.period_start = t.period_start AND r.kind = 'final')
              AND (SELECT COALESCE(SUM(rt.amount), 0) FROM {_table(RunningTotal)} rt
                   WHERE rt.subscription_id = s.id AND rt.period_start = t.period_start)
                - (SELECT COALESCE(SUM(l.amount_unrounded), 0) FROM {_table(SettlementRun)} r
                   JOIN {_table(InvoiceLine)} l ON l.invoice_id = r.invoice_id AND l.kind = 'usage'
                   WHERE r.subscription_id = s.id AND r.period_start = t.period_start AND r.kind = 'interim')
                >= s.invoice_threshold
            ORDER BY s.id
            """,
            [list(subscriptions), list(starts)],
        )
        due = [row[0] for row in cursor.fetchall()]
    if due:
        from billing.tasks import settle_interim  # the tasks module imports the settlement pipeline

        def enqueue() -> None:
            for subscription_id in due:
                settle_interim.apply_async(args=[subscription_id], countdown=settings.SETTLEMENT_WATERMARK_LAG_S)

        transaction.on_commit(enqueue)


def _tiers_wire(tiers: tuple[TierDelta, ...] | None) -> list[dict[str, Any]] | None:
    return None if tiers is None else [t.as_dict() for t in tiers]
