"""Replay (issue 16): re-ingest what the usage pipeline could not take, after a fix.

    replay_run_create   validate a run's parameters and store it (pending)
    replay_run_execute  run it (a Celery task, or `manage.py replay` in the foreground)
    replay_report       what a run would do or did, without a run row (`manage.py replay --dry-run`)

Sources: `dlq` (the usage DLQ topic, every partition), `offsets` (one partition of the usage topic,
[from_offset, to_offset]) and `unmatched` (unmatched usage rated against the current catalog,
billing.usage.unmatched_usage_replay). Kafka sources go read → plan (billing.replay.plan, pure) →
write, a chunk at a time: the chunk's valid records are produced back to the usage topic and
acknowledged, THEN their ReplayItems are inserted (ON CONFLICT DO NOTHING). A crash between the
two re-produces those records on the next run, which the consumer's (tenant, event_id) makes a
no-op; the reverse order could lose a record. A dry run reads and plans, and writes nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from aforo.exceptions import ApiError
from aforo.kafka import BrokerUnavailable, Record, produce_and_wait
from catalog.models import Tenant

from ..models import ReplayItem, ReplayRun
from ..services import rated_records_publish
from ..usage import unmatched_usage_preview, unmatched_usage_replay
from .plan import REPLAY, Decision, ReplayTally, SourceRecord, original_headers, replay_plan
from .sources import records_read, topic_partitions

logger = logging.getLogger(__name__)

Progress = Callable[[ReplayTally], None]
MAX_LIMIT = 10_000_000


def _rejected(field: str, code: str, message: str) -> ApiError:
    return ApiError(code=code, message=message, status_code=400, fields={field: [message]})


def replay_params_check(
    *, source: str, partition: int | None, from_offset: int | None, to_offset: int | None, limit: int | None,
) -> None:
    """Raises ApiError (400, the field named) for parameters no run could use. An offset range's
    partition is checked against the usage topic's (one metadata request)."""
    if source not in ReplayRun.Source.values:
        raise _rejected("source", "invalid_source", f"source must be one of {', '.join(ReplayRun.Source.values)}.")
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise _rejected("limit", "invalid_limit", f"limit must be between 1 and {MAX_LIMIT}.")
    range_given = [name for name, value in (("partition", partition), ("from_offset", from_offset), ("to_offset", to_offset)) if value is not None]
    if source != ReplayRun.Source.OFFSETS:
        if range_given:
            raise _rejected(range_given[0], "not_applicable", f"{range_given[0]} applies to the offsets source only.")
        return
    for name, value in (("partition", partition), ("from_offset", from_offset), ("to_offset", to_offset)):
        if value is None:
            raise _rejected(name, "required", f"{name} is required for the offsets source.")
        if value < 0:
            raise _rejected(name, "invalid_offset" if name != "partition" else "invalid_partition", f"{name} must be 0 or more.")
    if to_offset < from_offset:
        raise _rejected("to_offset", "invalid_range", "to_offset must be at or after from_offset.")
    try:
        partitions = topic_partitions(topic=settings.KAFKA_TOPIC_USAGE)
    except BrokerUnavailable as error:
        raise ApiError(code="broker_unavailable", message=f"Kafka did not answer: {error}", status_code=503, retry_after_s=5) from None
    if partition not in partitions:
        raise _rejected("partition", "unknown_partition", f"the usage topic has partitions {partitions}, not {partition}.")


def replay_run_create(
    *, source: str, tenant_id: int | None, dry_run: bool = False, partition: int | None = None,
    from_offset: int | None = None, to_offset: int | None = None, limit: int | None = None, requested_by: str = "",
) -> ReplayRun:
    """A pending run after checking its parameters (replay_params_check); the caller starts it
    (billing.tasks.replay_run, or replay_run_execute)."""
    replay_params_check(source=source, partition=partition, from_offset=from_offset, to_offset=to_offset, limit=limit)
    with transaction.atomic(durable=True):
        return ReplayRun.objects.create(
            tenant_id=tenant_id, source=source, dry_run=dry_run, partition=partition, from_offset=from_offset,
            to_offset=to_offset, limit=limit, requested_by=requested_by[:150],
        )


def replay_run_start(*, run: ReplayRun) -> None:
    """Enqueue the run's task once the transaction that created it (if any) committed."""
    from ..tasks import replay_run as replay_run_task

    transaction.on_commit(lambda: replay_run_task.delay(run.pk))


def replay_run_execute(*, run_id: int, progress: Progress | None = None) -> ReplayRun:
    """Run a pending run to its end: status running → succeeded (report) or failed (error).
    Running a run that is not pending does nothing (a task delivered twice)."""
    with transaction.atomic(durable=True):
        run = ReplayRun.objects.select_for_update().get(pk=run_id)
        if run.status != ReplayRun.Status.PENDING:
            return run
        run.status, run.started_at = ReplayRun.Status.RUNNING, timezone.now()
        run.save(update_fields=["status", "started_at"])

    def on_chunk(tally: ReplayTally) -> None:
        ReplayRun.objects.filter(pk=run.pk).update(progress=tally.read, report=tally.report())
        if progress is not None:
            progress(tally)

    try:
        report = replay_report(
            source=run.source, tenant_id=run.tenant_id, dry_run=run.dry_run, partition=run.partition,
            from_offset=run.from_offset, to_offset=run.to_offset, limit=run.limit, run=run, progress=on_chunk,
            not_after_ms=int(run.created_at.timestamp() * 1000),
        )
    except Exception as error:  # the run's outcome, shown by the API and the admin; re-raised for the logs
        ReplayRun.objects.filter(pk=run.pk).update(
            status=ReplayRun.Status.FAILED, error=f"{type(error).__name__}: {error}"[:2000], finished_at=timezone.now()
        )
        raise
    ReplayRun.objects.filter(pk=run.pk).update(
        status=ReplayRun.Status.SUCCEEDED, report=report, progress=report.get("read", 0), finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run


def replay_report(
    *, source: str, tenant_id: int | None, dry_run: bool, partition: int | None = None, from_offset: int | None = None,
    to_offset: int | None = None, limit: int | None = None, run: ReplayRun | None = None,
    progress: Progress | None = None, not_after_ms: int | None = None,
) -> dict[str, Any]:
    """Replay from `source` (or, dry, say what a replay would do) and return the report. A real
    replay needs its `run` (the ReplayItems name it); a dry run writes nothing."""
    if not dry_run and run is None:
        raise ValueError("a replay that writes needs its run")
    if source == ReplayRun.Source.UNMATCHED:
        return _unmatched(tenant_id=tenant_id, dry_run=dry_run, limit=limit)
    if source == ReplayRun.Source.DLQ:
        chunks = records_read(
            topic=settings.KAFKA_TOPIC_USAGE_DLQ, dead_letters=True, limit=limit,
            not_after_ms=not_after_ms if not_after_ms is not None else int(timezone.now().timestamp() * 1000),
        )
        extra: dict[str, Any] = {"topic": settings.KAFKA_TOPIC_USAGE_DLQ}
    else:
        chunks = records_read(
            topic=settings.KAFKA_TOPIC_USAGE, starts={partition: from_offset}, last={partition: to_offset}, limit=limit,
        )
        extra = {"topic": settings.KAFKA_TOPIC_USAGE, "partition": partition, "from_offset": from_offset, "to_offset": to_offset}
    tally = ReplayTally(source=source, dry_run=dry_run, extra=extra)
    for chunk in chunks:
        decisions = _plan(chunk, tenant_id=tenant_id)
        if not dry_run:
            _replay(decisions, run=run)
        tally.add(decisions, read=len(chunk))
        if progress is not None:
            progress(tally)
    return tally.report()


def _plan(chunk: list[SourceRecord], *, tenant_id: int | None) -> list[Decision]:
    """Read what the plan needs for one chunk (two indexed queries), then plan it."""
    topic = chunk[0].topic
    offsets_by_partition: dict[int, list[int]] = {}
    for record in chunk:
        offsets_by_partition.setdefault(record.partition, []).append(record.offset)
    replayed: set[tuple[str, int, int]] = set()
    for partition, offsets in offsets_by_partition.items():
        replayed.update(
            (topic, partition, offset)
            for offset in ReplayItem.objects.filter(
                topic=topic, partition=partition, offset__gte=min(offsets), offset__lte=max(offsets)
            ).values_list("offset", flat=True)
        )
    from metering.wire import tenant_of

    tenant_ids = {t for record in chunk if (t := tenant_of(record.key, original_headers(record.headers))) is not None}
    known = frozenset(Tenant.objects.filter(pk__in=tenant_ids).values_list("pk", flat=True))
    return replay_plan(records=chunk, replayed=frozenset(replayed), tenant_id=tenant_id, known_tenants=known)


def _replay(decisions: list[Decision], *, run: ReplayRun) -> None:
    """Produce the chunk's valid records to the usage topic, then record them replayed."""
    chosen = [decision for decision in decisions if decision.outcome == REPLAY]
    if not chosen:
        return
    produce_and_wait([_usage_record(decision.record, run_id=run.pk) for decision in chosen])
    now = timezone.now()
    with transaction.atomic(durable=True):
        ReplayItem.objects.bulk_create(
            [
                ReplayItem(
                    run_id=run.pk, topic=d.record.topic, partition=d.record.partition, offset=d.record.offset,
                    tenant_id=d.tenant_id, event_id=d.event_id[:128], replayed_at=now,
                )
                for d in chosen
            ],
            ignore_conflicts=True,  # another run replayed it meanwhile: the consumer's idempotency absorbs the copy
        )


def _usage_record(record: SourceRecord, *, run_id: int) -> Record:
    """The record as it first arrived (key, value bytes, headers, timestamp), marked as a replay."""
    return Record(
        topic=settings.KAFKA_TOPIC_USAGE, key=record.key, value=record.value, timestamp_ms=record.timestamp_ms,
        headers=(
            *original_headers(record.headers),
            ("replay_run", str(run_id).encode()),
            ("replayed_from", f"{record.topic}/{record.partition}/{record.offset}".encode()),
        ),
    )


def _unmatched(*, tenant_id: int | None, dry_run: bool, limit: int | None) -> dict[str, Any]:
    """The unmatched source: unmatched_usage_replay (or its preview), reported like the others."""
    limit = limit or 10_000
    if dry_run:
        preview = unmatched_usage_preview(tenant_id=tenant_id, limit=limit)
        return {
            "source": "unmatched", "dry_run": True, "read": preview["read"],
            "counts": {"would_rate": preview["would_rate"], "still_unmatched": preview["still_unmatched"]},
            "reasons": preview["reasons"],
        }
    counts, rated = unmatched_usage_replay(tenant_id=tenant_id, limit=limit)
    report: dict[str, Any] = {
        "source": "unmatched", "dry_run": False, "read": counts["rated"] + counts["still_unmatched"], "counts": counts,
    }
    try:
        rated_records_publish(records=rated)
    except BrokerUnavailable as error:
        report["not_published"] = {"rated_records": len(rated), "error": str(error)}
    return report
