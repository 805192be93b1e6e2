"""Settlement cadences: which subscription periods are due for their final settlement, and
settling a customer's due periods (what the beat sweep fans out, and `settle --due`).

A period is due when it has ended (its end <= now) — or, for a subscription that ended
(canceled), when the subscription's end has passed: its last, partial period — and it has no
final settlement run. Periods exist from the one containing started_at up to ended_at. A
subscription that ended by a plan change within a period (its successor starts inside it) is
not due at its end: the period is settled once for both (billing.settlement.parts) when it is
over for the period's last subscription — its end, or that one's own cancellation.
"Over" waits out SETTLEMENT_WATERMARK_LAG_S after the end: the run's watermark only takes events
rated that long ago, so a period settled sooner would push its last events to the next invoice
as late lines."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import DateTimeField, Exists, F, Max, OuterRef, Q
from django.db.models.functions import Coalesce

from catalog.models import Subscription

from .models import SettlementRun
from .periods import period_for
from .settlement import SettlementResult, settlement_run

# The shortest period of each cadence: a period starting at T cannot end before T + this.
SHORTEST_PERIOD = {Subscription.Cadence.WEEKLY: timedelta(days=7), Subscription.Cadence.MONTHLY: timedelta(days=28)}


def _over_by(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.SETTLEMENT_WATERMARK_LAG_S)


def _period_is_over(
    *, start: datetime, end: datetime, ended_at: datetime | None, now: datetime, has_successor: bool = False
) -> bool:
    """`has_successor`: the subscription ended by a plan change; a period its successor shares
    (the change inside it, not at its start) waits for its end (or for the successor's own
    cancellation: then that one is due, and settles both)."""
    over_by = _over_by(now)
    shared = has_successor and ended_at is not None and start < ended_at < end
    return end <= over_by or (not shared and ended_at is not None and start < ended_at <= over_by)


def subscription_due_periods(*, subscription: Subscription, now: datetime) -> list[datetime]:
    """The starts of `subscription`'s periods that are over by `now` and have no final run,
    oldest first (gaps included: a period skipped while later ones were settled is still due)."""
    settled = set(
        SettlementRun.objects.filter(subscription=subscription, kind=SettlementRun.Kind.FINAL).values_list("period_start", flat=True)
    )
    cadence, anchor, ended_at = subscription.billing_cadence, subscription.billing_anchor, subscription.ended_at
    successor = ended_at is not None and Subscription.objects.filter(changed_from=subscription).exists()
    start, end = period_for(cadence=cadence, anchor=anchor, at=subscription.started_at)
    due: list[datetime] = []
    while (ended_at is None or start < ended_at) and _period_is_over(
        start=start, end=end, ended_at=ended_at, now=now, has_successor=successor
    ):
        if start not in settled:
            due.append(start)
        start, end = period_for(cadence=cadence, anchor=anchor, at=end)
    return due


def customers_due(*, now: datetime) -> list[int]:
    """Customers with at least one subscription whose next period after its last final run is
    over (the sweep's one query, narrowed in SQL by each cadence's shortest period, then decided
    exactly with period_for). A gap before the last final run is found by
    subscription_due_periods when the customer is settled, not here."""
    over_by = _over_by(now)
    settled_to = Max("settlement_runs__period_end", filter=Q(settlement_runs__kind=SettlementRun.Kind.FINAL))
    next_start = Coalesce(settled_to, F("billing_anchor"), output_field=DateTimeField())
    candidates = (
        Subscription.objects.filter(started_at__lt=now)
        .annotate(settled_to=settled_to, next_start=next_start,
                  has_successor=Exists(Subscription.objects.filter(changed_from=OuterRef("pk"))))
        .filter(Q(ended_at__isnull=True) | Q(settled_to__isnull=True) | Q(settled_to__lt=F("ended_at")))
        .filter(
            Q(ended_at__lte=over_by)
            | Q(billing_cadence=Subscription.Cadence.WEEKLY, next_start__lte=over_by - SHORTEST_PERIOD["weekly"])
            | Q(billing_cadence=Subscription.Cadence.MONTHLY, next_start__lte=over_by - SHORTEST_PERIOD["monthly"])
        )
        .values_list("customer_id", "billing_cadence", "billing_anchor", "started_at", "ended_at", "settled_to",
                     "has_successor")
    )
    customers: set[int] = set()
    for customer_id, cadence, anchor, started_at, ended_at, settled_to, has_successor in candidates:
        start, end = period_for(cadence=cadence, anchor=anchor, at=settled_to or started_at)
        if (ended_at is None or start < ended_at) and _period_is_over(
            start=start, end=end, ended_at=ended_at, now=now, has_successor=has_successor
        ):
            customers.add(customer_id)
    return sorted(customers)


def customer_settle_due(*, customer_id: int, now: datetime, dry_run: bool = False) -> list[SettlementResult]:
    """Settle every due period of the customer's subscriptions, oldest first (a late event of an
    earlier period must find that period's final run to land as an adjustment). Idempotent and
    safe to run concurrently: settlement_run is once per period under the subscription's lock.
    `dry_run`: previews, writing nothing (each period previewed on its own)."""
    due = sorted(
        (start, subscription.pk)
        for subscription in Subscription.objects.filter(customer_id=customer_id).order_by("pk")
        for start in subscription_due_periods(subscription=subscription, now=now)
    )
    return [settlement_run(subscription_id=subscription_id, at=start, dry_run=dry_run) for start, subscription_id in due]
