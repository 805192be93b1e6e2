"""A plan change at an exact instant: events before it rate on the old plan, events from it on the
new one (running totals split at the instant); the period it falls in is invoiced once, in two parts,
each with its fixed fees and minimum commitment prorated by time; open discounts keep counting;
bad input through the API names its field; never backdated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Discount, RunningTotal
from billing.plan_change import plan_change
from billing.settlement import settlement_run
from catalog import services
from catalog.models import Subscription
from tests.factories import RatePlanFactory, priced_setup, rated_event, tenant_token

pytestmark = pytest.mark.django_db

JUL, OCT, NOV = (datetime(2026, month, 1, tzinfo=UTC) for month in (7, 10, 11))
CHANGE = datetime(2026, 10, 11, 12, tzinfo=UTC)  # 10.5 of October's 31 days on the old plan


def _new_plan(setup, *, rate: str, flat: str | None = None, currency: str | None = None):
    plan = RatePlanFactory(tenant=setup.tenant, offering=setup.subscription.offering, currency=currency or setup.rate_plan.currency)
    version = services.rate_plan_version_create(rate_plan=plan, effective_from=JUL)
    services.metric_config_set(version=version, metric=setup.metric, config={"model": "per_unit", "rate": rate})
    services.rate_plan_version_publish(version=version)
    return plan


@pytest.fixture
def setup():
    setup = priced_setup(rate="1", started_at=JUL)
    setup.subscription.min_commitment = Decimal(62)
    setup.subscription.save()
    return setup


def test_events_on_each_side_of_the_instant_rate_on_their_plan_and_the_period_is_prorated(setup):
    premium = _new_plan(setup, rate="2")
    Discount.objects.create(tenant=setup.tenant, subscription=setup.subscription, kind="fixed", value=Decimal(31),
                            starts_at=OCT, periods=2, description="Launch credit")
    change = plan_change(subscription=setup.subscription, rate_plan=premium, at=CHANGE, now=CHANGE - timedelta(days=1))
    old, new = change.ended, change.started
    assert (old.ended_at, new.started_at, new.billing_anchor, new.changed_from_id) == (CHANGE, CHANGE, old.billing_anchor, old.pk)
    assert (new.rate_plan_id, new.min_commitment, new.currency) == (premium.pk, Decimal(62), old.currency)

    before = rated_event(setup, "before", "10", at=CHANGE - timedelta(microseconds=1))
    after = rated_event(setup, "after", "10", at=CHANGE)
    assert (before.subscription_id, before.amount) == (old.pk, Decimal(10))  # the old plan: 1 per unit
    assert (after.subscription_id, after.amount) == (new.pk, Decimal(20))  # the new plan: 2 per unit
    totals = dict(RunningTotal.objects.filter(period_start=OCT).values_list("subscription_id", "amount"))
    assert totals == {old.pk: Decimal(10), new.pk: Decimal(20)}

    first = settlement_run(subscription_id=old.pk, at=OCT + timedelta(days=2))
    second = settlement_run(subscription_id=new.pk, at=CHANGE)
    assert first.created and not second.created and first.invoice.pk == second.invoice.pk  # one invoice for October
    invoice = first.invoice
    lines = lambda invoice: [(line.kind, line.amount) for line in invoice.lines.order_by("position")]  # noqa: E731
    # Old part, 10.5/31 of the month: minimum 62 → 21.00, usage 10 → true-up 11; credit 31 → 10.50;
    # new part, 20.5/31: minimum 41.00, usage 20 → true-up 21; credit 20.50.
    assert lines(invoice) == [
        ("usage", Decimal("10.00")), ("commitment", Decimal("11.00")), ("discount", Decimal("-10.50")),
        ("usage", Decimal("20.00")), ("commitment", Decimal("21.00")), ("discount", Decimal("-20.50")),
    ]
    assert invoice.subscription_id == new.pk
    assert invoice.total == Decimal("31.00")  # the month's minimum 62, less the month's credit 31
    november = settlement_run(subscription_id=new.pk, at=NOV + timedelta(days=1)).invoice
    assert lines(november) == [("commitment", Decimal("62.00")), ("discount", Decimal("-31.00"))]  # whole again, credit's 2nd period


def test_the_api_changes_plan_and_refuses_bad_input(api_client, setup):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant)}")
    url = f"/api/v1/subscriptions/{setup.subscription.pk}/change-plan"
    premium = _new_plan(setup, rate="2")
    euro = _new_plan(setup, rate="2", currency="EUR")
    other = priced_setup()
    now = timezone.now()
    for body, field in (
        ({"rate_plan": euro.pk}, "rate_plan"),
        ({"rate_plan": setup.rate_plan.pk}, "rate_plan"),
        ({"rate_plan": other.rate_plan.pk}, "rate_plan"),
        ({"rate_plan": premium.pk, "at": (now - timedelta(hours=1)).isoformat()}, "at"),
        ({"rate_plan": premium.pk, "at": "tomorrow"}, "at"),
        ({}, "rate_plan"),
    ):
        refused = api_client.post(url, body, format="json")
        assert refused.status_code == 400 and field in refused.json()["error"]["fields"], (body, refused.content)
    at = now + timedelta(days=1)
    done = api_client.post(url, {"rate_plan": premium.pk, "at": at.isoformat(), "reason": "needs more"}, format="json")
    assert done.status_code == 201, done.content
    body = done.json()
    assert body["ended"]["status"] == "canceled" and body["started"]["rate_plan"] == premium.pk
    assert Subscription.objects.get(pk=body["ended"]["id"]).canceled_reason == f"Plan change to {premium.code}: needs more"
    again = api_client.post(url, {"rate_plan": premium.pk}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_changeable"
    assert api_client.post(f"/api/v1/subscriptions/{other.subscription.pk}/change-plan", {"rate_plan": premium.pk},
                           format="json").status_code == 404


def test_the_admin_changes_plan_after_a_confirmation(admin_client, setup):
    premium = _new_plan(setup, rate="2")
    url = f"/admin/subscriptions/{setup.subscription.pk}/change-plan/"
    page = admin_client.get(f"/admin/catalog/subscription/{setup.subscription.pk}/change/")
    assert url in page.content.decode()  # the button
    asked = admin_client.get(url)
    assert asked.status_code == 200 and "Nothing has changed yet." in asked.content.decode()
    assert premium in asked.context["form"].fields["rate_plan"].queryset
    assert setup.rate_plan not in asked.context["form"].fields["rate_plan"].queryset
    past = admin_client.post(url, {"_confirm": "1", "rate_plan": premium.pk, "at": "2026-01-01 00:00"})
    assert past.status_code == 200 and "at" in past.context["form"].errors
    assert not Subscription.objects.filter(changed_from=setup.subscription).exists()
    done = admin_client.post(url, {"_confirm": "1", "rate_plan": premium.pk, "reason": "upgrade"})
    successor = Subscription.objects.get(changed_from=setup.subscription)
    assert done.status_code == 302 and done["Location"].endswith(f"/admin/catalog/subscription/{successor.pk}/change/")
    assert successor.rate_plan_id == premium.pk
    assert admin_client.get(f"/admin/subscriptions/{priced_setup().subscription.pk + 1000}/change-plan/").status_code == 404


def test_the_successor_takes_the_terms_versions_in_effect_at_the_change_and_later(setup):
    """The terms in effect at the instant become the successor's first version, later versions
    follow it; a metric minimum of a metric the new plan does not price is left behind."""
    from catalog.models import SubscriptionTermsVersion
    from catalog.terms import terms_version_add
    from tests.factories import MetricFactory

    unpriced = MetricFactory(tenant=setup.tenant, product=setup.metric.product, code="unpriced_on_premium")
    old_only = services.rate_plan_version_create(rate_plan=setup.rate_plan, effective_from=JUL + timedelta(days=1))
    services.metric_config_set(version=old_only, metric=unpriced, config={"model": "per_unit", "rate": "1"})
    minimums = {setup.metric.code: "20", unpriced.code: "5"}
    terms_version_add(subscription=setup.subscription, values={"metric_minimums": minimums}, effective_from=OCT, now=OCT)
    terms_version_add(subscription=setup.subscription, values={"min_commitment": Decimal(90)}, effective_from=NOV,
                      now=CHANGE - timedelta(days=1))
    premium = _new_plan(setup, rate="2")
    new = plan_change(subscription=setup.subscription, rate_plan=premium, at=CHANGE, now=CHANGE - timedelta(days=1)).started
    versions = list(SubscriptionTermsVersion.objects.filter(subscription=new).order_by("effective_from"))
    assert [(v.effective_from, v.min_commitment, v.metric_minimums) for v in versions] == [
        (CHANGE, Decimal(62), {setup.metric.code: "20"}),
        (NOV, Decimal(90), {setup.metric.code: "20"}),
    ]
    assert (new.metric_minimums, new.terms_version_id) == ({setup.metric.code: "20"}, versions[0].pk)
