"""Billing reads: rated records for re-publishing, and the customer's current usage."""

from __future__ import annotations

from collections.abc import Sequence

from .models import RatedEvent


def rated_records_for_raw_events(*, raw_event_ids: Sequence[int]):
    """The rated records (as published on usage.rated.v1) of already-rated raw events."""
    from .services import RatedRecord

    rows = (
        RatedEvent.objects.filter(raw_event_id__in=list(raw_event_ids))
        .select_related("metric", "raw_event")
        .order_by("id")
    )
    return [
        RatedRecord(
            rated_event_id=r.id,
            raw_event_id=r.raw_event_id,
            tenant_id=r.tenant_id,
            event_id=r.raw_event.event_id,
            customer_id=r.customer_id,
            subscription_id=r.subscription_id,
            metric=r.metric.code,
            dimension_key=r.dimension_key,
            quantity=r.quantity,
            units_before=r.units_before,
            units_after=r.units_after,
            amount=r.amount,
            currency=r.currency,
            rate_plan_version_id=r.rate_plan_version_id,
            period_start=r.period_start,
            period_end=r.period_end,
            timestamp=r.event_timestamp,
            rated_at=r.rated_at,
        )
        for r in rows
    ]
