"""customer_usage_current: the current period's running totals per subscription, metric and
dimension, zeros for priced metrics with no usage, exact decimal strings, a fixed number of
queries; each row's hard limit and included allowance from the version in force. Home of
`usage_world`, which the usage API and dashboard tests share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

import pytest

from billing import selectors
from billing.models import RunningTotal
from billing.periods import period_for
from billing.rating import compile_config
from aforo.money import decimal_text
from billing.selectors import customer_usage_current
from catalog import services
from catalog.models import Customer, Metric, Subscription
from tests.factories import MetricFactory, OfferingFactory, RatePlanFactory, priced_setup

pytestmark = pytest.mark.django_db

UTC = dt_timezone.utc


def month_start(now: datetime, months_back: int) -> datetime:
    index = now.year * 12 + now.month - 1 - months_back
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def running_total(subscription: Subscription, metric: Metric, *, at: datetime, units: str, amount: str, events: int,
                  dimension_key: str = "") -> RunningTotal:
    start, end = period_for(cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, at=at)
    return RunningTotal.objects.create(
        tenant_id=subscription.tenant_id, subscription=subscription, customer_id=subscription.customer_id,
        metric=metric, dimension_key=dimension_key, period_start=start, period_end=end, currency=subscription.currency,
        units=Decimal(units), amount=Decimal(amount), event_count=events,
    )


@dataclass
class UsageWorld:
    now: datetime
    anchor: datetime
    customer: Customer
    api_calls: Metric
    llm_tokens: Metric
    monthly: Subscription
    weekly: Subscription
    other_customer: Customer


def usage_world(*, now: datetime) -> UsageWorld:
    """A customer with a monthly subscription (api_calls used with and without a dimension,
    llm_tokens priced by the version in force but unused, a future version pricing one more
    metric) and a weekly one; plus usage that must not show: last period, an ended
    subscription, another customer."""
    anchor = month_start(now, 3)
    setup = priced_setup(metric_code="api_calls", started_at=anchor)
    tenant, customer = setup.tenant, setup.customer
    product = setup.metric.product
    llm_tokens = MetricFactory(tenant=tenant, product=product, code="llm_tokens", name="LLM tokens", unit="token")
    v2 = services.rate_plan_version_revise(version=setup.version, effective_from=anchor + timedelta(days=40))
    services.metric_config_set(version=v2, metric=llm_tokens, config={"model": "per_unit", "rate": "0.000002"})
    services.rate_plan_version_publish(version=v2)
    v3 = services.rate_plan_version_revise(version=v2, effective_from=now + timedelta(days=10))
    future_metric = MetricFactory(tenant=tenant, product=product, code="zz_future")
    services.metric_config_set(version=v3, metric=future_metric, config={"model": "per_unit", "rate": "1"})
    services.rate_plan_version_publish(version=v3)

    weekly_plan = RatePlanFactory(tenant=tenant, offering=OfferingFactory(tenant=tenant, name="MCP"), name="MCP weekly")
    tool_calls = MetricFactory(tenant=tenant, product=product, code="tool_calls", name="Tool calls")
    weekly_plan.offering.products.add(product)
    weekly_version = services.rate_plan_version_create(rate_plan=weekly_plan, effective_from=anchor)
    services.metric_config_set(version=weekly_version, metric=tool_calls, config={"model": "per_unit", "rate": "0.01"})
    services.rate_plan_version_publish(version=weekly_version)
    weekly_anchor = anchor + timedelta(days=2, hours=6)
    weekly = services.catalog_object_save(
        instance=Subscription(
            tenant=tenant, customer=customer, offering=weekly_plan.offering, rate_plan=weekly_plan,
            billing_mode=Subscription.BillingMode.PREPAID, billing_cadence=Subscription.Cadence.WEEKLY,
            billing_anchor=weekly_anchor, started_at=weekly_anchor, currency="USD",
        )
    )
    ended = services.catalog_object_save(
        instance=Subscription(
            tenant=tenant, customer=customer, offering=weekly_plan.offering, rate_plan=weekly_plan,
            billing_anchor=anchor, started_at=anchor, ended_at=now - timedelta(days=1), currency="USD",
        )
    )
    monthly = setup.subscription
    running_total(monthly, setup.metric, at=now, units="1500", amount="4.5", events=12)
    running_total(monthly, setup.metric, at=now, units="2.5", amount="0.0075", events=1, dimension_key="region=eu")
    running_total(monthly, setup.metric, at=now - timedelta(days=40), units="999", amount="2.997", events=9)
    running_total(weekly, tool_calls, at=now, units="30", amount="0.3", events=30)
    running_total(ended, tool_calls, at=now - timedelta(days=2), units="5", amount="0.05", events=5)
    other = priced_setup(tenant=tenant, metric_code="other_calls", started_at=anchor)
    running_total(other.subscription, other.metric, at=now, units="7", amount="0.021", events=7)
    return UsageWorld(now, anchor, customer, setup.metric, llm_tokens, monthly, weekly, other.customer)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def expected_usage(world: UsageWorld, *, now: datetime) -> list[dict]:
    """The subscriptions part of customer_usage_current(world.customer), written out by hand."""
    month = period_for(cadence="monthly", anchor=world.anchor, at=now)
    week = period_for(cadence="weekly", anchor=world.weekly.billing_anchor, at=now)
    return [
        {
            "subscription_id": world.monthly.pk,
            "offering": world.monthly.offering.name,
            "rate_plan": world.monthly.rate_plan.name,
            "rate_plan_version_id": world.monthly.rate_plan.versions.get(version=2).pk,
            "currency": "USD",
            "billing_mode": "postpaid",
            "billing_cadence": "monthly",
            "period_start": iso(month[0]),
            "period_end": iso(month[1]),
            "amount_total": "4.5075",
            "metrics": [
                {"metric": "api_calls", "metric_name": world.api_calls.name, "unit": "unit", "dimension_key": "",
                 "units": "1500", "amount": "4.5", "event_count": 12, "limit": None, "included": None},
                {"metric": "api_calls", "metric_name": world.api_calls.name, "unit": "unit",
                 "dimension_key": "region=eu", "units": "2.5", "amount": "0.0075", "event_count": 1, "limit": None,
                 "included": None},
                {"metric": "llm_tokens", "metric_name": "LLM tokens", "unit": "token", "dimension_key": "",
                 "units": "0", "amount": "0", "event_count": 0, "limit": None, "included": None},
            ],
        },
        {
            "subscription_id": world.weekly.pk,
            "offering": "MCP",
            "rate_plan": "MCP weekly",
            "rate_plan_version_id": world.weekly.rate_plan.versions.get().pk,
            "currency": "USD",
            "billing_mode": "prepaid",
            "billing_cadence": "weekly",
            "period_start": iso(week[0]),
            "period_end": iso(week[1]),
            "amount_total": "0.3",
            "metrics": [
                {"metric": "tool_calls", "metric_name": "Tool calls", "unit": "unit", "dimension_key": "",
                 "units": "30", "amount": "0.3", "event_count": 30, "limit": None, "included": None},
            ],
        },
    ]


NOW = datetime(2026, 11, 24, 10, 0, 5, tzinfo=UTC)


def test_current_usage_per_subscription_metric_and_dimension():
    world = usage_world(now=NOW)
    usage = customer_usage_current(customer=world.customer, now=NOW)
    subscriptions = expected_usage(world, now=NOW)
    assert usage == {"customer_id": world.customer.pk, "as_of": "2026-11-24T10:00:05Z", "subscriptions": subscriptions}
    monthly, weekly = usage["subscriptions"]
    assert (monthly["period_start"], monthly["period_end"]) == ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")
    assert (weekly["period_start"], weekly["period_end"]) == ("2026-11-23T06:00:00Z", "2026-11-30T06:00:00Z")


def test_the_version_in_force_decides_the_zero_rows():
    world = usage_world(now=NOW)
    before_v2 = world.anchor + timedelta(days=20)
    usage = customer_usage_current(customer=world.customer, now=before_v2)
    monthly = usage["subscriptions"][0]
    assert monthly["rate_plan_version_id"] == world.monthly.rate_plan.versions.get(version=1).pk
    assert [(m["metric"], m["units"]) for m in monthly["metrics"]] == [("api_calls", "0")]  # llm_tokens not priced yet
    later = customer_usage_current(customer=world.customer, now=NOW + timedelta(days=11))
    assert "zz_future" in [m["metric"] for m in later["subscriptions"][0]["metrics"]]


def test_other_customers_usage_is_separate():
    world = usage_world(now=NOW)
    usage = customer_usage_current(customer=world.other_customer, now=NOW)
    [subscription] = usage["subscriptions"]
    assert [(m["metric"], m["units"], m["amount"]) for m in subscription["metrics"]] == [("other_calls", "7", "0.021")]


def test_a_fixed_number_of_queries_whatever_the_volume(django_assert_num_queries, monkeypatch):
    compiled = []
    monkeypatch.setattr(selectors, "compile_config", lambda config: compiled.append(config) or compile_config(config))
    small = priced_setup(started_at=month_start(NOW, 1), config=LIMITED)
    running_total(small.subscription, small.metric, at=NOW, units="1", amount="0.003", events=1)
    with django_assert_num_queries(4):
        customer_usage_current(customer=small.customer, now=NOW)
    world = usage_world(now=NOW)
    for index in range(20):
        running_total(
            world.monthly, world.api_calls, at=NOW, units="1", amount="0.003", events=1, dimension_key=f"tool={index}"
        )
    compiled.clear()
    with django_assert_num_queries(4):
        usage = customer_usage_current(customer=world.customer, now=NOW)
    assert len(usage["subscriptions"][0]["metrics"]) == 23
    assert len(compiled) == 3  # once per config in force (api_calls, llm_tokens, tool_calls), not per row


def test_a_customer_without_subscriptions_has_an_empty_list(django_assert_num_queries):
    customer = priced_setup(started_at=month_start(NOW, 1)).customer
    Subscription.objects.filter(customer=customer).update(
        status=Subscription.Status.CANCELED, ended_at=NOW - timedelta(days=1)
    )
    with django_assert_num_queries(1):
        usage = customer_usage_current(customer=customer, now=NOW)
    assert usage == {"customer_id": customer.pk, "as_of": "2026-11-24T10:00:05Z", "subscriptions": []}


@pytest.mark.parametrize(
    ("value", "text"),
    [("0E-26", "0"), ("4.50000000000000000000000000", "4.5"), ("1500.000000000000", "1500"), ("1E+3", "1000"),
     ("-0.0030", "-0.003"), ("0.000000000000000000000001", "0.000000000000000000000001")],
)
def test_decimal_text_is_exact_and_plain(value, text):
    assert decimal_text(Decimal(value)) == text


# --- hard limits and included allowances -----------------------------------------------------

LIMITED = {"model": "per_unit", "rate": "0.003", "limit": {"units": "1000", "overage": "block"}}


def usage_row(config: dict, units: str, *, dimension_key: str = "") -> dict:
    """The metric row of one subscription priced by `config` with `units` used this period."""
    setup = priced_setup(started_at=month_start(NOW, 1), config=config)
    running_total(setup.subscription, setup.metric, at=NOW, units=units, amount="0", events=1, dimension_key=dimension_key)
    [subscription] = customer_usage_current(customer=setup.customer, now=NOW)["subscriptions"]
    [row] = [m for m in subscription["metrics"] if m["dimension_key"] == dimension_key]
    return row


def limited(units: str, overage: str) -> dict:
    return {"model": "per_unit", "rate": "0.003", "limit": {"units": units, "overage": overage}}


@pytest.mark.parametrize(
    ("overage", "units", "remaining", "reached", "exceeded", "percent"),
    [
        ("block", "750", "250", False, False, "75"),
        ("block", "999.999", "0.001", False, False, "100"),  # 99.9999 rounds to 100 yet is not reached
        ("block", "1000", "0", True, False, "100"),
        ("block", "1200.5", "0", True, True, "120.05"),
        ("bill", "0", "1000", False, False, "0"),
        ("bill", "1000", "0", True, False, "100"),
        ("bill", "2500", "0", True, True, "250"),
    ],
)
def test_the_limit_against_the_units_so_far(overage, units, remaining, reached, exceeded, percent):
    row = usage_row(limited("1000", overage), units)
    blocked = {"1200.5": "200.5"}.get(units, "0") if overage == "block" else "0"  # past a block limit: not charged
    assert row["limit"] == {
        "units": "1000", "overage": overage, "remaining": remaining, "reached": reached, "exceeded": exceeded,
        "percent_used": percent, "blocked": blocked,
    }
    assert row["included"] is None


@pytest.mark.parametrize(
    ("limit", "units", "percent"),
    [
        ("3", "1", "33.33"),
        ("3", "2", "66.67"),
        ("800", "1", "0.13"),  # 0.125: HALF_UP, not banker's 0.12
        ("800", "3", "0.38"),  # 0.375
        ("400", "0.01", "0"),  # 0.0025
        ("200", "0.01", "0.01"),  # 0.005
        ("0.000000000001", "9" * 26, "9" * 26 + "0" * 14),  # the largest ratio: no precision lost
    ],
)
def test_percent_used_is_rounded_half_up_to_two_places(limit, units, percent):
    assert usage_row(limited(limit, "bill"), units)["limit"]["percent_used"] == percent


def test_remaining_is_exact_at_the_largest_units():
    row = usage_row(limited("1" + "0" * 25, "bill"), "0.000000000001")
    assert row["limit"]["remaining"] == "9" * 25 + ".999999999999"


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        ("0", {"remaining": "0", "reached": True, "exceeded": False, "percent_used": "0", "blocked": "0"}),
        ("0.5", {"remaining": "0", "reached": True, "exceeded": True, "percent_used": "100", "blocked": "0.5"}),
    ],
)
def test_a_limit_of_zero_is_reached_from_the_start(units, expected):
    assert usage_row(limited("0", "block"), units)["limit"] == {"units": "0", "overage": "block", **expected}


@pytest.mark.parametrize(
    ("config", "units", "included"),
    [
        ({"model": "per_unit", "rate": "0.003", "included_free": "1000"}, "750",
         {"units": "1000", "remaining": "250", "percent_used": "75"}),
        ({"model": "included_quota", "quota": "500", "overage_rate": "0.01"}, "1000",
         {"units": "500", "remaining": "0", "percent_used": "200"}),
        ({"model": "graduated", "tiers": [{"up_to": "100", "unit_amount": "0"}, {"up_to": None, "unit_amount": "0.01"}]},
         "40", {"units": "100", "remaining": "60", "percent_used": "40"}),
        ({"model": "volume", "tiers": [{"up_to": "100", "unit_amount": "0"}, {"up_to": None, "unit_amount": "0.01"}]},
         "150", {"units": "100", "remaining": "0", "percent_used": "150"}),
        ({"model": "package", "package_size": "100", "rate": "1", "free_units": "300"}, "1",
         {"units": "300", "remaining": "299", "percent_used": "0.33"}),
    ],
)
def test_the_included_allowance_against_the_units_so_far(config, units, included):
    row = usage_row(config, units)
    assert row["included"] == included
    assert row["limit"] is None


@pytest.mark.parametrize(
    "config",
    [
        {"model": "per_unit", "rate": "0.003"},
        {"model": "graduated", "tiers": [{"up_to": "100", "unit_amount": "0.02"}, {"up_to": None, "unit_amount": "0.01"}]},
        {"model": "graduated", "tiers": [{"up_to": "100", "unit_amount": "0", "flat_amount": "5"},
                                         {"up_to": None, "unit_amount": "0.01"}]},  # a first tier with a fee is not free
        {"model": "flat", "amount": "10"},
    ],
)
def test_prices_without_an_allowance_have_none(config):
    row = usage_row(config, "10")
    assert (row["limit"], row["included"]) == (None, None)


def test_a_limit_and_an_allowance_together():
    config = {"model": "per_unit", "rate": "0.01", "included_free": "100", "limit": {"units": "400", "overage": "bill"}}
    row = usage_row(config, "300")
    assert row["included"] == {"units": "100", "remaining": "0", "percent_used": "300"}
    assert row["limit"] == {
        "units": "400", "overage": "bill", "remaining": "100", "reached": False, "exceeded": False, "percent_used": "75", "blocked": "0",
    }


EU_LIMITED = {
    "model": "per_unit", "rate": "0.003",
    "overrides": [
        {"match": {"region": "eu"},
         "price": {"model": "included_quota", "quota": "10", "overage_rate": "0.01",
                   "limit": {"units": "40", "overage": "block"}}},
    ],
}


def test_a_limit_on_an_override_key_only(django_assert_num_queries):
    setup = priced_setup(started_at=month_start(NOW, 1), config=EU_LIMITED)
    running_total(setup.subscription, setup.metric, at=NOW, units="500", amount="1.5", events=5)
    running_total(setup.subscription, setup.metric, at=NOW, units="40", amount="0.3", events=4, dimension_key="region=eu")
    with django_assert_num_queries(4):
        usage = customer_usage_current(customer=setup.customer, now=NOW)
    base, eu = usage["subscriptions"][0]["metrics"]
    assert (base["dimension_key"], base["limit"], base["included"]) == ("", None, None)
    assert eu["dimension_key"] == "region=eu"
    assert eu["limit"] == {
        "units": "40", "overage": "block", "remaining": "0", "reached": True, "exceeded": False, "percent_used": "100", "blocked": "0",
    }
    assert eu["included"] == {"units": "10", "remaining": "0", "percent_used": "400"}


def test_a_key_the_version_in_force_no_longer_prices_has_neither():
    """Prices changed mid-period: the region=eu override (with its limit) is gone from the version
    now in force, but the period's region=eu running total is still there."""
    setup = priced_setup(started_at=month_start(NOW, 1), config=EU_LIMITED)
    running_total(setup.subscription, setup.metric, at=NOW, units="50", amount="0.4", events=5, dimension_key="region=eu")
    running_total(setup.subscription, setup.metric, at=NOW, units="10", amount="0.03", events=1)
    v2 = services.rate_plan_version_revise(version=setup.version, effective_from=NOW - timedelta(days=3))
    services.metric_config_set(version=v2, metric=setup.metric, config=limited("20", "bill"))
    services.rate_plan_version_publish(version=v2)
    [subscription] = customer_usage_current(customer=setup.customer, now=NOW)["subscriptions"]
    base, eu = subscription["metrics"]
    assert subscription["rate_plan_version_id"] == v2.pk
    assert (eu["dimension_key"], eu["units"], eu["limit"], eu["included"]) == ("region=eu", "50", None, None)
    assert base["limit"] == {  # the base price is the new version's
        "units": "20", "overage": "bill", "remaining": "10", "reached": False, "exceeded": False, "percent_used": "50", "blocked": "0",
    }
    before = customer_usage_current(customer=setup.customer, now=NOW - timedelta(days=4))["subscriptions"][0]
    assert before["rate_plan_version_id"] == setup.version.pk
    assert before["metrics"][1]["limit"]["units"] == "40"  # the override's limit, while v1 was in force


def test_a_priced_metric_without_usage_shows_its_limit_untouched():
    setup = priced_setup(started_at=month_start(NOW, 1), config=limited("1000", "block"))
    [subscription] = customer_usage_current(customer=setup.customer, now=NOW)["subscriptions"]
    [row] = subscription["metrics"]
    assert row["units"] == "0" and row["limit"] == {
        "units": "1000", "overage": "block", "remaining": "1000", "reached": False, "exceeded": False,
        "percent_used": "0", "blocked": "0",
    }
