"""The counts reconciliation compares, keyed by (tenant, subject, arrival minute).

Ingest side (hot path): `ingest_counts_add` queues one HINCRBY per distinct (tenant, subject) of a
request, plus one SADD, on the pipeline the ingest already sends (its duplicate markers): no
extra round trip. Counts live in a per-minute hash until `ingest_counts_flush` (Celery beat)
moves them to IngestCount:

    claim   (one Lua script, atomic) RENAME the minute's hash to a unique flushing key, remember
            that key in the flushing set, drop the minute from the minutes set. A late HINCRBY
            for that minute creates a fresh hash and re-adds the minute (HINCRBY comes before
            SADD in the writer's pipeline), claimed by a later flush.
    apply   HGETALL the flushing key → IngestCount rows with flush_id = that key, INSERT … ON
            CONFLICT DO NOTHING on (flush_id, tenant, subject) → commit → DEL the key and forget
            it from the flushing set.

A crash after claim and before the commit leaves the key in the flushing set: the next flush
applies it (nothing lost). A crash after the commit and before the DEL makes the next flush apply
it again: every row conflicts (nothing counted twice). Concurrent flushes meet the same way.

Consumer side: `consumed_counts_plan` (pure) tallies a batch's outcomes; `consumed_counts_write`
upserts them in the caller's transaction (the batch's), so they commit exactly when its rows do.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone
from typing import Any, NamedTuple

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from ..models import ConsumedCount, DeadLetter, IngestCount
from ..validation import api_key_subject

UTC = dt_timezone.utc


# --- keys ---------------------------------------------------------------------------------------


def _prefix() -> str:
    return f"{settings.CACHES['default']['KEY_PREFIX']}:ingest_counts"


def minute_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def _minute_key(minute_epoch: int) -> str:
    return f"{_prefix()}:m:{minute_epoch}"


def _minutes_set() -> str:
    return f"{_prefix()}:minutes"


def _flushing_set() -> str:
    return f"{_prefix()}:flushing"


def _field(tenant_id: int, subject: str) -> str:
    return f"{tenant_id}|{subject}"


# --- ingest side --------------------------------------------------------------------------------


def ingest_counts_add(pipe: Any, *, tenant_id: int, subjects: Iterable[str], now: datetime) -> None:
    """Queue on `pipe` (a redis pipeline the caller executes) the count of accepted events by
    subject, in the minute of `now` (the Kafka record timestamp of those events)."""
    per_subject: dict[str, int] = {}
    for subject in subjects:
        per_subject[subject] = per_subject.get(subject, 0) + 1
    if not per_subject:
        return
    minute_epoch = int(minute_of(now).timestamp())
    key = _minute_key(minute_epoch)
    for subject, count in per_subject.items():
        pipe.hincrby(key, _field(tenant_id, subject), count)
    pipe.sadd(_minutes_set(), minute_epoch)  # after the HINCRBYs: see the claim script


_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[4])
  redis.call('SADD', KEYS[3], KEYS[4])
end
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""


def _redis():
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def ingest_counts_claim(*, minute_epoch: int) -> None:
    """Move one minute's hash to a unique flushing key (see the module docstring)."""
    flushing_key = f"{_prefix()}:flushing:{minute_epoch}:{uuid.uuid4().hex}"
    _redis().eval(_CLAIM, 4, _minute_key(minute_epoch), _minutes_set(), _flushing_set(), flushing_key, minute_epoch)


class IngestTally(NamedTuple):
    tenant_id: int
    subject: str
    minute: datetime
    accepted: int


def ingest_counts_read(*, flushing_key: str) -> list[IngestTally]:
    """The counts held by a flushing key (empty when it is gone)."""
    minute = datetime.fromtimestamp(int(flushing_key.rsplit(":", 2)[-2]), UTC)
    tallies = []
    for field, count in _redis().hgetall(flushing_key).items():
        tenant, subject = field.decode().split("|", 1)
        tallies.append(IngestTally(int(tenant), subject, minute, int(count)))
    return tallies


def ingest_counts_write(*, flushing_key: str, tallies: Sequence[IngestTally]) -> int:
    """The IngestCount rows of one flushing key, once: rows already written for it are skipped.
    Returns the rows written."""
    with transaction.atomic(durable=True):
        written = IngestCount.objects.bulk_create(
            [
                IngestCount(tenant_id=t.tenant_id, subject=t.subject, minute=t.minute, accepted=t.accepted, flush_id=flushing_key)
                for t in tallies
            ],
            ignore_conflicts=True,
        )
    return len(written)


def ingest_counts_forget(*, flushing_key: str) -> None:
    """Drop a flushing key whose counts are committed."""
    pipe = _redis().pipeline(transaction=True)
    pipe.delete(flushing_key)
    pipe.srem(_flushing_set(), flushing_key)
    pipe.execute()


def ingest_counts_flush(*, now: datetime | None = None, grace_s: int = 120) -> int:
    """Move the ingest counts of minutes older than `grace_s` (a request that started in a minute
    may count in it a few seconds after it ended: the broker's acknowledgement) from Redis to
    IngestCount; also finishes flushes a crash interrupted. Idempotent. Returns the tallies read.
    grace_s=0 flushes the current minute too (the report does: later counts of it go to a new
    hash, flushed in turn)."""
    now = now or timezone.now()
    redis = _redis()
    cutoff = int((now - timedelta(seconds=grace_s)).timestamp())
    for member in redis.smembers(_minutes_set()):
        minute_epoch = int(member)
        if minute_epoch + 60 <= cutoff or grace_s == 0:
            ingest_counts_claim(minute_epoch=minute_epoch)
    tallies = 0
    for member in redis.smembers(_flushing_set()):
        flushing_key = member.decode()
        read = ingest_counts_read(flushing_key=flushing_key)
        ingest_counts_write(flushing_key=flushing_key, tallies=read)
        ingest_counts_forget(flushing_key=flushing_key)
        tallies += len(read)
    return tallies


# --- consumer side ------------------------------------------------------------------------------

RATED, UNMATCHED, DUPLICATE, REPLAYED = "rated", "unmatched", "duplicate", "replayed"


class Received(NamedTuple):
    """One event's outcome for the counts: RATED / UNMATCHED (new in the raw ledger, raw_id
    set), DUPLICATE (already stored), REPLAYED (an unmatched event rated by replay_unmatched)."""

    tenant_id: int
    subject: str
    received_at: datetime
    outcome: str
    raw_id: int | None = None


@dataclass
class Tally:
    new: int = 0
    duplicates: int = 0
    rated: int = 0
    unmatched: int = 0
    replayed: int = 0
    raw_id_min: int | None = None
    raw_id_max: int | None = None


def consumed_counts_plan(*, received: Iterable[Received]) -> dict[tuple[int, datetime, str], Tally]:
    """The ConsumedCount increments of a batch, by (tenant, minute, subject). Pure."""
    tallies: dict[tuple[int, datetime, str], Tally] = {}
    minutes: dict[datetime, datetime] = {}  # a batch's events share a few record timestamps
    for item in received:
        minute = minutes.get(item.received_at)
        if minute is None:
            minute = minutes[item.received_at] = minute_of(item.received_at)
        key = (item.tenant_id, minute, item.subject)
        tally = tallies.get(key)
        if tally is None:
            tally = tallies[key] = Tally()
        if item.outcome == DUPLICATE:
            tally.duplicates += 1
        elif item.outcome == REPLAYED:
            tally.replayed += 1
        else:
            tally.new += 1
            if item.outcome == RATED:
                tally.rated += 1
            else:
                tally.unmatched += 1
            if item.raw_id is not None:
                tally.raw_id_min = item.raw_id if tally.raw_id_min is None else min(tally.raw_id_min, item.raw_id)
                tally.raw_id_max = item.raw_id if tally.raw_id_max is None else max(tally.raw_id_max, item.raw_id)
    return tallies


_TABLE = ConsumedCount._meta.db_table


def consumed_counts_write(*, tallies: dict[tuple[int, datetime, str], Tally]) -> None:
    """Add the tallies to ConsumedCount, in the caller's transaction; rows in key order, so two
    transactions lock shared rows in the same order."""
    if not tallies:
        return
    keys = sorted(tallies)
    columns: list[list] = [[], [], [], [], [], [], [], [], [], []]
    for key in keys:
        tally = tallies[key]
        for column, value in zip(
            columns,
            (*key, tally.new, tally.duplicates, tally.rated, tally.unmatched, tally.replayed, tally.raw_id_min, tally.raw_id_max),
        ):
            column.append(value)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {_TABLE} AS c (tenant_id, minute, subject, new, duplicates, rated, unmatched, replayed, raw_id_min, raw_id_max)
            SELECT * FROM unnest(%s::bigint[], %s::timestamptz[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[],
                                 %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[])
            ON CONFLICT (tenant_id, minute, subject) DO UPDATE SET
              new = c.new + excluded.new, duplicates = c.duplicates + excluded.duplicates,
              rated = c.rated + excluded.rated, unmatched = c.unmatched + excluded.unmatched,
              replayed = c.replayed + excluded.replayed,
              raw_id_min = LEAST(c.raw_id_min, excluded.raw_id_min), raw_id_max = GREATEST(c.raw_id_max, excluded.raw_id_max)
            """,
            columns,
        )


# --- dead letters -------------------------------------------------------------------------------


class DeadLetterRow(NamedTuple):
    tenant_id: int | None
    subject: str
    received_at: datetime
    event_id: str
    reason: str
    topic: str
    partition: int
    offset: int


def subject_of_record(*, key: bytes | None, value: bytes | None) -> tuple[str, str]:
    """(subject, event_id) of a record the consumer could not take, as far as it tells: from
    its JSON value (api_key / customer_id / subscription_id, as UsageEvent.subject), else from
    the key's `<tenant>:<routing key>`. Empty strings when neither says."""
    event_id, subject = "", ""
    try:
        body = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        if isinstance(body.get("event_id"), str):
            event_id = body["event_id"][:128]
        if isinstance(body.get("api_key"), str) and body["api_key"]:
            subject = api_key_subject(body["api_key"])
        elif body.get("customer_id") is not None:
            subject = f"customer:{body['customer_id']}"[:80]
        elif body.get("subscription_id") is not None:
            subject = f"subscription:{body['subscription_id']}"[:80]
    if not subject and key and b":" in key:
        routing = key.split(b":", 1)[1].decode(errors="replace")
        subject = routing[:80] if routing.startswith(("customer:", "subscription:")) else api_key_subject(routing)
    return subject, event_id


def _storable(text: str, limit: int) -> str:
    """Text PostgreSQL can store (no NUL, no lone surrogate), bounded: a poison record's
    fields are whatever a producer wrote."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")[:limit]


MAX_BIGINT = 2**63 - 1


def dead_letters_record(*, rows: Sequence[DeadLetterRow]) -> None:
    """Remember records sent to the DLQ, once per Kafka position (a replay is a no-op). Called
    after the DLQ acknowledged them and before the offsets are committed."""
    if not rows:
        return
    with transaction.atomic(durable=True):
        DeadLetter.objects.bulk_create(
            [
                DeadLetter(
                    tenant_id=r.tenant_id if r.tenant_id is not None and 0 <= r.tenant_id <= MAX_BIGINT else None,
                    subject=_storable(r.subject, 80), minute=minute_of(r.received_at), event_id=_storable(r.event_id, 128),
                    reason=_storable(r.reason, 500), topic=r.topic, partition=r.partition, offset=r.offset,
                )
                for r in rows
            ],
            ignore_conflicts=True,
        )
