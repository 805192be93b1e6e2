"""Credit grants on the real PostgreSQL: granted as a ledger entry, consumed by prepaid and hybrid
usage through the consumer's rating path in priority order before the paid balance, never after
their expiry (swept or not), expired by the sweep as a ledger event dated the expiry, voided with
a reason; and the API (create idempotently, list, retrieve, void, every bad body a 4xx naming
its field). After every test the wallets agree with their ledgers and the grants with theirs."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from catalog.models import Subscription
from tests.factories import CustomerFactory, TenantFactory, funded_wallet, priced_setup, rated_event, tenant_token
from wallets.grants import credit_grant_create, credit_grant_void, credit_grants_check, credit_grants_expire
from wallets.models import CreditGrant, CreditGrantDraw, Wallet, WalletEntry
from wallets.services import WalletError, wallets_check
from wallets.tasks import credit_grants_expire as credit_grants_expire_task

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _ledgers_agree():
    yield
    assert wallets_check() == [] and credit_grants_check() == []


def grant(customer, amount, key, **terms):
    return credit_grant_create(customer=customer, currency="USD", amount=Decimal(amount), name=key, idempotency_key=key, **terms)[0]


def remaining(*grants):
    return [CreditGrant.objects.get(pk=g.pk).remaining for g in grants]


def test_prepaid_usage_consumes_grants_in_priority_and_expiry_order_before_the_paid_balance():
    setup = priced_setup(rate="1", billing_mode=Subscription.BillingMode.PREPAID)
    funded_wallet(setup.customer, "20")
    now = timezone.now()
    late = grant(setup.customer, "5", "late", priority=10, expires_at=now + timedelta(days=9))
    soon = grant(setup.customer, "5", "soon", priority=10, expires_at=now + timedelta(days=1))
    never = grant(setup.customer, "5", "never", priority=10)
    first = grant(setup.customer, "3", "first", priority=1)
    rated_event(setup, "a", "4")  # first 3, soon 1
    assert remaining(first, soon, late, never) == [0, 4, 5, 5]
    rated_event(setup, "b", "12")  # soon 4, late 5, never 3
    assert remaining(first, soon, late, never) == [0, 0, 0, 2]
    rated_event(setup, "c", "5")  # never 2, then 3 from the paid balance
    wallet = Wallet.objects.get(customer=setup.customer)
    assert remaining(never) == [0] and wallet.balance == Decimal(17)  # 20 paid + 18 granted − 21 used
    draws = CreditGrantDraw.objects.filter(grant__wallet=wallet).order_by("id")
    assert [(d.rated_event.raw_event.event_id, d.grant.name, d.amount) for d in draws] == [
        ("a", "first", 3), ("a", "soon", 1), ("b", "soon", 4), ("b", "late", 5), ("b", "never", 3), ("c", "never", 2),
    ]
    assert CreditGrant.objects.get(pk=first.pk).status == "consumed"


def test_an_expired_grant_pays_nothing_before_the_sweep_and_the_sweep_writes_its_expiry_at_expires_at():
    setup = priced_setup(rate="1", billing_mode=Subscription.BillingMode.HYBRID)
    start = timezone.now() - timedelta(hours=2)
    expired = grant(setup.customer, "10", "old", starts_at=start, expires_at=timezone.now() + timedelta(milliseconds=300), now=start)
    live = grant(setup.customer, "2", "live")

    def past_expiry():
        return timezone.now() >= expired.expires_at

    from tests.conftest import wait_for

    wait_for(past_expiry, timeout=5, message="the grant's expiry")
    rated_event(setup, "a", "5")  # hybrid: the expired 10 is not spendable, only live's 2
    wallet = Wallet.objects.get(customer=setup.customer)
    assert remaining(expired, live) == [10, 0] and wallet.balance == Decimal(10)
    assert credit_grants_expire_task() == 1 and credit_grants_expire() == 0  # idempotent
    entry = WalletEntry.objects.get(wallet=wallet, kind="grant_expiry")
    assert (entry.amount, entry.created_at, entry.grant_id) == (Decimal(-10), expired.expires_at, expired.pk)
    assert CreditGrant.objects.get(pk=expired.pk).status == "expired"
    wallet.refresh_from_db()
    assert wallet.balance == 0


def test_a_negative_delta_gives_back_to_the_grant_it_came_from():
    setup = priced_setup(rate="1", billing_mode=Subscription.BillingMode.PREPAID)
    gift = grant(setup.customer, "10", "gift")
    from wallets.debits import wallet_settlement_charge
    from django.db import transaction

    rated_event(setup, "a", "6")
    with transaction.atomic():  # settlement giving back what real time over-took
        wallet_settlement_charge(tenant_id=setup.tenant.pk, customer_id=setup.customer.pk, currency="USD", amount=Decimal(-4),
                                 at_most_available=False, idempotency_key="back", reference="test", now=timezone.now())
    assert remaining(gift) == [8]
    assert Wallet.objects.get(customer=setup.customer).balance == Decimal(8)  # all of it the grant's: paid balance 0


def test_grant_create_is_idempotent_and_validated_void_needs_a_reason():
    customer = CustomerFactory()
    first, created = credit_grant_create(customer=customer, currency="usd", amount=Decimal(5), name="x", idempotency_key="k")
    again, created_again = credit_grant_create(customer=customer, currency="USD", amount=Decimal(5), name="x", idempotency_key="k")
    assert (created, created_again, again.pk) == (True, False, first.pk)
    assert WalletEntry.objects.filter(kind="grant").count() == 1
    with pytest.raises(WalletError) as reused:
        credit_grant_create(customer=customer, currency="USD", amount=Decimal(6), name="x", idempotency_key="k")
    assert reused.value.code == "idempotency_key_reused"
    for terms, field in (({"amount": Decimal("0.001")}, "amount"), ({"priority": 1001}, "priority"),
                         ({"expires_at": timezone.now() - timedelta(seconds=1)}, "expires_at"), ({"name": ""}, "name"),
                         ({"currency": "XTS"}, "currency"), ({"kind": "free"}, "kind")):
        with pytest.raises(WalletError) as refused:
            credit_grant_create(**{"customer": customer, "currency": "USD", "amount": Decimal(5), "name": "y",
                                   "idempotency_key": "k2", **terms})
        assert refused.value.field == field and refused.value.status == 400
    with pytest.raises(WalletError) as no_reason:
        credit_grant_void(tenant_id=customer.tenant_id, grant_id=first.pk, reason=" ")
    assert no_reason.value.code == "reason_required"
    voided, changed = credit_grant_void(tenant_id=customer.tenant_id, grant_id=first.pk, reason="sent twice")
    assert (voided.status, changed, credit_grant_void(tenant_id=customer.tenant_id, grant_id=first.pk, reason="x")[1]) == ("voided", True, False)
    assert Wallet.objects.get(customer=customer).balance == 0


# --- the API --------------------------------------------------------------------------------------


@pytest.fixture
def admin():
    setup = priced_setup(rate="1", billing_mode=Subscription.BillingMode.PREPAID)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant)}")
    client.setup = setup
    return client


def test_the_credit_grants_api(admin):
    customer = admin.setup.customer
    body = {"customer": customer.pk, "currency": "USD", "amount": "25.50", "name": "Welcome", "priority": 5,
            "expires_at": (timezone.now() + timedelta(days=30)).isoformat(), "idempotency_key": "welcome"}
    created = admin.post("/api/v1/credit-grants", body, format="json")
    assert created.status_code == 201, created.content
    grant_body = created.json()
    assert (grant_body["amount"], grant_body["remaining"], grant_body["status"], grant_body["kind"]) == ("25.5", "25.5", "active", "promotional")
    retry = admin.post("/api/v1/credit-grants", body, format="json")
    assert (retry.status_code, retry.json()["id"]) == (200, grant_body["id"])
    assert admin.post("/api/v1/credit-grants", {**body, "amount": "30"}, format="json").json()["error"]["code"] == "idempotency_key_reused"
    rated_event(admin.setup, "a", "3")
    detail = admin.get(f"/api/v1/credit-grants/{grant_body['id']}").json()
    assert detail["remaining"] == "22.5"
    listed = admin.get(f"/api/v1/credit-grants?customer={customer.pk}&status=active").json()
    assert [g["id"] for g in listed["results"]] == [grant_body["id"]]
    assert admin.get("/api/v1/credit-grants?status=nope").json()["error"]["field"] == "status"
    assert admin.post(f"/api/v1/credit-grants/{grant_body['id']}/void", {}, format="json").json()["error"]["field"] == "reason"
    voided = admin.post(f"/api/v1/credit-grants/{grant_body['id']}/void", {"reason": "promo ended"}, format="json")
    assert (voided.status_code, voided.json()["status"], voided.json()["remaining"]) == (200, "voided", "0")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(TenantFactory())}")
    assert other.get(f"/api/v1/credit-grants/{grant_body['id']}").status_code == 404
    assert other.post(f"/api/v1/credit-grants/{grant_body['id']}/void", {"reason": "x"}, format="json").status_code == 404


@pytest.mark.parametrize(("change", "field"), [
    ({"amount": 10.5}, "amount"), ({"amount": "0"}, "amount"), ({"amount": "-1"}, "amount"), ({"amount": "1.001"}, "amount"),
    ({"amount": "NaN"}, "amount"), ({"amount": "1e999999"}, "amount"), ({"currency": "XYZ"}, "currency"),
    ({"priority": 1001}, "priority"), ({"priority": -1}, "priority"), ({"priority": 2.5}, "priority"), ({"priority": True}, "priority"),
    ({"starts_at": "2030-01-02T00:00:00Z", "expires_at": "2030-01-01T00:00:00Z"}, "expires_at"),
    ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"), ({"expires_at": "soon"}, "expires_at"),
    ({"kind": "free"}, "kind"), ({"name": ""}, "name"), ({"name": "a\x00b"}, "name"), ({"customer": 2**70}, "customer"),
    ({"idempotency_key": "k" * 151}, "idempotency_key"),
])
def test_a_bad_grant_body_is_a_400_naming_its_field(admin, change, field):
    body = {"customer": admin.setup.customer.pk, "currency": "USD", "amount": "5", "name": "n", "idempotency_key": "bad", **change}
    response = admin.post("/api/v1/credit-grants", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error.get("field") == field or field in error.get("fields", {}), error
    assert not CreditGrant.objects.exists()


# --- where people see them ----------------------------------------------------------------------


def test_grants_show_with_their_remaining_and_expiry_in_the_usage_api_dashboard_and_admin(admin, client, django_user_model):
    from catalog.models import CustomerUser
    from tests.test_admin import change_url, changelist_url
    from tests.wallets.test_admin import wallet_operator

    setup = admin.setup
    expires = timezone.now() + timedelta(days=3)
    promo = grant(setup.customer, "10", "Spring promo", priority=1, expires_at=expires)
    grant(setup.customer, "5", "Prepaid pack", kind="paid")
    rated_event(setup, "a", "4")
    usage = admin.get(f"/api/v1/customers/{setup.customer.pk}/usage").json()
    assert [(g["name"], g["remaining"], g["expires_at"] is not None, g["usable_now"]) for g in usage["credit_grants"]] == [
        ("Spring promo", "6", True, True), ("Prepaid pack", "5", False, True),
    ]
    user = django_user_model.objects.create_user("grantee", password="pw")
    CustomerUser.objects.create(user=user, customer=setup.customer)
    client.force_login(user)
    [wallet] = client.get("/dashboard/usage.json").json()["wallets"]
    assert [(g["name"], g["remaining"]) for g in wallet["credit_grants"]] == [("Spring promo", "6"), ("Prepaid pack", "5")]
    assert wallet["granted_remaining"] == "11"
    page = client.get("/dashboard/").content.decode()
    assert "Credit grants" in page and "Spring promo" in page
    client.force_login(wallet_operator(setup.tenant))
    overview = client.get(f"/admin/customers/{setup.customer.pk}/overview/").content.decode()
    assert "Spring promo" in overview and "Credit grants" in overview
    assert "Spring promo" in client.get(change_url(Wallet.objects.get(customer=setup.customer))).content.decode()
    assert client.get(changelist_url(CreditGrant)).status_code == 200
    detail = client.get(change_url(promo)).content.decode()
    assert "draws" in detail and ">4<" in detail  # the draw of event a
    voided = client.post(changelist_url(CreditGrant), {"action": "void_selected", "_selected_action": [promo.pk], "reason": "ended"})
    assert voided.status_code == 302 and CreditGrant.objects.get(pk=promo.pk).status == "voided"


def test_an_operator_grants_credit_from_the_wallets_page_once_and_validated(client):
    from django.urls import reverse

    from tests.wallets.test_admin import wallet_operator

    setup = priced_setup()
    wallet = funded_wallet(setup.customer, "0")
    client.force_login(wallet_operator(setup.tenant))
    url = reverse("admin:wallets_wallet_grant", args=[wallet.pk])
    assert "Grant credit" in client.get(reverse("admin:wallets_wallet_change", args=[wallet.pk])).content.decode()
    form = client.get(url).context["form"]
    expires = (timezone.now() + timedelta(days=30)).strftime("%Y-%m-%d %H:%M")
    body = {"name": "Welcome credit", "kind": "promotional", "amount": "25.00", "priority": "5", "starts_at": "",
            "expires_at": expires, "reason": "onboarding", "idempotency_key": form.initial["idempotency_key"]}
    refused = client.post(url, {**body, "amount": "0.001"})  # finer than the currency's minor unit
    assert refused.status_code == 200 and refused.context["form"].errors
    past = client.post(url, {**body, "expires_at": "2020-01-01 00:00"})
    assert past.status_code == 200 and "expires_at" in past.context["form"].errors
    assert not CreditGrant.objects.exists()
    done = client.post(url, body)
    assert done.status_code == 302
    again = client.post(url, body)  # the same rendered form submitted twice: one grant
    assert again.status_code == 302
    [granted] = CreditGrant.objects.all()
    assert (granted.name, granted.amount, granted.remaining, granted.priority, granted.reason) == (
        "Welcome credit", Decimal("25.00"), Decimal("25.00"), 5, "onboarding")
    assert granted.expires_at is not None and granted.wallet_id == wallet.pk
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("25.00")
