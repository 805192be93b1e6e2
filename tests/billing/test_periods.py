"""Billing periods: half-open, contiguous, anchored, clamped at month ends."""

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.periods import period_for

UTC = timezone.utc


def at(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    "anchor, moment, start, end",
    [
        (at(2026, 1, 1), at(2026, 11, 24, 10), at(2026, 11, 1), at(2026, 12, 1)),
        (at(2026, 1, 1), at(2026, 12, 1), at(2026, 12, 1), at(2027, 1, 1)),  # the end is exclusive
        (at(2026, 1, 31), at(2026, 2, 15), at(2026, 1, 31), at(2026, 2, 28)),  # clamped to February's end
        (at(2026, 1, 31), at(2026, 3, 1), at(2026, 2, 28), at(2026, 3, 31)),
        (at(2024, 1, 31), at(2024, 2, 29, 12), at(2024, 2, 29), at(2024, 3, 31)),  # leap year
        (at(2026, 1, 15, 9, 30), at(2026, 3, 15, 9, 29), at(2026, 2, 15, 9, 30), at(2026, 3, 15, 9, 30)),
        (at(2026, 5, 10), at(2026, 4, 20), at(2026, 4, 10), at(2026, 5, 10)),  # before the anchor
    ],
)
def test_monthly(anchor, moment, start, end):
    assert period_for(cadence="monthly", anchor=anchor, at=moment) == (start, end)


def test_weekly():
    anchor = at(2026, 11, 2)  # a Monday
    assert period_for(cadence="weekly", anchor=anchor, at=at(2026, 11, 24, 10)) == (at(2026, 11, 23), at(2026, 11, 30))


def test_naive_datetimes_and_unknown_cadences_are_refused():
    with pytest.raises(ValueError):
        period_for(cadence="monthly", anchor=datetime(2026, 1, 1), at=at(2026, 1, 2))
    with pytest.raises(ValueError):
        period_for(cadence="daily", anchor=at(2026, 1, 1), at=at(2026, 1, 2))


moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@given(anchor=moments, moment=moments, cadence=st.sampled_from(["monthly", "weekly"]))
def test_the_period_contains_the_moment_and_the_next_one_starts_where_it_ends(anchor, moment, cadence):
    start, end = period_for(cadence=cadence, anchor=anchor, at=moment)
    assert start <= moment < end
    assert period_for(cadence=cadence, anchor=anchor, at=end)[0] == end
    assert period_for(cadence=cadence, anchor=anchor, at=end - timedelta(microseconds=1)) == (start, end)
    assert timedelta(days=7) if cadence == "weekly" else timedelta(days=28) <= end - start <= timedelta(days=31)
