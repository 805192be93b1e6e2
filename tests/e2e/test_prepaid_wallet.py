"""A prepaid customer's wallet, debited in real time: events posted through the ingest API,
through the real broker and consumer, debit the wallet by exactly their rated amounts."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import RatedEvent
from catalog.models import Subscription, TenantToken
from tests.conftest import wait_for
from tests.factories import priced_setup, tenant_token
from wallets.models import WalletEntry
from wallets.services import wallet_create, wallet_top_up, wallets_check
from wallets.holds import hold_place

pytestmark = pytest.mark.kafka


def test_events_through_the_api_debit_the_prepaid_wallet_exactly(api_client, usage_consumer):
    setup = priced_setup(
        config={"model": "graduated", "tiers": [{"up_to": "10", "unit_amount": "0.5"}, {"up_to": None, "unit_amount": "0.25"}]},
        billing_mode=Subscription.BillingMode.PREPAID,
    )
    wallet = wallet_create(customer=setup.customer, currency=setup.subscription.currency)
    wallet_top_up(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal(20), idempotency_key="start")
    hold, _ = hold_place(
        tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal(3), ttl_seconds=300, reference="sess-1",
        idempotency_key="sess-1",
    )
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant, TenantToken.Kind.INGEST)}")
    usage_consumer()
    now = (timezone.now() - timedelta(seconds=1)).isoformat()
    events = [
        {"event_id": f"e{n}", "api_key": setup.api_key, "metric": setup.metric.code, "quantity": quantity,
         "timestamp": now, "dimensions": {"session_id": "sess-1"} if n < 2 else {}}
        for n, quantity in enumerate(["4", "4", "4.5", "10"])
    ]
    assert api_client.post("/api/v1/events", events, format="json").status_code == 202
    wait_for(lambda: WalletEntry.objects.filter(wallet=wallet, kind="debit").count() == 4, message="4 wallet debits")

    # 22.5 units graduated: 10 × 0.5 + 12.5 × 0.25 = 8.125, all debited; the session drew 3 of it.
    rated_total = sum(r.amount for r in RatedEvent.objects.filter(subscription=setup.subscription))
    wallet.refresh_from_db()
    hold.refresh_from_db()
    assert rated_total == Decimal("8.125")
    assert (wallet.balance, wallet.held, hold.drawn) == (Decimal(20) - rated_total, Decimal(0), Decimal(3))
    for entry in WalletEntry.objects.filter(wallet=wallet, kind="debit").select_related("rated_event"):
        assert entry.amount == -entry.rated_event.amount and entry.idempotency_key == f"rated:{entry.rated_event_id}"
    assert wallets_check() == []
