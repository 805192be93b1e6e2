"""The settlement run: one subscription, one period, the stages in order, one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Sum
from django.utils import timezone

from catalog.models import Subscription

from ..models import Invoice, InvoiceLine, RatedEvent, RunningTotal, SettlementRun
from ..periods import period_for
from . import aggregate, allowance, commit, discount, quota_check, rate, rollover, route, settle, tax
from .context import ZERO, SettlementContext

# Rollover and Allowance log (and act) only for final runs of subscriptions with a RolloverPolicy.
STAGES = (quota_check, rollover, aggregate, allowance, rate, commit, discount, tax, route)


@dataclass
class SettlementResult:
    run: SettlementRun | None  # None for a dry run
    invoice: Invoice | None
    created: bool  # False: the period was settled already and this is that settlement
    context: SettlementContext | None  # what the stages computed (None when it was settled already)


def _watermark(subscription: Subscription, now: datetime, lag_s: int) -> int:
    """The highest rated event id settled by this run. Ids are taken when a rating transaction
    inserts, not when it commits, so the newest ids may still be in flight: only events rated
    at least SETTLEMENT_WATERMARK_LAG_S ago count (later ones go to the next run, never lost:
    a rating transaction is far shorter than the lag)."""
    cutoff = now - timedelta(seconds=lag_s)
    found = RatedEvent.objects.filter(subscription=subscription, rated_at__lte=cutoff).aggregate(top=Max("id"))["top"]
    return found or 0


def _threshold_reached(context: SettlementContext) -> bool:
    """An interim invoice is due when the period's accrued charges (its running totals' amounts)
    less what this period's interim invoices already billed reach the subscription's
    invoice_threshold, and the period has no final run yet. Checked under the subscription's lock, so a threshold task that arrives
    after another one invoiced the same charges does nothing."""
    threshold = context.subscription.invoice_threshold
    if threshold is None:
        return False
    if SettlementRun.objects.filter(
        subscription=context.subscription, period_start=context.period_start, kind=SettlementRun.Kind.FINAL
    ).exists():
        return False  # settled on demand already: the rest of the period lands on the next invoice
    accrued = RunningTotal.objects.filter(
        subscription=context.subscription, period_start=context.period_start
    ).aggregate(total=Sum("amount"))["total"] or ZERO
    # Compared with the rated amounts the interim invoices already covered (not their subtotals:
    # a spend cap can zero those, and the same charges would trigger invoice after invoice).
    covered = InvoiceLine.objects.filter(
        invoice__settlement_run__subscription=context.subscription,
        invoice__settlement_run__period_start=context.period_start, invoice__settlement_run__kind="interim",
        kind="usage",
    ).aggregate(total=Sum("amount_unrounded"))["total"] or ZERO
    return accrued - covered >= threshold


def settlement_run(
    *, subscription_id: int, at: datetime, kind: str = "final", dry_run: bool = False, now: datetime | None = None,
    watermark_lag_s: int | None = None,
) -> SettlementResult:
    """Settle the period of `subscription_id` that contains `at`. A final run happens once per
    period (the unique constraint, and the subscription's row lock serialising its runs): run
    again, or concurrently, it returns the same invoice. `dry_run` computes everything and writes
    nothing (an invoice preview). An interim run (a threshold invoice) settles only when the
    threshold is still reached under the lock and something is rated below the watermark;
    otherwise it writes nothing and returns SettlementResult(None, None, False, None).
    `watermark_lag_s` (default SETTLEMENT_WATERMARK_LAG_S): 0 only where nothing can be rating
    this subscription concurrently (the demo back-fill, which rated the events itself)."""
    now = now or timezone.now()
    with transaction.atomic(durable=not dry_run):
        subscription = (
            Subscription.objects.select_for_update(of=("self",)).select_related("tenant", "rate_plan").get(pk=subscription_id)
        )  # only the subscription row: settlements of one tenant run in parallel
        start, end = period_for(cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, at=at)
        if kind == SettlementRun.Kind.FINAL:
            done = SettlementRun.objects.filter(subscription=subscription, period_start=start, kind=kind).select_related("invoice").first()
            if done is not None:
                return SettlementResult(done, done.invoice, False, None)
        context = SettlementContext(
            subscription=subscription, period_start=start, period_end=end, kind=kind,
            watermark=_watermark(
                subscription, now, settings.SETTLEMENT_WATERMARK_LAG_S if watermark_lag_s is None else watermark_lag_s
            ),
            now=now,
        )
        context.previously_invoiced = Invoice.objects.filter(
            settlement_run__subscription=subscription, settlement_run__period_start=start, settlement_run__kind="interim"
        ).aggregate(total=Sum("subtotal"))["total"] or ZERO
        if kind == SettlementRun.Kind.INTERIM and not _threshold_reached(context):
            return SettlementResult(None, None, False, None)
        for stage in STAGES:
            stage.run(context)
        if kind == SettlementRun.Kind.INTERIM and not context.aggregates:
            return SettlementResult(None, None, False, None)  # nothing rated before the watermark yet
        if dry_run:
            context.log("settle", dry_run=True, total=context.total())
            transaction.set_rollback(True)
            return SettlementResult(None, None, True, context)
        settled = settle.run(context)
        rollover.record(context, settled)
        return SettlementResult(settled, settled.invoice, True, context)
