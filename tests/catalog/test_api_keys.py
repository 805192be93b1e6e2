"""API keys over the API: the full key is shown once, only its hash is stored, revocation."""

from __future__ import annotations

import pytest

from catalog import services
from catalog.models import ApiKey, key_hash
from tests.factories import AppFactory, CustomerFactory, TeamFactory

pytestmark = pytest.mark.django_db

READABLE_FIELDS = {
    "id", "app", "name", "prefix", "revoked_at", "revoked_reason", "revoked_by", "is_active", "created_at", "updated_at",
}


@pytest.fixture
def app(tenant):
    return AppFactory(tenant=tenant, team=TeamFactory(tenant=tenant, customer=CustomerFactory(tenant=tenant)))


def test_create_shows_the_full_key_once_and_stores_only_its_hash(admin, app):
    response = admin.post("/api/v1/api-keys", {"app": app.id, "name": "prod"})
    assert response.status_code == 201, response.content
    body = response.json()
    secret = body["key"]
    assert secret.startswith(services.API_KEY_PREFIX) and len(secret) > 40
    assert body["prefix"] == secret[:16]
    assert set(body) == READABLE_FIELDS | {"key"}
    assert (body["app"], body["name"], body["is_active"], body["revoked_at"]) == (app.id, "prod", True, None)

    api_key = ApiKey.objects.get(pk=body["id"])
    assert api_key.key_hash == key_hash(secret)
    stored = ApiKey.objects.filter(pk=api_key.pk).values().get()
    assert secret not in [str(value) for value in stored.values()]

    # Never again: neither the list nor the detail carries it, nor its hash.
    for path in ("/api/v1/api-keys", f"/api/v1/api-keys/{api_key.id}"):
        again = admin.get(path)
        assert again.status_code == 200
        assert secret not in again.content.decode()
        assert api_key.key_hash not in again.content.decode()
        row = again.json()["results"][0] if "results" in again.json() else again.json()
        assert set(row) == READABLE_FIELDS
    assert admin.get(f"/api/v1/api-keys/{api_key.id}").json()["prefix"] == secret[:16]


def test_each_key_is_different(admin, app):
    first = admin.post("/api/v1/api-keys", {"app": app.id}).json()["key"]
    second = admin.post("/api/v1/api-keys", {"app": app.id}).json()["key"]
    assert first != second
    assert ApiKey.objects.filter(app=app).count() == 2


def test_create_requires_an_app(admin):
    response = admin.post("/api/v1/api-keys", {"name": "orphan"})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"app": ["This field is required."]}
    assert ApiKey.objects.count() == 0


def test_revoke_needs_a_reason_stores_it_and_is_idempotent(admin, app):
    api_key, secret = services.api_key_create(app=app, name="k")
    for body in ({}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501}):
        refused = admin.post(f"/api/v1/api-keys/{api_key.id}/revoke", body)
        assert refused.status_code == 400, body
        assert refused.json()["error"]["code"] == "validation_error" and "reason" in refused.json()["error"]["fields"]
    api_key.refresh_from_db()
    assert (api_key.revoked_at, api_key.revoked_reason) == (None, "")

    first = admin.post(f"/api/v1/api-keys/{api_key.id}/revoke", {"reason": "leaked in a public repo"})
    assert first.status_code == 200, first.content
    assert first.json()["is_active"] is False and first.json()["revoked_at"] is not None
    assert first.json()["revoked_reason"] == "leaked in a public repo"
    assert first.json()["revoked_by"].startswith("token:aft_admin_")
    assert secret not in first.content.decode() and set(first.json()) == READABLE_FIELDS
    api_key.refresh_from_db()
    revoked_at = api_key.revoked_at
    assert revoked_at is not None and api_key.revoked_reason == "leaked in a public repo"

    second = admin.post(f"/api/v1/api-keys/{api_key.id}/revoke", {"reason": "again"})
    assert second.status_code == 200
    assert second.json()["revoked_at"] == first.json()["revoked_at"]
    assert second.json()["revoked_reason"] == "leaked in a public repo"  # the first revocation stands
    api_key.refresh_from_db()
    assert api_key.revoked_at == revoked_at


def test_filter_active_keys(admin, app):
    active, _ = services.api_key_create(app=app)
    revoked, _ = services.api_key_create(app=app)
    services.api_key_revoke(api_key=revoked, reason="leaked", revoked_by="test")
    assert [row["id"] for row in admin.get("/api/v1/api-keys?active=true").json()["results"]] == [active.id]
    assert [row["id"] for row in admin.get("/api/v1/api-keys?active=false").json()["results"]] == [revoked.id]
    assert [row["id"] for row in admin.get(f"/api/v1/api-keys?app={app.id}").json()["results"]] == [
        active.id, revoked.id
    ]


def test_only_the_name_of_a_key_can_change(admin, app, tenant):
    api_key, _ = services.api_key_create(app=app, name="old")
    other_app = AppFactory(tenant=tenant, team=app.team)
    renamed = admin.patch(f"/api/v1/api-keys/{api_key.id}", {"name": "new"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "new"
    moved = admin.patch(f"/api/v1/api-keys/{api_key.id}", {"app": other_app.id})
    assert moved.status_code == 400
    assert moved.json()["error"]["fields"] == {"app": ["Cannot be changed after creation."]}
    # Read-only fields are ignored, not written.
    admin.patch(f"/api/v1/api-keys/{api_key.id}", {"revoked_at": "2030-01-01T00:00:00Z", "prefix": "x", "key": "y"})
    api_key.refresh_from_db()
    assert (api_key.app_id, api_key.name, api_key.revoked_at) == (app.id, "new", None)
    assert api_key.prefix.startswith(services.API_KEY_PREFIX)
