"""Catalog API happy paths and validation, per resource (customers … rate plans).
API keys, versions/metric configs and subscriptions have their own modules."""

from __future__ import annotations

import pytest

from catalog.models import App, Customer, Metric, Offering, Product, RatePlan, Team
from tests.factories import (
    AppFactory,
    CustomerFactory,
    MetricFactory,
    OfferingFactory,
    ProductFactory,
    RatePlanFactory,
    TeamFactory,
    TenantFactory,
)

pytestmark = pytest.mark.django_db


def _ids(response) -> list[int]:
    return [row["id"] for row in response.json()["results"]]


def test_customer_create_list_retrieve_update(admin, tenant):
    created = admin.post("/api/v1/customers", {"name": "Acme", "external_id": "acme", "email": "ops@acme.test"})
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["name"], body["external_id"], body["email"]) == ("Acme", "acme", "ops@acme.test")
    customer = Customer.objects.get(pk=body["id"])
    assert customer.tenant_id == tenant.id

    listed = admin.get("/api/v1/customers")
    assert listed.status_code == 200
    assert listed.json()["count"] == 1 and _ids(listed) == [customer.id]

    assert admin.get(f"/api/v1/customers/{customer.id}").json()["name"] == "Acme"

    patched = admin.patch(f"/api/v1/customers/{customer.id}", {"name": "Acme Corp"})
    assert patched.status_code == 200 and patched.json()["name"] == "Acme Corp"
    replaced = admin.put(f"/api/v1/customers/{customer.id}", {"name": "Acme Inc", "external_id": "acme-2"})
    assert replaced.status_code == 200, replaced.content
    customer.refresh_from_db()
    assert (customer.name, customer.external_id, customer.email) == ("Acme Inc", "acme-2", "ops@acme.test")


def test_customer_external_id_unique_per_tenant_names_the_field(admin, tenant):
    CustomerFactory(tenant=tenant, external_id="acme")
    CustomerFactory(tenant=TenantFactory(), external_id="taken-elsewhere")
    response = admin.post("/api/v1/customers", {"name": "Again", "external_id": "acme"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["fields"]) == ["external_id"]
    # Uniqueness is per tenant: another tenant's external id is free here.
    assert admin.post("/api/v1/customers", {"name": "Ok", "external_id": "taken-elsewhere"}).status_code == 201
    # Blank external ids never clash.
    assert admin.post("/api/v1/customers", {"name": "No id 1"}).status_code == 201
    assert admin.post("/api/v1/customers", {"name": "No id 2"}).status_code == 201


def test_customer_validation_error_shape(admin):
    response = admin.post("/api/v1/customers", {"email": "not-an-email"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["fields"]) == {"name", "email"}


def test_client_sent_tenant_is_ignored(admin, tenant):
    other = TenantFactory()
    response = admin.post("/api/v1/customers", {"name": "Mine", "tenant": other.id})
    assert response.status_code == 201
    assert "tenant" not in response.json()
    assert Customer.objects.get(pk=response.json()["id"]).tenant_id == tenant.id


def test_catalog_rows_cannot_be_deleted(admin, tenant):
    customer = CustomerFactory(tenant=tenant)
    response = admin.delete(f"/api/v1/customers/{customer.id}")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert Customer.objects.filter(pk=customer.id).exists()


def test_list_is_paginated_with_limit_and_offset(admin, tenant):
    customers = [CustomerFactory(tenant=tenant) for _ in range(5)]
    response = admin.get("/api/v1/customers?limit=2&offset=1")
    body = response.json()
    assert body["count"] == 5
    assert _ids(response) == [customers[1].id, customers[2].id]
    assert "offset=3" in body["next"]


def test_customer_filter_by_external_id(admin, tenant):
    CustomerFactory(tenant=tenant, external_id="a")
    wanted = CustomerFactory(tenant=tenant, external_id="b")
    assert _ids(admin.get("/api/v1/customers?external_id=b")) == [wanted.id]


def test_team_crud_and_filter_by_customer(admin, tenant):
    customer, other_customer = CustomerFactory(tenant=tenant), CustomerFactory(tenant=tenant)
    TeamFactory(tenant=tenant, customer=other_customer)
    created = admin.post("/api/v1/teams", {"customer": customer.id, "name": "Platform"})
    assert created.status_code == 201, created.content
    team = Team.objects.get(pk=created.json()["id"])
    assert (team.tenant_id, team.customer_id, team.name) == (tenant.id, customer.id, "Platform")

    assert _ids(admin.get(f"/api/v1/teams?customer={customer.id}")) == [team.id]
    patched = admin.patch(f"/api/v1/teams/{team.id}", {"name": "Infra"})
    assert patched.status_code == 200
    assert patched.json() == {**created.json(), "name": "Infra", "updated_at": patched.json()["updated_at"]}


def test_team_name_unique_per_customer(admin, tenant):
    team = TeamFactory(tenant=tenant, customer=CustomerFactory(tenant=tenant), name="Platform")
    response = admin.post("/api/v1/teams", {"customer": team.customer_id, "name": "Platform"})
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["non_field_errors"]
    assert Team.objects.filter(customer=team.customer).count() == 1


def test_invalid_filter_value_is_a_400_naming_the_parameter(admin):
    response = admin.get("/api/v1/teams?customer=abc")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"customer": ["Must be an integer id, got 'abc'."]}
    nul = admin.get("/api/v1/customers?external_id=a%00b")
    assert nul.status_code == 400 and list(nul.json()["error"]["fields"]) == ["external_id"]
    unknown_status = admin.get("/api/v1/subscriptions?status=gone")
    assert unknown_status.status_code == 400 and list(unknown_status.json()["error"]["fields"]) == ["status"]


def test_app_crud_and_filters(admin, tenant):
    team = TeamFactory(tenant=tenant, customer=CustomerFactory(tenant=tenant))
    other_team_app = AppFactory(tenant=tenant, team=TeamFactory(tenant=tenant, customer=CustomerFactory(tenant=tenant)))
    created = admin.post("/api/v1/apps", {"team": team.id, "name": "Research agent", "kind": "agent"})
    assert created.status_code == 201, created.content
    app = App.objects.get(pk=created.json()["id"])
    assert (app.team_id, app.kind) == (team.id, App.Kind.AGENT)

    assert _ids(admin.get(f"/api/v1/apps?team={team.id}")) == [app.id]
    assert _ids(admin.get(f"/api/v1/apps?customer={team.customer_id}")) == [app.id]
    assert _ids(admin.get("/api/v1/apps?kind=app")) == [other_team_app.id]
    bad = admin.patch(f"/api/v1/apps/{app.id}", {"kind": "robot"})
    assert bad.status_code == 400 and list(bad.json()["error"]["fields"]) == ["kind"]
    assert admin.patch(f"/api/v1/apps/{app.id}", {"kind": "app"}).json()["kind"] == "app"


@pytest.mark.parametrize("product_type", ["api", "mcp_server", "agentic_api"])
def test_product_create_each_type(admin, tenant, product_type):
    response = admin.post(
        "/api/v1/products", {"code": f"p-{product_type}".replace("_", "-"), "name": "P", "product_type": product_type}
    )
    assert response.status_code == 201, response.content
    assert Product.objects.get(pk=response.json()["id"], tenant=tenant).product_type == product_type
    assert _ids(admin.get(f"/api/v1/products?product_type={product_type}")) == [response.json()["id"]]


def test_product_validation(admin, tenant):
    ProductFactory(tenant=tenant, code="search")
    bad_type = admin.post("/api/v1/products", {"code": "x", "name": "X", "product_type": "saas"})
    assert bad_type.status_code == 400 and list(bad_type.json()["error"]["fields"]) == ["product_type"]
    duplicate = admin.post("/api/v1/products", {"code": "search", "name": "X", "product_type": "api"})
    assert duplicate.status_code == 400
    assert duplicate.json()["error"]["fields"] == {"code": ["A product with this code already exists."]}
    product = Product.objects.get(code="search")
    assert admin.patch(f"/api/v1/products/{product.id}", {"code": "search", "name": "Renamed"}).status_code == 200


def test_metric_crud_and_filter_by_product(admin, tenant):
    product, other_product = ProductFactory(tenant=tenant), ProductFactory(tenant=tenant)
    MetricFactory(tenant=tenant, product=other_product)
    created = admin.post(
        "/api/v1/metrics", {"product": product.id, "code": "api_calls", "name": "API calls", "unit": "call"}
    )
    assert created.status_code == 201, created.content
    metric = Metric.objects.get(pk=created.json()["id"])
    assert (metric.tenant_id, metric.product_id, metric.code) == (tenant.id, product.id, "api_calls")
    assert metric.unit == "call"
    assert _ids(admin.get(f"/api/v1/metrics?product={product.id}")) == [metric.id]
    duplicate = admin.post("/api/v1/metrics", {"product": other_product.id, "code": "api_calls", "name": "Again"})
    assert duplicate.status_code == 400 and list(duplicate.json()["error"]["fields"]) == ["code"]
    assert admin.patch(f"/api/v1/metrics/{metric.id}", {"unit": "request"}).json()["unit"] == "request"


def test_offering_products_are_set_and_replaced(admin, tenant):
    search, tools, agent = (ProductFactory(tenant=tenant) for _ in range(3))
    created = admin.post(
        "/api/v1/offerings", {"code": "growth", "name": "Growth", "products": [search.id, tools.id]}
    )
    assert created.status_code == 201, created.content
    offering = Offering.objects.get(pk=created.json()["id"])
    assert sorted(created.json()["products"]) == sorted([search.id, tools.id])
    assert set(offering.products.values_list("id", flat=True)) == {search.id, tools.id}

    patched = admin.patch(f"/api/v1/offerings/{offering.id}", {"products": [agent.id]})
    assert patched.status_code == 200 and patched.json()["products"] == [agent.id]
    assert list(offering.products.values_list("id", flat=True)) == [agent.id]
    # A PATCH without `products` leaves them alone.
    admin.patch(f"/api/v1/offerings/{offering.id}", {"name": "Growth 2"})
    assert list(offering.products.values_list("id", flat=True)) == [agent.id]
    assert _ids(admin.get(f"/api/v1/offerings?product={agent.id}")) == [offering.id]
    assert _ids(admin.get(f"/api/v1/offerings?product={search.id}")) == []


def test_offering_without_products(admin):
    response = admin.post("/api/v1/offerings", {"code": "empty", "name": "Empty"})
    assert response.status_code == 201 and response.json()["products"] == []


def test_rate_plan_crud_and_create_only_fields(admin, tenant):
    offering, other_offering = OfferingFactory(tenant=tenant), OfferingFactory(tenant=tenant)
    created = admin.post(
        "/api/v1/rate-plans", {"offering": offering.id, "code": "growth-eur", "name": "Growth", "currency": "eur"}
    )
    assert created.status_code == 201, created.content
    plan = RatePlan.objects.get(pk=created.json()["id"])
    assert (plan.offering_id, plan.currency) == (offering.id, "EUR")
    assert _ids(admin.get(f"/api/v1/rate-plans?offering={offering.id}")) == [plan.id]

    assert admin.patch(f"/api/v1/rate-plans/{plan.id}", {"name": "Growth EU"}).json()["name"] == "Growth EU"
    changed = admin.patch(f"/api/v1/rate-plans/{plan.id}", {"currency": "USD", "offering": other_offering.id})
    assert changed.status_code == 400
    assert changed.json()["error"]["fields"] == {
        "offering": ["Cannot be changed after creation."],
        "currency": ["Cannot be changed after creation."],
    }
    plan.refresh_from_db()
    assert (plan.offering_id, plan.currency) == (offering.id, "EUR")
    # Re-sending the same values (a PUT) is fine.
    put = admin.put(
        f"/api/v1/rate-plans/{plan.id}", {"offering": offering.id, "code": "growth-eur", "name": "G", "currency": "EUR"}
    )
    assert put.status_code == 200, put.content


def test_rate_plan_currency_must_be_iso_code(admin, tenant):
    offering = OfferingFactory(tenant=tenant)
    response = admin.post("/api/v1/rate-plans", {"offering": offering.id, "code": "x", "name": "X", "currency": "E1"})
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["currency"]
    assert response.json()["error"]["code"] == "invalid_currency"
    RatePlanFactory(tenant=tenant, offering=offering, code="taken")
    duplicate = admin.post("/api/v1/rate-plans", {"offering": offering.id, "code": "taken", "name": "X"})
    assert duplicate.status_code == 400 and list(duplicate.json()["error"]["fields"]) == ["code"]


@pytest.mark.parametrize("currency", ["ABC", "XXX", "XTS", "XAU", "HRK", "usdollar", 978])
def test_rate_plan_currency_must_be_an_active_iso_4217_code(admin, tenant, currency):
    offering = OfferingFactory(tenant=tenant)
    body = {"offering": offering.id, "code": "x", "name": "X", "currency": currency}
    response = admin.post("/api/v1/rate-plans", body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["field"], list(error["fields"])) == ("invalid_currency", "currency", ["currency"])
    assert not RatePlan.objects.filter(code="x").exists()


def test_unknown_related_id_is_a_400_naming_the_field(admin):
    response = admin.post("/api/v1/teams", {"customer": 987654321, "name": "Ghost"})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"customer": ['Invalid pk "987654321" - object does not exist.']}


def test_unknown_detail_id_is_a_json_404(admin):
    for path in ("/api/v1/customers/987654321", "/api/v1/customers/abc"):
        response = admin.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
