"""Lease reservations in the Redis usage counters, where the entitlement check reads them.

Each (subscription, metric, dimension, period) with leases has a field beside its running total
in the subscription-period's counter hash (billing.counters): `lease|<metric id>|<dimension key>`
→ `<version>:<reserved units>:0`. It is written after the change commits, by whoever changed a
lease (grant, renewal, return, expiry, and the rating batch when it attributed events to
leases), from a fresh read of the database: a version is taken from a PostgreSQL sequence
FIRST, then the reserved total is read, and the counters' Lua script keeps only the highest
version. So the newest version was read after every commit whose own write has a lower one:
the last write standing holds the truth, whatever order the writes reach Redis in.
A Redis failure is logged, never raised (the next change, or a reader's load, repairs it)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from django.db import connection
from redis.exceptions import RedisError

from aforo.money import decimal_text

from ..counters import KEEP_AFTER_PERIOD, _script, counter_hash

logger = logging.getLogger(__name__)

VERSION_SEQUENCE = "billing_lease_reservation_version"
_RESERVED_SQL = """
    SELECT subscription_id, metric_id, dimension_key, period_start,
           SUM(CASE WHEN status = 'active' THEN GREATEST(leased - consumed, 0) ELSE GREATEST(used - consumed, 0) END)
    FROM billing_lease
    WHERE (subscription_id, metric_id, dimension_key, period_start) IN (
        SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::timestamptz[]))
      AND (status = 'active' OR used > consumed)
    GROUP BY 1, 2, 3, 4
"""


class BudgetKey(NamedTuple):
    subscription_id: int
    metric_id: int
    dimension_key: str
    period_start: datetime
    period_end: datetime


def reservation_field(metric_id: int, dimension_key: str) -> str:
    return f"lease|{metric_id}|{dimension_key}"


def _version() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(%s)", [VERSION_SEQUENCE])
        return cursor.fetchone()[0]


def lease_reservations_read(*, keys: Sequence[BudgetKey]) -> tuple[int, dict[BudgetKey, Decimal]]:
    """(version, reserved units by key — zero for a key with nothing reserved), version first."""
    version = _version()
    unique = sorted(set(keys))
    columns = list(zip(*[k[:4] for k in unique])) or [[], [], [], []]
    with connection.cursor() as cursor:
        cursor.execute(_RESERVED_SQL, [list(c) for c in columns])
        found = {tuple(row[:4]): row[4] for row in cursor.fetchall()}
    return version, {k: found.get(tuple(k[:4]), Decimal(0)) for k in unique}


def reservation_argv(version: int, reserved: dict[BudgetKey, Decimal]) -> list:
    """The counters script's arguments for these reservations."""
    argv: list = []
    for key, units in reserved.items():
        argv += [
            counter_hash(key.subscription_id, key.period_start), reservation_field(key.metric_id, key.dimension_key),
            version, f"{decimal_text(units)}:0", int((key.period_end + KEEP_AFTER_PERIOD).timestamp()),
        ]
    return argv


def lease_reservations_publish(*, keys: Sequence[BudgetKey]) -> bool:
    """Write the keys' reserved totals to Redis (after the change committed). Returns whether it landed."""
    if not keys:
        return True
    try:
        version, reserved = lease_reservations_read(keys=keys)
        _script()(args=reservation_argv(version, reserved))
        return True
    except RedisError as error:
        logger.warning("lease reservations not written (%d keys): %s", len(keys), error)
        return False


def reservation_argv_for_period(*, subscription_id: int, period_start: datetime, period_end: datetime) -> list:
    """The counters script's arguments for every reservation of one subscription-period (a
    counter hash loaded whole from PostgreSQL: billing.counters.usage_counters_load)."""
    version = _version()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT metric_id, dimension_key,
                   SUM(CASE WHEN status = 'active' THEN GREATEST(leased - consumed, 0)
                            ELSE GREATEST(used - consumed, 0) END)
            FROM billing_lease
            WHERE subscription_id = %s AND period_start = %s AND kind = 'units'
              AND (status = 'active' OR used > consumed)
            GROUP BY 1, 2
            """,
            [subscription_id, period_start],
        )
        reserved = {
            BudgetKey(subscription_id, metric_id, key, period_start, period_end): units
            for metric_id, key, units in cursor.fetchall()
        }
    return reservation_argv(version, reserved)
