"""What the customer's page shows of budget leases: the active ones, with what each still holds."""

from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

from django.utils import timezone

from aforo.money import decimal_text

from ..models import Lease

ACTIVE_SHOWN = 20


def leases_active_for_customer(*, customer_id: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """The customer's active leases not past their expiry (the sweep expires those within
    seconds), soonest to expire first: granted units (or amount) and what is left of it."""
    now = now or timezone.now()
    rows = (
        Lease.objects.filter(customer_id=customer_id, status=Lease.Status.ACTIVE, expires_at__gt=now)
        .select_related("metric")
        .order_by("expires_at", "id")[:ACTIVE_SHOWN]
    )
    shown = []
    for lease in rows:
        remaining = decimal_text(max(lease.leased - lease.consumed, lease.leased * 0))
        entry = {
            "id": lease.pk, "metric": lease.metric.code if lease.metric_id else "wallet", "holder": lease.holder,
            "remaining": remaining,
            "expires_at": lease.expires_at.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z"),
        }
        if lease.kind == Lease.Kind.MONEY:
            entry.update(amount=decimal_text(lease.leased), currency=lease.currency)
        else:
            entry["units"] = decimal_text(lease.leased)
        shown.append(entry)
    return shown
