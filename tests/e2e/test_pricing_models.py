"""Graduated, volume and per-tool pricing from HTTP ingest through the real broker and the real
consumer: the rated ledger sums to the engine's quote of the total, per running-total key."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import RatedEvent, RunningTotal
from billing.rating import quote
from catalog.models import TenantToken
from tests.conftest import wait_for
from tests.factories import priced_setup, tenant_token

pytestmark = pytest.mark.kafka

TIERS = [
    {"up_to": "100", "unit_amount": "0.02"},
    {"up_to": "1000", "unit_amount": "0.01", "flat_amount": "1"},
    {"up_to": None, "unit_amount": "0.005"},
]


def _event(setup, event_id, quantity, **extra):
    return {
        "event_id": event_id, "api_key": setup.api_key, "metric": setup.metric.code, "quantity": quantity,
        "timestamp": (timezone.now() - timedelta(seconds=1)).isoformat(), **extra,
    }


def test_graduated_and_volume_metrics_through_the_api(api_client, usage_consumer):
    graduated = priced_setup(config={"model": "graduated", "tiers": TIERS})
    volume = priced_setup(tenant=graduated.tenant, config={"model": "volume", "tiers": TIERS})
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(graduated.tenant, TenantToken.Kind.INGEST)}")
    usage_consumer()
    quantities = ["60", "40", "0.5", "899.5", "1", "250"]  # 100 and 1000 exactly, then beyond
    for number, quantity in enumerate(quantities):  # one request each: separate batches
        response = api_client.post(
            "/api/v1/events",
            [_event(graduated, f"g{number}", quantity), _event(volume, f"v{number}", quantity)],
            format="json",
        )
        assert response.status_code == 202, response.content
    wait_for(lambda: RatedEvent.objects.filter(tenant=graduated.tenant).count() == 12, message="12 rated events")

    for setup, expected in (
        # graduated at 1,251: 100 × 0.02 + (1 + 900 × 0.01) + 251 × 0.005 = 2 + 10 + 1.255
        (graduated, Decimal("13.255")),
        # volume at 1,251: 1,251 × 0.005 (tier 3, no flat fee) = 6.255
        (volume, Decimal("6.255")),
    ):
        total = RunningTotal.objects.get(subscription=setup.subscription, metric=setup.metric)
        rated = RatedEvent.objects.filter(subscription=setup.subscription)
        assert total.units == Decimal("1251")
        assert total.amount == sum(r.amount for r in rated) == expected
        assert expected == quote(setup.metric_config.config, "1251") - quote(setup.metric_config.config, "0")
        assert all(sum(Decimal(t["amount"]) for t in r.tiers) == r.amount for r in rated)

    # Volume's crossing of 100 (60 + 40 is on the boundary; 100.5 is past it) re-prices all units.
    crossing = RatedEvent.objects.get(raw_event__event_id="v2")
    assert crossing.amount == Decimal("100.5") * Decimal("0.01") + 1 - 2  # 2.005 − 2
    assert [t["tier"] for t in crossing.tiers] == [1, 2]


def test_per_tool_prices_resolve_at_enrichment_into_their_own_totals(api_client, usage_consumer):
    config = {
        "model": "per_unit", "rate": "0.01",
        "overrides": [{"match": {"tool_name": "generate"}, "price": {"model": "per_unit", "rate": "0.05"}}],
    }
    setup = priced_setup(config=config)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant, TenantToken.Kind.INGEST)}")
    usage_consumer()
    events = [
        _event(setup, "s1", "1", dimensions={"tool_name": "search"}),
        _event(setup, "s2", "1", dimensions={"tool_name": "search"}),
        _event(setup, "g1", "1", dimensions={"tool_name": "generate", "agent_id": "a-7"}),
    ]
    assert api_client.post("/api/v1/events", events, format="json").status_code == 202
    wait_for(lambda: RatedEvent.objects.filter(tenant=setup.tenant).count() == 3, message="3 rated events")
    totals = {t.dimension_key: t.amount for t in RunningTotal.objects.filter(subscription=setup.subscription)}
    assert totals == {"": Decimal("0.02"), "tool_name=generate": Decimal("0.05")}
    assert RatedEvent.objects.get(raw_event__event_id="g1").dimension_key == "tool_name=generate"
