"""Metering writes at the edge: ingestion (validate → produce → acknowledge), idempotent on
(tenant, event_id). The consumer's side is billing.usage (the batch) and metering.ledger (the
raw ledger's writers)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from redis.exceptions import RedisError
from django.conf import settings
from django.utils import timezone

from aforo.kafka import Record, produce_and_wait
from catalog.models import Tenant

from .models import RawEvent
from .reconciliation.counts import ingest_counts_add
from .validation import EventRejected, UsageEvent, validate_event

logger = logging.getLogger(__name__)


# --- ingestion ----------------------------------------------------------------------------


@dataclass
class IngestResult:
    results: list[dict[str, Any]]
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0


# Marks the records the ingest API produced (the reconciliation's topic scan tells them from
# records produced to the topic directly, which the API never counted as accepted).
INGEST_HEADERS = (("via", b"api"),)


def _marker_key(tenant_id: int, event_id: str) -> str:
    return f"{settings.CACHES['default']['KEY_PREFIX']}:ingested:{tenant_id}:{event_id}"


def usage_events_ingest(*, tenant: Tenant, payloads: Sequence[Any], now: datetime | None = None) -> IngestResult:
    """Validate a batch of raw event payloads and produce the valid, new ones to the usage
    topic; returns per index accepted / duplicate / rejected (a payload may be an EventRejected
    already: it is reported at its index).

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
            if isinstance(payload, EventRejected):  # refused before (a CloudEvent that does not map)
                raise payload
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
                    headers=INGEST_HEADERS,
                )
                for _, event in valid.values()
            ]
        )
        pipe = redis.pipeline(transaction=False)
        for event_id, (index, event) in valid.items():
            pipe.set(_marker_key(tenant.id, event_id), 1, ex=settings.INGEST_IN_FLIGHT_WINDOW_S)
            results[index] = {"index": index, "event_id": event_id, "status": "accepted", "late": event.is_late}
            outcome.accepted += 1
        # Counted on the same pipeline as the markers: the reconciliation's accepted side
        # (metering.reconciliation.counts), in the minute of the records' timestamp.
        ingest_counts_add(pipe, tenant_id=tenant.id, subjects=(event.subject for _, event in valid.values()), now=now)
        try:
            pipe.execute()
        except RedisError:  # markers only sharpen the duplicate report; the ledger stays exact
            # The accepted count is lost with them: the reconciliation shows these events as
            # received but not accepted (a negative difference) — never hidden.
            logger.warning("could not record ingest markers and counts", exc_info=True)
    return outcome
