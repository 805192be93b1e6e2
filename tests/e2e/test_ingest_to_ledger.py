"""From HTTP ingest through the real broker and the real consumer to the rated ledger."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import RatedEvent, RunningTotal
from catalog.models import TenantToken
from metering.models import RawEvent, UnmatchedUsage
from tests.conftest import wait_for
from tests.factories import priced_setup, tenant_token

pytestmark = pytest.mark.kafka


def _event(setup, event_id, quantity="1", **extra):
    return {
        "event_id": event_id,
        "api_key": setup.api_key,
        "metric": setup.metric.code,
        "quantity": quantity,
        "timestamp": (timezone.now() - timedelta(seconds=1)).isoformat(),
        **extra,
    }


def test_posted_events_are_rated_into_ledger_and_running_total(api_client, usage_consumer):
    setup = priced_setup(rate="0.003", included_free="10")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant, TenantToken.Kind.INGEST)}")
    usage_consumer()
    response = api_client.post(
        "/api/v1/events",
        [_event(setup, "a", "4"), _event(setup, "b", "10"), _event(setup, "c", "0.5")],
        format="json",
    )
    assert response.status_code == 202, response.content
    assert [r["status"] for r in response.json()["results"]] == ["accepted"] * 3

    wait_for(lambda: RatedEvent.objects.filter(tenant=setup.tenant).count() == 3, message="3 rated events")
    total = RunningTotal.objects.get(subscription=setup.subscription, metric=setup.metric)
    assert total.units == Decimal("14.5")
    # 14.5 units, 10 free, at 0.003: exactly 0.0135, and the ledger sums to the total.
    assert total.amount == Decimal("0.0135")
    assert sum(r.amount for r in RatedEvent.objects.filter(subscription=setup.subscription)) == total.amount
    assert total.event_count == 3
    rated = RatedEvent.objects.select_related("raw_event").get(raw_event__event_id="b")
    assert rated.rate_plan_version_id == setup.version.id
    assert rated.units_after - rated.units_before == Decimal("10")


def test_unknown_api_key_is_kept_as_unmatched_usage(api_client, usage_consumer):
    setup = priced_setup()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant, TenantToken.Kind.INGEST)}")
    usage_consumer()
    response = api_client.post("/api/v1/events", _event(setup, "ghost", api_key="sk_live_nobody"), format="json")
    assert response.status_code == 202
    unmatched = wait_for(lambda: UnmatchedUsage.objects.filter(raw_event__event_id="ghost").first())
    assert unmatched.reason == "unknown_api_key"
    assert RawEvent.objects.filter(tenant=setup.tenant, event_id="ghost").count() == 1
    assert not RatedEvent.objects.filter(tenant=setup.tenant).exists()


def test_the_entitlement_check_follows_what_the_consumer_rated(api_client, usage_consumer):
    """The consumer writes the usage counters as it rates: the check turns to deny once the
    events past a block limit are rated, with no settlement and no poll of the database."""
    setup = priced_setup(config={"model": "per_unit", "rate": "0.5", "limit": {"units": "10", "overage": "block"}})
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant, TenantToken.Kind.INGEST)}")
    usage_consumer()
    question = {"api_key": setup.api_key, "metric": setup.metric.code}
    assert api_client.post("/api/v1/entitlements/check", question, format="json").json()["reason"] == "within_limit"
    response = api_client.post("/api/v1/events", [_event(setup, "a", "8"), _event(setup, "b", "4")], format="json")
    assert response.status_code == 202, response.content

    def denied():
        body = api_client.post("/api/v1/entitlements/check", question, format="json").json()
        return body if not body["allow"] else None

    body = wait_for(denied, message="the check to deny past the limit")
    assert (body["reason"], body["used"], body["remaining"]) == ("limit_reached", "12", "0")
    rated = {r.raw_event.event_id: r for r in RatedEvent.objects.select_related("raw_event").filter(tenant=setup.tenant)}
    assert sum(r.blocked_units for r in rated.values()) == Decimal(2)  # 12 units, 2 past the limit
    assert sum(r.amount for r in rated.values()) == Decimal(5)  # only the 10 allowed are charged
