"""Invoice corrections. A finalized invoice never changes its figures: voiding it (status,
voided_at, void_reason) issues a credit note for its total (billing.invoices.credit_notes;
none for a draft, never issued) and a new document — a new number, `replaces` pointing
to the voided one — takes its place as its settlement run's invoice.

The replacement is RECOMPUTED: the settlement stages run again over exactly the rated events the
run settled (its ranges and watermark; billing.settlement.pipeline.settlement_recompute) with
the subscription's terms as they are now — a corrected discount, tax rate, commitment, cap or
grant shows on the new document, and the usage lines (the rated ledger is immutable) are the
same. The wallet takes, or gives back, only the difference from what the run's settlement
already took, once (its key names the voided invoice). Every ledger invariant still holds: void
invoices' lines are ignored, and the replacement's usage lines cover the same events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from catalog.models import Subscription

from .invoices import lifecycle
from .invoices.credit_notes import credit_note_issue
from .invoices.services import InvoiceTransitionRefused
from .invoices.webhooks import invoice_event_emit
from .models import CreditNote, Invoice, RunningTotal, SettlementRun
from .settlement import settle
from .settlement.pipeline import settlement_recompute, settlements_recompute


class InvoiceAlreadyVoid(InvoiceTransitionRefused):
    """The invoice was voided already; `replacement` is the invoice that reissued it."""

    def __init__(self, invoice: Invoice, replacement: Invoice | None) -> None:
        super().__init__(invoice, "invoice_void", "it is void already.")
        self.replacement = replacement


@dataclass
class Reissue:
    voided: Invoice
    replacement: Invoice
    credit_note: CreditNote | None = None  # issued when the voided invoice had been issued (not a draft)


def invoice_void_and_reissue(
    *, invoice: Invoice, reason: str, now: datetime | None = None, include_through: int | None = None
) -> Reissue:
    """Void `invoice` and issue its recomputed replacement (new number, `replaces` = the voided
    one); its settlement run moves to the replacement, and the run's stage log gains a "reissue"
    entry with what the stages did this time. One durable transaction, under the subscription's
    row lock (as settlement takes it) and the invoice's; its status is re-checked under the
    lock, so two concurrent voids make one replacement: the second raises InvoiceAlreadyVoid
    naming it. A paid invoice is refused (InvoiceTransitionRefused `invoice_paid`). An issued
    (finalized or uncollectible) invoice gets a credit note for its total; invoice.voided is sent.

    `include_through` (a re-rating's "void and reissue", billing.rerating): the run's watermark
    is raised to that rated id first, so the replacement bills the corrections written after the
    run settled. Only for an invoice of one run that is its subscription's latest (a later run
    may have billed the period's late events already: `later_runs`), else refused."""
    now = now or timezone.now()
    reason = reason.strip()[:300]
    with transaction.atomic(durable=True):
        # The subscriptions of its runs (a combined invoice has one per part), in id order as
        # settlement locks a period's parts.
        part_ids = SettlementRun.objects.filter(invoice_id=invoice.pk).values("subscription_id")
        list(Subscription.objects.select_for_update().filter(Q(pk=invoice.subscription_id) | Q(pk__in=part_ids))
             .order_by("pk").values_list("pk"))
        voided = Invoice.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=invoice.pk)
        if voided.status == Invoice.Status.VOID:
            raise InvoiceAlreadyVoid(voided, Invoice.objects.filter(replaces=voided).first())
        plan = lifecycle.transition_plan(lifecycle.InvoiceState(status=voided.status), action=lifecycle.VOID_ACTION)
        if plan.refused:
            raise InvoiceTransitionRefused(voided, plan.refused, plan.message)
        settlements = list(SettlementRun.objects.select_related("subscription__rate_plan").filter(invoice=voided).order_by("pk"))
        settlement = next((run for run in settlements if run.subscription_id == voided.subscription_id), settlements[-1])
        if include_through is not None and include_through > settlement.watermark:
            if len(settlements) > 1 or SettlementRun.objects.filter(
                    subscription_id=settlement.subscription_id, pk__gt=settlement.pk).exists():
                raise InvoiceTransitionRefused(
                    voided, "later_runs", "a later run (or another part of the invoice) may have billed the period's "
                    "newer events: it cannot be reissued to include them.",
                )
            # Every rated id up to include_through must be committed before the ledger is read:
            # an event rated into this subscription's totals takes its id under the total's lock,
            # so waiting for those locks lets every earlier id commit (later ones are above).
            list(RunningTotal.objects.select_for_update().filter(
                subscription_id=settlement.subscription_id, period_start__lte=settlement.period_start,
            ).order_by("pk").values_list("pk"))
            settlement.watermark = include_through
            settlement.save(update_fields=["watermark"])
        if len(settlements) == 1:
            context = settlement_recompute(settlement, now=now)
        else:  # a combined invoice: every part again, one replacement
            context = settlements_recompute(settlements, primary=settlement, now=now)
        replacement = settle.reissue(context, settlement=settlement, voided=voided)
        credit_note = credit_note_issue(invoice=voided, reason=reason, now=now) if plan.credit_note else None
        Invoice.objects.filter(pk=voided.pk).update(status=Invoice.Status.VOID, voided_at=now, void_reason=reason)
        stages = {part.subscription.id: part.stages for part in context.parts}
        stages[settlement.subscription_id] = context.stages
        for run in settlements:
            run.invoice = replacement
            run.stages = [
                *run.stages, {"stage": "reissue", "voided": voided.number, "reason": reason,
                              "stages": stages.get(run.subscription_id, [])}
            ]
            run.save(update_fields=["invoice", "stages"])
        voided.refresh_from_db()
        invoice_event_emit(
            invoice=voided, event_type="invoice.voided", reason=reason, replaced_by=replacement.pk,
            credit_note=credit_note.number if credit_note else None,
        )
    return Reissue(voided, replacement, credit_note)
