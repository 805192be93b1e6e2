"""Tenant isolation on every catalog endpoint: tenant B's admin token never sees, changes or
references tenant A's rows — absent from lists, 404 on detail URLs and actions, and a 400
"does not exist" (exactly as for an unknown id) when B's input names A's ids."""

from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone

import pytest

from catalog import services
from catalog.models import ApiKey, MetricConfig, RatePlanVersion, Tenant
from tests.factories import TenantFactory, priced_setup

pytestmark = pytest.mark.django_db

JAN = datetime(2026, 1, 1, tzinfo=dt_timezone.utc)
PRICE = {"model": "per_unit", "rate": "1"}

RESOURCES = [
    "customers", "teams", "apps", "api-keys", "products", "metrics", "offerings", "rate-plans",
    "rate-plan-versions", "metric-configs", "subscriptions",
]


def _world(tenant: Tenant) -> dict:
    """One row of every resource (two versions and two configs: one published, one draft)."""
    setup = priced_setup(tenant=tenant)
    setup.rate_plan.offering.products.add(setup.metric.product)
    draft = services.rate_plan_version_create(rate_plan=setup.rate_plan, effective_from=JAN)
    draft_config = services.metric_config_set(version=draft, metric=setup.metric, config=PRICE)
    return {
        "setup": setup,
        "draft": draft,
        "draft_config": draft_config,
        "ids": {
            "customers": [setup.customer.id],
            "teams": [setup.app.team_id],
            "apps": [setup.app.id],
            "api-keys": list(ApiKey.objects.filter(app=setup.app).values_list("id", flat=True)),
            "products": [setup.metric.product_id],
            "metrics": [setup.metric.id],
            "offerings": [setup.rate_plan.offering_id],
            "rate-plans": [setup.rate_plan.id],
            "rate-plan-versions": [setup.version.id, draft.id],
            "metric-configs": [setup.metric_config.id, draft_config.id],
            "subscriptions": [setup.subscription.id],
        },
    }


@pytest.fixture
def tenant_a(db):
    return _world(TenantFactory())


@pytest.fixture
def tenant_b(db):
    return _world(TenantFactory())


@pytest.fixture
def client_b(client_for, tenant_b):
    return client_for(tenant_b["setup"].tenant)


def test_every_resource_is_covered():
    from catalog.api.urls import router

    assert sorted(prefix for prefix, _, _ in router.registry) == sorted(RESOURCES)


@pytest.mark.parametrize("resource", RESOURCES)
def test_lists_show_only_the_callers_rows(client_b, tenant_a, tenant_b, resource):
    response = client_b.get(f"/api/v1/{resource}")
    assert response.status_code == 200
    ids = [row["id"] for row in response.json()["results"]]
    assert sorted(ids) == sorted(tenant_b["ids"][resource])
    assert not set(ids) & set(tenant_a["ids"][resource])


@pytest.mark.parametrize("resource", RESOURCES)
def test_detail_read_and_update_of_another_tenants_row_is_404(client_b, tenant_a, resource):
    for row_id in tenant_a["ids"][resource]:
        for method, body in (("get", None), ("patch", {"name": "hijacked"}), ("put", {"name": "hijacked"})):
            response = getattr(client_b, method)(f"/api/v1/{resource}/{row_id}", body)
            assert response.status_code == 404, (method, resource, response.content)
            assert response.json()["error"]["code"] == "not_found"
    setup = tenant_a["setup"]
    setup.customer.refresh_from_db()
    assert setup.customer.name != "hijacked"


def test_delete_of_another_tenants_metric_config_is_404(client_b, tenant_a):
    config = tenant_a["draft_config"]
    response = client_b.delete(f"/api/v1/metric-configs/{config.id}")
    assert response.status_code == 404
    assert MetricConfig.objects.filter(pk=config.id).exists()


def test_revoke_of_another_tenants_key_is_404(client_b, tenant_a):
    key_id = tenant_a["ids"]["api-keys"][0]
    response = client_b.post(f"/api/v1/api-keys/{key_id}/revoke", {"reason": "not yours"})
    assert response.status_code == 404
    assert ApiKey.objects.get(pk=key_id).revoked_at is None


def test_publish_and_revise_of_another_tenants_version_is_404(client_b, tenant_a):
    draft, published = tenant_a["draft"], tenant_a["setup"].version
    assert client_b.post(f"/api/v1/rate-plan-versions/{draft.id}/publish").status_code == 404
    draft.refresh_from_db()
    assert draft.status == RatePlanVersion.Status.DRAFT
    assert client_b.post(f"/api/v1/rate-plan-versions/{published.id}/revise").status_code == 404
    assert RatePlanVersion.objects.filter(rate_plan=published.rate_plan).count() == 2


def _create_cases(a: dict, b: dict) -> list[tuple[str, dict, str]]:
    """(resource, a body that would be valid for B except one field naming A's row, that field)."""
    sa, sb = a["setup"], b["setup"]
    subscription = {
        "customer": sb.customer.id, "offering": sb.rate_plan.offering_id, "rate_plan": sb.rate_plan.id,
        "started_at": JAN.isoformat(),
    }
    return [
        ("teams", {"customer": sa.customer.id, "name": "t"}, "customer"),
        ("apps", {"team": sa.app.team_id, "name": "a"}, "team"),
        ("api-keys", {"app": sa.app.id}, "app"),
        ("metrics", {"product": sa.metric.product_id, "code": "m_new", "name": "m"}, "product"),
        ("offerings", {"code": "o-new", "name": "o", "products": [sa.metric.product_id]}, "products"),
        ("rate-plans", {"offering": sa.rate_plan.offering_id, "code": "p-new", "name": "p"}, "offering"),
        ("rate-plan-versions", {"rate_plan": sa.rate_plan.id, "effective_from": JAN.isoformat()}, "rate_plan"),
        ("metric-configs", {"version": a["draft"].id, "metric": sb.metric.id, "config": PRICE}, "version"),
        # A's *published* version: still "does not exist" (not a 409 that would reveal it).
        ("metric-configs", {"version": sa.version.id, "metric": sb.metric.id, "config": PRICE}, "version"),
        ("metric-configs", {"version": b["draft"].id, "metric": sa.metric.id, "config": PRICE}, "metric"),
        ("subscriptions", {**subscription, "customer": sa.customer.id}, "customer"),
        ("subscriptions", {**subscription, "offering": sa.rate_plan.offering_id}, "offering"),
        ("subscriptions", {**subscription, "rate_plan": sa.rate_plan.id}, "rate_plan"),
    ]


def test_creating_with_another_tenants_ids_is_a_400_as_if_they_did_not_exist(client_b, tenant_a, tenant_b):
    for resource, body, field in _create_cases(tenant_a, tenant_b):
        count_before = client_b.get(f"/api/v1/{resource}").json()["count"]
        response = client_b.post(f"/api/v1/{resource}", body)
        assert response.status_code == 400, (resource, field, response.content)
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert list(error["fields"]) == [field], (resource, error)
        foreign_id = body[field][0] if isinstance(body[field], list) else body[field]
        message = error["fields"][field][0]
        assert message == f'Invalid pk "{foreign_id}" - object does not exist.', (resource, message)
        assert client_b.get(f"/api/v1/{resource}").json()["count"] == count_before


def test_updating_to_another_tenants_ids_is_a_400(client_b, tenant_a, tenant_b):
    sa, sb = tenant_a["setup"], tenant_b["setup"]
    team = client_b.patch(f"/api/v1/teams/{sb.app.team_id}", {"customer": sa.customer.id})
    assert team.status_code == 400 and list(team.json()["error"]["fields"]) == ["customer"]
    offering = client_b.patch(
        f"/api/v1/offerings/{sb.rate_plan.offering_id}", {"products": [sa.metric.product_id]}
    )
    assert offering.status_code == 400 and list(offering.json()["error"]["fields"]) == ["products"]
    assert list(sb.rate_plan.offering.products.values_list("id", flat=True)) == [sb.metric.product_id]
    app = client_b.patch(f"/api/v1/apps/{sb.app.id}", {"team": sa.app.team_id})
    assert app.status_code == 400 and list(app.json()["error"]["fields"]) == ["team"]
    sb.app.refresh_from_db()
    assert sb.app.team.tenant_id == sb.tenant.id


@pytest.mark.parametrize(
    ("resource", "param", "pick"),
    [
        ("teams", "customer", lambda s: s.customer.id),
        ("apps", "team", lambda s: s.app.team_id),
        ("api-keys", "app", lambda s: s.app.id),
        ("metrics", "product", lambda s: s.metric.product_id),
        ("offerings", "product", lambda s: s.metric.product_id),
        ("rate-plans", "offering", lambda s: s.rate_plan.offering_id),
        ("rate-plan-versions", "rate_plan", lambda s: s.rate_plan.id),
        ("metric-configs", "version", lambda s: s.version.id),
        ("subscriptions", "customer", lambda s: s.customer.id),
    ],
)
def test_filtering_by_another_tenants_ids_finds_nothing(client_b, tenant_a, tenant_b, resource, param, pick):
    foreign = client_b.get(f"/api/v1/{resource}?{param}={pick(tenant_a['setup'])}")
    assert foreign.status_code == 200 and foreign.json()["count"] == 0
    own = client_b.get(f"/api/v1/{resource}?{param}={pick(tenant_b['setup'])}")
    assert own.json()["count"] >= 1


def test_same_names_in_two_tenants_do_not_clash(client_for, tenant_a, tenant_b):
    """Codes are unique per tenant, not globally: B can reuse A's product code."""
    code = tenant_a["setup"].metric.product.code
    response = client_for(tenant_b["setup"].tenant).post(
        "/api/v1/products", {"code": code, "name": "Same code", "product_type": "api"}
    )
    assert response.status_code == 201, response.content
