"""Hard limits through the whole settlement run (real rating, real PostgreSQL): usage beyond a
"block" limit is rated as it comes and taken back by an `overage` line on the period's final
invoice, exactly quote(used) − quote(limit); a "bill" limit is reported and charged."""

from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import SettlementRun
from billing.rating import quote
from billing.verification import ledger_verify
from catalog.models import Subscription
from tests.billing.test_settlement import lines, rate, settle
from tests.factories import priced_setup

GRADUATED = {
    "model": "graduated",
    "tiers": [{"up_to": "100", "unit_amount": "0.5"}, {"up_to": None, "unit_amount": "0.25"}],
}


def limited(overage: str, units: str = "100", **price) -> dict:
    return {**(price or {"model": "per_unit", "rate": "0.5"}), "limit": {"units": units, "overage": overage}}


def quota_log(result) -> dict:
    return next(stage for stage in result.run.stages if stage["stage"] == "quota_check")


@pytest.mark.django_db
def test_a_blocked_overage_is_taken_back_on_the_final_invoice():
    setup = priced_setup(config=limited("block"))
    rate(setup, "a", "90")
    rate(setup, "b", "60")  # 150 used, 50 beyond the limit of 100
    result = settle(setup)
    assert lines(result.invoice) == [("usage", Decimal(75)), ("overage", Decimal(-25))]
    overage = result.invoice.lines.get(kind="overage")
    assert overage.units == Decimal(50) and "blocked" in overage.description
    assert result.invoice.total == Decimal(50) == quote(setup.metric_config.config, Decimal(100))
    assert quota_log(result)["limits"] == [
        {"metric": setup.metric.code, "dimension_key": "", "limit": "100", "overage": "block", "used": "150", "over": "50",
         "credit": "25"}
    ]
    assert ledger_verify() == []


@pytest.mark.django_db
def test_a_blocked_overage_on_a_tiered_price_is_priced_by_the_tiers_it_reached():
    setup = priced_setup(config=limited("block", "150", **GRADUATED))
    rate(setup, "a", "250")
    result = settle(setup)
    # 250 units: 100 x 0.5 + 150 x 0.25 = 87.5; the limit 150: 50 + 12.5 = 62.5; credit 25
    assert lines(result.invoice) == [("usage", Decimal("87.50")), ("overage", Decimal("-25.00"))]
    assert result.invoice.total == quote(setup.metric_config.config, Decimal(150))


@pytest.mark.django_db
def test_within_the_limit_nothing_is_taken_back():
    setup = priced_setup(config=limited("block"))
    rate(setup, "a", "100")
    result = settle(setup)
    assert lines(result.invoice) == [("usage", Decimal(50))]
    assert quota_log(result)["limits"][0]["over"] == "0"


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
def test_interim_invoices_bill_as_usage_comes_and_the_final_one_settles_the_limit():
    setup = priced_setup(config=limited("block"))
    Subscription.objects.filter(pk=setup.subscription.pk).update(invoice_threshold=Decimal(60))
    rate(setup, "a", "140")  # 70.00 accrued: over the threshold
    interim = settle(setup, kind="interim")
    assert lines(interim.invoice) == [("usage", Decimal(70))]  # no credit on an interim invoice
    rate(setup, "b", "20")
    final = settle(setup)
    # the period used 160: 60 beyond the limit, of which 40 the interim invoice billed
    assert lines(final.invoice) == [("usage", Decimal(10)), ("overage", Decimal(-30))]
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
    assert sorted(lines(result.invoice)) == sorted(
        [("usage", Decimal(8)), ("usage", Decimal(16)), ("overage", Decimal(-6))]
    )
    assert result.invoice.lines.get(kind="overage").dimension_key == "region=eu"
