"""Tenant scoping in the admin: an operator (TenantMember, not superuser) sees, picks and
creates only their own tenant's rows; superusers see every tenant, with a tenant filter;
same-tenant validation shows as form errors."""

from __future__ import annotations

import pytest
from django.urls import reverse

from billing.models import PricingSnapshot, RatedEvent, RunningTotal
from catalog.models import (
    ApiKey,
    App,
    Customer,
    Metric,
    RatePlan,
    RatePlanVersion,
    Subscription,
    Team,
    Tenant,
    TenantToken,
)
from metering.models import RawEvent, UnmatchedUsage
from tests.factories import CustomerFactory, priced_setup, tenant_token
from tests.test_admin import change_url, changelist_url, ledger_rows, operator

pytestmark = pytest.mark.django_db

SCOPED_MODELS = [
    Tenant, TenantToken, Customer, Team, App, ApiKey, Metric, RatePlan, RatePlanVersion, Subscription,
    RawEvent, UnmatchedUsage, RatedEvent, RunningTotal, PricingSnapshot,
]


@pytest.fixture
def two_tenants():
    mine, theirs = priced_setup(), priced_setup()
    ledger_rows(mine, event_id="mine-1")
    ledger_rows(theirs, event_id="theirs-1")
    theirs_snapshot = PricingSnapshot.objects.create(config_hash="f" * 64, config={"model": "per_unit", "rate": "9"})
    RatedEvent.objects.filter(tenant=theirs.tenant).update(pricing_snapshot=theirs_snapshot)
    tenant_token(mine.tenant)
    tenant_token(theirs.tenant)
    return mine, theirs


@pytest.fixture
def operator_client(client, two_tenants):
    client.force_login(operator(two_tenants[0].tenant))
    return client


def _row_in(model, setup):
    if model is Tenant:
        return setup.tenant
    if model is PricingSnapshot:
        return RatedEvent.objects.filter(tenant=setup.tenant).first().pricing_snapshot
    return model._default_manager.filter(tenant=setup.tenant).order_by("pk").first()


@pytest.mark.parametrize("model", SCOPED_MODELS, ids=[m._meta.label for m in SCOPED_MODELS])
def test_operator_lists_and_opens_only_their_tenants_rows(operator_client, two_tenants, model):
    mine, theirs = two_tenants
    response = operator_client.get(changelist_url(model))
    assert response.status_code == 200
    listed = {row.pk for row in response.context["cl"].result_list}
    assert _row_in(model, mine).pk in listed
    assert _row_in(model, theirs).pk not in listed
    assert operator_client.get(change_url(_row_in(model, mine))).status_code == 200
    foreign = operator_client.get(change_url(_row_in(model, theirs)))
    assert foreign.status_code == 302 and foreign.url == reverse("admin:index")  # "does not exist"


def test_operator_cannot_change_or_delete_another_tenants_row(operator_client, two_tenants):
    theirs = two_tenants[1]
    customer = theirs.customer
    response = operator_client.post(change_url(customer), {"name": "hijacked", "external_id": "x", "email": ""})
    assert response.status_code == 302 and response.url == reverse("admin:index")
    delete = operator_client.post(reverse("admin:catalog_customer_delete", args=[customer.pk]), {"post": "yes"})
    assert delete.status_code == 302
    customer.refresh_from_db()
    assert customer.name != "hijacked"


def test_operator_choices_are_their_tenants_and_tenant_is_set_on_add(operator_client, two_tenants):
    mine, theirs = two_tenants
    form = operator_client.get(reverse("admin:catalog_team_add")).context["adminform"].form
    assert "tenant" not in form.fields
    assert set(form.fields["customer"].queryset) == set(Customer.objects.filter(tenant=mine.tenant))
    sub_form = operator_client.get(reverse("admin:catalog_subscription_add")).context["adminform"].form
    assert set(sub_form.fields["rate_plan"].queryset) == {mine.rate_plan}
    assert set(sub_form.fields["offering"].queryset) == {mine.rate_plan.offering}

    created = operator_client.post(reverse("admin:catalog_team_add"), {"customer": mine.customer.pk, "name": "Data"})
    assert created.status_code == 302
    team = Team.objects.get(name="Data")
    assert team.tenant_id == mine.tenant.pk and team.customer_id == mine.customer.pk

    sneaky = {"customer": theirs.customer.pk, "name": "Sneaky"}
    refused = operator_client.post(reverse("admin:catalog_team_add"), sneaky)
    assert refused.status_code == 200
    assert "customer" in refused.context["adminform"].form.errors
    assert not Team.objects.filter(name="Sneaky").exists()


def test_operator_cannot_add_tenants_or_see_members(operator_client):
    assert operator_client.get(reverse("admin:catalog_tenant_add")).status_code == 403
    assert operator_client.get(reverse("admin:catalog_tenantmember_changelist")).status_code == 403
    index = operator_client.get(reverse("admin:index")).content.decode()
    assert "Tenant members" not in index and "Customers" in index


def test_metric_filter_choices_are_the_operators_metrics(operator_client, two_tenants):
    mine, theirs = two_tenants
    response = operator_client.get(changelist_url(RatedEvent))
    changelist = response.context["cl"]
    choices = {c["display"] for spec in changelist.filter_specs for c in spec.choices(changelist)}
    assert mine.metric.code in choices and theirs.metric.code not in choices


def test_staff_user_without_a_tenant_sees_nothing(client, django_user_model, two_tenants):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("loose", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="catalog"))
    client.force_login(user)
    response = client.get(changelist_url(Customer))
    assert response.status_code == 200 and list(response.context["cl"].result_list) == []
    assert client.get(reverse("admin:catalog_customer_add")).status_code == 403


def test_superuser_sees_all_tenants_with_a_tenant_filter(admin_client, two_tenants):
    mine, theirs = two_tenants
    response = admin_client.get(changelist_url(Customer))
    assert {mine.customer.pk, theirs.customer.pk} <= {row.pk for row in response.context["cl"].result_list}
    assert "tenant" in response.context["cl"].list_display
    assert any(spec.title == "tenant" for spec in response.context["cl"].filter_specs)
    filtered = admin_client.get(changelist_url(Customer) + f"?tenant__id__exact={theirs.tenant.pk}")
    assert {row.pk for row in filtered.context["cl"].result_list} == {theirs.customer.pk}


def test_superuser_cross_tenant_relation_is_a_form_error(admin_client, two_tenants):
    mine, theirs = two_tenants
    response = admin_client.post(
        reverse("admin:catalog_team_add"), {"tenant": mine.tenant.pk, "customer": theirs.customer.pk, "name": "Mixed"}
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["customer"] == ["Must belong to the same tenant."]
    assert not Team.objects.filter(name="Mixed").exists()


def test_superuser_cannot_move_a_row_to_another_tenant(admin_client, two_tenants):
    mine, theirs = two_tenants
    customer = CustomerFactory(tenant=mine.tenant, name="Stays")
    form = {"tenant": theirs.tenant.pk, "name": "Stays", "external_id": customer.external_id, "email": ""}
    response = admin_client.post(change_url(customer), form)
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.tenant_id == mine.tenant.pk


def test_operator_links_only_plain_users_as_customer_logins(operator_client, two_tenants, django_user_model):
    plain = django_user_model.objects.create_user("plain", password="pw")
    django_user_model.objects.create_user("staffer", password="pw", is_staff=True)
    form = operator_client.get(reverse("admin:catalog_customeruser_add")).context["adminform"].form
    assert set(form.fields["user"].queryset) == {plain}
    assert set(form.fields["customer"].queryset) == set(Customer.objects.filter(tenant=two_tenants[0].tenant))


def test_per_tenant_unique_codes_are_form_errors_not_crashes(operator_client, two_tenants):
    mine, theirs = two_tenants
    taken = {"name": "Again", "external_id": mine.customer.external_id, "email": ""}
    response = operator_client.post(reverse("admin:catalog_customer_add"), taken)
    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors()
    assert not Customer.objects.filter(name="Again").exists()
    # The same external id in another tenant is not a clash.
    theirs_id = {"name": "Fine", "external_id": theirs.customer.external_id, "email": ""}
    assert operator_client.post(reverse("admin:catalog_customer_add"), theirs_id).status_code == 302
    assert Customer.objects.get(name="Fine").tenant_id == mine.tenant.pk


def _product_form(*metric_codes: str) -> dict:
    data = {
        "code": "search", "name": "Search", "product_type": "api", "description": "",
        "metrics-TOTAL_FORMS": str(len(metric_codes)), "metrics-INITIAL_FORMS": "0",
        "metrics-MIN_NUM_FORMS": "0", "metrics-MAX_NUM_FORMS": "1000",
    }
    for index, code in enumerate(metric_codes):
        data.update({f"metrics-{index}-code": code, f"metrics-{index}-name": code, f"metrics-{index}-unit": "call",
                     f"metrics-{index}-description": ""})
    return data


def test_operator_adds_a_product_with_its_metrics(operator_client, two_tenants):
    mine = two_tenants[0]
    duplicate = operator_client.post(reverse("admin:catalog_product_add"), _product_form("searches", "searches"))
    assert duplicate.status_code == 200 and not Metric.objects.filter(code="searches").exists()
    clash = operator_client.post(reverse("admin:catalog_product_add"), _product_form(mine.metric.code))
    assert clash.status_code == 200
    assert clash.context["inline_admin_formsets"][0].formset.forms[0].non_field_errors()
    created = operator_client.post(reverse("admin:catalog_product_add"), _product_form("searches", "results"))
    assert created.status_code == 302
    metrics = Metric.objects.filter(product__code="search").order_by("code")
    assert [(m.code, m.tenant_id, m.product.tenant_id) for m in metrics] == [
        ("results", mine.tenant.pk, mine.tenant.pk), ("searches", mine.tenant.pk, mine.tenant.pk),
    ]
