"""seed_demo's history: usage in the demo subscriptions' past periods, rated through the real
pipeline code (validation, enrichment, delta rating, real-time wallet debits) and settled
through the real settlement pipeline, so a fresh install shows past invoices, wallet history
and usage. Deterministic and idempotent: event ids are fixed, the raw ledger drops repeats, and
a settled period returns its invoice."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

HISTORY_EVENTS_PER_DAY = 12


def demo_history_backfill(seeded: dict[str, Any], *, now: datetime | None = None) -> dict[str, int]:
    from billing.periods import period_for
    from billing.settlement import settlement_run
    from catalog.models import Subscription
    from .events import demo_event
    from metering.enrichment import EnrichmentCache
    from metering.models import RawEvent
    from billing.usage import IncomingEvent, usage_batch_record
    from metering.validation import validate_event

    now = now or timezone.now()
    start = datetime.fromisoformat(seeded["history_start"])
    tenant_id = seeded["tenant"]["id"]
    customers = seeded["customers"]
    first_day = start.date()
    if not RawEvent.objects.filter(tenant_id=tenant_id, event_id=f"history-{customers[0]['id']}-{first_day:%Y%m%d}-0").exists():
        cache = EnrichmentCache()
        day = start
        while day + timedelta(days=1) <= now:
            batch = []
            for customer in customers:
                rng = random.Random(f"{customer['id']}-{day:%Y%m%d}")
                for n in range(HISTORY_EVENTS_PER_DAY):
                    at = day + timedelta(seconds=rng.randint(0, 86_399))
                    raw = demo_event(customer, rng=rng, at=at, event_id=f"history-{customer['id']}-{day:%Y%m%d}-{n}")
                    raw["metadata"]["gateway"] = "demo-history"
                    event = validate_event(raw, now=at + timedelta(seconds=1))  # as if received then
                    batch.append(IncomingEvent(tenant_id, event.subject, event, at + timedelta(seconds=1), None, None))
            usage_batch_record(events=batch, cache=cache)
            _accepted_record(tenant_id, batch)
            day += timedelta(days=1)
    for customer in customers:
        subscription = Subscription.objects.get(pk=customer["subscription_id"])
        at = subscription.billing_anchor
        while True:
            period_start, period_end = period_for(cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, at=at)
            if period_end > now:
                break
            settlement_run(subscription_id=subscription.pk, at=period_start, watermark_lag_s=0)
            at = period_end
    from billing.invoices.services import invoice_mark_paid
    from billing.models import Invoice

    # A finance team's books: every past invoice but each customer's newest is paid (by bank
    # transfer, referenced by its number); the newest is due. The same reference again is a no-op.
    for customer in customers:
        invoices = Invoice.objects.filter(subscription_id=customer["subscription_id"], status=Invoice.Status.FINALIZED)
        for invoice in invoices.order_by("-period_start", "-id")[1:]:
            invoice_mark_paid(invoice_id=invoice.pk, reference=f"DEMO-TRANSFER-{invoice.number}", now=now)

    # What the history holds (the same on every run: the output of seed_demo --json is stable).
    return {
        "events": RawEvent.objects.filter(tenant_id=tenant_id, event_id__startswith="history-").count(),
        "invoices": Invoice.objects.filter(subscription_id__in=[c["subscription_id"] for c in customers]).count(),
    }


def _accepted_record(tenant_id: int, batch: list) -> None:
    """The back-filled events stand for API traffic of the past ("as if received then"): they are
    counted as accepted per subject and arrival minute, as the ingest API counts what it answers
    202 for, so the demo's reconciliation (metering.reconciliation) balances like live traffic.
    One flush id per minute: seeding again adds nothing."""
    from collections import Counter

    from metering.models import IngestCount

    counts = Counter((event.subject, event.received_at.replace(second=0, microsecond=0)) for event in batch)
    IngestCount.objects.bulk_create(
        [IngestCount(tenant_id=tenant_id, subject=subject, minute=minute, accepted=n,
                     flush_id=f"demo-history:{minute:%Y%m%dT%H%M}") for (subject, minute), n in counts.items()],
        ignore_conflicts=True,
    )
