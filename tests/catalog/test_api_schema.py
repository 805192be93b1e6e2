"""The OpenAPI schema covers the catalog API and generates without warnings; the docs UI serves."""

from __future__ import annotations

import pytest
from django.core.management import call_command

CATALOG_PATHS = [
    "/api/v1/customers", "/api/v1/customers/{id}", "/api/v1/teams", "/api/v1/teams/{id}", "/api/v1/apps",
    "/api/v1/apps/{id}", "/api/v1/api-keys", "/api/v1/api-keys/{id}", "/api/v1/api-keys/{id}/revoke",
    "/api/v1/products", "/api/v1/products/{id}", "/api/v1/metrics", "/api/v1/metrics/{id}", "/api/v1/offerings",
    "/api/v1/offerings/{id}", "/api/v1/rate-plans", "/api/v1/rate-plans/{id}", "/api/v1/rate-plan-versions",
    "/api/v1/rate-plan-versions/{id}", "/api/v1/rate-plan-versions/{id}/publish",
    "/api/v1/rate-plan-versions/{id}/revise", "/api/v1/metric-configs", "/api/v1/metric-configs/{id}",
    "/api/v1/subscriptions", "/api/v1/subscriptions/{id}",
]


@pytest.mark.django_db
def test_schema_is_served_with_the_catalog_paths(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    assert set(CATALOG_PATHS) <= set(schema["paths"])
    assert "delete" not in schema["paths"]["/api/v1/customers/{id}"]
    assert "delete" in schema["paths"]["/api/v1/metric-configs/{id}"]
    assert set(schema["paths"]["/api/v1/subscriptions/{id}"]) == {"get", "put", "patch"}
    assert schema["components"]["securitySchemes"]["tenantToken"] == {"type": "http", "scheme": "bearer"}
    created = schema["paths"]["/api/v1/api-keys"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert created == {"$ref": "#/components/schemas/ApiKeyCreated"}
    assert "key" in schema["components"]["schemas"]["ApiKeyCreated"]["properties"]
    assert "key" not in schema["components"]["schemas"]["ApiKey"]["properties"]
    list_params = {p["name"] for p in schema["paths"]["/api/v1/teams"]["get"]["parameters"]}
    assert {"customer", "limit", "offset"} <= list_params


@pytest.mark.django_db
def test_docs_ui_is_served(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def test_schema_generates_without_warnings(tmp_path):
    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    assert "/api/v1/rate-plan-versions/{id}/revise:" in text
