"""customer_usage_current: the current period's running totals per subscription, metric and
dimension, zeros for priced metrics with no usage, exact decimal strings, a fixed number of
queries. Home of `usage_world`, which the usage API and dashboard tests share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

import pytest

from billing.models import RunningTotal
from billing.periods import period_for
from billing.selectors import customer_usage_current, decimal_text
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
                 "units": "1500", "amount": "4.5", "event_count": 12},
                {"metric": "api_calls", "metric_name": world.api_calls.name, "unit": "unit",
                 "dimension_key": "region=eu", "units": "2.5", "amount": "0.0075", "event_count": 1},
                {"metric": "llm_tokens", "metric_name": "LLM tokens", "unit": "token", "dimension_key": "",
                 "units": "0", "amount": "0", "event_count": 0},
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
                 "units": "30", "amount": "0.3", "event_count": 30},
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


def test_a_fixed_number_of_queries_whatever_the_volume(django_assert_num_queries):
    small = priced_setup(started_at=month_start(NOW, 1))
    running_total(small.subscription, small.metric, at=NOW, units="1", amount="0.003", events=1)
    with django_assert_num_queries(4):
        customer_usage_current(customer=small.customer, now=NOW)
    world = usage_world(now=NOW)
    for index in range(20):
        running_total(
            world.monthly, world.api_calls, at=NOW, units="1", amount="0.003", events=1, dimension_key=f"tool={index}"
        )
    with django_assert_num_queries(4):
        usage = customer_usage_current(customer=world.customer, now=NOW)
    assert len(usage["subscriptions"][0]["metrics"]) == 23


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
