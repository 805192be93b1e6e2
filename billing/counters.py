"""Usage counters in Redis: the running totals as the request path reads them.

The consumer writes them in the batch that rates (`usage_counters_write`, after the rating
transaction commits: what a check sees is always committed); the entitlement check reads them
(`usage_counters_read`) with no database query. One Redis hash per subscription and period,
`<prefix>:usage:<subscription>:<period start, epoch s>`, one field per running total,
`<metric id>|<dimension key>` → `<version>:<units>:<amount>`, and it expires a week after the
period ends. Budget leases keep their reserved units beside them (`lease|<metric id>|<dimension
key>`, billing.leases.counters).

Ordering: two consumers can rate one subscription (its API keys hash to different partitions),
and their writes can reach Redis out of commit order. A field is therefore replaced only by a
newer version — the running total's newest rated-event id, which only grows under the total's
row lock (billing.services) — in one Lua script per batch.

Completeness: a hash the consumer wrote holds only the totals it touched since Redis last lost
it. The field `~complete` says the hash was loaded whole from the running totals
(`usage_counters_load`, on a reader's first miss; the same version guard applies), so a
reader never takes a missing field for zero usage unless the hash is complete.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.conf import settings
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from aforo.money import decimal_text

from .models import RunningTotal

logger = logging.getLogger(__name__)

COMPLETE = "~complete"
KEEP_AFTER_PERIOD = timedelta(days=7)

# ARGV: groups of (hash, field, version, value, expire-at epoch s). Replaces a field only with
# a higher version; sets the hash's expiry.
_WRITE = """
for i = 1, #ARGV, 5 do
  local hash, field, version = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local current = redis.call('HGET', hash, field)
  if (not current) or tonumber(string.match(current, '^(%d+):')) < version then
    redis.call('HSET', hash, field, ARGV[i + 2] .. ':' .. ARGV[i + 3])
  end
  redis.call('EXPIREAT', hash, ARGV[i + 4])
end
return 1
"""


class CounterWrite(NamedTuple):
    """One running total after a batch: its key, version (newest rated event id), units and amount."""

    subscription_id: int
    metric_id: int
    dimension_key: str
    period_start: datetime
    period_end: datetime
    version: int
    units: Decimal
    amount: Decimal


class Counter(NamedTuple):
    units: Decimal
    amount: Decimal


def counter_hash(subscription_id: int, period_start: datetime) -> str:
    return f"{settings.CACHES['default']['KEY_PREFIX']}:usage:{subscription_id}:{int(period_start.timestamp())}"


def counter_field(metric_id: int, dimension_key: str) -> str:
    return f"{metric_id}|{dimension_key}"


def _argv(writes: Iterable[CounterWrite]) -> list:
    argv: list = []
    for w in writes:
        argv += [
            counter_hash(w.subscription_id, w.period_start), counter_field(w.metric_id, w.dimension_key), w.version,
            f"{decimal_text(w.units)}:{decimal_text(w.amount)}", int((w.period_end + KEEP_AFTER_PERIOD).timestamp()),
        ]
    return argv


_scripts: dict[int, object] = {}


def _script():
    """The write script, registered once per Redis client (redis-py runs it by its SHA and loads
    it again only when the server lost it)."""
    redis = get_redis_connection("default")
    script = _scripts.get(id(redis))
    if script is None:
        script = _scripts[id(redis)] = redis.register_script(_WRITE)
    return script


def usage_counters_write(*, writes: Sequence[CounterWrite]) -> bool:
    """Write the running totals a batch moved (called after its transaction committed). A Redis
    failure is logged, never raised: the ledger is the truth, the counters a copy the next
    batch (or a reader's load) brings back. Returns whether the write landed."""
    if not writes:
        return True
    try:
        _script()(args=_argv(writes))
        return True
    except RedisError as error:
        logger.warning("usage counters not written (%d totals): %s", len(writes), error)
        return False


def usage_counters_load(*, subscription_id: int, period_start: datetime, period_end: datetime) -> None:
    """Copy one subscription-period's running totals from PostgreSQL into its hash and mark it
    complete (a reader's first miss; the version guard keeps any newer value a consumer wrote),
    with the leases' reservations (billing.leases.counters)."""
    from .leases.counters import reservation_argv_for_period  # that module builds on this one

    rows = RunningTotal.objects.filter(subscription_id=subscription_id, period_start=period_start).values_list(
        "metric_id", "dimension_key", "last_rated_id", "units", "amount"
    )
    writes = [
        CounterWrite(subscription_id, metric_id, key, period_start, period_end, version or 0, units, amount)
        for metric_id, key, version, units, amount in rows
    ]
    name = counter_hash(subscription_id, period_start)
    expire_at = int((period_end + KEEP_AFTER_PERIOD).timestamp())
    reservations = reservation_argv_for_period(
        subscription_id=subscription_id, period_start=period_start, period_end=period_end
    )
    argv = _argv(writes) + reservations + [name, COMPLETE, 0, "1:0", expire_at]
    _script()(args=argv)


def usage_counters_read(
    *, subscription_id: int, period_start: datetime, fields: Sequence[str]
) -> list[Counter | None] | None:
    """The counters of `fields` of one subscription-period: a Counter per field, zero usage for
    a field a complete hash lacks, and None for the whole when the hash is not complete (the
    caller loads it and reads again). Raises RedisError when Redis cannot be read."""
    redis = get_redis_connection("default")
    values = redis.hmget(counter_hash(subscription_id, period_start), [*fields, COMPLETE])
    if values[-1] is None:
        return None
    zero = Counter(Decimal(0), Decimal(0))
    counters: list[Counter | None] = []
    for value in values[:-1]:
        if value is None:
            counters.append(zero)
            continue
        _, units, amount = value.decode().split(":")
        counters.append(Counter(Decimal(units), Decimal(amount)))
    return counters
