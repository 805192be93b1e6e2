"""The usage batch: one orchestrator owns its transaction.

`usage_batch_record` is what the usage consumer's record step calls, once per batch:

    enrich     (metering.enrichment: one cache lookup for the batch; no transaction)
    ┌ one durable transaction ──────────────────────────────────────────────────────────────┐
    │ raw events      metering.ledger.raw_events_store       (new ones, by (tenant, event_id)) │
    │ rated events    billing.services.rated_events_record_batch  (lock → plan → write)       │
    │ wallet debits   wallets.debits.wallet_charges_record  (prepaid / hybrid, in real time) │
    │ lease usage     billing.leases.attribution  (events naming metadata.lease_id only)     │
    │ unmatched       metering.ledger.unmatched_usage_record  (no billing context)            │
    └───────────────────────────────────────────────────────────────────────────────────────┘
    after commit: interim invoices enqueued (billing.services); the caller publishes the
    rated records (billing.services.rated_records_publish, the consumer's publish step).

The unmatched-usage replay rates through the same path (`_rate`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import psycopg
from django.db import transaction
from django.utils import timezone

from aforo.stages import stage
from metering.enrichment import EnrichmentCache, Resolution, resolve
from metering.ledger import UNIQUE_CONSTRAINT, Stored, raw_events_store, unmatched_usage_record
from metering.reconciliation.counts import (
    DUPLICATE, RATED, REPLAYED, UNMATCHED, Received, consumed_counts_plan, consumed_counts_write,
)
from metering.models import UnmatchedUsage
from metering.validation import UsageEvent
from wallets.debits import wallet_charges_record

from .leases.attribution import lease_consumption_record
from .selectors import rated_records_for_raw_events
from .services import RatedRecord, RatingInput, rated_charges, rated_events_record_batch


class IncomingEvent(NamedTuple):
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
        """This outcome and another batch's together (a batch recorded in parts)."""
        self.rated.extend(other.rated)
        for name in ("new", "duplicates", "replayed", "unmatched", "dead_lettered"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self


@dataclass(frozen=True)
class EnrichedBatch:
    """A micro-batch after enrichment: unique events in arrival order, each with its
    resolution (what prices it) or why nothing does."""

    events: list[IncomingEvent]
    resolutions: list[Any]  # Resolution | Unmatched, one per event
    duplicates_in_batch: int = 0
    repeated: tuple[IncomingEvent, ...] = ()  # the in-batch repeats dropped (reconciliation counts)


def usage_batch_enrich(*, events: Sequence[IncomingEvent], cache: EnrichmentCache) -> EnrichedBatch:
    """Drop in-batch repeats of (tenant, event_id) and resolve each event's billing context
    at its own timestamp, with one cache lookup for the whole batch."""
    unique: dict[tuple[int, str], IncomingEvent] = {}
    repeated: list[IncomingEvent] = []
    for incoming in events:
        if unique.setdefault((incoming.tenant_id, incoming.event.event_id), incoming) is not incoming:
            repeated.append(incoming)
    with stage("enrich"):
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
            repeated=tuple(repeated),
        )


def _rate(inputs: Sequence[RatingInput], *, now: datetime, leased: Sequence[int] = ()) -> list[RatedRecord]:
    """Rated events, running totals, real-time wallet debits and lease consumption of resolved
    events (inside the caller's transaction). `leased`: positions in `inputs` of the events
    that name a lease (metadata.lease_id)."""
    records = rated_events_record_batch(inputs=inputs, rated_at=now)
    with stage("wallet"):
        wallet_charges_record(charges=rated_charges(inputs=inputs, records=records), now=now)
    if leased:
        lease_consumption_record(attributed=[(inputs[i], records[i]) for i in leased], now=now)
    return records


def _session(dimensions: dict[str, Any] | None) -> str:
    """The event's session_id dimension: a wallet hold with that reference pays first."""
    return str((dimensions or {}).get("session_id", ""))


def _lease_session(lease_id: Any) -> str:
    """A money lease's wallet hold (reference `lease:<id>`) pays for the events that name the
    lease and no session of their own (billing.leases.money)."""
    return f"lease:{lease_id}"


def _received(batch: EnrichedBatch, stored: Stored) -> Iterator[Received]:
    """Each event's outcome for the reconciliation counts. A same-position replay (the batch
    was recorded before, its offsets not committed) was counted then: not again; nor are the
    in-batch repeats of a replayed event (the batch they came in was counted then too)."""
    for incoming, resolution in zip(batch.events, batch.resolutions):
        key = (incoming.tenant_id, incoming.event.event_id)
        raw_id = stored.new.get(key)
        if raw_id is not None:
            outcome = RATED if isinstance(resolution, Resolution) else UNMATCHED
            yield Received(incoming.tenant_id, incoming.subject, incoming.received_at, outcome, raw_id)
        elif key not in stored.replayed_keys:
            yield Received(incoming.tenant_id, incoming.subject, incoming.received_at, DUPLICATE)
    for incoming in batch.repeated:
        if (incoming.tenant_id, incoming.event.event_id) not in stored.replayed_keys:
            yield Received(incoming.tenant_id, incoming.subject, incoming.received_at, DUPLICATE)


def _record_once(batch: EnrichedBatch) -> BatchOutcome:
    outcome = BatchOutcome(duplicates=batch.duplicates_in_batch)
    now = timezone.now()
    with stage("transaction"), transaction.atomic(durable=True):
        with stage("ledger.raw"):
            stored = raw_events_store(events=batch.events, now=now)
        inputs: list[RatingInput] = []
        leased: list[int] = []  # positions of the events that name a lease
        unmatched: list[tuple[int, int, str, str]] = []
        for incoming, resolution in zip(batch.events, batch.resolutions):  # arrival order = rating order
            raw_id = stored.new.get((incoming.tenant_id, incoming.event.event_id))
            if raw_id is None:
                continue
            if isinstance(resolution, Resolution):
                event = incoming.event
                lease_id = event.metadata.get("lease_id") if event.metadata else None
                session = _session(event.dimensions)
                if lease_id is not None:
                    leased.append(len(inputs))
                    session = session or _lease_session(lease_id)
                inputs.append(  # positional: a NamedTuple built from keywords costs twice as much, per event
                    RatingInput(
                        raw_id, incoming.tenant_id, event.event_id, event.quantity, event.timestamp, resolution,
                        session, lease_id,
                    )
                )
            else:
                unmatched.append((incoming.tenant_id, raw_id, resolution.reason, resolution.detail))
        outcome.rated = _rate(inputs, now=now, leased=leased)
        unmatched_usage_record(rows=unmatched, now=now)
        with stage("ledger.counts"):
            consumed_counts_write(tallies=consumed_counts_plan(received=_received(batch, stored)))
    outcome.new = len(stored.new)
    outcome.duplicates += stored.duplicates
    outcome.replayed = len(stored.replayed)
    outcome.unmatched = len(unmatched)
    if stored.replayed:
        outcome.rated.extend(rated_records_for_raw_events(raw_event_ids=stored.replayed))
    return outcome


def usage_batch_record(*, events: Sequence[IncomingEvent], cache: EnrichmentCache) -> BatchOutcome:
    """Enrich one batch and record it in ONE transaction: new raw events, their rated events,
    running totals and wallet debits, and unmatched usage for events with no billing context.
    Events already in the raw ledger are no-ops (counted); replays of the very same Kafka
    records return their rated records again (at-least-once publishing). Returns the rated
    records to publish.

    Another consumer storing one of these events at the same moment (a rebalance overlap) makes
    the transaction fail on the raw ledger's unique (tenant, event_id): it is recorded once
    more, and then finds the event stored."""
    batch = usage_batch_enrich(events=events, cache=cache)
    if not batch.events:
        return BatchOutcome(duplicates=batch.duplicates_in_batch)
    try:
        return _record_once(batch)
    except psycopg.errors.UniqueViolation as error:
        if error.diag.constraint_name != UNIQUE_CONSTRAINT:
            raise
        return _record_once(batch)


def _unmatched_rows(*, tenant_id: int | None, unmatched_ids: Sequence[int] | None):
    queryset = UnmatchedUsage.objects.filter(resolved_at__isnull=True).select_related("raw_event")
    if tenant_id is not None:
        queryset = queryset.filter(tenant_id=tenant_id)
    if unmatched_ids is not None:
        queryset = queryset.filter(id__in=list(unmatched_ids))
    return queryset.order_by("raw_event__timestamp", "id")


def _unmatched_resolutions(rows: Sequence[UnmatchedUsage], cache: EnrichmentCache) -> list[Any]:
    """Each row's resolution against the current catalog (Resolution, or why still unmatched)."""
    contexts = cache.lookup_many({(row.tenant_id, row.raw_event.subject) for row in rows})
    return [
        resolve(
            contexts[(row.tenant_id, row.raw_event.subject)], metric=row.raw_event.metric, at=row.raw_event.timestamp,
            subject=row.raw_event.subject, dimensions=row.raw_event.dimensions,
        )
        for row in rows
    ]


def unmatched_usage_preview(*, tenant_id: int | None = None, limit: int = 10_000) -> dict[str, Any]:
    """What unmatched_usage_replay would do now, writing nothing: how many unresolved rows would
    be rated, and why the others would stay unmatched (counts by reason)."""
    rows = list(_unmatched_rows(tenant_id=tenant_id, unmatched_ids=None)[:limit])
    reasons: dict[str, int] = {}
    would_rate = 0
    for resolution in _unmatched_resolutions(rows, EnrichmentCache()):
        if isinstance(resolution, Resolution):
            would_rate += 1
        else:
            reasons[resolution.reason] = reasons.get(resolution.reason, 0) + 1
    return {"read": len(rows), "would_rate": would_rate, "still_unmatched": len(rows) - would_rate, "reasons": reasons}


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
        queryset = _unmatched_rows(tenant_id=tenant_id, unmatched_ids=unmatched_ids)
        rows = list(queryset.select_for_update(of=("self",), skip_locked=True)[:limit])
        inputs: list[RatingInput] = []
        matched_ids: list[int] = []
        for row, resolution in zip(rows, _unmatched_resolutions(rows, cache)):
            raw = row.raw_event
            if isinstance(resolution, Resolution):
                lease_id = (raw.metadata or {}).get("lease_id")
                inputs.append(
                    RatingInput(
                        raw_event_id=raw.id, tenant_id=row.tenant_id, event_id=raw.event_id,
                        quantity=raw.quantity, timestamp=raw.timestamp, resolution=resolution,
                        session=_session(raw.dimensions) or (_lease_session(lease_id) if lease_id is not None else ""),
                        lease_id=lease_id,
                    )
                )
                matched_ids.append(row.id)
        rated = _rate(inputs, now=now, leased=[i for i, item in enumerate(inputs) if item.lease_id is not None])
        UnmatchedUsage.objects.filter(id__in=matched_ids).update(resolved_at=now)
        replayed_ids = set(matched_ids)
        consumed_counts_write(
            tallies=consumed_counts_plan(
                received=(
                    Received(row.tenant_id, row.raw_event.subject, row.raw_event.received_at, REPLAYED)
                    for row in rows if row.id in replayed_ids
                )
            )
        )
    return {"rated": len(matched_ids), "still_unmatched": len(rows) - len(matched_ids)}, rated
