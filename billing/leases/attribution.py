"""Rated units of events sent under a lease, added to the lease's `consumed` inside the rating
transaction (billing.usage), so a lease's units are never counted twice: once rated they are in
the running total and no longer in the lease's reservation.

An event names its lease in `metadata.lease_id` (an integer or a string of digits). It counts
only for a lease of the same tenant, subscription, metric, dimension key and period as the event
was rated in; any other id is ignored (the event is ordinary usage). Events rated after the lease
closed beyond what it used count as ordinary usage too, and show on the lease as `overrun`.

Cost: nothing per event without a lease id (the batch collects the positions of those with one
as it builds its rating inputs); one UPDATE per batch for all its leases. The rating batch has
already locked the running totals of every key it touches, so no two batches update one lease
at once, and lease writes (which lock the subscription, then the lease) never wait on a running
total: no deadlock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from .counters import BudgetKey, lease_reservations_publish

MAX_ID = 2**63 - 1


def lease_id_parse(value: Any) -> int | None:
    """metadata.lease_id as a lease id, or None when it cannot be one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    return value if isinstance(value, int) and 0 < value <= MAX_ID else None


def lease_consumption_record(*, attributed: Sequence[tuple[Any, Any]], now: datetime) -> None:
    """Add the units of (rating input, rated record) pairs whose event named a lease to that
    lease; inside the rating transaction. After commit, the reserved totals of the leases' keys
    go to Redis (billing.leases.counters)."""
    units: dict[tuple, Decimal] = {}
    for item, record in attributed:
        lease_id = lease_id_parse(item.lease_id)
        if lease_id is None:
            continue
        key = (lease_id, record.tenant_id, record.subscription_id, item.resolution.metric.metric_id,
               record.dimension_key, record.period_start)
        units[key] = units.get(key, Decimal(0)) + record.quantity
    if not units:
        return
    columns = [list(c) for c in zip(*[(*key, total) for key, total in sorted(units.items())])]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE billing_lease AS l
            SET consumed = l.consumed + x.units, updated_at = %s,
                overrun = CASE WHEN l.status = 'active' THEN 0 ELSE GREATEST(l.consumed + x.units - l.used, 0) END
            FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::text[], %s::timestamptz[],
                        %s::numeric[]) AS x(id, tenant_id, subscription_id, metric_id, dimension_key, period_start, units)
            WHERE l.id = x.id AND l.kind = 'units' AND l.tenant_id = x.tenant_id AND l.subscription_id = x.subscription_id
              AND l.metric_id = x.metric_id AND l.dimension_key = x.dimension_key AND l.period_start = x.period_start
            RETURNING l.subscription_id, l.metric_id, l.dimension_key, l.period_start, l.period_end
            """,
            [now, *columns],
        )
        keys = [BudgetKey(*row) for row in cursor.fetchall()]
    if keys:
        transaction.on_commit(lambda: lease_reservations_publish(keys=keys))
