"""Proration by time: a period a subscription started or ended within (a start mid-period, a
cancellation, a plan change) charges its fixed fees and its minimum commitment for the share of
the period it covers, to the microsecond (as Stripe prorates by the second); whole periods are
charged whole."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from aforo.periods import active_fraction
from billing.settlement import settlement_run
from tests.factories import priced_setup, rated_event

OCT, NOV = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
FLAT = {"model": "flat", "amount": "31"}


def test_active_fraction_is_exact():
    assert active_fraction(period_start=OCT, period_end=NOV, started_at=datetime(2026, 9, 1, tzinfo=UTC), ended_at=None) == (
        31 * 86400 * 10**6, 31 * 86400 * 10**6)
    assert active_fraction(period_start=OCT, period_end=NOV, started_at=datetime(2026, 10, 16, tzinfo=UTC), ended_at=None) == (
        16 * 86400 * 10**6, 31 * 86400 * 10**6)
    assert active_fraction(period_start=OCT, period_end=NOV, started_at=OCT, ended_at=datetime(2026, 10, 11, 12, tzinfo=UTC)) == (
        int(10.5 * 86400 * 10**6), 31 * 86400 * 10**6)
    assert active_fraction(period_start=OCT, period_end=NOV, started_at=OCT, ended_at=OCT)[0] == 0


def _lines(invoice):
    return [(line.kind, line.amount) for line in invoice.lines.order_by("position")]


@pytest.mark.django_db
def test_a_subscription_starting_mid_period_pays_its_share_of_fees_and_commitment():
    setup = priced_setup(config=FLAT, started_at=datetime(2026, 10, 16, tzinfo=UTC))
    setup.subscription.billing_anchor = OCT  # periods on the 1st; it started on the 16th: 16 of 31 days
    setup.subscription.min_commitment = Decimal(62)
    setup.subscription.save()
    invoice = settlement_run(subscription_id=setup.subscription.pk, at=datetime(2026, 10, 20, tzinfo=UTC)).invoice
    assert _lines(invoice) == [("base", Decimal("16.00")), ("commitment", Decimal("16.00"))]  # 31 × 16/31; 62 × 16/31 − 16
    assert "prorated 16d 00:00:00 of 31d 00:00:00 (51.61%)" in invoice.lines.get(kind="base").description
    november = settlement_run(subscription_id=setup.subscription.pk, at=datetime(2026, 11, 20, tzinfo=UTC)).invoice
    assert _lines(november) == [("base", Decimal("31.00")), ("commitment", Decimal("31.00"))]  # whole again


@pytest.mark.django_db
def test_a_cancellation_mid_period_prorates_the_minimum_and_usage_is_charged_as_rated():
    setup = priced_setup(rate="1", started_at=datetime(2026, 7, 1, tzinfo=UTC))
    setup.subscription.min_commitment = Decimal(100)
    setup.subscription.save()
    rated_event(setup, "oct-1", "7", at=datetime(2026, 10, 5, tzinfo=UTC))
    setup.subscription.ended_at = datetime(2026, 10, 11, 12, tzinfo=UTC)  # 10.5 of 31 days
    setup.subscription.save()
    invoice = settlement_run(subscription_id=setup.subscription.pk, at=datetime(2026, 10, 10, tzinfo=UTC)).invoice
    # minimum 100 × 10.5/31 = 33.870967…; usage 7 → true-up 26.87
    assert _lines(invoice) == [("usage", Decimal("7.00")), ("commitment", Decimal("26.87"))]
    assert invoice.total == Decimal("33.87")
