"""The settlement run: one subscription, one period, the stages in order, one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Sum
from django.utils import timezone

from catalog.models import Subscription

from ..models import Invoice, RatedEvent, SettlementRun
from ..periods import period_for
from . import aggregate, commit, discount, quota_check, rate, route, settle, tax
from .context import ZERO, SettlementContext

STAGES = (quota_check, aggregate, rate, commit, discount, tax, route)


@dataclass
class SettlementResult:
    run: SettlementRun | None  # None for a dry run
    invoice: Invoice | None
    created: bool  # False: the period was settled already and this is that settlement
    context: SettlementContext | None  # what the stages computed (None when it was settled already)


def _watermark(subscription: Subscription, now: datetime) -> int:
    """The highest rated event id settled by this run. Ids are taken when a rating transaction
    inserts, not when it commits, so the newest ids may still be in flight: only events rated
    at least SETTLEMENT_WATERMARK_LAG_S ago count (later ones go to the next run, never lost:
    a rating transaction is far shorter than the lag)."""
    cutoff = now - timedelta(seconds=settings.SETTLEMENT_WATERMARK_LAG_S)
    found = RatedEvent.objects.filter(subscription=subscription, rated_at__lte=cutoff).aggregate(top=Max("id"))["top"]
    return found or 0


def settlement_run(
    *, subscription_id: int, at: datetime, kind: str = "final", dry_run: bool = False, now: datetime | None = None
) -> SettlementResult:
    """Settle the period of `subscription_id` that contains `at`. A final run happens once per
    period (the unique constraint, and the subscription's row lock serialising its runs): run
    again, or concurrently, it returns the same invoice. `dry_run` computes everything and writes
    nothing (an invoice preview)."""
    now = now or timezone.now()
    with transaction.atomic(durable=not dry_run):
        subscription = Subscription.objects.select_for_update().select_related("tenant", "rate_plan").get(pk=subscription_id)
        start, end = period_for(cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, at=at)
        if kind == SettlementRun.Kind.FINAL:
            done = SettlementRun.objects.filter(subscription=subscription, period_start=start, kind=kind).select_related("invoice").first()
            if done is not None:
                return SettlementResult(done, done.invoice, False, None)
        context = SettlementContext(
            subscription=subscription, period_start=start, period_end=end, kind=kind,
            watermark=_watermark(subscription, now), now=now,
        )
        context.previously_invoiced = Invoice.objects.filter(
            settlement_run__subscription=subscription, settlement_run__period_start=start, settlement_run__kind="interim"
        ).aggregate(total=Sum("subtotal"))["total"] or ZERO
        for stage in STAGES:
            stage.run(context)
        if dry_run:
            context.log("settle", dry_run=True, total=context.total())
            transaction.set_rollback(True)
            return SettlementResult(None, None, True, context)
        settled = settle.run(context)
        return SettlementResult(settled, settled.invoice, True, context)
