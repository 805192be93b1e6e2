"""Hostile bodies to the management API's write endpoints (terms, coupons, plan changes,
cancellation, invoice moves, wallet adjustments, subscriptions, credit grants, replays, backtests,
re-rating jobs, event reversal): truncated JSON, binary, a
10,000-deep array, NUL characters, absurd numbers and types, a 2 MB string — every answer a 2xx
or a 4xx, never a 500; the deep array a 400 malformed_json (aforo.parsers), as the ingest says."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.settlement import settlement_run
from wallets.grants import credit_grant_create
from tests.factories import funded_wallet, priced_setup, rated_event, tenant_token

pytestmark = pytest.mark.django_db

DEEP = b"[" * 10_000 + b"]" * 10_000
BODIES = [
    b'{"a":', b"\x00\xff", DEEP,
    json.dumps({"reason": "a\x00b", "reference": "x\x00", "code": "\x00", "name": "\x00", "value": "1e999999",
                "amount": "9" * 5000, "rate_plan": "1; drop", "at": "9999-99-99", "percent": "NaN",
                "subscription": 2**70, "customer": -1, "metric": "x", "starts_at": "\x00", "periods": 10**20}).encode(),
    json.dumps({"reason": "x" * 2_000_000, "kind": "fixed", "value": "1", "currency": "USD", "amount": "1"}).encode(),
    json.dumps({"at_period_end": "yes", "reason": ["x"], "kind": {"a": 1}, "value": [], "amount": None, "currency": 5,
                "expires_at": "2026-13-01T00:00:00Z", "ends_at": "x", "retroactive": "maybe", "rate_plan": None}).encode(),
]


def test_no_hostile_body_gets_a_server_error(api_client):
    setup = priced_setup(rate="1")
    rated = rated_event(setup, "e1", "3")
    invoice = settlement_run(subscription_id=setup.subscription.pk, at=timezone.now()).invoice
    wallet = funded_wallet(setup.customer, "10")
    grant, _ = credit_grant_create(customer=setup.customer, currency="USD", amount=Decimal(5), name="g", idempotency_key="g")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant)}")
    sid, iid = setup.subscription.pk, invoice.pk
    writes = [
        ("POST", "/api/v1/discounts"), ("POST", "/api/v1/tax-rates"), ("POST", "/api/v1/coupons"),
        ("POST", f"/api/v1/subscriptions/{sid}/change-plan"), ("POST", f"/api/v1/subscriptions/{sid}/cancel"),
        ("POST", f"/api/v1/invoices/{iid}/mark-paid"), ("POST", f"/api/v1/invoices/{iid}/mark-uncollectible"),
        ("POST", "/api/v1/subscriptions"), ("PATCH", f"/api/v1/subscriptions/{sid}"),
        ("POST", f"/api/v1/wallets/{wallet.pk}/adjustments"), ("POST", "/api/v1/customers"),
        ("POST", "/api/v1/credit-grants"), ("POST", f"/api/v1/credit-grants/{grant.pk}/void"),
        ("POST", "/api/v1/replays"),
        ("POST", "/api/v1/pricing/backtest"), ("POST", "/api/v1/rerating-jobs"),
        ("POST", f"/api/v1/events/{rated.raw_event_id}/reverse"),
    ]
    answers = {}
    for method, url in writes:
        for body in BODIES:
            response = api_client.generic(method, url, body, content_type="application/json")
            answers[(method, url, body[:20])] = response.status_code
            assert response.status_code < 500, (method, url, body[:40], response.content[:300])
            if body is DEEP:
                assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_json", (url, response.content)
    # Only a PATCH whose keys are none of the subscription's fields passes (DRF ignores unknown keys): a no-op.
    assert [key for key, code in answers.items() if code < 400] == [("PATCH", f"/api/v1/subscriptions/{sid}", BODIES[4][:20])]
    for url in ("/api/v1/coupons?customer=%00", "/api/v1/discounts?subscription=abc", "/api/v1/tax-rates?customer=99999999999999999999",
                "/api/v1/invoices/999999999999999999999.pdf", "/api/v1/credit-grants?customer=%00",
                "/api/v1/credit-grants?currency=%00&status=x", "/api/v1/reconciliation?customer=%00",
                "/api/v1/reconciliation?period=%00", "/api/v1/reconciliation?period=9999-12-31",
                "/api/v1/reconciliation?period=0001-01-01T00:00Z/0001-01-02T00:00Z",
                "/api/v1/replays/999999999999999999999", "/api/v1/rerating-jobs/999999999999999999999",
                "/api/v1/events/999999999999999999999/reverse"):
        assert 400 <= api_client.get(url).status_code < 500, url
