"""The customer page shows the customer's wallets — balance, held, available, active holds and
the newest ledger entries — in the usage.json it polls, exactly and for that customer only,
with a fixed number of queries."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from catalog.models import CustomerUser
from tests.factories import CustomerFactory, priced_setup
from tests.test_admin import operator
from tests.wallets.test_admin import funded_wallet, place
from wallets.selectors import wallets_for_customer
from wallets.services import wallet_adjust, wallet_top_up
from wallets.holds import hold_commit, hold_release

pytestmark = pytest.mark.django_db

PAGE = "/dashboard/"
JSON = "/dashboard/usage.json"
D = Decimal


@pytest.fixture
def setup():
    return priced_setup(billing_mode="prepaid")


@pytest.fixture
def login(client, django_user_model, setup):
    user = django_user_model.objects.create_user("globex-user", password="pw")
    CustomerUser.objects.create(user=user, customer=setup.customer)
    client.force_login(user)
    return client


def test_usage_json_has_the_wallet_figures_holds_and_recent_entries(login, setup):
    wallet = funded_wallet(setup.customer, "100", thresholds=["80"])
    live = place(wallet, "30.5", "mcp-session-1", ttl_seconds=300)
    spent = place(wallet, "10", "mcp-session-0")
    hold_commit(tenant_id=wallet.tenant_id, hold_id=spent.pk, amount=D("4.25"))

    body = login.get(JSON).json()

    [shown] = body["wallets"]
    as_of = parse_datetime(body["as_of"])
    holds = shown.pop("holds")
    entries = shown.pop("recent_entries")
    assert parse_datetime(shown.pop("updated_at")) <= as_of
    assert shown == {
        "wallet_id": wallet.pk, "currency": "USD", "balance": "95.75", "held": "30.5", "available": "65.25",
        "low_balance": True, "low_balance_thresholds": ["80"], "active_hold_count": 1,
        "billing_mode": "prepaid", "label": "Prepaid wallet", "credit_grants": [], "granted_remaining": "0",
    }
    [hold] = holds
    expires_in = hold.pop("expires_in_seconds")
    assert 295 <= expires_in <= 300
    assert hold == {
        "hold_id": live.pk, "reference": "mcp-session-1", "amount": "30.5", "drawn": "0", "remaining": "30.5",
        "expires_at": live.expires_at.isoformat().replace("+00:00", "Z"),
    }
    assert [(e["kind"], e["kind_label"], e["amount"], e["held_change"], e["available_after"], e["reference"])
            for e in entries] == [
        ("hold_commit", "Hold charged", "-4.25", "-10", "65.25", "mcp-session-0"),
        ("hold", "Hold placed", "0", "10", "59.5", "mcp-session-0"),
        ("hold", "Hold placed", "0", "30.5", "69.5", "mcp-session-1"),
        ("top_up", "Top-up", "100", "0", "100", ""),
    ]
    assert entries[0]["entry_id"] > entries[1]["entry_id"] and entries[0]["created_at"].endswith("Z")


def test_the_polled_json_follows_the_wallet(login, setup):
    wallet = funded_wallet(setup.customer, "100")
    hold = place(wallet, "40", "session-a")
    first = login.get(JSON).json()["wallets"][0]
    hold_release(tenant_id=wallet.tenant_id, hold_id=hold.pk)
    for index in range(12):
        wallet_top_up(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=D("0.01"), idempotency_key=f"t{index}")
    wallet_adjust(
        tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=D("-150"), idempotency_key="a", reason="fix",
        reference="fix",
        allow_negative_balance=True,
    )
    second = login.get(JSON).json()["wallets"][0]

    assert (first["available"], len(first["holds"])) == ("60", 1)
    assert (second["balance"], second["held"], second["available"], second["holds"]) == ("-49.88", "0", "-49.88", [])
    assert len(second["recent_entries"]) == 10  # the newest ten of 15
    assert second["recent_entries"][0]["kind"] == "adjustment"
    assert second["recent_entries"][0]["reference"] == "fix"


def test_another_customers_wallet_never_appears(client, login, setup, django_user_model):
    mine = funded_wallet(setup.customer, "10")
    neighbour = CustomerFactory(tenant=setup.tenant)
    # Amounts no timestamp or id can spell (top-ups are whole minor units: CLF has four).
    theirs = funded_wallet(neighbour, "4242.4242", currency="CLF")
    place(theirs, "1", "their-secret-session")
    foreign = funded_wallet(priced_setup().customer, "7373.7373", currency="CLF")

    body = login.get(JSON).json()
    page = login.get(PAGE).content.decode()

    assert [w["wallet_id"] for w in body["wallets"]] == [mine.pk]
    for text in ("4242.4242", "4241.4242", "their-secret-session", "7373.7373"):
        assert text not in str(body["wallets"]) and text not in page
    assert login.get(JSON, {"customer": neighbour.pk}).status_code == 403
    staff = operator(setup.tenant, username="staff")
    client.force_login(staff)
    assert [w["wallet_id"] for w in client.get(JSON, {"customer": neighbour.pk}).json()["wallets"]] == [theirs.pk]
    assert client.get(JSON, {"customer": foreign.customer_id}).status_code == 404


def test_the_page_renders_the_wallet_and_wires_live_updates(login, setup):
    wallet = funded_wallet(setup.customer, "250")
    place(wallet, "12.5", "mcp-session-9")
    response = login.get(PAGE)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="wallets"' in html and "Prepaid wallet" in html and "USD" in html
    assert response.context["usage"]["wallets"][0]["billing_mode"] == "prepaid"
    assert "237.5 USD" in html and "mcp-session-9" in html and "Hold placed" in html
    assert response.context["usage"]["wallets"][0]["wallet_id"] == wallet.pk  # the embedded initial JSON
    assert 'id="usage-initial"' in html and "/static/js/usage.js" in html


def test_a_customer_without_a_wallet_gets_an_empty_list(login, setup):
    assert login.get(JSON).json()["wallets"] == []


def test_wallets_for_customer_takes_a_fixed_number_of_queries(setup, django_assert_num_queries):
    wallet = funded_wallet(setup.customer, "100")
    place(wallet, "1", "s-0")
    with django_assert_num_queries(5):  # wallets, holds, hold counts, entries, credit grants
        one = wallets_for_customer(customer=setup.customer)
    for currency in ("EUR", "GBP"):
        extra = funded_wallet(setup.customer, "50", currency=currency)
        for index in range(15):
            place(extra, "1", f"s-{currency}-{index}")
    with django_assert_num_queries(5):
        three = wallets_for_customer(customer=setup.customer)
    assert len(one) == 1 and [w["currency"] for w in three] == ["EUR", "GBP", "USD"]
    assert all(len(w["recent_entries"]) == 10 for w in three[:2]) and three[0]["active_hold_count"] == 15
    no_wallet = CustomerFactory(tenant=setup.tenant)
    with django_assert_num_queries(1):
        assert wallets_for_customer(customer=no_wallet) == []


def test_holds_past_their_ttl_show_as_expiring_until_swept(setup):
    wallet = funded_wallet(setup.customer, "100")
    place(wallet, "5", "stale", ttl_seconds=60, now=timezone.now() - timedelta(minutes=2))
    [shown] = wallets_for_customer(customer=setup.customer)
    assert shown["held"] == "5" and shown["holds"][0]["expires_in_seconds"] == 0


@pytest.mark.parametrize(
    ("mode", "label"),
    [("hybrid", "Hybrid wallet (pays first; the rest is invoiced)"), ("postpaid", "Wallet"), ("prepaid", "Prepaid wallet")],
)
def test_the_wallet_is_labelled_by_the_billing_mode_that_uses_it(client, django_user_model, mode, label):
    customer_setup = priced_setup(billing_mode=mode)
    funded_wallet(customer_setup.customer, "10")
    user = django_user_model.objects.create_user(f"user-{mode}", password="pw")
    CustomerUser.objects.create(user=user, customer=customer_setup.customer)
    client.force_login(user)
    html = client.get(PAGE).content.decode()
    assert f"<h2>{label} " in html
    [wallet] = client.get(JSON).json()["wallets"]
    assert (wallet["label"], wallet["billing_mode"]) == (label, "" if mode == "postpaid" else mode)
