"""Trials, the writes: classify a rating batch's events (lock → plan → write, inside the batch's
transaction), convert a trial now (the operator) or at its end date (the sweep), and record a
conversion — once per subscription (TrialConversion's unique subscription), with its webhook.

Lock order, everywhere: the TrialUsage rows (by subscription id), then the subscription row,
then the tenant row (the catalog generation bump). A rating batch takes its running totals
first; nothing that converts a trial holds a running total."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from aforo.money import decimal_text
from catalog.generation import catalog_generation_bump
from catalog.models import Subscription
from notify.services import webhook_event_emit

from ..models import TrialConversion, TrialUsage
from .plan import PlannedConversion, TrialEvent, TrialTerms, conversion_cause, conversion_instant, trials_plan

if TYPE_CHECKING:
    from ..services import RatingInput

USAGE_TABLE = TrialUsage._meta.db_table
SUBSCRIPTION_TABLE = Subscription._meta.db_table
WEBHOOK_EVENT = "subscription.trial_converted"


@dataclass(frozen=True)
class Owner:
    tenant_id: int
    customer_id: int


class TrialNotConvertible(Exception):
    """The subscription has no trial, or has ended: nothing to convert."""


def _trials_lock(*, tenants: Mapping[int, int], now: datetime) -> tuple[dict[int, TrialTerms], dict[int, Owner]]:
    """Lock the TrialUsage row of each subscription (created when missing), in id order, and read
    the trials as they are committed now (a conversion committed before the lock is seen)."""
    ids = sorted(tenants)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {USAGE_TABLE} (tenant_id, subscription_id, units, free_events, updated_at)
                SELECT t, s, 0, 0, %s FROM unnest(%s::bigint[], %s::bigint[]) AS x(s, t) ORDER BY s
                ON CONFLICT (subscription_id) DO NOTHING""",
            [now, ids, [tenants[i] for i in ids]],
        )
        cursor.execute(
            f"""SELECT subscription_id, units, free_events, latest_free_at FROM {USAGE_TABLE}
                WHERE subscription_id = ANY(%s) ORDER BY subscription_id FOR UPDATE""",
            [ids],
        )
        usage = {row[0]: row[1:] for row in cursor.fetchall()}
        cursor.execute(  # a new statement: sees what committed while it waited for the locks
            f"""SELECT id, tenant_id, customer_id, trial_ends_at, trial_converted_at, trial_metric_id, trial_units
                FROM {SUBSCRIPTION_TABLE} WHERE id = ANY(%s)""",
            [ids],
        )
        terms, owners = {}, {}
        for sub_id, tenant_id, customer_id, ends_at, converted_at, metric_id, threshold in cursor.fetchall():
            units, free_events, latest = usage[sub_id]
            terms[sub_id] = TrialTerms(sub_id, ends_at, converted_at, metric_id, threshold, units, free_events, latest)
            owners[sub_id] = Owner(tenant_id, customer_id)
    return terms, owners


def _usage_write(*, before: Mapping[int, TrialTerms], after: Mapping[int, TrialTerms], now: datetime) -> None:
    moved = [t for sub_id, t in sorted(after.items()) if t.free_events != before[sub_id].free_events]
    if not moved:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {USAGE_TABLE} AS u SET units = x.units, free_events = x.n, latest_free_at = x.latest, updated_at = %s
                FROM unnest(%s::bigint[], %s::numeric[], %s::bigint[], %s::timestamptz[]) AS x(s, units, n, latest)
                WHERE u.subscription_id = x.s""",
            [now, [t.subscription_id for t in moved], [t.units for t in moved], [t.free_events for t in moved],
             [t.latest_free_at for t in moved]],
        )


def _conversions_write(
    *, conversions: Sequence[PlannedConversion], terms: Mapping[int, TrialTerms], owners: Mapping[int, Owner],
    now: datetime, reason: str = "",
) -> list[TrialConversion]:
    """The conversion rows, the subscriptions' trial_converted_at (a catalog change: the
    generation advances, so the next batch's contexts know it) and the webhook events, inside the
    caller's transaction, under the TrialUsage locks."""
    rows = []
    for planned in conversions:
        trial, owner = terms[planned.subscription_id], owners[planned.subscription_id]
        row = TrialConversion.objects.create(
            tenant_id=owner.tenant_id, subscription_id=planned.subscription_id, customer_id=owner.customer_id,
            cause=planned.cause, converted_at=planned.converted_at, trial_metric_id=trial.metric_id,
            trial_units=trial.threshold, units_used=planned.units_used, event_id=planned.event_id,
            raw_event_id=planned.raw_event_id, reason=reason[:300], recorded_at=now,
        )
        Subscription.objects.filter(pk=planned.subscription_id, trial_converted_at__isnull=True).update(
            trial_converted_at=planned.converted_at, updated_at=now
        )
        rows.append(row)
    for tenant_id in sorted({owners[c.subscription_id].tenant_id for c in conversions}):
        catalog_generation_bump(tenant_id=tenant_id)
    for row in rows:
        _conversion_webhook(conversion=row, trial=terms[row.subscription_id])
    return rows


def _conversion_webhook(*, conversion: TrialConversion, trial: TrialTerms) -> None:
    webhook_event_emit(
        tenant_id=conversion.tenant_id, event_type=WEBHOOK_EVENT, event_id=f"{WEBHOOK_EVENT}:{conversion.subscription_id}",
        data={
            "subscription_id": conversion.subscription_id, "customer_id": conversion.customer_id,
            "cause": conversion.cause, "converted_at": conversion.converted_at.isoformat(),
            "trial_ends_at": None if trial.ends_at is None else trial.ends_at.isoformat(),
            "trial_metric_id": trial.metric_id,
            "trial_units": None if trial.threshold is None else decimal_text(trial.threshold),
            "units_used": decimal_text(conversion.units_used), "event_id": conversion.event_id or None,
            "reason": conversion.reason,
        },
    )


def trial_events_classify(*, inputs: Sequence[RatingInput], now: datetime) -> list[bool]:
    """Which of a rating batch's events are trial usage (free), in arrival order; records the
    trials' free units and the conversions their usage thresholds make. Inside the batch's
    transaction. Events of subscriptions with no trial open at their timestamp (by the cached
    context) cost nothing here; the others are decided under their trials' locks."""
    candidates = [i for i, item in enumerate(inputs) if item.resolution.subscription.in_trial_at(item.timestamp)]
    free = [False] * len(inputs)
    if not candidates:
        return free
    tenants = {inputs[i].resolution.subscription.id: inputs[i].tenant_id for i in candidates}
    terms, owners = _trials_lock(tenants=tenants, now=now)
    events = [
        TrialEvent(
            (item := inputs[i]).resolution.subscription.id, item.resolution.metric.metric_id, item.quantity,
            item.timestamp, item.raw_event_id, item.event_id,
        )
        for i in candidates
    ]
    decided, after, conversions = trials_plan(events, terms)
    for i, is_free in zip(candidates, decided):
        free[i] = is_free
    _usage_write(before=terms, after=after, now=now)
    if conversions:
        _conversions_write(conversions=conversions, terms=after, owners=owners, now=now)
    return free


@dataclass(frozen=True)
class ConversionResult:
    conversion: TrialConversion
    created: bool


def trial_convert(
    *, subscription_id: int, cause: str = TrialConversion.Cause.OPERATOR, reason: str = "", now: datetime | None = None,
) -> ConversionResult:
    """Convert a subscription's trial now (the operator; the sweep with cause "date" once its end
    date passed): at now — never before an event already rated free, never after the end date
    (a request after it records the date's conversion). Idempotent: a converted trial returns its
    conversion (created False). TrialNotConvertible: no trial, or the subscription has ended."""
    now = now or timezone.now()
    with transaction.atomic(durable=True):
        subscription = Subscription.objects.get(pk=subscription_id)
        terms, owners = _trials_lock(tenants={subscription.pk: subscription.tenant_id}, now=now)
        trial = terms[subscription.pk]
        existing = TrialConversion.objects.filter(subscription_id=subscription.pk).first()
        if existing is not None:
            return ConversionResult(existing, False)
        if not trial.configured:
            raise TrialNotConvertible(f"Subscription {subscription.pk} has no trial.")
        at = conversion_instant(trial, now=now)
        subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
        if subscription.status == Subscription.Status.CANCELED or (
            subscription.ended_at is not None and subscription.ended_at <= at
        ):
            raise TrialNotConvertible(f"Subscription {subscription.pk} ended during its trial: nothing converts.")
        planned = PlannedConversion(subscription.pk, at, conversion_cause(trial, at=at, requested=cause), trial.units)
        [row] = _conversions_write(conversions=[planned], terms=terms, owners=owners, now=now, reason=reason)
    return ConversionResult(row, True)


def trials_due_convert(*, now: datetime | None = None, limit: int = 500) -> int:
    """The sweep: record the conversion of every trial whose end date has passed (at that date
    exactly — usage after it was billed already, whenever the sweep runs). Idempotent. Returns
    how many it converted."""
    now = now or timezone.now()
    due = list(
        Subscription.objects.filter(trial_ends_at__lte=now, trial_converted_at__isnull=True)
        .exclude(ended_at__lte=F("trial_ends_at"))  # ended during its trial: it never converts
        .order_by("trial_ends_at", "id")
        .values_list("id", flat=True)[:limit]
    )
    converted = 0
    for subscription_id in due:
        try:
            result = trial_convert(subscription_id=subscription_id, cause=TrialConversion.Cause.DATE, now=now)
        except TrialNotConvertible:
            continue
        converted += result.created
    return converted


def trial_progress(*, subscription: Subscription) -> dict[str, object] | None:
    """A subscription's trial as the dashboard and the API show it: units used of the threshold,
    end date, conversion (None: no trial)."""
    if not subscription.has_trial and subscription.trial_converted_at is None:
        return None
    usage = TrialUsage.objects.filter(subscription_id=subscription.pk).values_list("units", flat=True).first()
    return {
        "units_used": usage if usage is not None else Decimal(0), "units": subscription.trial_units,
        "metric": subscription.trial_metric.code if subscription.trial_metric_id else None,
        "ends_at": subscription.trial_ends_at, "converted_at": subscription.trial_converted_at,
    }
