"""Money budget leases (real PostgreSQL): a slice of a prepaid wallet held as a wallet hold
(reference lease:<id>), so leases and holds reserve against each other; events naming the lease
draw from it through the real rating batch; return and expiry release the rest, and every cent
is accounted for (used + returned + expired == leased, and the wallet's own ledger checks)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.leases import services
from billing.models import Lease
from catalog.models import Subscription, TenantToken
from tests.factories import funded_wallet, hold_for, priced_setup, rated_event, tenant_token
from wallets.models import Hold, Wallet
from wallets.services import wallets_check

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup():
    return priced_setup(rate="0.5", billing_mode=Subscription.BillingMode.PREPAID)


@pytest.fixture
def wallet(setup):
    return funded_wallet(setup.customer, "100")


@pytest.fixture
def client(api_client, setup):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant, TenantToken.Kind.INGEST)}")
    return api_client


def money(client, setup, key="m1", amount="30", **extra):
    return client.post("/api/v1/leases", {"customer_id": setup.customer.pk, "amount": amount, "ttl_seconds": 300,
                                          "holder": "gw-1", "idempotency_key": key, **extra}, format="json")


def test_a_money_lease_is_a_hold_and_reserves_against_holds(client, setup, wallet):
    hold_for(wallet, "50")  # 50 available
    response = money(client, setup, amount="80", min_amount="10")
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["kind"], data["leased"], data["currency"], data["metric"], data["reserved"]) == (
        "money", "50", "USD", None, "50"
    )
    hold = Hold.objects.get(pk=data["hold_id"])
    assert (hold.reference, hold.amount, hold.status) == (f"lease:{data['id']}", 50, "active")
    assert Wallet.objects.get(pk=wallet.pk).available == 0
    refused = money(client, setup, key="m2", amount="5", min_amount="1")
    assert refused.status_code == 402 and refused.json()["error"]["code"] == "insufficient_funds"
    retry = money(client, setup, amount="80", min_amount="10")
    assert (retry.status_code, retry.json()["id"]) == (200, data["id"])
    assert money(client, setup, amount="81", min_amount="10").json()["error"]["code"] == "idempotency_key_reused"


def test_events_under_a_money_lease_draw_from_it_and_return_releases_the_rest(client, setup, wallet):
    data = money(client, setup, amount="30").json()
    rated_event(setup, "e1", "10", metadata={"lease_id": data["id"]})  # 5 USD, drawn from the lease's hold
    rated_event(setup, "e2", "4", metadata={"lease_id": data["id"]}, dimensions={"session_id": "other"})  # own session
    current = client.get(f"/api/v1/leases/{data['id']}").json()
    assert (current["consumed"], current["reserved"]) == ("5", "25")
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held) == (Decimal(93), Decimal(25))
    returned = client.post(f"/api/v1/leases/{data['id']}/return", {"used": "6"}, format="json").json()
    assert (returned["status"], returned["used"], returned["returned"], returned["consumed"]) == ("returned", "6", "24", "5")
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held) == (Decimal(93), Decimal(0))
    assert Hold.objects.get(pk=data["hold_id"]).status == "released"
    row = Lease.objects.get(pk=data["id"])
    assert row.used + row.returned + row.expired == row.leased
    assert wallets_check(wallet_ids=[wallet.pk]) == []


def test_a_money_lease_expires_with_its_hold(client, setup, wallet):
    data = money(client, setup, amount="30").json()
    rated_event(setup, "e1", "2", metadata={"lease_id": data["id"]})
    renewed = client.post(f"/api/v1/leases/{data['id']}/renew", {"used": "3", "ttl_seconds": 600}, format="json")
    assert renewed.status_code == 200, renewed.content
    assert Hold.objects.get(pk=data["hold_id"]).expires_at > timezone.now() + timedelta(seconds=590)
    top_up = client.post(f"/api/v1/leases/{data['id']}/renew", {"used": "3", "units": "50", "ttl_seconds": 60},
                         format="json")
    assert top_up.status_code == 400 and top_up.json()["error"]["code"] == "top_up_not_supported"
    assert services.leases_expire(now=timezone.now() + timedelta(seconds=700)) == 1
    row = Lease.objects.get(pk=data["id"])
    assert (row.status, row.consumed, row.used, row.expired, row.returned) == ("expired", 1, 3, 27, 0)
    assert Hold.objects.get(pk=data["hold_id"]).status == "expired"
    assert Wallet.objects.get(pk=wallet.pk).held == 0 and wallets_check(wallet_ids=[wallet.pk]) == []


def test_money_leases_need_a_wallet_billing_subscription_and_valid_amounts(api_client):
    postpaid = priced_setup()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(postpaid.tenant, TenantToken.Kind.INGEST)}")
    assert money(api_client, postpaid).json()["error"]["code"] == "no_wallet_billing"
    prepaid = priced_setup(tenant=postpaid.tenant, billing_mode=Subscription.BillingMode.PREPAID)
    assert money(api_client, prepaid).json()["error"]["code"] == "no_wallet"
    for bad, code in [("0", "invalid_amount"), ("-2", "invalid_amount"), ("NaN", "invalid_amount"), (2.5, "invalid_amount")]:
        response = money(api_client, prepaid, amount=bad)
        assert (response.status_code, response.json()["error"]["code"]) == (400, code)
    assert money(api_client, prepaid, metric="x").json()["error"]["code"] == "unknown_field"
    assert not Lease.objects.exists()
