"""GET /api/v1/customers/{id}/usage: the current period's running totals of one customer of the
token's tenant, with each row's hard limit and included allowance; another tenant's customer is
a 404, an ingest token a 403."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from billing.models import RunningTotal
from catalog.models import TenantToken
from tests.billing.test_usage_selector import expected_usage, running_total, usage_world
from tests.factories import priced_setup, tenant_token

pytestmark = pytest.mark.django_db


def _get(api_client, customer_id: int, token: str | None):
    if token:
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api_client.get(f"/api/v1/customers/{customer_id}/usage")


def _without_clock(body: dict) -> dict:
    return {key: value for key, value in body.items() if key != "as_of"}


def test_usage_returns_the_running_totals_of_the_current_period(api_client, django_assert_max_num_queries):
    now = timezone.now()
    world = usage_world(now=now)
    token = tenant_token(world.customer.tenant)
    with django_assert_max_num_queries(7):  # token, customer, the selector's four, the credit grants
        response = _get(api_client, world.customer.pk, token)
    assert response.status_code == 200, response.content
    body = response.json()
    answered_at = parse_datetime(body["as_of"])
    assert isinstance(answered_at, datetime) and now <= answered_at <= timezone.now()
    expected = {"customer_id": world.customer.pk, "subscriptions": expected_usage(world, now=answered_at), "credit_grants": []}
    assert _without_clock(body) == expected
    monthly = body["subscriptions"][0]
    assert parse_datetime(monthly["period_start"]) <= answered_at < parse_datetime(monthly["period_end"])
    assert monthly["metrics"][0]["amount"] == "4.5" and monthly["metrics"][2] == {
        "metric": "llm_tokens", "metric_name": "LLM tokens", "unit": "token", "dimension_key": "",
        "units": "0", "amount": "0", "event_count": 0, "limit": None, "included": None,
    }


def test_usage_follows_the_running_total(api_client):
    now = timezone.now()
    world = usage_world(now=now)
    token = tenant_token(world.customer.tenant)
    current = RunningTotal.objects.filter(
        subscription=world.monthly, dimension_key="", period_start__lte=now, period_end__gt=now
    )
    assert current.update(units="1501", amount="4.503", event_count=13) == 1
    api_calls = _get(api_client, world.customer.pk, token).json()["subscriptions"][0]["metrics"][0]
    assert (api_calls["units"], api_calls["amount"], api_calls["event_count"]) == ("1501", "4.503", 13)


def test_usage_reports_the_limit_and_the_included_allowance(api_client):
    config = {"model": "per_unit", "rate": "0.003", "included_free": "1000", "limit": {"units": "10000", "overage": "block"}}
    setup = priced_setup(config=config)
    running_total(setup.subscription, setup.metric, at=timezone.now(), units="5001", amount="12.003", events=5001)
    body = _get(api_client, setup.customer.pk, tenant_token(setup.tenant)).json()
    [row] = body["subscriptions"][0]["metrics"]
    assert row["limit"] == {
        "units": "10000", "overage": "block", "remaining": "4999", "reached": False, "exceeded": False,
        "percent_used": "50.01", "blocked": "0",
    }
    assert row["included"] == {"units": "1000", "remaining": "0", "percent_used": "500.1"}
    RunningTotal.objects.filter(subscription=setup.subscription).update(units=Decimal("10250.5"), amount=Decimal("27.003"))
    [row] = _get(api_client, setup.customer.pk, tenant_token(setup.tenant)).json()["subscriptions"][0]["metrics"]
    assert (row["limit"]["exceeded"], row["limit"]["blocked"], row["limit"]["remaining"]) == (True, "250.5", "0")


def test_another_tenants_customer_is_not_found(api_client):
    mine, theirs = priced_setup(), priced_setup()
    response = _get(api_client, theirs.customer.pk, tenant_token(mine.tenant))
    assert response.status_code == 404
    message = f"No customer {theirs.customer.pk} in this tenant."
    assert response.json() == {"error": {"code": "not_found", "message": message}}
    assert _get(api_client, 987654321, None).status_code == 404


def test_an_ingest_token_is_refused(api_client):
    setup = priced_setup()
    response = _get(api_client, setup.customer.pk, tenant_token(setup.tenant, TenantToken.Kind.INGEST))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "wrong_credential_kind"


def test_no_token_is_unauthenticated(api_client):
    setup = priced_setup()
    response = _get(api_client, setup.customer.pk, None)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_credentials"


def test_the_schema_documents_the_usage_response(client):
    schema = client.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/customers/{customer_id}/usage"]["get"]
    assert operation["operationId"] == "customer_usage_current"
    assert set(operation["responses"]) == {"200", "401", "403", "404"}
    metric = schema["components"]["schemas"]["MetricUsage"]["properties"]
    assert metric["amount"]["type"] == "string" and metric["amount"]["format"] == "decimal"
    subscription = schema["components"]["schemas"]["SubscriptionUsage"]["properties"]
    assert {"period_start", "period_end", "currency", "billing_mode", "metrics"} <= set(subscription)
    components = schema["components"]["schemas"]
    assert metric["limit"]["nullable"] and metric["limit"]["allOf"] == [{"$ref": "#/components/schemas/MetricLimit"}]
    assert metric["included"]["nullable"] and metric["included"]["allOf"] == [{"$ref": "#/components/schemas/MetricIncluded"}]
    assert {"limit", "included"} <= set(components["MetricUsage"]["required"])
    limit = components["MetricLimit"]
    assert set(limit["required"]) == {"units", "overage", "remaining", "reached", "exceeded", "percent_used", "blocked"}
    assert limit["properties"]["reached"]["type"] == "boolean" and limit["properties"]["percent_used"]["format"] == "decimal"
    assert set(components["MetricIncluded"]["required"]) == {"units", "remaining", "percent_used"}
    example = operation["responses"]["200"]["content"]["application/json"]["examples"]["CurrentUsage"]["value"]
    first_row = example["subscriptions"][0]["metrics"][0]
    assert first_row["limit"]["reached"] is False and first_row["included"]["remaining"] == "0"
