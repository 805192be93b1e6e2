"""A gateway's budget lease end to end: lease over HTTP, send events under it through the ingest
API, the real broker and the real usage consumer, watch them counted on the lease (not twice in
the entitlement check), return it, and find every unit accounted for."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Lease, RunningTotal
from catalog.models import TenantToken
from tests.conftest import wait_for
from tests.factories import priced_setup, tenant_token

pytestmark = pytest.mark.kafka


def _event(setup, event_id, quantity, lease_id=None):
    return {
        "event_id": event_id, "api_key": setup.api_key, "metric": setup.metric.code, "quantity": quantity,
        "timestamp": (timezone.now() - timedelta(seconds=1)).isoformat(),
        "metadata": {"gateway": "kong"} | ({} if lease_id is None else {"lease_id": lease_id}),
    }


def test_events_under_a_lease_are_attributed_by_the_consumer(api_client, usage_consumer, settings):
    settings.ENTITLEMENT_GENERATION_TTL_S = 0
    setup = priced_setup(config={"model": "per_unit", "rate": "0.5", "limit": {"units": "100", "overage": "block"}})
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant, TenantToken.Kind.INGEST)}")
    usage_consumer()
    granted = api_client.post(
        "/api/v1/leases",
        {"api_key": setup.api_key, "metric": setup.metric.code, "units": "40", "ttl_seconds": 120, "holder": "kong-1",
         "idempotency_key": "kong-1:1"},
        format="json",
    ).json()
    lease_id = granted["id"]
    events = [_event(setup, f"l{i}", "2", lease_id) for i in range(10)] + [_event(setup, "plain", "5")]
    assert api_client.post("/api/v1/events", events, format="json").status_code == 202
    wait_for(lambda: Lease.objects.get(pk=lease_id).consumed == Decimal(20), message="20 units on the lease")
    wait_for(lambda: RunningTotal.objects.filter(subscription=setup.subscription, units=25).exists(), message="25 rated")

    def check():
        return api_client.post("/api/v1/entitlements/check", {"api_key": setup.api_key, "metric": setup.metric.code},
                               format="json").json()

    decision = wait_for(lambda: (d := check())["used"] == "25" and d, message="the check to see 25 used")
    assert (decision["reserved"], decision["remaining"]) == ("20", "55")  # 40 leased − 20 rated under it

    returned = api_client.post(f"/api/v1/leases/{lease_id}/return", {"used": "24"}, format="json").json()
    assert (returned["used"], returned["returned"], returned["reserved"]) == ("24", "16", "4")
    assert api_client.post("/api/v1/events", [_event(setup, "late", "4", lease_id)], format="json").status_code == 202
    wait_for(lambda: Lease.objects.get(pk=lease_id).consumed == Decimal(24), message="the in-flight 4 units")
    row = Lease.objects.get(pk=lease_id)
    assert (row.used + row.returned + row.expired, row.overrun) == (row.leased, 0)
    wait_for(lambda: check()["reserved"] == "0", message="nothing reserved once the in-flight units are rated")
