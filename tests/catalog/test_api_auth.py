"""Credentials on every catalog endpoint: admin tokens only. No token → 401
`missing_credentials`; unknown, malformed or revoked → 401 `invalid_credentials`;
an ingest token → 403 `wrong_credential_kind`."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from catalog import services
from catalog.models import TenantToken
from tests.factories import TenantFactory, priced_setup

pytestmark = pytest.mark.django_db

RESOURCES = [
    "customers", "teams", "apps", "api-keys", "products", "metrics", "offerings", "rate-plans",
    "rate-plan-versions", "metric-configs", "subscriptions",
]


def _requests(setup) -> list[tuple[str, str]]:
    """(method, path) for every route: list, create, detail read/update, actions, delete."""
    ids = {
        "customers": setup.customer.id, "teams": setup.app.team_id, "apps": setup.app.id,
        "api-keys": setup.app.api_keys.get().id, "products": setup.metric.product_id, "metrics": setup.metric.id,
        "offerings": setup.rate_plan.offering_id, "rate-plans": setup.rate_plan.id,
        "rate-plan-versions": setup.version.id, "metric-configs": setup.metric_config.id,
        "subscriptions": setup.subscription.id,
    }
    requests = []
    for resource, row_id in ids.items():
        requests += [
            ("get", f"/api/v1/{resource}"),
            ("post", f"/api/v1/{resource}"),
            ("get", f"/api/v1/{resource}/{row_id}"),
            ("patch", f"/api/v1/{resource}/{row_id}"),
            ("put", f"/api/v1/{resource}/{row_id}"),
        ]
    requests += [
        ("post", f"/api/v1/api-keys/{ids['api-keys']}/revoke"),
        ("post", f"/api/v1/rate-plan-versions/{ids['rate-plan-versions']}/publish"),
        ("post", f"/api/v1/rate-plan-versions/{ids['rate-plan-versions']}/revise"),
        ("delete", f"/api/v1/metric-configs/{ids['metric-configs']}"),
    ]
    assert {path.split("/")[3] for _, path in requests} == set(RESOURCES)
    return requests


@pytest.fixture
def setup():
    return priced_setup()


def _call(client: APIClient, method: str, path: str):
    return getattr(client, method)(path, {}, format="json")


def test_no_credentials_is_401_missing_credentials(setup):
    client = APIClient()
    for method, path in _requests(setup):
        response = _call(client, method, path)
        assert response.status_code == 401, (method, path, response.content)
        assert response.json()["error"]["code"] == "missing_credentials"
        assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer aft_admin_not-a-real-token", "Token abc", "Bearer", "Bearer a b"])
def test_invalid_credentials_is_401_invalid_credentials(setup, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    for method, path in _requests(setup):
        response = _call(client, method, path)
        assert response.status_code == 401, (method, path, response.content)
        assert response.json()["error"]["code"] == "invalid_credentials"


def test_revoked_admin_token_is_401_invalid_credentials(setup):
    token, secret = services.tenant_token_create(tenant=setup.tenant, kind=TenantToken.Kind.ADMIN, name="old")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/customers").status_code == 200
    services.tenant_token_revoke(token=token, reason="rotated", revoked_by="test")
    response = client.get("/api/v1/customers")
    assert response.status_code == 401
    assert response.json()["error"] == {"code": "invalid_credentials", "message": "This token was revoked."}


def test_ingest_token_is_403_wrong_credential_kind(setup, client_for):
    client = client_for(setup.tenant, TenantToken.Kind.INGEST)
    for method, path in _requests(setup):
        response = _call(client, method, path)
        assert response.status_code == 403, (method, path, response.content)
        assert response.json()["error"]["code"] == "wrong_credential_kind"
    # Nothing happened: the key is still active, the version still has one config.
    assert setup.app.api_keys.get().revoked_at is None
    assert setup.version.metric_configs.count() == 1


def test_admin_token_of_any_tenant_is_accepted(client_for):
    tenant = TenantFactory()
    response = client_for(tenant).get("/api/v1/customers")
    assert response.status_code == 200
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}
