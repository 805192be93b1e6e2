"""Each settlement stage alone: a hand-built SettlementContext in, the lines and the log out.
(The stages read their subscription's terms, discounts and taxes from PostgreSQL; nothing else.)"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Discount, TaxRate
from billing.settlement import commit, discount, rate, route, tax
from billing.settlement.context import Aggregate, Line, SettlementContext, round_money
from billing.settlement.inputs import SettlementInputs
from tests.factories import priced_setup

NOW = timezone.now()


def context(setup, *, kind="final", lines=(), aggregates=(), previously_invoiced=Decimal(0), **inputs):
    built = SettlementContext(
        subscription=setup.subscription, period_start=NOW - timedelta(days=30), period_end=NOW, kind=kind,
        watermark=10**9, now=NOW, inputs=SettlementInputs(interim_subtotal=previously_invoiced, **inputs),
    )
    built.aggregates.extend(aggregates)
    for line in lines:
        built.add(line)
    return built


def usage(amount: str) -> Line:
    return Line(kind="usage", description="usage", amount_unrounded=Decimal(amount))


def kinds(built):
    return [(line.kind, line.amount) for line in built.lines]


@pytest.mark.parametrize(
    ("currency", "amount", "rounded"),
    [("USD", "0.005", "0.01"), ("USD", "0.0049999", "0.00"), ("USD", "-0.005", "-0.01"), ("JPY", "12.5", "13"),
     ("KWD", "1.2345", "1.235"), ("EUR", "2.675", "2.68")],
)
def test_rounding_is_half_up_to_the_currency_minor_unit(currency, amount, rounded):
    assert round_money(Decimal(amount), currency) == Decimal(rounded)


@pytest.mark.django_db
def test_rate_makes_usage_and_late_lines_and_one_base_charge_per_metric():
    setup = priced_setup(config={"model": "flat", "amount": "49"})
    start = NOW - timedelta(days=30)
    aggregates = [
        Aggregate(start, setup.metric.pk, setup.metric.code, "", Decimal(3), Decimal(0), 3, 0, 9, setup.metric_config.config),
        Aggregate(start - timedelta(days=30), setup.metric.pk, setup.metric.code, "", Decimal(1), Decimal(0), 1, 0, 12,
                  setup.metric_config.config, late=True),
    ]
    built = context(
        setup, aggregates=aggregates, version_id=setup.metric_config.version_id, metric_codes={setup.metric.pk: setup.metric.code}
    )
    built.period_start = start
    rate.run(built)
    assert kinds(built) == [("usage", Decimal(0)), ("late_usage", Decimal(0)), ("base", Decimal("49.00"))]
    interim = context(setup, kind="interim", aggregates=aggregates[:1])
    rate.run(interim)
    assert [k for k, _ in kinds(interim)] == ["usage"]  # base charges belong to the final run only


@pytest.mark.django_db
def test_commit_true_up_counts_interim_invoices_and_only_on_the_final_run():
    setup = priced_setup()
    setup.subscription.min_commitment = Decimal(100)
    built = context(setup, lines=[usage("30")], previously_invoiced=Decimal(50))
    commit.run(built)
    assert kinds(built)[-1] == ("commitment", Decimal("20.00"))  # 100 − (50 invoiced + 30)
    interim = context(setup, kind="interim", lines=[usage("30")])
    commit.run(interim)
    assert kinds(interim) == [("usage", Decimal("30.00"))]


@pytest.mark.django_db
def test_cap_never_takes_more_than_this_invoice_charges():
    setup = priced_setup()
    setup.subscription.spend_cap = Decimal(60)
    built = context(setup, lines=[usage("25")], previously_invoiced=Decimal(70))  # already 10 over before this invoice
    commit.run(built)
    assert kinds(built) == [("usage", Decimal("25.00")), ("cap", Decimal("-25.00"))]


@pytest.mark.django_db
def test_discounts_in_position_order_fixed_only_on_the_final_run():
    setup = priced_setup()
    discounts = [Discount(kind="percent", value=Decimal("12.5")), Discount(kind="fixed", value=Decimal(5))]  # in order
    built = context(setup, lines=[usage("40")], discounts=discounts)
    discount.run(built)
    assert kinds(built) == [("usage", Decimal("40.00")), ("discount", Decimal("-5.00")), ("discount", Decimal("-5.00"))]
    interim = context(setup, kind="interim", lines=[usage("40")], discounts=discounts)
    discount.run(interim)
    assert kinds(interim) == [("usage", Decimal("40.00")), ("discount", Decimal("-5.00"))]


@pytest.mark.django_db
def test_tax_rates_side_by_side_on_the_discounted_subtotal():
    setup = priced_setup()
    rates = [TaxRate(name="State", percent=Decimal(6)), TaxRate(name="City", percent=Decimal("2.25"))]
    built = context(setup, lines=[usage("80"), Line(kind="discount", description="d", amount_unrounded=Decimal(-10))], tax_rates=rates)
    tax.run(built)
    # 6% and 2.25% of 70, not compounding: 4.20 and 1.575 → 1.58
    assert kinds(built)[-2:] == [("tax", Decimal("4.20")), ("tax", Decimal("1.58"))]


@pytest.mark.django_db
def test_route_postpaid_is_due_and_never_touches_a_wallet():
    setup = priced_setup()
    built = context(setup, lines=[usage("12.34")])
    route.run(built)
    assert (built.amount_due, built.wallet_now, built.wallet_realtime) == (Decimal("12.34"), 0, 0)
