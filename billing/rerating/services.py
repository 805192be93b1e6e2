"""Re-rating and single-event reversal over the rated ledger (issue 16): lock → read → plan
(billing.rerating.plan, pure) → write, a chunk of whole subscriptions (about CHUNK_EVENTS
events) per durable transaction.

    lock     the running totals of every key in scope: (subscription, metric, dimension) of the
             scoped subscriptions' periods — the consumer rates a key under its total's lock, so
             what is read next cannot move
    read     each event's current rating (its newest row unless a reversal) and its raw event
    target   re-rating: what the catalog resolves for the raw event today (billing_contexts_build,
             straight from PostgreSQL: not a cache that may lag a price fix); reversal: the model
             each event was rated with (its pricing snapshot), the reversed event removed
    plan     every key rated again from zero in the original order (rerating_plan)
    write    per changed event a reversal row and a new rating row (binary COPY, both naming the
             raw event and the job), the running totals, the hourly rollups, the wallets of
             prepaid and hybrid subscriptions (the difference, in real time, as the consumer
             debits), the live counters after commit

A settled period's difference lands on the subscription's next invoice as late-usage adjustment
lines of that period (the corrections' ids are above the watermark that settled it: settlement's
late-event ranges), every line still the sum of the rated rows in its range. A second run finds
every event already rated as it would be: no change, nothing written."""

from __future__ import annotations

import calendar
import re

import orjson
from collections.abc import Sequence
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from aforo.copy import copy_rows, ids_take, jsonb, numeric
from aforo.db import bulk_cursor
from aforo.exceptions import ApiError
from billing.rating import compile_config, text
from billing.rating.plan import TotalState
from catalog.models import Customer, Metric, RatePlan, Subscription
from metering.enrichment import Resolution, resolve
from metering.models import RawEvent
from metering.selectors import billing_contexts_build
from wallets.debits import wallet_charges_record
from wallets.plan import RatedCharge

from ..counters import CounterWrite, usage_counters_write
from ..invoices.services import InvoiceTransitionRefused
from ..invoicing import invoice_void_and_reissue
from ..models import Invoice, InvoiceLine, PricingSnapshot, RatedEvent, RatingCorrection, RunningTotal, SettlementRun
from ..rollups import usage_rollups_add
from ..services import _RATED_COLUMNS, _RATED_TYPES, WALLET_MODES, _lock_running_totals, _snapshot_ids, _tiers_wire
from .plan import Change, CurrentRating, Target, rerating_plan
from .report import BilledLine, EventFacts, ReratingReport

RATED, TOTAL, RAW = RatedEvent._meta.db_table, RunningTotal._meta.db_table, RawEvent._meta.db_table
LINE, INVOICE = InvoiceLine._meta.db_table, Invoice._meta.db_table
PERIOD_RE = re.compile(r"^(\d{4})-(\d{2})$")
COLUMNS = (*_RATED_COLUMNS, "reverses_id", "correction_id")
TYPES = (*_RATED_TYPES, "int8", "int8")


def _rejected(field: str, code: str, message: str, status: int = 400) -> ApiError:
    return ApiError(code=code, message=message, status_code=status, fields={field: [message]})


def month_range(period: str) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of "YYYY-MM", UTC; ApiError otherwise."""
    match = PERIOD_RE.match(period) if isinstance(period, str) else None
    if not match or not (2000 <= int(match[1]) <= 2200 and 1 <= int(match[2]) <= 12):
        raise _rejected("period", "invalid_period", "period must be a month, YYYY-MM (2000-01 to 2200-12).")
    year, month = int(match[1]), int(match[2])
    start = datetime(year, month, 1, tzinfo=dt_timezone.utc)
    return start, start + timedelta(days=calendar.monthrange(year, month)[1])


def reason_check(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise _rejected("reason", "required", "reason is required: it is recorded on every correction row's job.")
    if "\x00" in reason or len(reason) > 300:
        raise _rejected("reason", "invalid_reason", "reason must be at most 300 characters, without NUL.")
    return reason.strip()


# --- jobs ---------------------------------------------------------------------------------


def rerating_job_create(
    *, tenant_id: int, period: str, reason: object, subscription_id: int | None = None, customer_id: int | None = None,
    rate_plan_id: int | None = None, dry_run: bool = False, settled: str = RatingCorrection.Settled.ADJUST,
    requested_by: str = "",
) -> RatingCorrection:
    """A pending re-rating job after checking its parameters (one scope, of this tenant; a month;
    a reason); the caller starts it (rerating_job_start) or runs it (rerating_job_execute)."""
    scopes = [(name, value) for name, value in (
        ("subscription", subscription_id), ("customer", customer_id), ("rate_plan", rate_plan_id)) if value is not None]
    if len(scopes) != 1:
        raise _rejected("scope", "invalid_scope", "give exactly one of subscription, customer or rate_plan.")
    name, value = scopes[0]
    model = {"subscription": Subscription, "customer": Customer, "rate_plan": RatePlan}[name]
    if not isinstance(value, int) or not model.objects.filter(tenant_id=tenant_id, pk=value).exists():
        raise _rejected(name, f"unknown_{name}", f"no {name.replace('_', ' ')} {value!r} of this tenant.", 404)
    month_range(period)
    reason = reason_check(reason)
    if settled not in RatingCorrection.Settled.values:
        raise _rejected("settled", "invalid_settled", f"settled must be one of {', '.join(RatingCorrection.Settled.values)}.")
    with transaction.atomic(durable=True):
        return RatingCorrection.objects.create(
            tenant_id=tenant_id, kind=RatingCorrection.Kind.RERATE, subscription_id=subscription_id,
            customer_id=customer_id, rate_plan_id=rate_plan_id, period=period, reason=reason, dry_run=dry_run,
            settled=settled, requested_by=requested_by[:150],
        )


def rerating_job_start(*, job: RatingCorrection) -> None:
    """Enqueue the job's task once the transaction that created it (if any) committed."""
    from ..tasks import rerating_job as rerating_job_task

    transaction.on_commit(lambda: rerating_job_task.delay(job.pk))


def rerating_job_execute(*, job_id: int) -> RatingCorrection:
    """Run a pending job to its end: running → succeeded (report) or failed (error). A job that is
    not pending is returned as it is (a task delivered twice)."""
    with transaction.atomic(durable=True):
        job = RatingCorrection.objects.select_for_update().get(pk=job_id)
        if job.status != RatingCorrection.Status.PENDING:
            return job
        job.status, job.started_at = RatingCorrection.Status.RUNNING, timezone.now()
        job.save(update_fields=["status", "started_at"])
    try:
        report = _run(job)
    except Exception as error:  # the job's outcome, shown by the API and the admin; re-raised for the logs
        RatingCorrection.objects.filter(pk=job.pk).update(
            status=RatingCorrection.Status.FAILED, error=f"{type(error).__name__}: {error}"[:2000], finished_at=timezone.now()
        )
        raise
    RatingCorrection.objects.filter(pk=job.pk).update(
        status=RatingCorrection.Status.SUCCEEDED, report=report, finished_at=timezone.now()
    )
    job.refresh_from_db()
    return job


class EventNotReversible(ApiError):
    pass


def event_reverse(*, tenant_id: int, raw_event_id: int, reason: object, dry_run: bool = False, requested_by: str = "") -> RatingCorrection:
    """Remove one event's effect (POST /api/v1/events/{id}/reverse): its rating reversed and, in a
    tiered price, the events after it in its period rated again so the delta law holds — each
    at the price it was rated with. Runs now (one key). 404 for an unknown event, 409 for one
    never rated or already reversed."""
    reason = reason_check(reason)
    raw = RawEvent.objects.filter(tenant_id=tenant_id, pk=raw_event_id).only("id").first()
    if raw is None:
        raise ApiError(code="not_found", message=f"no event {raw_event_id} of this tenant.", status_code=404)
    with bulk_cursor() as cursor:
        cursor.execute(
            f"SELECT id, reverses_id, subscription_id, period_start FROM {RATED} WHERE raw_event_id = %s ORDER BY id DESC LIMIT 1",
            [raw.pk],
        )
        newest = cursor.fetchone()
    if newest is None:
        raise EventNotReversible(code="event_not_rated", message="the event was never rated (see unmatched usage).", status_code=409)
    if newest[1] is not None:
        raise EventNotReversible(code="event_reversed", message="the event is reversed already.", status_code=409)
    with transaction.atomic(durable=True):
        job = RatingCorrection.objects.create(
            tenant_id=tenant_id, kind=RatingCorrection.Kind.REVERSAL, subscription_id=newest[2],
            period=f"{newest[3]:%Y-%m}", raw_event_id=raw.pk, reason=reason, dry_run=dry_run, requested_by=requested_by[:150],
        )
    return rerating_job_execute(job_id=job.pk)


# --- the run --------------------------------------------------------------------------------


def _scope(job: RatingCorrection) -> tuple[list[Subscription], datetime, datetime]:
    subscriptions = Subscription.objects.filter(tenant_id=job.tenant_id)
    if job.subscription_id is not None:
        subscriptions = subscriptions.filter(pk=job.subscription_id)
    elif job.customer_id is not None:
        subscriptions = subscriptions.filter(customer_id=job.customer_id)
    else:
        subscriptions = subscriptions.filter(rate_plan_id=job.rate_plan_id)
    start, end = month_range(job.period)
    return list(subscriptions.order_by("pk")), start, end


def _totals_lock(subscription_ids: list[int], start: datetime, end: datetime, *, lock: bool) -> dict[tuple, tuple]:
    """key -> (row id, units, amount, events, fees, last_rated_id, snapshot id, tenant, customer, period_end, currency)."""
    with bulk_cursor() as cursor:
        cursor.execute(
            f"""
            SELECT id, subscription_id, metric_id, dimension_key, period_start, units, amount, event_count, transaction_fees,
                   last_rated_id, pricing_snapshot_id, tenant_id, customer_id, period_end, currency
            FROM {TOTAL} WHERE subscription_id = ANY(%s::bigint[]) AND period_start >= %s AND period_start < %s
            ORDER BY id {'FOR UPDATE' if lock else ''}
            """,
            [subscription_ids, start, end],
        )
        return {(s, m, d, ps): (row_id, *rest) for row_id, s, m, d, ps, *rest in cursor.fetchall()}


def _current(subscription_ids: list[int], start: datetime, end: datetime) -> list[tuple]:
    """Each rated event's current rating in scope (its newest row; a reversal means none) and its
    raw event's fields, one row per raw event."""
    with bulk_cursor() as cursor:
        cursor.execute(
            f"""
            SELECT c.*, raw.event_id, raw.subject, raw.metric, raw.dimensions FROM (
                SELECT DISTINCT ON (r.raw_event_id)
                       r.id, MIN(r.id) OVER (PARTITION BY r.raw_event_id) AS position, r.raw_event_id, r.reverses_id,
                       r.tenant_id, r.subscription_id, r.customer_id, r.metric_id, r.dimension_key, r.period_start,
                       r.period_end, r.event_timestamp, r.quantity, r.units_before, r.units_after, r.amount, r.tiers,
                       r.blocked_units, r.trial, r.currency, r.rate_plan_version_id, r.metric_config_id, r.pricing_snapshot_id
                FROM {RATED} r
                WHERE r.subscription_id = ANY(%s::bigint[]) AND r.period_start >= %s AND r.period_start < %s
                ORDER BY r.raw_event_id, r.id DESC) c
            JOIN {RAW} raw ON raw.id = c.raw_event_id
            WHERE c.reverses_id IS NULL
            """,
            [subscription_ids, start, end],
        )
        rows = cursor.fetchall()
    loads = orjson.loads
    return [
        (*row[:R_TIERS], None if row[R_TIERS] is None else loads(row[R_TIERS]), *row[R_TIERS + 1:R_DIMENSIONS],
         loads(row[R_DIMENSIONS]) if row[R_DIMENSIONS] else {})
        if isinstance(row[R_DIMENSIONS], (str, bytes)) or isinstance(row[R_TIERS], (str, bytes)) else row
        for row in rows
    ]


# Column positions in a _current row.
(R_ID, R_POSITION, R_RAW, R_REVERSES, R_TENANT, R_SUB, R_CUSTOMER, R_METRIC, R_KEY, R_START, R_END, R_AT, R_QTY,
 R_BEFORE, R_AFTER, R_AMOUNT, R_TIERS, R_BLOCKED, R_TRIAL, R_CURRENCY, R_VERSION, R_METRIC_CONFIG, R_SNAPSHOT,
 R_EVENT_ID, R_SUBJECT, R_METRIC_CODE, R_DIMENSIONS) = range(27)


class _Models:
    """Compiled models of pricing snapshots, per (snapshot, dimension key), built once."""

    def __init__(self) -> None:
        self.configs: dict[int, dict] = {}
        self.models: dict[tuple[int, str], Any] = {}

    def load(self, snapshot_ids: set[int]) -> None:
        missing = snapshot_ids - self.configs.keys()
        self.configs.update(PricingSnapshot.objects.filter(id__in=missing).values_list("id", "config"))

    def model(self, snapshot_id: int, key: str):
        model = self.models.get((snapshot_id, key))
        if model is None:
            model = self.models[(snapshot_id, key)] = compile_config(self.configs[snapshot_id]).for_key(key)
        return model


def _key(row: tuple) -> tuple:
    return (row[R_SUB], row[R_METRIC], row[R_KEY], row[R_START])


def _targets(job: RatingCorrection, rows: list[tuple], models: _Models) -> tuple[list[Target | None], dict[str, dict], int]:
    """What prices each event now; the new configs by hash; how many resolve elsewhere (kept)."""
    models.load({row[R_SNAPSHOT] for row in rows})

    def as_rated(row: tuple) -> Target:
        return Target(_key(row), models.model(row[R_SNAPSHOT], row[R_KEY]), (row[R_VERSION], row[R_METRIC_CONFIG], row[R_SNAPSHOT], None))

    if job.kind == RatingCorrection.Kind.REVERSAL:
        return [None if row[R_RAW] == job.raw_event_id else as_rated(row) for row in rows], {}, 0
    contexts: dict[tuple[int, str], Any] = {}
    by_tenant: dict[int, set[str]] = {}
    for row in rows:
        by_tenant.setdefault(row[R_TENANT], set()).add(row[R_SUBJECT])
    for tenant_id, subjects in by_tenant.items():
        built = billing_contexts_build(tenant_id=tenant_id, subjects=sorted(subjects))
        contexts.update({(tenant_id, subject): built.get(subject) for subject in subjects})
    targets: list[Target | None] = []
    configs: dict[str, dict] = {}
    elsewhere = 0
    resolved: dict[tuple, Any] = {}
    for row in rows:
        dimensions = row[R_DIMENSIONS] or {}
        memo = (row[R_TENANT], row[R_SUBJECT], row[R_METRIC_CODE], row[R_AT], repr(sorted(dimensions.items())))
        resolution = resolved.get(memo)
        if resolution is None:
            resolution = resolved[memo] = resolve(
                contexts.get((row[R_TENANT], row[R_SUBJECT])), metric=row[R_METRIC_CODE], at=row[R_AT],
                subject=row[R_SUBJECT], dimensions=dimensions,
            )
        if not isinstance(resolution, Resolution) or resolution.subscription.id != row[R_SUB] \
                or resolution.metric.metric_id != row[R_METRIC]:
            elsewhere += 1  # not this subscription's today: kept at the price it was rated with
            targets.append(as_rated(row))
            continue
        metric = resolution.metric
        configs[metric.config_hash] = metric.config
        targets.append(Target(
            (row[R_SUB], metric.metric_id, resolution.dimension_key, row[R_START]), resolution.model,
            (resolution.version_id, metric.metric_config_id, None, metric.config_hash),
        ))
    return targets, configs, elsewhere


def _billed_lines(subscription_ids: list[int], start: datetime, end: datetime) -> dict[tuple, list[BilledLine]]:
    """The live usage lines of the scope's periods, per ((subscription, metric, key, period), trial)."""
    rows = (
        InvoiceLine.objects.filter(kind__in=["usage", "late_usage"], period_start__gte=start, period_start__lt=end)
        .filter(Q(subscription_id__in=subscription_ids) | Q(subscription__isnull=True, invoice__subscription_id__in=subscription_ids))
        .exclude(invoice__status=Invoice.Status.VOID)
        .filter(rated_to_id__isnull=False)
        .values_list("invoice__number", "position", "subscription_id", "invoice__subscription_id", "metric_id",
                     "dimension_key", "period_start", "trial", "rated_from_id", "rated_to_id")
    )
    lines: dict[tuple, list[BilledLine]] = {}
    for number, position, part_sub, invoice_sub, metric_id, key, period_start, trial, low, high in rows:
        sub = part_sub or invoice_sub  # a line without a part is its invoice's subscription's
        lines.setdefault(((sub, metric_id, key, period_start), trial), []).append(BilledLine(number, position, low, high))
    for group in lines.values():
        group.sort(key=lambda line: line.rated_to_id)
    return lines


CHUNK_EVENTS = 50_000  # about this many events re-rated per transaction (its locks' span, its memory)


class ReratingInterrupted(Exception):
    """A job that failed after some of its chunks were written: those stay (append-only, each
    whole); running the job again writes only what is still different."""


def _chunks(ids: list[int], start: datetime, end: datetime) -> list[list[int]]:
    """The scope's subscriptions in groups of about CHUNK_EVENTS events (their running totals'
    counts), in id order. A subscription is never split: its keys — (subscription, metric,
    dimension, period), and an event only ever moves between keys of its own subscription — are
    rated in one transaction, so every group is a whole unit of locking and of the delta law."""
    with bulk_cursor() as cursor:
        cursor.execute(
            f"""SELECT subscription_id, SUM(event_count) FROM {TOTAL}
                WHERE subscription_id = ANY(%s::bigint[]) AND period_start >= %s AND period_start < %s
                GROUP BY subscription_id""",
            [ids, start, end],
        )
        counts = dict(cursor.fetchall())
    chunks: list[list[int]] = []
    size = 0
    for sub in ids:
        events = max(int(counts.get(sub) or 0), 0)
        if not chunks or (size and size + events > CHUNK_EVENTS):  # a big subscription: a chunk of its own
            chunks.append([])
            size = 0
        chunks[-1].append(sub)
        size += events
    return chunks or [[]]


def _run(job: RatingCorrection) -> dict[str, Any]:
    """The job over its scope, a chunk of subscriptions per durable transaction (lock → read →
    plan → write, then that chunk's reissues), the report built across them."""
    subscriptions, start, end = _scope(job)
    ids = [s.pk for s in subscriptions]
    if job.kind == RatingCorrection.Kind.REVERSAL:
        period_start = RatedEvent.objects.filter(raw_event_id=job.raw_event_id).order_by("-id").values_list("period_start", flat=True)[0]
        start, end = period_start, period_start + timedelta(microseconds=1)
        chunks = [ids]
    else:
        chunks = _chunks(ids, start, end)
    now = timezone.now()
    report = ReratingReport()
    models = _Models()
    metric_codes: dict[int, str] = {}
    written: dict[str, Any] = {}  # counts and the wallets' amount, summed over the chunks
    reissues: list[dict[str, Any]] = []
    elsewhere = 0
    for n, chunk in enumerate(chunks):
        try:
            part = _run_chunk(job, chunk, start, end, models=models, report=report, metric_codes=metric_codes, now=now)
        except Exception as error:
            if not written:
                raise
            raise ReratingInterrupted(
                f"the events of {sum(map(len, chunks[:n]))} of {len(ids)} subscriptions were re-rated "
                f"({written['reversals']} corrected) before {type(error).__name__}: {error}. "
                "Run the job again: what is written is not rewritten."
            ) from error
        elsewhere += part["elsewhere"]
        if part["written"]:
            for name, value in part["written"].items():
                written[name] = written.get(name, 0) + value
            if job.settled == RatingCorrection.Settled.REISSUE:  # each chunk's, once it committed: whole if a later one fails
                reissues += _reissue(job, part["through"], now=now)
    customers = dict(Customer.objects.filter(id__in=report.per_customer.keys()).values_list("id", "name"))
    result = {
        "kind": job.kind, "dry_run": job.dry_run, "period": job.period, "reason": job.reason, "subscriptions": len(ids),
        "settled": job.settled, **report.result(customers=customers), "resolved_elsewhere": elsewhere,
    }
    if written:
        result["written"] = {"job": job.pk, **written, "wallet_charged": text(written["wallet_charged"])}
        if job.settled == RatingCorrection.Settled.REISSUE:
            result["reissues"] = reissues
    return result


def _run_chunk(
    job: RatingCorrection, ids: list[int], start: datetime, end: datetime, *, models: _Models, report: ReratingReport,
    metric_codes: dict[int, str], now: datetime,
) -> dict[str, Any]:
    """One chunk, in one durable transaction: its changes added to `report`; what it wrote."""
    with transaction.atomic(durable=True):
        # Lock, then read: a key is rated under its total's lock, so once every key the events are
        # in (or move to) is locked, what was read cannot move. A key the consumer created after
        # the lock (or one an event moves to, created here) is locked too, then everything read
        # again: never a total written from a read that missed its newest events.
        locked = _totals_lock(ids, start, end, lock=not job.dry_run)
        while True:
            rows = _current(ids, start, end)
            targets, configs, elsewhere = _targets(job, rows, models)
            missing: dict[tuple, tuple] = {}
            for row, target in zip(rows, targets):
                for key in (_key(row), target.key if target is not None else None):
                    if key is not None and key not in locked:
                        missing.setdefault(key, (row[R_TENANT], row[R_CUSTOMER], row[R_END], row[R_CURRENCY]))
            if not missing or job.dry_run:
                break
            _lock_running_totals(missing, now=now)  # creates the absent ones
            locked = _totals_lock(ids, start, end, lock=True)
        if job.kind == RatingCorrection.Kind.REVERSAL and not any(row[R_RAW] == job.raw_event_id for row in rows):
            raise EventNotReversible(code="event_reversed", message="the event is reversed already.", status_code=409)
        totals = {key: state[0] for key, state in locked.items()}
        totals.update({key: -1 for key in missing})  # a dry run's keys not yet created
        events = [
            CurrentRating(
                row[R_ID], row[R_POSITION], row[R_RAW], _key(row), row[R_QTY], row[R_AMOUNT],
                tuple(row[R_TIERS]) if row[R_TIERS] is not None else None, row[R_BLOCKED], row[R_TRIAL], row,
            )
            for row in rows
        ]
        changes, after = rerating_plan(events, targets, totals)
        _report_add(report, changes, rows, ids, start, end, metric_codes)
        if job.dry_run or not changes:
            return {"elsewhere": elsewhere, "written": None}
        written, through = _write(job, changes, after, locked, configs, now=now)
    return {"elsewhere": elsewhere, "written": written, "through": through}


def _reissue(job: RatingCorrection, through: dict[tuple[int, datetime], int], *, now: datetime) -> list[dict[str, Any]]:
    """The operator's "void and reissue" for each settled period the job corrected: its invoice
    voided and reissued with the corrections (billing.invoicing, include_through); where that is
    refused (paid, or a later run may have billed the period's newer events) the difference stays
    for the next invoice's adjustment lines, and the report says why."""
    outcomes = []
    for (subscription_id, period_start), rated_id in sorted(through.items()):
        run = (SettlementRun.objects.filter(subscription_id=subscription_id, period_start=period_start, kind="final")
               .select_related("invoice").order_by("-pk").first())
        if run is None or run.invoice is None:
            continue  # an open period: its invoice has yet to be made
        outcome = {"invoice": run.invoice.number, "period_start": period_start.isoformat()}
        try:
            reissue = invoice_void_and_reissue(
                invoice=run.invoice, reason=f"re-rating job {job.pk}: {job.reason}"[:300], now=now, include_through=rated_id,
            )
        except InvoiceTransitionRefused as refused:
            outcome.update(outcome="adjustment", code=refused.code, message=refused.message)
        else:
            outcome.update(outcome="reissued", replacement=reissue.replacement.number,
                           credit_note=reissue.credit_note.number if reissue.credit_note else None)
        outcomes.append(outcome)
    return outcomes


def _report_add(report: ReratingReport, changes: Sequence[Change], rows: list[tuple], ids: list[int], start, end,
                metric_codes: dict[int, str]) -> None:
    """A chunk's changes into the report: each changed event's facts and the usage lines that billed it."""
    wanted = {row[R_METRIC] for row in rows} - metric_codes.keys()
    metric_codes.update(Metric.objects.filter(id__in=wanted).values_list("id", "code"))
    changed_raw = {change.old.raw_event_id for change in changes}
    facts = {
        row[R_RAW]: EventFacts(row[R_EVENT_ID], row[R_CUSTOMER], metric_codes.get(row[R_METRIC], str(row[R_METRIC])),
                               row[R_KEY], row[R_START].isoformat(), row[R_QTY], row[R_CURRENCY])
        for row in rows if row[R_RAW] in changed_raw
    }
    report.add(
        changes=changes, events=len(rows), facts=facts, lines=_billed_lines(ids, start, end) if changes else {},
        line_key=lambda change: (change.old.key, change.old.trial),
    )


def _negated_tiers(tiers: Any) -> Any:
    if tiers is None:
        return None
    return [{"tier": t["tier"], "units": str(-Decimal(str(t["units"]))), "amount": str(-Decimal(str(t["amount"])))} for t in tiers]


def _write(job: RatingCorrection, changes: Sequence[Change], after: dict, locked: dict[tuple, tuple],
           configs: dict[str, dict], *, now: datetime) -> dict[str, Any]:
    snapshot_ids = _snapshot_ids(configs) if configs else {}
    subscriptions = dict(Subscription.objects.filter(
        pk__in={change.old.pricing[R_SUB] for change in changes}).values_list("pk", "billing_mode"))
    written_rows: list[tuple] = []  # (id, key, snapshot)
    through: dict[tuple[int, datetime], int] = {}  # (subscription, period start) -> its highest correction id
    rollup_records, rollup_metrics, rollup_counts = [], [], []
    charges: list[RatedCharge] = []
    with bulk_cursor() as cursor:
        count = sum(2 if change.new is not None else 1 for change in changes)
        ids = iter(ids_take(cursor, RATED, count))
        rows = []
        for change in changes:
            old = change.old.pricing
            reversal_id = next(ids)
            rows.append((
                reversal_id, old[R_TENANT], old[R_RAW], old[R_SUB], old[R_CUSTOMER], old[R_METRIC], old[R_KEY], old[R_VERSION],
                old[R_METRIC_CONFIG], old[R_SNAPSHOT], old[R_START], old[R_END], old[R_AT], numeric(-old[R_QTY]),
                numeric(old[R_AFTER]), numeric(old[R_BEFORE]), -old[R_AMOUNT], old[R_CURRENCY],
                None if old[R_TIERS] is None else jsonb(_negated_tiers(old[R_TIERS])), now, numeric(-old[R_BLOCKED]),
                old[R_TRIAL], old[R_ID], job.pk,
            ))
            written_rows.append((reversal_id, _key(old), old[R_SNAPSHOT]))
            rollup_records.append(_Rollup(old[R_TENANT], old[R_SUB], old[R_CUSTOMER], old[R_KEY], old[R_AT],
                                          -old[R_QTY], -old[R_AMOUNT], -old[R_BLOCKED]))
            rollup_metrics.append(old[R_METRIC])
            rollup_counts.append(-1)
            charge_id = reversal_id
            if change.new is not None:
                plan, target = change.new, change.target
                version, metric_config, snapshot, config_hash = target.pricing
                snapshot = snapshot if snapshot is not None else snapshot_ids[config_hash]
                sub, metric_id, key, _ = target.key
                charge_id = next(ids)
                rows.append((
                    charge_id, old[R_TENANT], old[R_RAW], sub, old[R_CUSTOMER], metric_id, key, version, metric_config,
                    snapshot, old[R_START], old[R_END], old[R_AT], numeric(old[R_QTY]), numeric(plan.units_before),
                    numeric(plan.units_after), plan.amount, old[R_CURRENCY],
                    None if plan.tiers is None else jsonb(_tiers_wire(plan.tiers)), now, numeric(plan.blocked),
                    old[R_TRIAL], None, job.pk,
                ))
                written_rows.append((charge_id, target.key, snapshot))
                rollup_records.append(_Rollup(old[R_TENANT], sub, old[R_CUSTOMER], key, old[R_AT], old[R_QTY], plan.amount, plan.blocked))
                rollup_metrics.append(metric_id)
                rollup_counts.append(1)
            mode = subscriptions.get(old[R_SUB])
            # As the consumer debits: prepaid pays each difference exactly (a cheaper rating gives
            # back); hybrid's wallet pays a rise, and a fall is settlement's (wallets.plan).
            if change.difference and not old[R_TRIAL] and mode in WALLET_MODES and (
                    mode == "prepaid" or change.difference > 0):
                charges.append(RatedCharge(
                    rated_event_id=charge_id, tenant_id=old[R_TENANT], customer_id=old[R_CUSTOMER], currency=old[R_CURRENCY],
                    billing_mode=subscriptions[old[R_SUB]], amount=change.difference, event_id=old[R_EVENT_ID],
                ))
        copy_rows(cursor, RATED, COLUMNS, TYPES, rows)
        usage_rollups_add(records=rollup_records, metric_ids=rollup_metrics, now=now, counts=rollup_counts)
        newest = {key: (state[5], state[6]) for key, state in locked.items()}
        for rated_id, key, snapshot in written_rows:  # ids ascend
            newest[key] = (rated_id, snapshot)
            through[(key[0], key[3])] = rated_id
        moved = [(key, state) for key, state in after.items() if key in locked and (
            newest[key][0] != locked[key][5]
            or (state.units, state.amount, state.events, state.fees) != tuple(locked[key][1:5]))]
        if moved:
            cursor.execute(
                f"""
                UPDATE {TOTAL} AS rt
                SET units = x.units, amount = x.amount, event_count = x.event_count, transaction_fees = x.fees,
                    updated_at = %s, last_rated_id = x.last_id, pricing_snapshot_id = x.snapshot_id
                FROM unnest(%b::bigint[], %b::numeric[], %b::numeric[], %b::bigint[], %b::numeric[], %b::bigint[], %b::bigint[])
                    AS x(id, units, amount, event_count, fees, last_id, snapshot_id)
                WHERE rt.id = x.id
                """,
                [
                    now, [s.id for _, s in moved], [s.units for _, s in moved], [s.amount for _, s in moved],
                    [s.events for _, s in moved], [s.fees for _, s in moved], [newest[k][0] for k, _ in moved],
                    [newest[k][1] for k, _ in moved],
                ],
            )
    wallet_charges_record(charges=charges, now=now)
    writes = [
        CounterWrite(*key, locked[key][9], newest[key][0], state.units, state.amount)
        for key, state in moved if newest[key][0] is not None
    ]
    transaction.on_commit(lambda: usage_counters_write(writes=writes))
    return {
        "reversals": len(changes), "ratings": sum(1 for c in changes if c.new is not None),
        "totals_moved": len(moved), "wallet_charges": len(charges),
        "wallet_charged": sum((c.amount for c in charges), Decimal(0)),
    }, through


class _Rollup:
    __slots__ = ("tenant_id", "subscription_id", "customer_id", "dimension_key", "timestamp", "quantity", "amount", "blocked")

    def __init__(self, tenant_id, subscription_id, customer_id, dimension_key, timestamp, quantity, amount, blocked):
        self.tenant_id, self.subscription_id, self.customer_id = tenant_id, subscription_id, customer_id
        self.dimension_key, self.timestamp = dimension_key, timestamp
        self.quantity, self.amount, self.blocked = quantity, amount, blocked
