"""The steps of the usage consumer. Each is a small callable run by an arroyo RunTask:

    decode+validate  (per message; poison → InvalidMessage → DLQ with the reason)
    batch            (arroyo BatchStep: size and time bounds)
    rate+persist     (enrich with one cache lookup, then ONE database transaction per batch;
                      records the ledger cannot take are isolated → DLQ, the rest are rated)
    publish          (rated records → usage.rated.v1, acknowledged)
    commit           (arroyo CommitOffsets, only after all of the above)

Transport only: the business rules live in metering/billing services these steps call.
Two kinds of failure (STYLE.md §8): an outage (database, Redis, broker unreachable) is raised,
and the factory's OutageBackoff (consumers.backpressure) holds the batch and retries it after a
backoff, the consumer staying in its group; nothing is committed meanwhile, and a replay of the
batch is safe by idempotency. Anything else a record causes is that record's fault: it goes to
the DLQ alone, with the reason and its original bytes, and the consumer moves on. No record can
make the consumer crash-loop."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from datetime import timezone

import orjson
from arroyo.backends.kafka import KafkaPayload
from arroyo.dlq import InvalidMessage
from arroyo.processing.strategies.batching import ValuesBatch
from arroyo.types import BrokerValue, Message
from django.conf import settings
from django.db import OperationalError, close_old_connections

from aforo.kafka import Record, produce_and_wait
from billing.services import rated_records_publish
from catalog.models import Tenant
from metering.enrichment import EnrichmentCache
from metering.services import BatchOutcome, IncomingEvent, usage_batch_process
from metering.validation import EventRejected, validate_event

from ..errors import OUTAGES

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


def _reason(error: BaseException) -> str:
    """One line for the DLQ `reason` header: the error's class and first line, bounded."""
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line}"[:500]


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
        try:
            return self._decode(message)
        except (InvalidMessage, *OUTAGES):
            raise
        except Exception as error:  # a record no rule above foresaw: its fault, not the consumer's
            value = message.value
            assert isinstance(value, BrokerValue)
            logger.exception("record %s/%d failed to decode → DLQ", value.partition.topic.name, value.offset)
            raise InvalidMessage(value.partition, value.offset, reason=f"undecodable: {_reason(error)}", log_exception=False) from None

    def _decode(self, message: Message[KafkaPayload]) -> IncomingEvent:
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
            source=value,
        )


def dead_letter_record(event: IncomingEvent, *, reason: str) -> Record:
    """The DLQ copy of a record the ledger could not take: its original key, value and headers,
    plus why and where it came from (the same headers arroyo's DLQ adds at decode)."""
    source: BrokerValue[KafkaPayload] = event.source
    return Record(
        topic=settings.KAFKA_TOPIC_USAGE_DLQ,
        key=source.payload.key,
        value=source.payload.value,
        headers=(
            *source.payload.headers,
            ("reason", reason.encode()),
            ("original_topic", source.partition.topic.name.encode()),
            ("original_partition", str(source.partition.index).encode()),
            ("original_offset", str(source.offset).encode()),
        ),
    )


class RateStep:
    """Enrich, rate and persist a batch in ONE transaction (metering.services.usage_batch_process).

    Retries an outage a few times (the transaction rolled back, so a retry is a clean replay),
    then raises it. Any other error is the data's: the batch is split in halves, each persisted
    in its own transaction, down to the records that fail alone; those go to the DLQ (produced
    and acknowledged before this step returns, so before their offsets are committed), the rest
    are rated. Persisting part of a batch is safe: every part is idempotent on (tenant, event_id)
    and delta rating holds in any order and batching."""

    attempts = 3

    def __init__(self, cache: EnrichmentCache | None = None) -> None:
        self.cache = cache or EnrichmentCache()
        self.totals = {"new": 0, "duplicates": 0, "replayed": 0, "unmatched": 0, "rated": 0, "dead_lettered": 0}
        self._last_log = time.monotonic()

    def __call__(self, message: Message[ValuesBatch[IncomingEvent]]) -> BatchOutcome:
        close_old_connections()
        outcome = self._isolating([value.payload for value in message.payload])
        if FAULT == "crash_after_persist" and outcome.new:
            logger.error("fault injection: exiting after the database commit, before the offset commit")
            os._exit(70)
        self._account(outcome)
        return outcome

    def _isolating(self, events: Sequence[IncomingEvent]) -> BatchOutcome:
        try:
            return self._persist(events)
        except OUTAGES:
            raise
        except Exception as error:
            if len(events) == 1:
                return self._dead_letter(events[0], error)
            logger.error("a batch of %d failed (%s); persisting it in halves to isolate the record", len(events), _reason(error))
            middle = len(events) // 2
            return self._isolating(events[:middle]).add(self._isolating(events[middle:]))

    def _persist(self, events: Sequence[IncomingEvent]) -> BatchOutcome:
        for attempt in range(1, self.attempts + 1):
            try:
                _inject_database_fault()
                return usage_batch_process(events=events, cache=self.cache)
            except OperationalError:  # deadlock, serialization failure, dropped connection
                close_old_connections()
                if attempt == self.attempts:
                    raise
                logger.warning("batch persist failed (attempt %d), retrying", attempt, exc_info=True)
        raise AssertionError("unreachable")

    def _dead_letter(self, event: IncomingEvent, error: Exception) -> BatchOutcome:
        reason = f"unstorable: {_reason(error)}"
        logger.error(
            "record %s/%s (tenant %s, event %r) cannot be stored → DLQ: %s",
            event.partition, event.offset, event.tenant_id, event.event.event_id, reason, exc_info=error,
        )
        if event.source is None:  # not from Kafka: nothing to dead-letter, so nothing may be skipped
            raise error
        produce_and_wait([dead_letter_record(event, reason=reason)])
        return BatchOutcome(dead_lettered=1)

    def _account(self, outcome: BatchOutcome) -> None:
        for name in ("new", "duplicates", "replayed", "unmatched", "dead_lettered"):
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

