"""The steps of the usage consumer, each a small callable run by an arroyo RunTask over a batch
of chunks (consumers.chunks: the consumer reads up to a batch of records per call):

    batch            (ChunkBuffer: up to USAGE_BATCH_MAX_SIZE records or USAGE_BATCH_MAX_TIME_S
                      after the first)
    record           (decode and validate every record — poison → DLQ with the reason — then ONE
                      service call, billing.usage.usage_batch_record: enrich, rate and persist in
                      one transaction; records the ledger cannot take are isolated → DLQ)
    publish          (rated records → usage.rated.v1; the batch goes on once acknowledged,
                      while the next batch is recorded)
    commit           (arroyo CommitOffsets, only after all of the above, in order)

Transport only: the business rules live in the services these steps call.
Two kinds of failure (STYLE.md §8): an outage (database, Redis, broker unreachable) is raised,
and the factory's OutageBackoff (consumers.backpressure) holds the batch and retries it after a
backoff, the consumer staying in its group; nothing is committed meanwhile, and a replay of the
batch is safe by idempotency. Anything else a record causes is that record's fault: it goes to
the DLQ alone, with the reason and its original bytes, and the consumer moves on. No record can
make the consumer crash-loop."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from arroyo.processing.strategies import ProcessingStrategy
from arroyo.types import BrokerValue, Message
from django.conf import settings
from django.db import close_old_connections

from aforo.kafka import Delivery, Record, produce_and_wait
from aforo.stages import clock, stage
from billing.services import rated_records_publish_later
from billing.usage import BatchOutcome, IncomingEvent, usage_batch_record
from catalog.models import Tenant
from metering.enrichment import EnrichmentCache
from metering.reconciliation.counts import DeadLetterRow, dead_letters_record, subject_of_record
from metering.wire import SCHEMA_VERSIONS, decode_event, schema_version_problem, tenant_of  # noqa: F401 (re-exported)

from ..errors import DATABASE_UNAVAILABLE, OUTAGES

logger = logging.getLogger(__name__)


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


def dead_letter_record(source: Any, *, reason: str, topic: str | None = None) -> Record:
    """The DLQ copy of a record (a librdkafka message): its original key, value and headers,
    plus why and where it came from (and when it arrived: `manage.py replay` re-produces it with
    that timestamp, which the timestamp window is judged against). To the usage DLQ unless `topic` says otherwise."""
    return Record(
        topic=topic or settings.KAFKA_TOPIC_USAGE_DLQ,
        key=source.key(),
        value=source.value() or b"",
        headers=(
            *(source.headers() or ()),
            ("reason", reason.encode()),
            ("original_topic", source.topic().encode()),
            ("original_partition", str(source.partition()).encode()),
            ("original_offset", str(source.offset()).encode()),
            ("original_timestamp", str(source.timestamp()[1]).encode()),
        ),
    )


def _dead_letter_row(source: Any, reason: str) -> DeadLetterRow:
    """The reconciliation's record of a poison record (metering.reconciliation.counts): its
    tenant, subject and event id as far as its key and value tell."""
    key, value = source.key(), source.value()
    subject, event_id = subject_of_record(key=key, value=value)
    try:
        received_at = datetime.fromtimestamp(max(source.timestamp()[1], 0) / 1000, timezone.utc)
    except (ValueError, OverflowError, OSError):  # a producer's timestamp past year 9999
        received_at = datetime.now(timezone.utc)
    try:
        tenant_id = tenant_of(key, source.headers())
    except ValueError:  # a tenant_id header of digits int() refuses ("²")
        tenant_id = None
    return DeadLetterRow(
        tenant_id, subject, received_at, event_id,
        reason, source.topic(), source.partition(), source.offset(),
    )


class RecordStep:
    """Decode a batch of chunks and record it: ONE call to billing.usage.usage_batch_record.

    Poison records (no tenant, unknown tenant, undecodable, against the contract) are
    dead-lettered with their reason before the rest is recorded. An outage is retried a few
    times (the transaction rolled back, so a retry is a clean replay), then raised. Any other
    error is the data's: the batch is split in halves, each recorded in its own transaction,
    down to the records that fail alone; those go to the DLQ too, the rest are rated. Every
    dead letter is produced and acknowledged before this step returns, so before the offsets are
    committed. Recording part of a batch is safe: every part is idempotent on (tenant, event_id)
    and delta rating holds in any order and batching."""

    attempts = 3

    def __init__(self, cache: EnrichmentCache | None = None, tenants: TenantDirectory | None = None) -> None:
        self.cache = cache or EnrichmentCache()
        self.tenants = tenants or TenantDirectory()
        self._tenant_by_key: dict[bytes | None, int | None] = {}  # record key → tenant (records without headers)
        self.totals = {"new": 0, "duplicates": 0, "replayed": 0, "unmatched": 0, "rated": 0, "dead_lettered": 0}
        self._last_log = time.monotonic()

    def __call__(self, message: Message[Sequence[BrokerValue[list[Any]]]]) -> BatchOutcome:
        close_old_connections()
        records = [record for chunk in message.payload for record in chunk.payload]
        clock.counted(len(records))
        with stage("decode"):
            events, poison = self.decode(records)
        if poison:
            produce_and_wait([dead_letter_record(source, reason=reason) for source, reason in poison])
            dead_letters_record(rows=[_dead_letter_row(source, reason) for source, reason in poison])
        outcome = self._isolating(events) if events else BatchOutcome()
        outcome.dead_lettered += len(poison)
        self._account(outcome)
        return outcome

    def decode(self, records: Sequence[Any]) -> tuple[list[IncomingEvent], list[tuple[Any, str]]]:
        """The records as validated events, and the poison ones with their reasons."""
        events: list[IncomingEvent] = []
        poison: list[tuple[Any, str]] = []
        utc = timezone.utc
        by_key = self._tenant_by_key
        last_stamp, received_at = None, None
        if len(by_key) > 100_000:
            by_key.clear()
        for record in records:
            try:
                key = record.key()
                headers = record.headers()
                if headers is None and key in by_key:
                    tenant_id = by_key[key]
                else:
                    tenant_id = tenant_of(key, headers)
                    if headers is None:
                        by_key[key] = tenant_id
                if tenant_id is None:
                    poison.append((record, "missing_tenant: the record has no tenant_id header and its key has no '<tenant>:' prefix"))
                    continue
                if headers is not None and (version := schema_version_problem(headers)):
                    poison.append((record, version))
                    continue
                if not self.tenants.exists(tenant_id):
                    poison.append((record, f"unknown_tenant: no tenant {tenant_id}"))
                    continue
                stamp = record.timestamp()[1]
                if stamp != last_stamp:  # records produced together share their millisecond
                    last_stamp, received_at = stamp, datetime.fromtimestamp(stamp / 1000, utc)
                event, problem = decode_event(record.value() or b"", now=received_at)
                if problem is not None:
                    poison.append((record, problem))
                    continue
                events.append(
                    IncomingEvent(tenant_id, event.subject, event, received_at, record.partition(), record.offset(), record)
                )
            except OUTAGES:
                raise
            except Exception as error:  # a record no rule above foresaw: its fault, not the consumer's
                logger.exception("record %s/%s failed to decode → DLQ", record.partition(), record.offset())
                poison.append((record, f"undecodable: {_reason(error)}"))
        for record, reason in poison:
            logger.warning("poison record %s/%s → DLQ: %s", record.partition(), record.offset(), reason)
        return events, poison

    def _isolating(self, events: Sequence[IncomingEvent]) -> BatchOutcome:
        try:
            return self._record(events)
        except OUTAGES:
            raise
        except Exception as error:
            if len(events) == 1:
                return self._dead_letter(events[0], error)
            logger.error("a batch of %d failed (%s); recording it in halves to isolate the record", len(events), _reason(error))
            middle = len(events) // 2
            return self._isolating(events[:middle]).add(self._isolating(events[middle:]))

    def _record(self, events: Sequence[IncomingEvent]) -> BatchOutcome:
        for attempt in range(1, self.attempts + 1):
            try:
                return usage_batch_record(events=events, cache=self.cache)
            except DATABASE_UNAVAILABLE:  # deadlock, serialization failure, dropped connection
                close_old_connections()
                if attempt == self.attempts:
                    raise
                logger.warning("batch record failed (attempt %d), retrying", attempt, exc_info=True)
        raise AssertionError("unreachable")

    def _dead_letter(self, event: IncomingEvent, error: Exception) -> BatchOutcome:
        reason = f"unstorable: {_reason(error)}"
        logger.error(
            "record %s/%s (tenant %s, event %r) cannot be stored → DLQ: %s",
            event.partition, event.offset, event.tenant_id, event.event.event_id, reason, exc_info=error,
        )
        if event.source is None:  # not from Kafka: nothing to dead-letter, so nothing may be skipped
            raise error
        produce_and_wait([dead_letter_record(event.source, reason=reason)])
        source = event.source
        dead_letters_record(
            rows=[
                DeadLetterRow(
                    event.tenant_id, event.subject, event.received_at, event.event.event_id, reason, source.topic(),
                    source.partition(), source.offset(),
                )
            ]
        )
        return BatchOutcome(dead_lettered=1)

    def _account(self, outcome: BatchOutcome) -> None:
        for name in ("new", "duplicates", "replayed", "unmatched", "dead_lettered"):
            self.totals[name] += getattr(outcome, name)
        self.totals["rated"] += len(outcome.rated)
        if time.monotonic() - self._last_log > 10:
            self._last_log = time.monotonic()
            logger.info("usage consumer totals: %s", self.totals)


class PublishStep(ProcessingStrategy[BatchOutcome]):
    """Publish each batch's rated records and pass the batch on to the commit step once the broker
    acknowledged them all — without waiting: the next batch is decoded and recorded while the
    broker acknowledges this one (a round trip of tens of milliseconds per batch). Batches are
    passed on in order, so the offsets committed never cover a rated record that was not
    published. At most `max_pending` batches are in flight; a full pipeline waits for the oldest.
    A batch whose records were not all acknowledged is published once more (at least once); if
    that fails too, the outage is raised and its offsets stay uncommitted."""

    def __init__(self, next_step: ProcessingStrategy[int], *, max_pending: int = 4) -> None:
        self.next_step = next_step
        self.max_pending = max_pending
        self._in_flight: deque[tuple[Delivery, Message[BatchOutcome]]] = deque()

    def submit(self, message: Message[BatchOutcome]) -> None:
        self._forward(block=len(self._in_flight) >= self.max_pending)
        with stage("publish"):
            self._in_flight.append((rated_records_publish_later(records=message.payload.rated), message))
        self._forward(block=False)

    def _forward(self, *, block: bool) -> None:
        while self._in_flight:
            delivery, message = self._in_flight[0]
            if not (block or delivery.done()):
                return
            with stage("publish.wait"):
                delivery.wait()  # at once when done; re-publishes when a record was not acknowledged
            self._in_flight.popleft()
            block = False
            self.next_step.submit(message.replace(len(message.payload.rated)))

    def poll(self) -> None:
        self._forward(block=False)
        self.next_step.poll()

    def join(self, timeout: float | None = None) -> None:
        while self._in_flight:
            self._forward(block=True)
        self.next_step.join(timeout)

    def close(self) -> None:
        self.next_step.close()

    def terminate(self) -> None:
        self._in_flight.clear()
        self.next_step.terminate()
