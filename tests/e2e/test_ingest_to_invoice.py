"""The whole pipeline, from HTTP ingest to an invoice: events posted through the API, rated by
the real consumer through the real broker, settled, and each invoice line traced back through
the API to the raw events behind it — for postpaid, prepaid and hybrid subscriptions."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import RatedEvent, TaxRate
from billing.settlement import settlement_run
from billing.verification import ledger_verify
from catalog.models import Subscription, TenantToken
from tests.conftest import wait_for
from tests.factories import priced_setup, tenant_token
from wallets.services import wallet_create, wallet_top_up

pytestmark = pytest.mark.kafka

CONFIG = {
    "model": "graduated",
    "tiers": [{"up_to": "10", "unit_amount": "0.125", "flat_amount": "2"}, {"up_to": None, "unit_amount": "0.1"}],
}


def post_and_rate(api_client, setup, quantities):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant, TenantToken.Kind.INGEST)}")
    at = (timezone.now() - timedelta(seconds=1)).isoformat()
    events = [
        {"event_id": f"{setup.subscription.pk}-{n}", "api_key": setup.api_key, "metric": setup.metric.code,
         "quantity": q, "timestamp": at, "dimensions": {"region": "eu"}, "metadata": {"gateway": "kong", "route": "/v1/x"}}
        for n, q in enumerate(quantities)
    ]
    assert api_client.post("/api/v1/events", events, format="json").status_code == 202
    wait_for(lambda: RatedEvent.objects.filter(subscription=setup.subscription).count() == len(events), message="rated")


def trace(api_client, setup, invoice):
    """Every usage line's events through the API sum to it and lead to the original raw events."""
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant, TenantToken.Kind.ADMIN)}")
    detail = api_client.get(f"/api/v1/invoices/{invoice.pk}").json()
    for line in detail["lines"]:
        if line["kind"] != "usage":
            continue
        page = api_client.get(line["events"]).json()
        assert Decimal(page["sum_amount"]) == Decimal(line["amount_unrounded"])
        raw = api_client.get(page["results"][0]["raw_event"]).json()
        assert raw["dimensions"] == {"region": "eu"} and raw["metadata"]["gateway"] == "kong"
    return detail


@pytest.mark.parametrize("mode", ["postpaid", "prepaid", "hybrid"])
def test_ingest_to_invoice(api_client, usage_consumer, mode):
    setup = priced_setup(config=CONFIG, billing_mode=mode)
    TaxRate.objects.create(tenant=setup.tenant, customer=setup.customer, name="VAT", percent=Decimal(10))
    if mode != Subscription.BillingMode.POSTPAID:
        wallet = wallet_create(customer=setup.customer, currency="USD")
        wallet_top_up(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal(3), idempotency_key="start")
    usage_consumer()
    post_and_rate(api_client, setup, ["4", "8", "3"])  # 15 units: 10 × 0.125 + 5 × 0.1 = 1.75 rated
    invoice = settlement_run(subscription_id=setup.subscription.pk, at=timezone.now()).invoice
    # usage 1.75 + base 2 (the first tier's flat fee) = 3.75; VAT 10% = 0.375 → 0.38; total 4.13
    assert [(line.kind, line.amount) for line in invoice.lines.order_by("position")] == [
        ("usage", Decimal("1.75")), ("base", Decimal("2.00")), ("tax", Decimal("0.38")),
    ]
    assert invoice.total == Decimal("4.13")
    expected_due = {"postpaid": Decimal("4.13"), "prepaid": Decimal(0), "hybrid": Decimal("1.13")}[mode]
    assert (invoice.amount_due, invoice.wallet_applied) == (expected_due, invoice.total - expected_due)
    trace(api_client, setup, invoice)
    assert ledger_verify() == []
