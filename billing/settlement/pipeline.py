"""The settlement run: one subscription, one period, the stages in order, one transaction — or,
with a plan change in the period, its parts' stages and then the invoice's (settlement.parts)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from catalog.models import Subscription
from catalog.terms import terms_version_for_period

from ..models import Invoice, SettlementRun
from ..periods import period_for
from . import aggregate, allowance, commit, coupons, credit_grants, discount, late_periods, parts, quota_check, rate, rollover, route, settle, tax
from .context import ZERO, SettlementContext
from .inputs import SubscriptionTerms, inputs_load, metric_minimums_of

# Rollover and Allowance log (and act) only for final runs of subscriptions with a RolloverPolicy.
STAGES = (quota_check, rollover, aggregate, allowance, rate, commit, discount, tax, credit_grants, route)
# A combined invoice (settlement.parts): each part's stages on its own lines and terms, then the
# invoice's once over all of them. A late part (an ended subscription's late usage) is not active
# in the period: no quota, rollover or allowance of it (commit adjusts only its late periods).
PART_STAGES = (quota_check, rollover, aggregate, allowance, rate, commit, discount)
LATE_PART_STAGES = (aggregate, rate, commit, discount)
INVOICE_STAGES = (coupons, tax, credit_grants, route)


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


def _ledger_read(context: SettlementContext, *, lag_s: int | None = None, watermark: int | None = None) -> None:
    """What a run reads besides its inputs, before the stages: the ranges and the rated ledger
    (the watermark), the wallet's real-time debits, and the late periods' figures."""
    context.ranges = context.inputs.ranges(context.period_start, final=context.final)
    aggregate.ledger_read(context, lag_s=lag_s or 0, watermark=watermark)
    route.realtime_debits_read(context)
    late_periods.late_periods_read(context)


def settlement_run(
    *, subscription_id: int, at: datetime, kind: str = "final", dry_run: bool = False, now: datetime | None = None,
    watermark_lag_s: int | None = None,
) -> SettlementResult:
    """Settle the period of `subscription_id` that contains `at`. A final run happens once per
    period (the unique constraint, and the subscription's row lock serialising its runs): run
    again, or concurrently, it returns the same invoice. A period with a plan change in it is
    settled ONCE for all its subscriptions (settlement.parts): one invoice, one final run per
    part, from whichever of them is settled first. `dry_run` computes everything and writes
    nothing (an invoice preview). An interim run (a threshold invoice, one subscription's)
    settles only when the threshold is still reached under the lock and something is rated
    below the watermark; otherwise it writes nothing and returns SettlementResult(None, None,
    False, None). `watermark_lag_s` (default SETTLEMENT_WATERMARK_LAG_S): 0 only where nothing
    can be rating this subscription concurrently (the demo back-fill, which rated the events
    itself)."""
    now = now or timezone.now()
    lag_s = settings.SETTLEMENT_WATERMARK_LAG_S if watermark_lag_s is None else watermark_lag_s
    with transaction.atomic(durable=not dry_run):
        # Only the subscription row is locked (and, with a plan change in the period, the
        # period's other subscriptions): settlements of one tenant run in parallel. A plan-change
        # lineage is locked whole first, in id order, whichever of its subscriptions is settled:
        # two settlements of one combined period started from different parts wait for each
        # other instead of deadlocking.
        lineage = [row.id for row in parts.lineage_read(subscription_id=subscription_id)]
        if len(lineage) > 1:
            list(Subscription.objects.select_for_update().filter(pk__in=lineage).order_by("pk").values_list("pk"))
        subscription = (
            Subscription.objects.select_for_update(of=("self",))
            .annotate(has_successor=Exists(Subscription.objects.filter(changed_from=OuterRef("pk"))))
            .get(pk=subscription_id)
        )
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
        _ledger_read(context, lag_s=lag_s)
        contexts: list[SettlementContext] = []
        if kind == SettlementRun.Kind.FINAL:
            period_parts = parts.period_parts_read(subscription=subscription, period_start=start, period_end=end)
            contexts = _part_contexts(context, period_parts, lag_s=lag_s)
        if contexts:
            context = _combine(contexts)
        else:
            coupons.coupons_read(context)
            credit_grants.credit_grants_read(context)
            for stage in STAGES:  # pure: they read the context, and write nothing
                stage.run(context)
        if kind == SettlementRun.Kind.INTERIM and not context.aggregates:
            return SettlementResult(None, None, False, None)  # nothing rated before the watermark yet
        if dry_run:
            context.log("settle", dry_run=True, total=context.total())
            transaction.set_rollback(True)
            return SettlementResult(None, None, True, context)
        settled = settle.run(context, parts=context.parts)
        return SettlementResult(settled, settled.invoice, True, context)


def _part_contexts(requested: SettlementContext, period_parts: list[parts.PeriodPart], *, lag_s: int) -> list[SettlementContext]:
    """The contexts of the period's parts in order, `requested` among them, the others read
    (their inputs and ledger) under their locks: members without a final run for the period, and
    late parts with late events under the watermark. [] when `requested` is the only part."""
    start, end = requested.period_start, requested.period_end
    others = {part.subscription_id: part for part in period_parts if part.subscription_id != requested.subscription.id}
    if not others:
        return []
    subscriptions = {s.pk: s for s in Subscription.objects.filter(pk__in=others)}
    contexts = []
    for part in period_parts:
        if part.subscription_id == requested.subscription.id:
            requested.part = parts.part_label(part, period_start=start, period_end=end)
            contexts.append(requested)
            continue
        other = subscriptions[part.subscription_id]
        terms = SubscriptionTerms.of(other, version=terms_version_for_period(subscription=other, period_start=start))
        inputs = inputs_load(terms, start)
        if not part.late and inputs.final_run(start) is not None:
            continue  # settled on its own before (an invoice issued before parts were combined)
        context = SettlementContext(
            subscription=terms, period_start=start, period_end=end, kind=SettlementRun.Kind.FINAL, watermark=0,
            now=requested.now, inputs=inputs, part=parts.part_label(part, period_start=start, period_end=end),
            late_part=part.late,
        )
        _ledger_read(context, lag_s=lag_s)
        if part.late and not context.ledger_rows:
            continue  # nothing late under the watermark yet
        contexts.append(context)
    if len(contexts) < 2:
        requested.part = ""
        return []
    return contexts


def _combine(contexts: list[SettlementContext], *, excluding_invoice: int | None = None) -> SettlementContext:
    """One invoice of several parts (oldest first; the period's last subscription last, the
    primary): each part's own stages over its own lines and terms — its charges, commitment and
    cap, its discounts (a subscription's terms) — then its lines join the primary's, labelled,
    and the invoice's stages run once over all of them: coupons, tax, route. Returns the
    primary context, its `parts` the others."""
    *others, primary = contexts
    for context in contexts:
        for stage in LATE_PART_STAGES if context.late_part else PART_STAGES:
            stage.run(context)
    merge_parts(primary, others)
    coupons.coupons_read(primary, excluding_invoice=excluding_invoice)
    credit_grants.credit_grants_read(primary, giving_back=excluding_invoice)
    for stage in INVOICE_STAGES:
        stage.run(primary)
    return primary


def merge_parts(primary: SettlementContext, others: list[SettlementContext]) -> None:
    """Pure: every part's lines labelled with their subscription and heading, the others' lines
    (in part order) before the primary's, and the wallet's real-time debits of all parts
    counted once on the invoice."""
    for context in (*others, primary):
        for line in context.lines:
            line.subscription_id, line.part = context.subscription.id, context.part
    primary.lines = [*(line for context in others for line in context.lines), *primary.lines]
    primary.wallet_realtime += sum((context.wallet_realtime for context in others), ZERO)
    primary.parts = list(others)


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


def _recomputed(settlement: SettlementRun, *, now: datetime) -> SettlementContext:
    """A run's context read again — its ranges, its watermark, the terms it applied — with no
    stage run yet."""
    terms = reissue_terms(settlement.subscription, settlement)
    inputs = inputs_load(terms, settlement.period_start, before_run=settlement.pk)
    context = SettlementContext(
        subscription=terms, period_start=settlement.period_start, period_end=settlement.period_end,
        kind=settlement.kind, watermark=settlement.watermark, now=now, inputs=inputs,
    )
    _ledger_read(context, watermark=settlement.watermark)
    return context


def settlement_recompute(settlement: SettlementRun, *, now: datetime) -> SettlementContext:
    """The stages again over exactly what `settlement` settled — its ranges (from the runs made
    before it) and its watermark — with the terms the run applied (reissue_terms), and the discounts, tax rates and grants in force for its period now (terms
    in use are never edited: billing.terms): what a reissue of its invoice says. Writes nothing; the
    caller holds the subscription's row lock (billing.invoicing). Rollover lots stay as the run
    recorded them (later periods may have drawn on them already)."""
    context = _recomputed(settlement, now=now)
    coupons.coupons_read(context, excluding_invoice=settlement.invoice_id)
    credit_grants.credit_grants_read(context, giving_back=settlement.invoice_id)
    context.wallet_settled = settle.wallet_settled(settlement, context.inputs.wallet.pk if context.inputs.wallet else None)
    for stage in STAGES:
        stage.run(context)
    return context


def settlements_recompute(settlements: list[SettlementRun], *, primary: SettlementRun, now: datetime) -> SettlementContext:
    """A combined invoice's recomputation: each of its runs (one per part) read again as
    settlement_recompute reads one, its part's stages, then the invoice's once (_combine) —
    the primary (`primary`, the invoice's subscription's run) last, the other parts in the order
    of their subscriptions. Returns the primary context (its `parts` the others)."""
    ordered = sorted(settlements, key=lambda run: (run.pk == primary.pk, run.subscription.started_at, run.pk))
    contexts = []
    for settlement in ordered:
        context = _recomputed(settlement, now=now)
        subscription = settlement.subscription
        part = parts.PeriodPart(
            subscription.pk, subscription.rate_plan.name, subscription.started_at, subscription.ended_at,
            late=context.active[0] == 0,
        )
        context.part = parts.part_label(part, period_start=settlement.period_start, period_end=settlement.period_end)
        context.late_part = part.late
        contexts.append(context)
    primary_context = contexts[-1]
    wallet = primary_context.inputs.wallet
    primary_context.wallet_settled = settle.wallet_settled(primary, wallet.pk if wallet else None)
    return _combine(contexts, excluding_invoice=primary.invoice_id)
