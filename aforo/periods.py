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


def periods_between(*, cadence: str, first: datetime, later: datetime) -> int:
    """How many periods after the period starting at `first` the one starting at `later` is
    (0: the same period); both must be period starts of the same subscription."""
    first, later = first.astimezone(timezone.utc), later.astimezone(timezone.utc)
    if cadence == WEEKLY:
        return (later - first) // timedelta(weeks=1)
    if cadence != MONTHLY:
        raise ValueError(f"unknown billing cadence {cadence!r}")
    return (later.year - first.year) * 12 + (later.month - first.month)


def term_applies(
    *, cadence: str, anchor: datetime, period_start: datetime, starts_at: datetime, ends_at: datetime | None,
    periods: int | None = None,
) -> bool:
    """Whether an effective-dated term (billing.models.terms) applies to the period starting at
    `period_start`: from the period containing `starts_at` (a term without one: the
    subscription's start), to the periods starting before `ends_at` (None: open-ended), at most
    `periods` of them (None: no limit)."""
    if ends_at is not None and period_start >= ends_at:
        return False
    first = period_for(cadence=cadence, anchor=anchor, at=max(starts_at, anchor))[0]
    if period_start < first:
        return False
    return periods is None or periods_between(cadence=cadence, first=first, later=period_start) < periods


def periods_ended(
    *, cadence: str, anchor: datetime, started_at: datetime, now: datetime, ended_at: datetime | None = None, limit: int = 1000
) -> list[tuple[datetime, datetime]]:
    """The periods [start, end) of a subscription starting at `started_at` that are already over
    at `now` (or by `ended_at`): what settlement will invoice at once for a backdated one.
    At most `limit` of them (the caller says "and more")."""
    periods: list[tuple[datetime, datetime]] = []
    start, end = period_for(cadence=cadence, anchor=anchor, at=started_at)
    while end <= now and (ended_at is None or start < ended_at) and len(periods) < limit:
        periods.append((start, end))
        start, end = end, period_for(cadence=cadence, anchor=anchor, at=end)[1]
    return periods


def active_fraction(
    *, period_start: datetime, period_end: datetime, started_at: datetime | None, ended_at: datetime | None
) -> tuple[int, int]:
    """(active, whole): the microseconds of [period_start, period_end) a subscription active in
    [started_at, ended_at) covers, and the period's length — proration by the second (by the
    microsecond: exact), as Stripe prorates. A whole period is (whole, whole)."""
    whole = period_end - period_start
    start = max(period_start, started_at) if started_at is not None else period_start
    end = min(period_end, ended_at) if ended_at is not None else period_end
    active = max(end - start, timedelta(0))
    micro = timedelta(microseconds=1)
    return active // micro, whole // micro
