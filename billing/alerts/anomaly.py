"""Minute buckets of usage per subscription and metric, in Redis, for the anomaly rule.

One hash per (tenant, subscription, metric): `<prefix>:anomaly:<subscription>:<metric>`, a field
per minute (epoch minutes, by event time) holding the units rated in it, and `first`, the
earliest minute seen — the key's history starts there (billing.alerts.plan.anomaly_verdict needs
a full baseline of it). A hash expires once it has seen no usage for longer than the longest
window + baseline it may be read for, so a key idle that long starts over.

Replays: the alerts consumer reads usage.rated.v1 at least once, so the buckets are written
with a watermark — the highest offset applied per topic partition — in the same Lua script:
a record at or below its partition's watermark was counted already and is skipped. Sums are
Redis floats: a rate for a heuristic, never money.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import NamedTuple

from django.conf import settings
from django_redis import get_redis_connection

from aforo.money import decimal_text

KEEP_MINUTES = 24 * 60 + 60  # the longest baseline (a day) + window the API allows, and some
WATERMARK = "anomaly:watermark"

_APPLY = """
local mark_hash, partition = ARGV[1], ARGV[2]
local mark = tonumber(redis.call('HGET', mark_hash, partition) or '-1')
local top = mark
for i = 3, #ARGV, 5 do
  local offset = tonumber(ARGV[i])
  if offset < 0 or offset > mark then
    local hash, minute = ARGV[i + 1], ARGV[i + 2]
    redis.call('HINCRBYFLOAT', hash, minute, ARGV[i + 3])
    local first = redis.call('HGET', hash, 'first')
    if (not first) or tonumber(minute) < tonumber(first) then
      redis.call('HSET', hash, 'first', minute)
    end
    redis.call('EXPIREAT', hash, ARGV[i + 4])
    if offset > top then top = offset end
  end
end
if partition ~= '' then redis.call('HSET', mark_hash, partition, top) end
return top
"""

_STATE_SET = "anomaly:state"


class Bucketed(NamedTuple):
    """One record's units, to count in its key's minute. offset -1: not from Kafka (always counted)."""

    partition: str
    offset: int
    subscription_id: int
    metric: str
    minute: int
    units: Decimal


def _prefix() -> str:
    return settings.CACHES["default"]["KEY_PREFIX"]


def bucket_hash(subscription_id: int, metric: str) -> str:
    return f"{_prefix()}:anomaly:{subscription_id}:{metric}"


def buckets_add(items: Sequence[Bucketed]) -> None:
    """Count the records' units in their minutes, each partition's records once (watermark)."""
    if not items:
        return
    redis = get_redis_connection("default")
    script = redis.register_script(_APPLY)
    by_partition: dict[str, list[Bucketed]] = {}
    for item in items:
        by_partition.setdefault(item.partition, []).append(item)
    pipe = redis.pipeline(transaction=False)
    for partition, group in by_partition.items():
        args: list = [f"{_prefix()}:{WATERMARK}", partition]
        for item in group:
            expire_at = (item.minute + KEEP_MINUTES) * 60
            args += [item.offset, bucket_hash(item.subscription_id, item.metric), item.minute,
                     decimal_text(item.units), expire_at]
        script(args=args, client=pipe)
    pipe.execute()


def buckets_read(keys: Iterable[tuple[int, str]]) -> dict[tuple[int, str], tuple[dict[int, Decimal], int | None]]:
    """Each (subscription, metric)'s minute buckets and first minute."""
    keys = list(keys)
    if not keys:
        return {}
    redis = get_redis_connection("default")
    pipe = redis.pipeline(transaction=False)
    for subscription_id, metric in keys:
        pipe.hgetall(bucket_hash(subscription_id, metric))
    result = {}
    for key, raw in zip(keys, pipe.execute()):
        buckets: dict[int, Decimal] = {}
        first = None
        for field, value in raw.items():
            field = field.decode()
            if field == "first":
                first = int(value)
            else:
                buckets[int(field)] = Decimal(value.decode())
        result[key] = (buckets, first)
    return result


def episode_onsets(keys: Iterable[str]) -> dict[str, int | None]:
    """The onset minute of each (rule, subscription, metric) episode in progress, or None."""
    keys = list(keys)
    if not keys:
        return {}
    values = get_redis_connection("default").hmget(f"{_prefix()}:{_STATE_SET}", keys)
    return {key: (int(value) if value is not None else None) for key, value in zip(keys, values)}


def episodes_update(started: dict[str, int], ended: Iterable[str]) -> None:
    """Record the episodes that started (onset minute) and forget those that ended."""
    ended = list(ended)
    if not started and not ended:
        return
    redis = get_redis_connection("default")
    pipe = redis.pipeline(transaction=False)
    if started:
        pipe.hset(f"{_prefix()}:{_STATE_SET}", mapping=started)
    if ended:
        pipe.hdel(f"{_prefix()}:{_STATE_SET}", *ended)
    pipe.execute()
