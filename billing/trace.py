"""Reads behind invoice traceability, shared by the invoices API, the admin and the customer
dashboard: a tenant's invoices, an invoice with its lines and settlement run, and the rated
events behind a usage line.

Contract of a usage line (billing.models.InvoiceLine): its rated events are those of its
invoice's subscription (or the line's own: a part of a combined invoice) with the line's metric, dimension_key and period_start and an id in
(rated_from_id, rated_to_id]; their amounts sum exactly to the line's amount_unrounded. Every
query here is served by an index: (customer|subscription, -issued_at) for lists, and
RatedEvent (subscription, metric, period_start) plus the id range for a line's events.

(Selectors; they belong in billing/selectors.py, kept here while that module is not ours.)"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum

from catalog.models import Tenant

from .models import Invoice, InvoiceLine, RatedEvent, SettlementRun

TRACEABLE_KINDS = (InvoiceLine.Kind.USAGE, InvoiceLine.Kind.LATE_USAGE)


def invoices_for_tenant(
    *, tenant: Tenant, customer_id: int | None = None, subscription_id: int | None = None
) -> QuerySet[Invoice]:
    """The tenant's invoices, newest first (issued_at, then id), optionally one customer's or
    one subscription's (its own, and the combined invoices it is a part of)."""
    invoices = Invoice.objects.filter(tenant=tenant)
    if customer_id is not None:
        invoices = invoices.filter(customer_id=customer_id)
    if subscription_id is not None:
        parts = SettlementRun.objects.filter(subscription_id=subscription_id).values("invoice_id")
        invoices = invoices.filter(Q(subscription_id=subscription_id) | Q(pk__in=parts))
    return invoices.select_related("customer").order_by("-issued_at", "-id")


def invoice_with_lines(*, invoices: QuerySet[Invoice], invoice_id: int) -> Invoice | None:
    """One invoice of `invoices` (already confined to what the caller may see) with its lines
    (and their metrics), its settlement run and the invoices it replaces / is replaced by."""
    return (
        invoices.select_related("customer", "subscription", "replaces", "replaced_by")
        .prefetch_related("lines__metric", "settlement_runs")
        .filter(pk=invoice_id)
        .first()
    )


@dataclass(frozen=True)
class InvoicePart:
    """A part of a combined invoice (a plan change in its period): one subscription's lines under
    its heading, and their sum."""

    subscription_id: int | None
    heading: str
    amount: Decimal
    lines: tuple[InvoiceLine, ...]


def invoice_parts(invoice: Invoice) -> list[InvoicePart]:
    """The parts of `invoice` in print order, from its lines (prefetched: no query then); [] for
    a one-part invoice. The lines of the whole invoice (coupons, taxes) belong to no part."""
    grouped: dict[tuple[int | None, str], list[InvoiceLine]] = {}
    for line in sorted(invoice.lines.all(), key=lambda line: line.position):
        if line.part:
            grouped.setdefault((line.subscription_id, line.part), []).append(line)
    return [
        InvoicePart(subscription_id, heading, sum((line.amount for line in lines), Decimal(0)), tuple(lines))
        for (subscription_id, heading), lines in grouped.items()
    ]


WHOLE_INVOICE = "The whole invoice"


def part_headings(lines: list[InvoiceLine]) -> list[str]:
    """Per line (in position order), the heading to print above it: its part's heading at the
    first line of each part of a combined invoice, WHOLE_INVOICE at the first line after the
    parts (coupons, taxes), else "". All "" on a one-part invoice. Pure."""
    headings, previous = [], ""
    combined = any(line.part for line in lines)
    for line in lines:
        current = line.part or (WHOLE_INVOICE if combined else "")
        headings.append(current if current != previous else "")
        previous = current
    return headings


def line_is_traceable(line: InvoiceLine) -> bool:
    return line.kind in TRACEABLE_KINDS and line.rated_to_id is not None


def invoice_line_rated_events(*, line: InvoiceLine, subscription_id: int) -> QuerySet[RatedEvent]:
    """The rated events behind a usage (or late usage) line, by id; empty for other lines. Its
    subscription: the line's own (a part of a combined invoice), else `subscription_id` (the
    invoice's)."""
    if not line_is_traceable(line):
        return RatedEvent.objects.none()
    return RatedEvent.objects.filter(
        subscription_id=line.subscription_id or subscription_id, metric_id=line.metric_id, dimension_key=line.dimension_key,
        period_start=line.period_start, trial=line.trial, id__gt=line.rated_from_id or 0, id__lte=line.rated_to_id,
    ).order_by("id")


def invoice_line_rated_sum(*, line: InvoiceLine, subscription_id: int) -> tuple[Decimal, int]:
    """(sum of amount, count) of a line's rated events, in one aggregate query."""
    found = invoice_line_rated_events(line=line, subscription_id=subscription_id).order_by().aggregate(
        total=Sum("amount"), count=Count("id")
    )
    return found["total"] or Decimal(0), found["count"]
