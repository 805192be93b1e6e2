"""What the customer's page shows of alerts: the firings of their current periods."""

from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

from django.utils import timezone

from notify.models import AlertFiring

ACTIVE_SHOWN = 20


def alerts_active_for_customer(*, customer_id: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """The customer's firings in periods that have not ended, newest first (at most ACTIVE_SHOWN)."""
    now = now or timezone.now()
    rows = (
        AlertFiring.objects.filter(customer_id=customer_id, period_end__gt=now)
        .select_related("rule")
        .order_by("-id")[:ACTIVE_SHOWN]
    )
    return [
        {
            "id": f.pk, "rule": str(f.rule), "kind": f.kind, "metric": f.metric, "message": f.message,
            "triggered_at": f.triggered_at.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z"),
        }
        for f in rows
    ]
