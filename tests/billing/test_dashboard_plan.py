"""A customer changes its own plan on the dashboard where the operator allows it: the offering's
other plans in its currency, now or at the period's end; nowhere else, and never another
customer's subscription."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from aforo.periods import period_for
from catalog import services
from catalog.models import CustomerUser, Subscription
from tests.factories import RatePlanFactory, priced_setup

pytestmark = pytest.mark.django_db


def _plan(setup, *, currency=None, publish=True):
    plan = RatePlanFactory(tenant=setup.tenant, offering=setup.subscription.offering, currency=currency or "USD", name=f"Plan {currency or 'USD'} {publish}")
    version = services.rate_plan_version_create(rate_plan=plan, effective_from=setup.subscription.started_at)
    services.metric_config_set(version=version, metric=setup.metric, config={"model": "per_unit", "rate": "2"})
    if publish:
        services.rate_plan_version_publish(version=version)
    return plan


@pytest.fixture
def world(django_user_model):
    setup = priced_setup(started_at=timezone.now() - timedelta(days=3))
    user = django_user_model.objects.create_user("acme", password="pw")
    CustomerUser.objects.create(user=user, customer=setup.customer)
    setup.user = user
    return setup


def test_not_offered_unless_the_operator_allows_it(client, world):
    client.force_login(world.user)
    url = f"/dashboard/subscriptions/{world.subscription.pk}/plan/"
    assert client.get(url).status_code == 404
    assert "Change plan" not in client.get("/dashboard/").content.decode()
    world.subscription.customer_may_change_plan = True
    world.subscription.save()
    assert 'class="change-plan"' in client.get("/dashboard/").content.decode()
    assert client.get(url).status_code == 200


def test_the_customer_switches_at_the_period_end(client, world):
    world.subscription.customer_may_change_plan = True
    world.subscription.save()
    premium, euro, draft = _plan(world), _plan(world, currency="EUR"), _plan(world, publish=False)
    client.force_login(world.user)
    url = f"/dashboard/subscriptions/{world.subscription.pk}/plan/"
    page = client.get(url)
    assert [plan.pk for plan in page.context["plans"]] == [premium.pk]  # not another currency, not an unpublished plan
    assert client.post(url, {"rate_plan": euro.pk, "when": "now"}).status_code == 400
    assert client.post(url, {"rate_plan": premium.pk, "when": "someday"}).status_code == 400
    done = client.post(url, {"rate_plan": premium.pk, "when": "period_end"}, follow=True)
    assert done.status_code == 200 and "Your plan changes to" in done.content.decode()
    successor = Subscription.objects.get(changed_from=world.subscription)
    now = timezone.now()
    sub = world.subscription
    assert successor.started_at == period_for(cadence=sub.billing_cadence, anchor=sub.billing_anchor, at=now)[1]
    assert successor.rate_plan_id == premium.pk and successor.customer_may_change_plan
    assert Subscription.objects.get(pk=sub.pk).canceled_reason.endswith("by the customer (acme)")


def test_never_another_customers_subscription(client, world, django_user_model):
    other = priced_setup(tenant=world.tenant)
    other.subscription.customer_may_change_plan = True
    other.subscription.save()
    client.force_login(world.user)
    assert client.get(f"/dashboard/subscriptions/{other.subscription.pk}/plan/").status_code in (403, 404)
