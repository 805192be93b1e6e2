"""Subscriptions over the API: defaults from the plan, model validation as field errors."""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest

from catalog.models import Subscription
from tests.factories import CustomerFactory, OfferingFactory, RatePlanFactory

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 1, tzinfo=dt_timezone.utc)


@pytest.fixture
def world(tenant):
    offering = OfferingFactory(tenant=tenant)
    return {
        "customer": CustomerFactory(tenant=tenant),
        "offering": offering,
        "plan": RatePlanFactory(tenant=tenant, offering=offering, currency="EUR"),
    }


def _body(world, **overrides):
    return {
        "customer": world["customer"].id,
        "offering": world["offering"].id,
        "rate_plan": world["plan"].id,
        "started_at": START.isoformat(),
        "confirm_backdated": True,  # START is months ago: its periods are invoiced at once
        **overrides,
    }


def test_a_backdated_start_asks_for_confirmation_and_lists_the_periods_it_will_invoice(admin, world):
    body = _body(world)
    del body["confirm_backdated"]
    refused = admin.post("/api/v1/subscriptions", body, format="json")
    assert refused.status_code == 409, refused.content
    error = refused.json()["error"]
    assert error["code"] == "backdated_confirmation_required" and error["field"] == "started_at"
    now = datetime.now(dt_timezone.utc)
    months = (now.year - START.year) * 12 + now.month - START.month  # whole months from March to this one
    assert len(error["periods"]) == months and error["periods"][0] == {
        "start": START.isoformat(), "end": datetime(2026, 4, 1, tzinfo=dt_timezone.utc).isoformat()}
    assert not Subscription.objects.exists()
    future = admin.post("/api/v1/subscriptions", {**body, "started_at": (now + timedelta(days=1)).isoformat()}, format="json")
    assert future.status_code == 201, future.content  # nothing over yet: nothing to confirm
    this_period = admin.post("/api/v1/subscriptions", {**body, "started_at": now.replace(day=1, hour=0, minute=0, second=0,
                                                                                           microsecond=0).isoformat()},
                             format="json")
    assert this_period.status_code == 201, this_period.content  # its first period is not over
    moved = admin.patch(f"/api/v1/subscriptions/{future.json()['id']}", {"started_at": START.isoformat(),
                                                                          "billing_anchor": START.isoformat()}, format="json")
    assert moved.status_code == 409 and moved.json()["error"]["code"] == "backdated_confirmation_required"
    confirmed = admin.post("/api/v1/subscriptions", {**body, "confirm_backdated": True}, format="json")
    assert confirmed.status_code == 201 and "confirm_backdated" not in confirmed.json()


def test_create_defaults_currency_and_anchor(admin, world, tenant):
    response = admin.post("/api/v1/subscriptions", _body(world, billing_mode="hybrid"))
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["currency"], body["billing_mode"]) == ("EUR", "hybrid")
    assert (body["billing_cadence"], body["status"]) == ("monthly", "active")
    subscription = Subscription.objects.get(pk=body["id"])
    assert subscription.tenant_id == tenant.id
    assert (subscription.billing_anchor, subscription.started_at, subscription.ended_at) == (START, START, None)
    assert subscription.currency == "EUR"


def test_a_new_subscription_takes_the_tenants_default_invoice_terms_unless_it_says(admin, world, tenant):
    tenant.default_net_terms_days, tenant.default_invoice_grace_hours = 14, 48
    tenant.save()
    defaulted = admin.post("/api/v1/subscriptions", _body(world), format="json")
    assert defaulted.status_code == 201, defaulted.content
    assert (defaulted.json()["net_terms_days"], defaulted.json()["invoice_grace_hours"]) == (14, 48)
    given = admin.post("/api/v1/subscriptions", _body(world, net_terms_days=0, invoice_grace_hours=0), format="json")
    assert (given.json()["net_terms_days"], given.json()["invoice_grace_hours"]) == (0, 0)
    # A later change of the defaults leaves existing subscriptions as they are.
    tenant.default_net_terms_days = 60
    tenant.save()
    assert Subscription.objects.get(pk=defaulted.json()["id"]).net_terms_days == 14


def test_the_tenants_default_terms_are_validated_in_the_admin(admin_client, tenant):
    from django.urls import reverse

    page = admin_client.get(reverse("admin:catalog_tenant_change", args=[tenant.pk]))
    assert "default_net_terms_days" in page.content.decode()
    form = {"name": tenant.name, "slug": tenant.slug, "country": "", "default_net_terms_days": "400",
            "default_invoice_grace_hours": "0"}
    refused = admin_client.post(reverse("admin:catalog_tenant_change", args=[tenant.pk]), form)
    assert refused.status_code == 200 and "default_net_terms_days" in refused.context["adminform"].form.errors
    saved = admin_client.post(reverse("admin:catalog_tenant_change", args=[tenant.pk]),
                              {**form, "default_net_terms_days": "45"})
    assert saved.status_code == 302, saved.context["adminform"].form.errors if saved.context else saved
    tenant.refresh_from_db()
    assert tenant.default_net_terms_days == 45


def test_create_with_explicit_anchor_and_cadence(admin, world):
    anchor = START - timedelta(days=3)
    response = admin.post(
        "/api/v1/subscriptions",
        _body(
            world, billing_anchor=anchor.isoformat(), billing_cadence="weekly", billing_mode="prepaid", currency="EUR"
        ),
        format="json",
    )
    assert response.status_code == 201, response.content
    subscription = Subscription.objects.get(pk=response.json()["id"])
    assert subscription.billing_anchor == anchor
    assert (subscription.billing_cadence, subscription.billing_mode) == ("weekly", "prepaid")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"currency": "USD"}, "currency"),
        ({"ended_at": (START - timedelta(days=1)).isoformat()}, "ended_at"),
        ({"billing_anchor": (START + timedelta(days=1)).isoformat()}, "billing_anchor"),
        ({"billing_mode": "barter"}, "billing_mode"),
        ({"billing_cadence": "yearly"}, "billing_cadence"),
        ({"started_at": None}, "started_at"),
    ],
)
def test_model_validation_errors_name_the_field(admin, world, overrides, field):
    response = admin.post("/api/v1/subscriptions", _body(world, **overrides))
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["fields"]) == [field]
    assert not Subscription.objects.exists()


@pytest.mark.parametrize("currency", ["XXX", "XTS", "ABC", "EU"])
def test_a_currency_outside_iso_4217_is_a_400_invalid_currency(admin, world, currency):
    response = admin.post("/api/v1/subscriptions", _body(world, currency=currency))
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_currency", "currency")
    assert not Subscription.objects.exists()


def test_rate_plan_must_belong_to_the_offering(admin, world, tenant):
    foreign_plan = RatePlanFactory(tenant=tenant, offering=OfferingFactory(tenant=tenant), currency="EUR")
    response = admin.post("/api/v1/subscriptions", _body(world, rate_plan=foreign_plan.id))
    assert response.status_code == 400
    message = "The rate plan must belong to the subscription's offering."
    assert response.json()["error"]["fields"] == {"rate_plan": [message]}
    assert response.json()["error"]["message"] == f"rate_plan: {message}"


def test_update_status_and_end(admin, world):
    subscription_id = admin.post("/api/v1/subscriptions", _body(world)).json()["id"]
    end = START + timedelta(days=45)
    canceled = admin.patch(f"/api/v1/subscriptions/{subscription_id}", {"status": "canceled"})
    assert canceled.status_code == 400 and list(canceled.json()["error"]["fields"]) == ["status"]  # POST …/cancel
    response = admin.patch(f"/api/v1/subscriptions/{subscription_id}", {"status": "paused", "ended_at": end.isoformat()})
    assert response.status_code == 200, response.content
    subscription = Subscription.objects.get(pk=subscription_id)
    assert (subscription.status, subscription.ended_at, subscription.currency) == ("paused", end, "EUR")

    bad_end = admin.patch(f"/api/v1/subscriptions/{subscription_id}", {"ended_at": START.isoformat()})
    assert bad_end.status_code == 400 and list(bad_end.json()["error"]["fields"]) == ["ended_at"]
    subscription.refresh_from_db()
    assert subscription.ended_at == end


def test_plan_and_customer_are_fixed_after_creation(admin, world, tenant):
    subscription_id = admin.post("/api/v1/subscriptions", _body(world)).json()["id"]
    other_plan = RatePlanFactory(tenant=tenant, offering=world["offering"], currency="EUR")
    other_customer = CustomerFactory(tenant=tenant)
    response = admin.patch(
        f"/api/v1/subscriptions/{subscription_id}", {"rate_plan": other_plan.id, "customer": other_customer.id}
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"rate_plan", "customer"}
    subscription = Subscription.objects.get(pk=subscription_id)
    assert (subscription.rate_plan_id, subscription.customer_id) == (world["plan"].id, world["customer"].id)


def test_subscription_filters(admin, world, tenant):
    first = admin.post("/api/v1/subscriptions", _body(world)).json()["id"]
    other_customer = CustomerFactory(tenant=tenant)
    second_body = _body(world, customer=other_customer.id, billing_mode="prepaid")
    second = admin.post("/api/v1/subscriptions", second_body).json()["id"]
    admin.patch(f"/api/v1/subscriptions/{second}", {"status": "paused"})

    def ids(query):
        return [row["id"] for row in admin.get(f"/api/v1/subscriptions?{query}").json()["results"]]

    assert ids(f"customer={world['customer'].id}") == [first]
    assert ids("status=paused") == [second]
    assert ids("billing_mode=prepaid") == [second]
    assert ids(f"rate_plan={world['plan'].id}") == [first, second]
    assert ids(f"offering={world['offering'].id}&status=active") == [first]


def test_the_admin_asks_to_confirm_a_backdated_start(admin_client, world, tenant):
    from django.urls import reverse

    form = {
        "tenant": tenant.pk, "customer": world["customer"].pk, "offering": world["offering"].pk, "rate_plan": world["plan"].pk,
        "billing_mode": "postpaid", "billing_cadence": "monthly", "billing_anchor_0": "2026-03-01", "billing_anchor_1": "00:00:00",
        "currency": "EUR", "status": "active", "started_at_0": "2026-03-01", "started_at_1": "00:00:00",
        "spend_cap_action": "cap", "net_terms_days": "30", "invoice_grace_hours": "0",
    }
    asked = admin_client.post(reverse("admin:catalog_subscription_add"), form)
    assert asked.status_code == 200
    errors = asked.context["adminform"].form.errors
    assert "confirm_backdated" in errors and "will be invoiced at once, from 2026-03-01" in errors["confirm_backdated"][0]
    assert not Subscription.objects.exists()
    done = admin_client.post(reverse("admin:catalog_subscription_add"), {**form, "confirm_backdated": "on"})
    assert done.status_code == 302, done.context["adminform"].form.errors if done.context else done
    assert Subscription.objects.get().started_at == START


def test_cancel_now_later_or_at_period_end_with_a_reason(admin, world):
    now = datetime.now(dt_timezone.utc)
    start = now - timedelta(minutes=1)
    body = {**_body(world), "started_at": start.isoformat(), "billing_anchor": start.isoformat()}
    first, second, third = (admin.post("/api/v1/subscriptions", body, format="json").json()["id"] for _ in range(3))
    no_reason = admin.post(f"/api/v1/subscriptions/{first}/cancel", {}, format="json")
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["error"]["fields"]
    past = admin.post(f"/api/v1/subscriptions/{first}/cancel", {"reason": "x", "at": (now - timedelta(hours=1)).isoformat()}, format="json")
    assert past.status_code == 400 and "at" in past.json()["error"]["fields"]
    both = admin.post(f"/api/v1/subscriptions/{first}/cancel", {"reason": "x", "at": now.isoformat(), "at_period_end": True}, format="json")
    assert both.status_code == 400
    done = admin.post(f"/api/v1/subscriptions/{first}/cancel", {"reason": "moved to a competitor"}, format="json")
    assert done.status_code == 200 and done.json()["status"] == "canceled", done.content
    row = Subscription.objects.get(pk=first)
    assert row.canceled_reason == "moved to a competitor" and row.ended_at <= datetime.now(dt_timezone.utc)
    again = admin.post(f"/api/v1/subscriptions/{first}/cancel", {"reason": "twice"}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_cancelable"
    later = now + timedelta(days=2)
    assert admin.post(f"/api/v1/subscriptions/{second}/cancel", {"reason": "r", "at": later.isoformat()}, format="json").status_code == 200
    assert Subscription.objects.get(pk=second).ended_at == later
    assert admin.post(f"/api/v1/subscriptions/{third}/cancel", {"reason": "r", "at_period_end": True}, format="json").status_code == 200
    from aforo.periods import period_for

    assert Subscription.objects.get(pk=third).ended_at == period_for(cadence="monthly", anchor=start, at=now)[1]
    assert admin.patch(f"/api/v1/subscriptions/{third}", {"status": "active"}, format="json").status_code == 400
