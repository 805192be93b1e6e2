"""Billing periods: pure date arithmetic, half-open [start, end), timezone-aware (UTC).

A subscription's periods start at its billing anchor and follow its cadence: monthly periods
start on the anchor's day of month (clamped to the month's last day: an anchor on the 31st
gives Feb 28/29), weekly periods every 7 days from the anchor."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta, timezone

MONTHLY = "monthly"
WEEKLY = "weekly"


def _add_months(anchor: datetime, months: int) -> datetime:
    month_index = anchor.month - 1 + months
    year, month = anchor.year + month_index // 12, month_index % 12 + 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


def period_for(*, cadence: str, anchor: datetime, at: datetime) -> tuple[datetime, datetime]:
    """The billing period [start, end) of a subscription that contains instant `at`."""
    if anchor.tzinfo is None or at.tzinfo is None:
        raise ValueError("period_for needs timezone-aware datetimes")
    anchor = anchor.astimezone(timezone.utc)
    at = at.astimezone(timezone.utc)
    if cadence == WEEKLY:
        weeks = (at - anchor) // timedelta(weeks=1)
        start = anchor + timedelta(weeks=weeks)
        return start, start + timedelta(weeks=1)
    if cadence != MONTHLY:
        raise ValueError(f"unknown billing cadence {cadence!r}")
    months = (at.year - anchor.year) * 12 + (at.month - anchor.month)
    start = _add_months(anchor, months)
    if start > at:
        months -= 1
        start = _add_months(anchor, months)
    return start, _add_months(anchor, months + 1)
