"""The steps of the usage consumer. Each is a small callable run by an arroyo RunTask:

    decode+validate  (per message; poison → InvalidMessage → DLQ with the reason)
    batch            (arroyo BatchStep: size and time bounds)
    enrich           (one cache lookup per batch)
    rate+persist     (ONE database transaction per batch; rating needs the locked totals)
    publish          (rated records → usage.rated.v1, acknowledged)
    commit           (arroyo CommitOffsets, only after all of the above)

Transport only: the business rules live in metering/billing services these steps call.
A transient error (database, broker) is raised: the consumer stops before committing and the
batch is replayed from the last committed offset, which idempotency makes safe."""

from __future__ import annotations

import logging
import os
import time
from datetime import timezone

import orjson
from arroyo.backends.kafka import KafkaPayload
from arroyo.dlq import InvalidMessage
from arroyo.processing.strategies.batching import ValuesBatch
from arroyo.types import BrokerValue, Message
from django.db import OperationalError, close_old_connections

from billing.services import rated_records_publish
from catalog.models import Tenant
from metering.enrichment import EnrichmentCache
from metering.services import (
    BatchOutcome,
    EnrichedBatch,
    IncomingEvent,
    usage_batch_enrich,
    usage_batch_persist,
)
from metering.validation import EventRejected, validate_event

logger = logging.getLogger(__name__)

# Test-only fault injection (the recovery tests set it on a consumer process):
#   crash_after_persist   exit right after the database commit, before the offset commit;
#   database_down:N       the first N persist attempts fail as if PostgreSQL were unreachable.
FAULT = os.environ.get("AFORO_CONSUMER_FAULT", "")
_faults_left = {"database_down": int(FAULT.split(":")[1]) if FAULT.startswith("database_down:") else 0}


def _inject_database_fault() -> None:
    if _faults_left["database_down"] > 0:
        _faults_left["database_down"] -= 1
        raise OperationalError("fault injection: database unavailable")


class TenantDirectory:
    """Which tenant ids exist; an unknown id is looked up once per second at most."""

    def __init__(self) -> None:
        self._known: set[int] = set()
        self._unknown_checked: dict[int, float] = {}

    def exists(self, tenant_id: int) -> bool:
        if tenant_id in self._known:
            return True
        checked = self._unknown_checked.get(tenant_id)
        if checked is not None and time.monotonic() - checked < 1.0:
            return False
        if Tenant.objects.filter(pk=tenant_id).exists():
            self._known.add(tenant_id)
            self._unknown_checked.pop(tenant_id, None)
            return True
        self._unknown_checked[tenant_id] = time.monotonic()
        return False


def tenant_of(payload: KafkaPayload) -> int | None:
    """The tenant of a record: header `tenant_id`, else the key's `<tenant>:` prefix."""
    for name, value in payload.headers:
        if name == "tenant_id":
            return int(value) if value.isdigit() else None
    if payload.key:
        head = payload.key.split(b":", 1)[0]
        if head.isdigit():
            return int(head)
    return None


class DecodeStep:
    def __init__(self, tenants: TenantDirectory | None = None):
        self.tenants = tenants or TenantDirectory()

    def __call__(self, message: Message[KafkaPayload]) -> IncomingEvent:
        value = message.value
        assert isinstance(value, BrokerValue)

        def poison(reason: str) -> InvalidMessage:
            logger.warning("poison record %s/%d → DLQ: %s", value.partition.topic.name, value.offset, reason)
            return InvalidMessage(value.partition, value.offset, reason=reason, log_exception=False)

        tenant_id = tenant_of(message.payload)
        if tenant_id is None:
            raise poison("missing_tenant: the record has no tenant_id header and its key has no '<tenant>:' prefix")
        if not self.tenants.exists(tenant_id):
            raise poison(f"unknown_tenant: no tenant {tenant_id}")
        try:
            data = orjson.loads(message.payload.value)
        except orjson.JSONDecodeError as error:
            raise poison(f"undecodable: {error}") from None
        received_at = value.timestamp.replace(tzinfo=timezone.utc)
        try:
            event = validate_event(data, now=received_at)
        except EventRejected as rejection:
            raise poison(f"{rejection.code}: {rejection.field}: {rejection.message}") from None
        return IncomingEvent(
            tenant_id=tenant_id,
            subject=event.subject,
            event=event,
            received_at=received_at,
            partition=value.partition.index,
            offset=value.offset,
        )


class EnrichStep:
    def __init__(self, cache: EnrichmentCache | None = None):
        self.cache = cache or EnrichmentCache()

    def __call__(self, message: Message[ValuesBatch[IncomingEvent]]) -> EnrichedBatch:
        close_old_connections()
        return usage_batch_enrich(events=[v.payload for v in message.payload], cache=self.cache)


class PersistStep:
    """Rate and persist a batch in one transaction; retries deadlocks and serialization
    failures a few times (the transaction rolled back, so a retry is a clean replay)."""

    attempts = 3

    def __init__(self) -> None:
        self.totals = {"new": 0, "duplicates": 0, "replayed": 0, "unmatched": 0, "rated": 0}
        self._last_log = time.monotonic()

    def __call__(self, message: Message[EnrichedBatch]) -> BatchOutcome:
        for attempt in range(1, self.attempts + 1):
            try:
                _inject_database_fault()
                outcome = usage_batch_persist(batch=message.payload)
                break
            except OperationalError:
                close_old_connections()
                if attempt == self.attempts:
                    raise
                logger.warning("batch persist failed (attempt %d), retrying", attempt, exc_info=True)
        if FAULT == "crash_after_persist" and outcome.new:
            logger.error("fault injection: exiting after the database commit, before the offset commit")
            os._exit(70)
        self._account(outcome)
        return outcome

    def _account(self, outcome: BatchOutcome) -> None:
        for name in ("new", "duplicates", "replayed", "unmatched"):
            self.totals[name] += getattr(outcome, name)
        self.totals["rated"] += len(outcome.rated)
        if time.monotonic() - self._last_log > 10:
            self._last_log = time.monotonic()
            logger.info("usage consumer totals: %s", self.totals)


class PublishStep:
    """Produce the batch's rated records and wait for the broker's acknowledgement, so the
    offsets committed next never cover a rated record that was not published."""

    def __call__(self, message: Message[BatchOutcome]) -> int:
        rated = message.payload.rated
        rated_records_publish(records=rated)
        return len(rated)

