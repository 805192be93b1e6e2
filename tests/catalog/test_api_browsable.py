"""The browsable (HTML) rendering of every catalog endpoint works for an admin token: its
forms resolve related fields through the tenant-scoped querysets."""

from __future__ import annotations

import pytest

from tests.factories import TenantFactory, priced_setup

pytestmark = pytest.mark.django_db


def test_every_list_and_detail_renders_as_html_with_only_the_tenants_choices(client_for):
    other = priced_setup(tenant=TenantFactory())
    setup = priced_setup()
    client = client_for(setup.tenant)
    for path in (
        "/api/v1/customers", "/api/v1/teams", "/api/v1/apps", "/api/v1/api-keys", "/api/v1/products",
        "/api/v1/metrics", "/api/v1/offerings", "/api/v1/rate-plans", "/api/v1/rate-plan-versions",
        "/api/v1/metric-configs", "/api/v1/subscriptions", f"/api/v1/subscriptions/{setup.subscription.id}",
        f"/api/v1/rate-plan-versions/{setup.version.id}", f"/api/v1/metric-configs/{setup.metric_config.id}",
    ):
        response = client.get(path, HTTP_ACCEPT="text/html")
        assert response.status_code == 200, path
        assert response["Content-Type"].startswith("text/html")
    # The subscription form offers this tenant's customers, never another tenant's.
    html = client.get("/api/v1/subscriptions", HTTP_ACCEPT="text/html").content.decode()
    # (by name: another table's row — an offering — may have the other customer's id)
    assert f">{setup.customer.name}</option>" in html
    assert f">{other.customer.name}</option>" not in html
