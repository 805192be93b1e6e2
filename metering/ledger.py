"""The raw ledger's writers: store a batch of validated events, once per (tenant, event_id).

Runs inside the caller's transaction (billing.usage.usage_batch_record). Idempotency is the
ledger's unique (tenant, event_id); rows are written with binary COPY (aforo.copy). Two
consumers storing the same new event at once (a rebalance overlap) meet the unique index: the
second transaction fails with UniqueViolation and its caller records the batch again, which then
finds the event stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import psycopg
from django.db import transaction

from aforo.copy import EMPTY_JSONB, copy_rows, ids_take, jsonb, numeric
from aforo.db import bulk_cursor

from .models import RawEvent, UnmatchedUsage
from .validation import UsageEvent

TABLE = RawEvent._meta.db_table
UNIQUE_CONSTRAINT = "raw_event_unique_per_tenant"
_COLUMNS = (
    "id", "tenant_id", "event_id", "api_key_prefix", "subject", "metric", "quantity", "timestamp", "received_at",
    "dimensions", "metadata", "is_late", "source_partition", "source_offset", "created_at",
)
_TYPES = (
    "int8", "int8", "text", "text", "text", "text", "numeric", "timestamptz", "timestamptz",
    "jsonb", "jsonb", "bool", "int4", "int8", "timestamptz",
)


class Storable(Protocol):
    """What the raw ledger stores of an event (billing.usage.IncomingEvent is one)."""

    tenant_id: int
    subject: str
    event: UsageEvent
    received_at: datetime
    partition: int | None
    offset: int | None


@dataclass(frozen=True, slots=True)
class Stored:
    """The outcome of storing a batch: ids of the new rows by (tenant, event_id), and the ids of
    events stored before from these very Kafka positions (a replay after a crash between the
    database commit and the offset commit)."""

    new: dict[tuple[int, str], int]
    replayed: list[int]
    duplicates: int  # stored before from elsewhere (a client's retry, another partition)
    replayed_keys: frozenset[tuple[int, str]] = frozenset()  # (tenant, event_id) of `replayed`


def _json(value: dict) -> bytes:
    return jsonb(value) if value else EMPTY_JSONB


def _copy(cursor: psycopg.Cursor, events: Sequence[Storable], ids: Sequence[int], now: datetime) -> None:
    copy_rows(
        cursor, TABLE, _COLUMNS, _TYPES,
        (
            (
                raw_id, e.tenant_id, (u := e.event).event_id, u.key_prefix, e.subject, u.metric, numeric(u.quantity),
                u.timestamp, e.received_at, _json(u.dimensions), _json(u.metadata), u.is_late, e.partition,
                e.offset, now,
            )
            for raw_id, e in zip(ids, events)
        ),
    )


def _repeated(error: psycopg.errors.UniqueViolation) -> bool:
    return error.diag.constraint_name == UNIQUE_CONSTRAINT


def raw_events_store(*, events: Sequence[Storable], now: datetime) -> Stored:
    """Store the events not stored yet; `events` hold no repeated (tenant, event_id).

    Nearly every batch is all new: it is written at once, in a savepoint. Only when the ledger
    holds one of them already (a client's retry, a replay after a crash) does the COPY fail on
    the unique index; the savepoint is rolled back and the batch is stored again, after one
    indexed lookup of what is there."""
    with bulk_cursor() as cursor:
        ids = ids_take(cursor, TABLE, len(events))
        try:
            with transaction.atomic():
                _copy(cursor, events, ids, now)
            return Stored(new={(e.tenant_id, e.event.event_id): i for i, e in zip(ids, events)}, replayed=[], duplicates=0)
        except psycopg.errors.UniqueViolation as error:
            if not _repeated(error):
                raise
        cursor.execute(
            f"""
            SELECT r.id, r.tenant_id, r.event_id, r.source_partition, r.source_offset FROM {TABLE} r
            JOIN unnest(%b::bigint[], %b::text[]) AS x(t, e) ON r.tenant_id = x.t AND r.event_id = x.e
            """,
            [[e.tenant_id for e in events], [e.event.event_id for e in events]],
        )
        existing = {(t, e): (raw_id, p, o) for raw_id, t, e, p, o in cursor.fetchall()}
        fresh = [e for e in events if (e.tenant_id, e.event.event_id) not in existing]
        replayed_events = [
            (found[0], (e.tenant_id, e.event.event_id))
            for e in events
            if (found := existing.get((e.tenant_id, e.event.event_id))) is not None
            and e.offset is not None and found[1:] == (e.partition, e.offset)
        ]
        replayed = [raw_id for raw_id, _ in replayed_events]
        _copy(cursor, fresh, ids, now)  # a concurrent writer of the same event: UniqueViolation (see module)
    return Stored(
        new={(e.tenant_id, e.event.event_id): raw_id for raw_id, e in zip(ids, fresh)},
        replayed=replayed,
        duplicates=len(existing) - len(replayed),
        replayed_keys=frozenset(key for _, key in replayed_events),
    )


def unmatched_usage_record(*, rows: Sequence[tuple[int, int, str, str]], now: datetime) -> None:
    """Unmatched usage rows: (tenant_id, raw_event_id, reason, detail)."""
    if rows:
        UnmatchedUsage.objects.bulk_create(
            UnmatchedUsage(tenant_id=t, raw_event_id=r, reason=reason, detail=detail[:300], created_at=now)
            for t, r, reason, detail in rows
        )

