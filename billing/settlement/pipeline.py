"""The settlement run: one subscription, one period, the stages in order, one transaction."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from catalog.models import Subscription
from catalog.terms import terms_version_for_period

from ..models import Invoice, SettlementRun
from ..periods import period_for
from . import aggregate, allowance, commit, coupons, discount, late_periods, quota_check, rate, rollover, route, settle, tax
from .context import ZERO, SettlementContext
from .inputs import SubscriptionTerms, inputs_load, metric_minimums_of

# Rollover and Allowance log (and act) only for final runs of subscriptions with a RolloverPolicy.
STAGES = (quota_check, rollover, aggregate, allowance, rate, commit, discount, tax, route)


@dataclass
class SettlementResult:
    run: SettlementRun | None  # None for a dry run
    invoice: Invoice | None
    created: bool  # False: the period was settled already and this is that settlement
    context: SettlementContext | None  # what the stages computed (None when it was settled already)


def _threshold_reached(context: SettlementContext) -> bool:
    """An interim invoice is due when the period's accrued charges (its running totals' amounts)
    less what this period's interim invoices already billed reach the subscription's
    invoice_threshold, and the period has no final run yet. Checked under the subscription's
    lock, so a threshold task that arrives after another one invoiced the same charges does
    nothing. (Compared with the rated amounts the interim invoices covered, not their subtotals:
    a spend cap can zero those, and the same charges would trigger invoice after invoice.)"""
    threshold = context.subscription.invoice_threshold
    if threshold is None or context.inputs.final_run(context.period_start) is not None:
        return False  # no threshold; or settled on demand already: the rest lands on the next invoice
    accrued = sum((total.amount for total in context.inputs.totals), ZERO)
    return accrued - context.inputs.interim_usage >= threshold


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
        # Only the subscription row is locked: settlements of one tenant run in parallel.
        subscription = Subscription.objects.select_for_update().get(pk=subscription_id)
        start, end = period_for(cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, at=at)
        # The terms of the version in effect at the period's start (catalog.terms).
        terms = SubscriptionTerms.of(subscription, version=terms_version_for_period(subscription=subscription, period_start=start))
        inputs = inputs_load(terms, start)
        if kind == SettlementRun.Kind.FINAL and (done := inputs.final_run(start)) is not None:
            run = SettlementRun.objects.select_related("invoice").get(pk=done.id)
            return SettlementResult(run, run.invoice, False, None)
        context = SettlementContext(
            subscription=terms, period_start=start, period_end=end, kind=kind, watermark=0, now=now, inputs=inputs
        )
        if kind == SettlementRun.Kind.INTERIM and not _threshold_reached(context):
            return SettlementResult(None, None, False, None)
        context.ranges = inputs.ranges(start, final=context.final)
        aggregate.ledger_read(
            context, lag_s=settings.SETTLEMENT_WATERMARK_LAG_S if watermark_lag_s is None else watermark_lag_s
        )
        route.realtime_debits_read(context)
        late_periods.late_periods_read(context)
        coupons.coupons_read(context)
        for stage in STAGES:  # pure: they read the context, and write nothing
            stage.run(context)
        if kind == SettlementRun.Kind.INTERIM and not context.aggregates:
            return SettlementResult(None, None, False, None)  # nothing rated before the watermark yet
        if dry_run:
            context.log("settle", dry_run=True, total=context.total())
            transaction.set_rollback(True)
            return SettlementResult(None, None, True, context)
        settled = settle.run(context)
        return SettlementResult(settled, settled.invoice, True, context)


def _as_settled(terms: SubscriptionTerms, settlement: SettlementRun) -> SubscriptionTerms:
    """The subscription's commitment terms as `settlement` applied them (its Commit log), so a
    reissue of a settled period keeps its minimum commitment and spend cap when they have changed
    since; a run logged before they were recorded: the terms now."""
    logged = late_periods.settled_terms(settlement.stages if isinstance(settlement.stages, list) else [])
    if logged is None or "subscription_min_commitment" not in logged:
        return terms
    decimal = lambda value: None if value is None else Decimal(value)  # noqa: E731
    minimums = logged.get("subscription_metric_minimums")
    return replace(
        terms, min_commitment=decimal(logged["subscription_min_commitment"]), spend_cap=decimal(logged.get("spend_cap")),
        spend_cap_action=logged.get("spend_cap_action") or "cap",
        metric_minimums=metric_minimums_of(minimums if isinstance(minimums, dict) else {}),
    )


def reissue_terms(subscription: Subscription, settlement: SettlementRun) -> SubscriptionTerms:
    """The terms a reissue of `settlement` settles with: the version governing its period now —
    the one it was settled with, since a version added later takes effect from the current
    period on, unless it was a retroactive correction (then the correction: its point). A run
    settled from the subscription's own fields (no version yet, its log names none) keeps the
    figures its log recorded (_as_settled) unless a version created after it governs its period."""
    version = terms_version_for_period(subscription=subscription, period_start=settlement.period_start)
    logged = late_periods.settled_terms(settlement.stages if isinstance(settlement.stages, list) else []) or {}
    if version is not None and (logged.get("terms_version") is not None or version.created_at > settlement.created_at):
        return SubscriptionTerms.of(subscription, version=version)
    return _as_settled(SubscriptionTerms.of(subscription), settlement)


def settlement_recompute(settlement: SettlementRun, *, now: datetime) -> SettlementContext:
    """The stages again over exactly what `settlement` settled — its ranges (from the runs made
    before it) and its watermark — with the terms the run applied (reissue_terms), and the discounts, tax rates and grants in force for its period now (terms
    in use are never edited: billing.terms): what a reissue of its invoice says. Writes nothing; the
    caller holds the subscription's row lock (billing.invoicing). Rollover lots stay as the run
    recorded them (later periods may have drawn on them already)."""
    terms = reissue_terms(settlement.subscription, settlement)
    inputs = inputs_load(terms, settlement.period_start, before_run=settlement.pk)
    context = SettlementContext(
        subscription=terms, period_start=settlement.period_start, period_end=settlement.period_end,
        kind=settlement.kind, watermark=settlement.watermark, now=now, inputs=inputs,
    )
    context.ranges = inputs.ranges(settlement.period_start, final=context.final)
    aggregate.ledger_read(context, watermark=settlement.watermark)
    route.realtime_debits_read(context)
    late_periods.late_periods_read(context)
    coupons.coupons_read(context, excluding_invoice=settlement.invoice_id)
    context.wallet_settled = settle.wallet_settled(settlement, inputs.wallet.pk if inputs.wallet else None)
    for stage in STAGES:
        stage.run(context)
    return context
