"""Hard limits through rating and the whole settlement run (real rating, real PostgreSQL): usage
beyond a "block" limit is recorded, flagged `blocked_units` on its rated events and rated at zero
as it comes, so the period's usage line already charges quote(limit) and settlement adds no
take-back line; a "bill" limit is reported and charged."""

from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import RatedEvent, RunningTotal, SettlementRun
from billing.rating import quote
from billing.verification import ledger_verify
from catalog.models import Subscription
from tests.billing.test_settlement import lines, rate, settle
from tests.factories import funded_wallet, priced_setup

GRADUATED = {
    "model": "graduated",
    "tiers": [{"up_to": "100", "unit_amount": "0.5"}, {"up_to": None, "unit_amount": "0.25"}],
}


def limited(overage: str, units: str = "100", **price) -> dict:
    return {**(price or {"model": "per_unit", "rate": "0.5"}), "limit": {"units": units, "overage": overage}}


def quota_log(result) -> dict:
    return next(stage for stage in result.run.stages if stage["stage"] == "quota_check")


@pytest.mark.django_db
def test_units_past_a_block_limit_are_rated_at_zero_as_they_come_and_need_no_take_back():
    setup = priced_setup(config=limited("block"))
    first = rate(setup, "a", "90")
    crossing = rate(setup, "b", "60")  # 150 used: 10 charged, 50 beyond the limit of 100
    past = rate(setup, "c", "7")  # wholly past it
    assert [(r.amount, r.blocked) for r in (first, crossing, past)] == [
        (Decimal(45), Decimal(0)), (Decimal(5), Decimal(50)), (Decimal(0), Decimal(7))
    ]
    assert [r.blocked_units for r in RatedEvent.objects.order_by("id")] == [Decimal(0), Decimal(50), Decimal(7)]
    total = RunningTotal.objects.get(subscription=setup.subscription)
    assert (total.units, total.amount) == (Decimal(157), Decimal(50))  # every unit counted, 100 charged
    result = settle(setup)
    assert lines(result.invoice) == [("usage", Decimal(50))]  # no overage line: nothing to take back
    assert result.invoice.total == Decimal(50) == quote(setup.metric_config.config, Decimal(100))
    assert result.invoice.lines.get(kind="usage").units == Decimal(157)
    assert quota_log(result)["limits"] == [
        {"metric": setup.metric.code, "dimension_key": "", "limit": "100", "overage": "block", "used": "157", "over": "57",
         "blocked": "57"}
    ]
    assert ledger_verify() == []


@pytest.mark.django_db
def test_a_blocked_overage_on_a_tiered_price_is_charged_by_the_tiers_up_to_the_limit():
    setup = priced_setup(config=limited("block", "150", **GRADUATED))
    record = rate(setup, "a", "250")
    # 250 units, limit 150: 100 x 0.5 + 50 x 0.25 = 62.5 charged, 100 blocked; tiers of the charged units
    assert (record.amount, record.blocked) == (Decimal("62.5"), Decimal(100))
    assert record.tiers == [{"tier": 1, "units": "100", "amount": "50"}, {"tier": 2, "units": "50", "amount": "12.5"}]
    result = settle(setup)
    assert lines(result.invoice) == [("usage", Decimal("62.50"))]
    assert result.invoice.total == quote(setup.metric_config.config, Decimal(150))


@pytest.mark.django_db
def test_a_prepaid_wallet_never_pays_for_blocked_units():
    setup = priced_setup(config=limited("block"), billing_mode="prepaid")
    wallet = funded_wallet(setup.customer, "100")
    rate(setup, "a", "90")
    rate(setup, "b", "60")
    wallet.refresh_from_db()
    assert wallet.balance == Decimal(50)  # 45 + 5: the 50 blocked units cost nothing, now
    settle(setup)
    wallet.refresh_from_db()
    assert wallet.balance == Decimal(50)  # and settlement gives nothing back: nothing was taken
    assert ledger_verify() == []


@pytest.mark.django_db
def test_a_billed_overage_is_charged_and_reported():
    setup = priced_setup(config=limited("bill"))
    rate(setup, "a", "130")
    result = settle(setup)
    assert lines(result.invoice) == [("usage", Decimal(65))]
    assert quota_log(result)["limits"][0] | {} == {
        "metric": setup.metric.code, "dimension_key": "", "limit": "100", "overage": "bill", "used": "130", "over": "30",
    }


@pytest.mark.django_db
def test_interim_and_final_invoices_together_charge_the_limit_exactly():
    setup = priced_setup(config=limited("block"))
    Subscription.objects.filter(pk=setup.subscription.pk).update(invoice_threshold=Decimal(40))
    rate(setup, "a", "140")  # 50.00 accrued (100 charged, 40 blocked): over the threshold
    interim = settle(setup, kind="interim")
    assert lines(interim.invoice) == [("usage", Decimal(50))]
    rate(setup, "b", "20")  # all blocked
    final = settle(setup)
    assert lines(final.invoice) == [("usage", Decimal(0))]
    period_total = interim.invoice.total + final.invoice.total
    assert period_total == quote(setup.metric_config.config, Decimal(100))
    assert SettlementRun.objects.filter(subscription=setup.subscription).count() == 2
    assert ledger_verify() == []


@pytest.mark.django_db
def test_a_limit_on_an_override_applies_to_its_dimension_only():
    config = {
        "model": "per_unit", "rate": "1",
        "overrides": [{"match": {"region": "eu"}, "price": limited("block", "5", model="per_unit", rate="2")}],
    }
    setup = priced_setup(config=config)
    rate(setup, "a", "8", region="eu")  # 3 beyond the eu limit of 5
    rate(setup, "b", "8")  # the base price has no limit
    result = settle(setup, at=timezone.now())
    # eu: 5 charged at 2 (10), 3 blocked; the base: 8 at 1
    assert sorted(lines(result.invoice)) == sorted([("usage", Decimal(8)), ("usage", Decimal(10))])
    eu = RatedEvent.objects.get(dimension_key="region=eu")
    assert (eu.amount, eu.blocked_units) == (Decimal(10), Decimal(3))
    assert RatedEvent.objects.get(dimension_key="").blocked_units == 0
