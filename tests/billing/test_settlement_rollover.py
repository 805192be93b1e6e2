"""Rollover and Allowance on real PostgreSQL, weekly periods settled in order: unused included
units carried (capped), expiring after N periods, and applied as an allowance line priced
exactly like the engine's quote of the events' config."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import RolloverGrant, RolloverPolicy
from billing.rating import compile_config
from billing.settlement import settlement_run
from billing.verification import ledger_verify
from catalog.models import Subscription
from tests.billing.test_settlement import lines, rate
from tests.factories import priced_setup

WEEK = timedelta(weeks=1)
TIERED = {
    "model": "graduated",
    "tiers": [
        {"up_to": "10", "unit_amount": "0"}, {"up_to": "20", "unit_amount": "0.5"}, {"up_to": None, "unit_amount": "0.25"},
    ],
}


def weekly(*, included="10", cap=None, expires=1, config=None):
    """A weekly subscription whose first period started 8 weeks ago, 10 units included (free)."""
    anchor = timezone.now() - 8 * WEEK
    setup = priced_setup(rate="1", included_free="10", started_at=anchor, config=config)
    Subscription.objects.filter(pk=setup.subscription.pk).update(billing_cadence="weekly")
    RolloverPolicy.objects.create(
        tenant=setup.tenant, subscription=setup.subscription, metric=setup.metric, included_units=Decimal(included),
        cap_units=None if cap is None else Decimal(cap), expires_after_periods=expires,
    )
    return setup, anchor


def period(setup, anchor, week, *usage):
    """Rate `usage` in week `week` (0 = the first) and settle that week."""
    day = anchor + week * WEEK + timedelta(days=1)
    for n, quantity in enumerate(usage):
        rate(setup, f"w{week}-{n}", quantity, at=day + timedelta(minutes=n))
    return settlement_run(subscription_id=setup.subscription.pk, at=day)


def carried(result):
    return [(g.units, g.last_period_start) for g in RolloverGrant.objects.filter(run=result.run).order_by("id")]


@pytest.mark.django_db
def test_unused_units_carry_and_pay_for_next_periods_overage():
    setup, anchor = weekly()
    first = period(setup, anchor, 0, "4")
    assert carried(first) == [(Decimal(6), anchor + WEEK)]  # usable in week 1 only
    second = period(setup, anchor, 1, "13")  # 3 over the included 10, paid by the carried 6
    assert lines(second.invoice) == [("usage", Decimal("3.00")), ("allowance", Decimal("-3.00"))]
    assert second.invoice.total == 0
    assert carried(second) == []  # the 3 left expire with week 1; nothing unused this week
    stages = {s["stage"]: s for s in second.run.stages}
    assert stages["rollover"]["metrics"][0]["drawn"] == "3" and stages["rollover"]["metrics"][0]["expired"] == "0"
    assert [s["stage"] for s in second.run.stages][:4] == ["quota_check", "rollover", "aggregate", "allowance"]
    assert ledger_verify() == []


@pytest.mark.django_db
def test_carried_balance_is_capped():
    setup, anchor = weekly(cap="8", expires=3)
    assert carried(period(setup, anchor, 0)) == [(Decimal(8), anchor + 3 * WEEK)]  # 10 unused, capped at 8
    second = period(setup, anchor, 1, "5")  # 5 unused, but the balance is at the cap already
    assert [units for units, _ in carried(second)] == [Decimal(8)]
    third = period(setup, anchor, 2, "12")  # draws 2 of the 8; 0 unused
    assert lines(third.invoice) == [("usage", Decimal("2.00")), ("allowance", Decimal("-2.00"))]
    assert [units for units, _ in carried(third)] == [Decimal(6)]
    assert ledger_verify() == []


@pytest.mark.django_db
@pytest.mark.parametrize(("expires", "allowance"), [(1, None), (2, Decimal("-4.00"))])
def test_carried_units_expire_after_n_periods(expires, allowance):
    setup, anchor = weekly(expires=expires)
    period(setup, anchor, 0, "4")  # 6 carried
    period(setup, anchor, 1, "10")  # all included used, nothing drawn
    third = period(setup, anchor, 2, "14")  # 4 over: the lot from week 0 is 2 periods old
    expected = [("usage", Decimal("4.00"))] if allowance is None else [("usage", Decimal("4.00")), ("allowance", allowance)]
    assert lines(third.invoice) == expected
    assert ledger_verify() == []


@pytest.mark.django_db
def test_allowance_credit_is_the_engines_quote_difference():
    setup, anchor = weekly(config=TIERED)
    period(setup, anchor, 0, "2")  # 8 carried
    second = period(setup, anchor, 1, "20", "5")  # 25 units: 15 over the included 10, 8 of them carried
    model = compile_config(TIERED).for_key("")
    credit = model.quote(Decimal(25)) - model.quote(Decimal(17))
    assert credit == Decimal("2.75")  # 5 × 0.5 + 5 × 0.25 − 7 × 0.5
    allowance = second.invoice.lines.get(kind="allowance")
    assert (allowance.amount_unrounded, allowance.units) == (-credit, Decimal(8))
    usage = second.invoice.lines.get(kind="usage")
    assert usage.amount == Decimal("6.25") and second.invoice.total == Decimal("3.50")
    assert ledger_verify() == []


@pytest.mark.django_db
def test_no_allowance_and_nothing_carried_when_included_units_are_fully_used():
    setup, anchor = weekly()
    first = period(setup, anchor, 0, "10")
    assert carried(first) == []
    second = period(setup, anchor, 1, "15")
    assert lines(second.invoice) == [("usage", Decimal("5.00"))]
    assert not second.invoice.lines.filter(kind="allowance").exists()
    assert ledger_verify() == []


@pytest.mark.django_db
def test_subscriptions_without_a_policy_skip_both_stages():
    setup = priced_setup(rate="1")
    rate(setup, "a", "2")
    result = settlement_run(subscription_id=setup.subscription.pk, at=timezone.now())
    assert "rollover" not in [s["stage"] for s in result.run.stages]
    assert not RolloverGrant.objects.exists()


@pytest.mark.django_db
def test_a_gap_period_settled_after_a_later_one_neither_draws_nor_carries():
    setup, anchor = weekly(expires=3)
    period(setup, anchor, 0, "4")  # 6 carried, usable up to week 3
    rate(setup, "w1-0", "14", at=anchor + WEEK + timedelta(days=1))  # week 1: 4 over, left unsettled for now
    third = period(setup, anchor, 2, "13")  # settled first: draws 3 of week 0's 6
    assert lines(third.invoice) == [("usage", Decimal("3.00")), ("allowance", Decimal("-3.00"))]
    assert [units for units, _ in carried(third)] == [Decimal(3)]
    gap = settlement_run(subscription_id=setup.subscription.pk, at=anchor + WEEK + timedelta(days=2))
    assert lines(gap.invoice) == [("usage", Decimal("4.00"))]  # week 0's lots went to week 2: not drawn again
    assert carried(gap) == []
    log = next(s for s in gap.run.stages if s["stage"] == "rollover")
    assert "metrics" not in log and log["skipped"].startswith(f"the period from {anchor + 2 * WEEK:%Y-%m-%d} was settled first")
    fourth = period(setup, anchor, 3, "12")  # the chain week 2 left: its 3 units
    assert lines(fourth.invoice) == [("usage", Decimal("2.00")), ("allowance", Decimal("-2.00"))]
    assert ledger_verify() == []
