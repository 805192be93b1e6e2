"""Metering writes: ingestion at the edge (validate → produce → ack) and the consumer's batch
(raw ledger → rating → unmatched usage), each idempotent on (tenant, event_id)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from redis.exceptions import RedisError
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from aforo.db import bulk_cursor

from billing.selectors import rated_records_for_raw_events
from billing.services import RatedRecord, RatingInput, rated_events_record_batch
from catalog.models import Tenant
from aforo.kafka import Record, produce_and_wait

from .enrichment import EnrichmentCache, Resolution, Unmatched, resolve
from .models import RawEvent, UnmatchedUsage
from .validation import EventRejected, UsageEvent, validate_event

logger = logging.getLogger(__name__)


# --- ingestion ----------------------------------------------------------------------------


@dataclass
class IngestResult:
    results: list[dict[str, Any]]
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0


def _marker_key(tenant_id: int, event_id: str) -> str:
    return f"{settings.CACHES['default']['KEY_PREFIX']}:ingested:{tenant_id}:{event_id}"


def usage_events_ingest(*, tenant: Tenant, payloads: Sequence[Any], now: datetime | None = None) -> IngestResult:
    """Validate a batch of raw event payloads and produce the valid, new ones to the usage
    topic; returns per index accepted / duplicate / rejected.

    Returns only after the broker acknowledged every accepted event (raises BrokerUnavailable
    otherwise: the caller answers 503 and the client retries the whole batch; events that did
    reach the broker are deduplicated by (tenant, event_id) downstream).

    Duplicates: repeated within the batch (`repeated_in_batch`), already in the raw ledger
    (`already_received`), or acknowledged by the broker less than INGEST_IN_FLIGHT_WINDOW_S ago
    (`in_flight`: on its way to the ledger). Past that window an event the ledger does not hold
    is accepted again — the broker may have lost it (the embedded broker keeps nothing across a
    restart) and the client's retry is then the only copy; the ledger's (tenant, event_id)
    uniqueness still counts it once if both copies arrive."""
    from django_redis import get_redis_connection

    now = now or timezone.now()
    results: list[dict[str, Any]] = [{} for _ in payloads]
    valid: dict[str, tuple[int, UsageEvent]] = {}
    outcome = IngestResult(results=results)
    for index, payload in enumerate(payloads):
        try:
            event = validate_event(payload, now=now)
        except EventRejected as rejection:
            results[index] = {"index": index, "status": "rejected", **rejection.as_dict()}
            if isinstance(payload, dict) and isinstance(payload.get("event_id"), str):
                results[index]["event_id"] = payload["event_id"]
            outcome.rejected += 1
            continue
        if event.event_id in valid:
            results[index] = {"index": index, "event_id": event.event_id, "status": "duplicate", "reason": "repeated_in_batch"}
            outcome.duplicates += 1
            continue
        valid[event.event_id] = (index, event)

    if valid:
        redis = get_redis_connection("default")
        event_ids = list(valid)
        try:
            marks = redis.mget([_marker_key(tenant.id, e) for e in event_ids])
        except RedisError:  # markers only sharpen the duplicate report; the ledger stays exact
            logger.warning("ingest markers unavailable; checking the raw ledger only", exc_info=True)
            marks = [None] * len(event_ids)
        in_flight = {eid for eid, mark in zip(event_ids, marks) if mark}
        in_ledger = set(
            RawEvent.objects.filter(tenant=tenant, event_id__in=[e for e in event_ids if e not in in_flight]).values_list(
                "event_id", flat=True
            )
        )
        for reason, event_ids_seen in (("in_flight", in_flight), ("already_received", in_ledger)):
            for event_id in event_ids_seen:
                index, _ = valid.pop(event_id)
                results[index] = {"index": index, "event_id": event_id, "status": "duplicate", "reason": reason}
                outcome.duplicates += 1

    if valid:
        timestamp_ms = int(now.timestamp() * 1000)
        produce_and_wait(
            [
                Record(
                    topic=settings.KAFKA_TOPIC_USAGE,
                    key=f"{tenant.id}:{event.routing_key}".encode(),
                    value=orjson.dumps(event.to_wire()),
                    timestamp_ms=timestamp_ms,
                )
                for _, event in valid.values()
            ]
        )
        pipe = redis.pipeline(transaction=False)
        for event_id, (index, event) in valid.items():
            pipe.set(_marker_key(tenant.id, event_id), 1, ex=settings.INGEST_IN_FLIGHT_WINDOW_S)
            results[index] = {"index": index, "event_id": event_id, "status": "accepted", "late": event.is_late}
            outcome.accepted += 1
        try:
            pipe.execute()
        except RedisError:  # markers only sharpen the duplicate report; the ledger stays exact
            logger.warning("could not record ingest markers", exc_info=True)
    return outcome


# --- the consumer's batch -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    """A decoded, validated record from the usage topic."""

    tenant_id: int
    subject: str  # UsageEvent.subject, computed once at decode
    event: UsageEvent
    received_at: datetime
    partition: int | None = None
    offset: int | None = None
    source: Any = None  # the record as it arrived (transport's own type), for a dead-letter copy


@dataclass
class BatchOutcome:
    rated: list[RatedRecord] = field(default_factory=list)
    new: int = 0
    duplicates: int = 0
    replayed: int = 0
    unmatched: int = 0
    dead_lettered: int = 0  # records the ledger could not take (consumer: sent to the DLQ)

    def add(self, other: BatchOutcome) -> BatchOutcome:
        """This outcome and another batch's together (a batch persisted in parts)."""
        self.rated.extend(other.rated)
        for name in ("new", "duplicates", "replayed", "unmatched", "dead_lettered"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self


def _raw_events_insert(events: Sequence[IncomingEvent], *, now: datetime) -> dict[tuple[int, str], int]:
    """Insert raw events, skipping (tenant, event_id) already stored. Returns the new rows' ids."""
    ordered = sorted(events, key=lambda e: (e.tenant_id, e.event.event_id))
    columns = list(
        zip(
            *[
                (
                    e.tenant_id, e.event.event_id, e.event.key_prefix, e.subject, e.event.metric, e.event.quantity,
                    e.event.timestamp, e.received_at, orjson.dumps(e.event.dimensions).decode(),
                    orjson.dumps(e.event.metadata).decode(), e.event.is_late, e.partition, e.offset,
                )
                for e in ordered
            ]
        )
    )
    with bulk_cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {RawEvent._meta.db_table}
                (tenant_id, event_id, api_key_prefix, subject, metric, quantity, timestamp, received_at,
                 dimensions, metadata, is_late, source_partition, source_offset, created_at)
            SELECT *, %b::timestamptz FROM unnest(
                %b::bigint[], %b::text[], %b::text[], %b::text[], %b::text[], %b::numeric[], %b::timestamptz[],
                %b::timestamptz[], %b::jsonb[], %b::jsonb[], %b::boolean[], %b::integer[], %b::bigint[])
            ON CONFLICT (tenant_id, event_id) DO NOTHING
            RETURNING id, tenant_id, event_id
            """,
            [now, *[list(c) for c in columns]],
        )
        return {(tenant_id, event_id): raw_id for raw_id, tenant_id, event_id in cursor.fetchall()}


def _replayed_raw_ids(events: Sequence[IncomingEvent]) -> list[int]:
    """Raw ids of events stored from these very Kafka positions: a replay after a crash
    between the database commit and the offset commit (their rated records are re-published)."""
    positions = [(e.tenant_id, e.event.event_id, e.partition, e.offset) for e in events if e.offset is not None]
    if not positions:
        return []
    with bulk_cursor() as cursor:
        cursor.execute(
            f"""
            SELECT r.id FROM {RawEvent._meta.db_table} r
            JOIN unnest(%b::bigint[], %b::text[], %b::integer[], %b::bigint[]) AS x(t, e, p, o)
              ON r.tenant_id = x.t AND r.event_id = x.e AND r.source_partition = x.p AND r.source_offset = x.o
            """,
            [list(c) for c in zip(*positions)],
        )
        return [row[0] for row in cursor.fetchall()]


@dataclass(frozen=True)
class EnrichedBatch:
    """A micro-batch after enrichment: unique events in arrival order, each with its
    resolution (what prices it) or why nothing does."""

    events: list[IncomingEvent]
    resolutions: list[Resolution | Unmatched]
    duplicates_in_batch: int = 0


def usage_batch_enrich(*, events: Sequence[IncomingEvent], cache: EnrichmentCache) -> EnrichedBatch:
    """Drop in-batch repeats of (tenant, event_id) and resolve each event's billing context
    at its own timestamp, with one cache lookup for the whole batch."""
    unique: dict[tuple[int, str], IncomingEvent] = {}
    for incoming in events:
        unique.setdefault((incoming.tenant_id, incoming.event.event_id), incoming)
    contexts = cache.lookup_many({(e.tenant_id, e.subject) for e in unique.values()})
    ordered = list(unique.values())
    return EnrichedBatch(
        events=ordered,
        resolutions=[
            resolve(
                contexts[(e.tenant_id, e.subject)], metric=e.event.metric, at=e.event.timestamp, subject=e.subject,
                dimensions=e.event.dimensions,
            )
            for e in ordered
        ],
        duplicates_in_batch=len(events) - len(unique),
    )


def usage_batch_persist(*, batch: EnrichedBatch) -> BatchOutcome:
    """Persist one enriched micro-batch in ONE transaction: new raw events, their rated events
    and running totals, and unmatched usage for events with no billing context. Events already
    in the raw ledger are no-ops (counted); replays of the very same Kafka records re-publish
    their rated records (at-least-once). Returns the rated records to publish."""
    outcome = BatchOutcome(duplicates=batch.duplicates_in_batch)
    if not batch.events:
        return outcome
    now = timezone.now()
    with transaction.atomic(durable=True):
        new_ids = _raw_events_insert(batch.events, now=now)
        duplicates = [e for e in batch.events if (e.tenant_id, e.event.event_id) not in new_ids]
        replayed_ids = _replayed_raw_ids(duplicates) if duplicates else []
        inputs: list[RatingInput] = []
        unmatched: list[UnmatchedUsage] = []
        for incoming, resolution in zip(batch.events, batch.resolutions):  # arrival order = rating order
            raw_id = new_ids.get((incoming.tenant_id, incoming.event.event_id))
            if raw_id is None:
                continue
            if isinstance(resolution, Resolution):
                inputs.append(
                    RatingInput(
                        raw_event_id=raw_id, tenant_id=incoming.tenant_id, event_id=incoming.event.event_id,
                        quantity=incoming.event.quantity, timestamp=incoming.event.timestamp, resolution=resolution,
                        session=str(incoming.event.dimensions.get("session_id", "")),
                    )
                )
            else:
                unmatched.append(
                    UnmatchedUsage(
                        tenant_id=incoming.tenant_id, raw_event_id=raw_id, reason=resolution.reason,
                        detail=resolution.detail[:300], created_at=now,
                    )
                )
        outcome.rated = rated_events_record_batch(inputs=inputs, rated_at=now)
        if unmatched:
            UnmatchedUsage.objects.bulk_create(unmatched)
    outcome.new = len(new_ids)
    outcome.duplicates += len(duplicates) - len(replayed_ids)
    outcome.replayed = len(replayed_ids)
    outcome.unmatched = len(unmatched)
    if replayed_ids:
        outcome.rated.extend(rated_records_for_raw_events(raw_event_ids=replayed_ids))
    return outcome


def usage_batch_process(*, events: Sequence[IncomingEvent], cache: EnrichmentCache) -> BatchOutcome:
    """Enrich and persist one batch (what the consumer does, as one call)."""
    return usage_batch_persist(batch=usage_batch_enrich(events=events, cache=cache))


# --- unmatched usage ----------------------------------------------------------------------


def unmatched_usage_replay(
    *, tenant_id: int | None = None, limit: int = 10_000, unmatched_ids: Sequence[int] | None = None
) -> tuple[dict[str, int], list[RatedRecord]]:
    """Re-resolve unresolved unmatched usage against the current catalog and rate what now
    matches, oldest event first. Idempotent and safe to run concurrently: rows are locked
    (SKIP LOCKED), a resolved row is never replayed and a raw event is rated at most once.
    `unmatched_ids` confines the replay to those rows (the admin's "replay selected").
    Returns counts and the rated records (published to usage.rated.v1 after commit)."""
    cache = EnrichmentCache()
    now = timezone.now()
    with transaction.atomic(durable=True):
        queryset = UnmatchedUsage.objects.filter(resolved_at__isnull=True).select_related("raw_event")
        if tenant_id is not None:
            queryset = queryset.filter(tenant_id=tenant_id)
        if unmatched_ids is not None:
            queryset = queryset.filter(id__in=list(unmatched_ids))
        rows = list(queryset.order_by("raw_event__timestamp", "id").select_for_update(of=("self",), skip_locked=True)[:limit])
        contexts = cache.lookup_many({(row.tenant_id, row.raw_event.subject) for row in rows})
        inputs: list[RatingInput] = []
        matched_ids: list[int] = []
        for row in rows:
            raw = row.raw_event
            resolution = resolve(
                contexts[(row.tenant_id, raw.subject)], metric=raw.metric, at=raw.timestamp, subject=raw.subject,
                dimensions=raw.dimensions,
            )
            if isinstance(resolution, Resolution):
                inputs.append(
                    RatingInput(
                        raw_event_id=raw.id, tenant_id=row.tenant_id, event_id=raw.event_id,
                        quantity=raw.quantity, timestamp=raw.timestamp, resolution=resolution,
                        session=str((raw.dimensions or {}).get("session_id", "")),
                    )
                )
                matched_ids.append(row.id)
        rated = rated_events_record_batch(inputs=inputs, rated_at=now)
        UnmatchedUsage.objects.filter(id__in=matched_ids).update(resolved_at=now)
    return {"rated": len(matched_ids), "still_unmatched": len(rows) - len(matched_ids)}, rated
