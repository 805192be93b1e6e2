"""Hourly usage rollups: what the usage series API and the dashboard's charts read.

The rating batch adds its rated events to one row per (subscription, metric, dimension key,
hour of the event's own timestamp) in the same transaction as the ledger rows and running
totals (`usage_rollups_add`), so the series is exact at every commit and its reads never scan
the rated ledger: a customer's month is ~720 rows per metric, whatever the number of events.
verify_ledger checks every rollup against the rated events behind it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from decimal import Decimal

from aforo.db import bulk_cursor

from .models import UsageRollup

TABLE = UsageRollup._meta.db_table


def hour_of(moment: datetime) -> datetime:
    """The UTC hour an instant falls in (an offset of +05:30 must not make half-hour buckets)."""
    return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def usage_rollups_add(
    *, rows: Iterable[tuple[int, int, int, int, str, datetime, Decimal, Decimal, Decimal]], now: datetime
) -> None:
    """Add rated events to their hours. `rows`: one per rated event, (tenant, subscription,
    customer, metric, dimension key, event timestamp, quantity, amount, blocked units); summed
    here per hour, then one INSERT … ON CONFLICT for the batch, in key order (two consumers
    adding to one subscription's hour wait on its row, never deadlock). Inside the rating
    transaction."""
    sums: dict[tuple, list] = {}
    for tenant, sub, customer, metric, key, at, quantity, amount, blocked in rows:
        hour = hour_of(at)
        entry = sums.get((sub, metric, key, hour))
        if entry is None:
            sums[(sub, metric, key, hour)] = [tenant, customer, quantity, amount, blocked, 1]
        else:
            entry[2] += quantity
            entry[3] += amount
            entry[4] += blocked
            entry[5] += 1
    if not sums:
        return
    keys = sorted(sums)
    columns = list(zip(*[(*k, *sums[k]) for k in keys]))
    with bulk_cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {TABLE} (subscription_id, metric_id, dimension_key, hour, tenant_id, customer_id,
                                 units, amount, blocked_units, event_count, updated_at)
            SELECT s, m, d, h, t, c, u, a, b, n, %s
            FROM unnest(%b::bigint[], %b::bigint[], %b::text[], %b::timestamptz[], %b::bigint[], %b::bigint[],
                        %b::numeric[], %b::numeric[], %b::numeric[], %b::bigint[]) AS x(s, m, d, h, t, c, u, a, b, n)
            ON CONFLICT (subscription_id, metric_id, dimension_key, hour) DO UPDATE
            SET units = {TABLE}.units + excluded.units, amount = {TABLE}.amount + excluded.amount,
                blocked_units = {TABLE}.blocked_units + excluded.blocked_units,
                event_count = {TABLE}.event_count + excluded.event_count, updated_at = excluded.updated_at
            """,
            [now, *[list(column) for column in columns]],
        )
