"""The wallets API (/api/v1/wallets…, /api/v1/holds…) against the real PostgreSQL: every route's
happy path, idempotent retries of every write (same body, ledger unchanged), 402/409/404 bodies,
bad input naming the field, the ingest token allowed on the hold routes only, and holds placed
concurrently over HTTP never reserving more than the wallet has. After every test, every
wallet agrees with its ledger (`wallets_check`)."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from catalog.models import TenantToken
from tests.factories import CustomerFactory, TenantFactory, priced_setup, tenant_token
from wallets import holds, services
from wallets.models import Hold, LowBalanceAlert, Wallet, WalletEntry

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _wallets_agree_with_their_ledgers(db):
    yield
    assert services.wallets_check() == []


def _client(tenant, kind: str = TenantToken.Kind.ADMIN) -> APIClient:
    client = APIClient()
    client.default_format = "json"
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(tenant, kind)}")
    return client


@pytest.fixture
def setup():
    return priced_setup()


@pytest.fixture
def admin(setup) -> APIClient:
    return _client(setup.tenant)


@pytest.fixture
def gateway(setup) -> APIClient:
    """What an API gateway holds: the tenant's ingest token."""
    return _client(setup.tenant, TenantToken.Kind.INGEST)


@pytest.fixture
def wallet(setup) -> Wallet:
    return services.wallet_create(customer=setup.customer, currency="USD", low_balance_thresholds=[Decimal(50)])


@pytest.fixture
def funded(wallet, admin) -> Wallet:
    """The wallet with 100 USD in it, topped up through the API."""
    response = admin.post(f"/api/v1/wallets/{wallet.id}/top-ups", {"amount": "100", "idempotency_key": "fund"})
    assert response.status_code == 201, response.content
    return wallet


def _entries(wallet: Wallet) -> int:
    return WalletEntry.objects.filter(wallet=wallet).count()


def _place(client, wallet, amount="10", key="h1", reference="session-1", ttl=900):
    return client.post(
        f"/api/v1/wallets/{wallet.id}/holds",
        {"amount": amount, "ttl_seconds": ttl, "reference": reference, "idempotency_key": key},
    )


def _error(response) -> dict:
    return response.json()["error"]


# --- wallets -----------------------------------------------------------------------------------


def test_create_wallet_then_list_and_read_it(setup, admin):
    response = admin.post(
        "/api/v1/wallets",
        {"customer": setup.customer.id, "currency": "usd", "low_balance_thresholds": ["10", "100.50"]},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body | {"id": 0, "created_at": "", "updated_at": ""} == {
        "id": 0, "customer": setup.customer.id, "currency": "USD", "balance": "0", "held": "0", "available": "0",
        "low_balance_thresholds": ["100.5", "10"], "created_at": "", "updated_at": "",
    }
    other_customer = CustomerFactory(tenant=setup.tenant)
    services.wallet_create(customer=other_customer, currency="EUR")
    services.wallet_create(customer=priced_setup().customer, currency="USD")  # another tenant's: never listed

    listed = admin.get("/api/v1/wallets").json()
    assert listed["count"] == 2
    assert admin.get(f"/api/v1/wallets?customer={setup.customer.id}").json()["results"] == [body]
    assert [w["currency"] for w in admin.get("/api/v1/wallets?currency=eur").json()["results"]] == ["EUR"]
    assert _error(admin.get("/api/v1/wallets?customer=abc"))["field"] == "customer"

    detail = admin.get(f"/api/v1/wallets/{body['id']}")
    assert detail.status_code == 200
    assert detail.json() == {**body, "active_holds": []}


@pytest.mark.parametrize("currency", ["XXX", "XTS", "ABC", "HRK", "XAU", "US", "1SD", "EURO", "", 840, True])
def test_a_wallet_currency_outside_iso_4217_is_a_400_invalid_currency(setup, admin, currency):
    response = admin.post("/api/v1/wallets", {"customer": setup.customer.id, "currency": currency})
    assert response.status_code == 400, response.content
    error = _error(response)
    assert (error["code"], error["field"], list(error["fields"])) == ("invalid_currency", "currency", ["currency"])
    assert "ISO 4217" in error["message"]
    assert not Wallet.objects.exists()


def test_iso_4217_currencies_with_any_minor_unit_are_accepted(setup, admin):
    made = [admin.post("/api/v1/wallets", {"customer": setup.customer.id, "currency": c}) for c in ("jpy", "KWD", "clf")]
    assert [(r.status_code, r.json()["currency"]) for r in made] == [(201, "JPY"), (201, "KWD"), (201, "CLF")]
    listed = admin.get("/api/v1/wallets?currency=kwd").json()["results"]
    assert [w["currency"] for w in listed] == ["KWD"]
    bad_filter = admin.get("/api/v1/wallets?currency=XXX")
    assert bad_filter.status_code == 400
    assert (_error(bad_filter)["code"], _error(bad_filter)["field"]) == ("invalid_currency", "currency")


def test_a_second_wallet_in_the_same_currency_is_a_409_naming_the_first(setup, admin, wallet):
    response = admin.post("/api/v1/wallets", {"customer": setup.customer.id, "currency": "USD"})
    assert response.status_code == 409
    assert _error(response)["code"] == "wallet_exists" and _error(response)["wallet_id"] == wallet.id
    assert Wallet.objects.filter(customer=setup.customer).count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"currency": "USD"}, "customer"),
        ({"customer": "OTHER", "currency": "USD"}, "customer"),  # another tenant's customer
        ({"customer": "OWN", "currency": "US"}, "currency"),
        ({"customer": "OWN", "currency": "1SD"}, "currency"),
        ({"customer": "OWN", "currency": "USD", "low_balance_thresholds": ["-5"]}, "low_balance_thresholds"),
        ({"customer": "OWN", "currency": "USD", "low_balance_thresholds": [10.5]}, "low_balance_thresholds"),
        ({"customer": "OWN", "currency": "USD", "low_balance_thresholds": "10"}, "low_balance_thresholds"),
    ],
)
def test_bad_wallet_creation_is_a_400_naming_the_field(setup, admin, body, field):
    ids = {"OWN": setup.customer.id, "OTHER": CustomerFactory(tenant=TenantFactory()).id}
    body = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    response = admin.post("/api/v1/wallets", body)
    assert response.status_code == 400, response.content
    assert _error(response)["field"] == field
    assert not Wallet.objects.exists()


# --- top-ups -----------------------------------------------------------------------------------


def test_top_up_then_retry_returns_the_same_entry_and_changes_nothing(admin, wallet):
    path = f"/api/v1/wallets/{wallet.id}/top-ups"
    body = {"amount": "100.25", "idempotency_key": "pay-1", "reference": "stripe pi_1", "currency": "USD"}
    first = admin.post(path, body)
    assert first.status_code == 201, first.content
    entry = first.json()
    assert entry | {"id": 0, "created_at": ""} == {
        "id": 0, "kind": "top_up", "amount": "100.25", "held_change": "0", "balance_after": "100.25",
        "held_after": "0", "hold": None, "rated_event": None, "reference": "stripe pi_1", "reason": "",
        "idempotency_key": "top_up:pay-1", "created_at": "",
        "wallet": {"id": wallet.id, "currency": "USD", "balance": "100.25", "held": "0", "available": "100.25"},
    }
    retry = admin.post(path, body)
    assert retry.status_code == 200 and retry.json() == entry
    assert _entries(wallet) == 1

    reused = admin.post(path, {**body, "amount": "5"})
    assert reused.status_code == 409
    assert _error(reused)["code"] == "idempotency_key_reused" and _error(reused)["field"] == "idempotency_key"
    assert _entries(wallet) == 1
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("100.25")


def test_a_top_up_in_another_currency_is_refused(admin, wallet):
    response = admin.post(
        f"/api/v1/wallets/{wallet.id}/top-ups", {"amount": "10", "idempotency_key": "k", "currency": "EUR"}
    )
    assert response.status_code == 400
    assert _error(response)["code"] == "currency_mismatch" and _error(response)["field"] == "currency"
    assert _entries(wallet) == 0
    lower = admin.post(
        f"/api/v1/wallets/{wallet.id}/top-ups", {"amount": "10", "idempotency_key": "k", "currency": "usd"}
    )
    assert lower.status_code == 201


@pytest.mark.parametrize(
    ("currency", "amount", "unit"),
    [("USD", "1.005", "0.01"), ("USD", "0.001", "0.01"), ("JPY", "1.5", "1"), ("KWD", "0.0001", "0.001")],
)
def test_a_top_up_finer_than_the_minor_unit_is_a_400_naming_it(setup, admin, currency, amount, unit):
    wallet = services.wallet_create(customer=setup.customer, currency=currency)
    path = f"/api/v1/wallets/{wallet.id}/top-ups"
    response = admin.post(path, {"amount": amount, "idempotency_key": "pay-1"})
    assert response.status_code == 400, response.content
    error = _error(response)
    assert error | {"message": ""} == {
        "code": "invalid_amount", "message": "", "field": "amount", "minor_unit": unit, "currency": currency,
    }
    assert f"minor unit ({unit} {currency})" in error["message"]
    assert _entries(wallet) == 0
    whole = admin.post(path, {"amount": "15", "idempotency_key": "pay-1"})  # the key was not used up
    assert whole.status_code == 201 and whole.json()["amount"] == "15"
    retry = admin.post(path, {"amount": "15", "idempotency_key": "pay-1"})
    assert retry.status_code == 200 and retry.json()["id"] == whole.json()["id"] and _entries(wallet) == 1
    padded = admin.post(path, {"amount": "1.0000", "idempotency_key": "pay-2"})  # trailing zeros are not precision
    assert padded.status_code == 201 and padded.json()["amount"] == "1"
    # Holds and commits are charges for usage: the same finer amount is kept exactly.
    hold = _place(admin, wallet, amount=amount, key="usage")
    assert hold.status_code == 201 and hold.json()["amount"] == amount.rstrip("0")
    committed = admin.post(f"/api/v1/holds/{hold.json()['id']}/commit", {"amount": amount})
    assert committed.status_code == 200 and committed.json()["committed_amount"] == amount.rstrip("0")
    assert committed.json()["wallet"]["balance"] == decimal_text_of(Decimal(16) - Decimal(amount))


@pytest.mark.parametrize("route", ["top-ups", "holds"])
def test_a_write_naming_a_currency_outside_iso_4217_is_invalid_currency_not_a_mismatch(admin, funded, route):
    body = {"amount": "1", "idempotency_key": "k", "currency": "XXX"}
    if route == "holds":
        body |= {"ttl_seconds": 60, "reference": "s"}
    response = admin.post(f"/api/v1/wallets/{funded.id}/{route}", body)
    assert response.status_code == 400
    assert (_error(response)["code"], _error(response)["field"]) == ("invalid_currency", "currency")
    assert _entries(funded) == 1 and not Hold.objects.exists()


# --- holds -------------------------------------------------------------------------------------


def test_place_a_hold_then_retry_returns_the_same_hold(admin, funded):
    first = _place(admin, funded, amount="10.5")
    assert first.status_code == 201, first.content
    hold = first.json()
    assert hold | {"id": 0, "expires_at": "", "created_at": ""} == {
        "id": 0, "status": "active", "amount": "10.5", "drawn": "0", "remaining": "10.5", "committed_amount": None,
        "reference": "session-1", "idempotency_key": "h1", "expires_at": "", "created_at": "", "resolved_at": None,
        "wallet": {"id": funded.id, "currency": "USD", "balance": "100", "held": "10.5", "available": "89.5"},
    }
    entries = _entries(funded)
    retry = _place(admin, funded, amount="10.5")
    assert retry.status_code == 200 and retry.json() == hold
    assert _entries(funded) == entries == 2

    detail = admin.get(f"/api/v1/wallets/{funded.id}").json()
    assert (detail["balance"], detail["held"], detail["available"]) == ("100", "10.5", "89.5")
    assert detail["active_holds"] == [
        {key: hold[key] for key in ("id", "amount", "drawn", "remaining", "reference", "expires_at", "created_at")}
    ]
    assert admin.get(f"/api/v1/holds/{hold['id']}").json() == hold

    reused = _place(admin, funded, amount="11")
    assert reused.status_code == 409 and _error(reused)["code"] == "idempotency_key_reused"
    assert _entries(funded) == 2


def test_a_hold_the_available_balance_cannot_cover_is_a_402_with_the_available_amount(admin, funded):
    assert _place(admin, funded, amount="95.5", key="big").status_code == 201
    response = _place(admin, funded, amount="10", key="second")
    assert response.status_code == 402
    assert _error(response) == {
        "code": "insufficient_funds",
        "message": _error(response)["message"],
        "available": "4.5",
        "needed": "10",
        "currency": "USD",
    }
    assert Hold.objects.filter(wallet=funded).count() == 1 and _entries(funded) == 2


def test_a_hold_in_another_currency_is_refused(admin, funded):
    response = admin.post(
        f"/api/v1/wallets/{funded.id}/holds",
        {"amount": "1", "ttl_seconds": 60, "reference": "s", "idempotency_key": "k", "currency": "EUR"},
    )
    assert response.status_code == 400 and _error(response)["code"] == "currency_mismatch"


def test_commit_charges_the_amount_and_releases_the_rest_then_retry_changes_nothing(admin, funded):
    hold_id = _place(admin, funded, amount="10").json()["id"]
    path = f"/api/v1/holds/{hold_id}/commit"
    first = admin.post(path, {"amount": "3.25"})
    assert first.status_code == 200, first.content
    body = first.json()
    assert (body["status"], body["committed_amount"], body["remaining"]) == ("committed", "3.25", "0")
    assert body["amount"] == "10"
    assert body["resolved_at"] is not None
    assert body["wallet"] == {"id": funded.id, "currency": "USD", "balance": "96.75", "held": "0", "available": "96.75"}
    entries = _entries(funded)
    retry = admin.post(path, {"amount": "3.25"})
    assert retry.status_code == 200 and retry.json() == body
    assert _entries(funded) == entries

    other = admin.post(path, {"amount": "4"})
    assert other.status_code == 409
    assert _error(other)["code"] == "hold_committed" and _error(other)["hold_status"] == "committed"
    released = admin.post(f"/api/v1/holds/{hold_id}/release")
    assert released.status_code == 409 and _error(released)["code"] == "hold_committed"
    assert _entries(funded) == entries


def test_commit_zero_charges_nothing(admin, funded):
    hold_id = _place(admin, funded).json()["id"]
    body = admin.post(f"/api/v1/holds/{hold_id}/commit", {"amount": 0}).json()
    assert body["committed_amount"] == "0" and body["wallet"]["balance"] == "100"


def test_commit_above_the_hold_is_a_409_exceeds_hold_naming_the_holds_amount(admin, gateway, funded):
    hold_id = _place(admin, funded, amount="10").json()["id"]
    entries = _entries(funded)
    for client, body in ((admin, {"amount": "10.01"}), (gateway, {"amount": "25", "allow_over_capture": False})):
        response = client.post(f"/api/v1/holds/{hold_id}/commit", body)
        assert response.status_code == 409, response.content
        error = _error(response)
        assert error | {"message": ""} == {
            "code": "exceeds_hold", "message": "", "field": "amount", "amount": "10", "drawn": "0", "remaining": "10",
            "excess": decimal_text_of(Decimal(body["amount"]) - 10), "currency": "USD",
        }
        assert f"Hold {hold_id} reserved 10 USD" in error["message"] and "allow_over_capture" in error["message"]
    assert _entries(funded) == entries and Hold.objects.get(pk=hold_id).status == Hold.Status.ACTIVE
    funded.refresh_from_db()
    assert (funded.balance, funded.held) == (Decimal(100), Decimal(10))  # nothing charged, the hold intact
    within = admin.post(f"/api/v1/holds/{hold_id}/commit", {"amount": "10"})
    assert within.status_code == 200 and within.json()["committed_amount"] == "10"


def decimal_text_of(value: Decimal) -> str:
    return format(value.normalize(), "f")


def test_allow_over_capture_charges_the_excess_if_the_available_balance_covers_it(admin, setup):
    wallet = services.wallet_create(customer=setup.customer, currency="USD")
    services.wallet_top_up(tenant_id=setup.tenant.id, wallet_id=wallet.id, amount=Decimal(20), idempotency_key="t")
    hold_id = _place(admin, wallet, amount="10").json()["id"]
    short = admin.post(f"/api/v1/holds/{hold_id}/commit", {"amount": "25", "allow_over_capture": True})
    assert short.status_code == 402
    error = _error(short)
    assert (error["code"], error["available"], error["needed"]) == ("insufficient_funds", "10", "15")
    assert Hold.objects.get(pk=hold_id).status == Hold.Status.ACTIVE

    path = f"/api/v1/holds/{hold_id}/commit"
    assert admin.post(path, {"amount": "20"}).status_code == 409  # covered, but not asked for: exceeds_hold
    covered = admin.post(path, {"amount": "20", "allow_over_capture": True})
    assert covered.status_code == 200
    body = covered.json()
    assert (body["status"], body["committed_amount"]) == ("committed", "20")
    assert body["wallet"] == {"id": wallet.id, "currency": "USD", "balance": "0", "held": "0", "available": "0"}
    entries = _entries(wallet)
    # Retries answer the first result and charge nothing, with or without the flag.
    for retry in ({"amount": "20", "allow_over_capture": True}, {"amount": "20"}):
        again = admin.post(path, retry)
        assert again.status_code == 200 and again.json() == body
    other = admin.post(path, {"amount": "21", "allow_over_capture": True})
    assert other.status_code == 409 and _error(other)["code"] == "hold_committed"
    assert _entries(wallet) == entries


@pytest.mark.parametrize("flag", ["true", "yes", 1, 0, None, [True]])
def test_allow_over_capture_must_be_a_json_boolean(admin, funded, flag):
    hold_id = _place(admin, funded, amount="10").json()["id"]
    before = _entries(funded)
    response = admin.post(f"/api/v1/holds/{hold_id}/commit", {"amount": "12", "allow_over_capture": flag})
    assert response.status_code == 400, response.content
    assert (_error(response)["code"], _error(response)["field"]) == ("validation_error", "allow_over_capture")
    assert _entries(funded) == before and Hold.objects.get(pk=hold_id).status == Hold.Status.ACTIVE




def test_release_gives_the_hold_back_then_retry_changes_nothing(admin, funded):
    hold_id = _place(admin, funded, amount="30").json()["id"]
    first = admin.post(f"/api/v1/holds/{hold_id}/release")
    assert first.status_code == 200, first.content
    body = first.json()
    assert (body["status"], body["remaining"], body["committed_amount"]) == ("released", "0", None)
    assert body["wallet"] == {"id": funded.id, "currency": "USD", "balance": "100", "held": "0", "available": "100"}
    entries = _entries(funded)
    retry = admin.post(f"/api/v1/holds/{hold_id}/release")
    assert retry.status_code == 200 and retry.json() == body
    commit = admin.post(f"/api/v1/holds/{hold_id}/commit", {"amount": "1"})
    assert commit.status_code == 409
    assert _error(commit)["code"] == "hold_released" and _error(commit)["hold_status"] == "released"
    assert _entries(funded) == entries


def _expired_hold(setup, wallet) -> Hold:
    hold, _ = holds.hold_place(
        tenant_id=setup.tenant.id, wallet_id=wallet.id, amount=Decimal(10), ttl_seconds=60, reference="old",
        idempotency_key="old", now=timezone.now() - timedelta(hours=1),
    )
    return hold


def test_a_hold_past_its_ttl_cannot_be_committed_or_released(setup, admin, funded):
    hold = _expired_hold(setup, funded)
    commit = admin.post(f"/api/v1/holds/{hold.id}/commit", {"amount": "5"})
    assert commit.status_code == 409 and _error(commit)["code"] == "hold_expired"
    hold.refresh_from_db()
    assert hold.status == Hold.Status.EXPIRED  # expired by the request that found it, and it stays so
    release = admin.post(f"/api/v1/holds/{hold.id}/release")
    assert release.status_code == 409 and _error(release)["code"] == "hold_expired"
    body = admin.get(f"/api/v1/holds/{hold.id}").json()
    assert (body["status"], body["wallet"]["available"]) == ("expired", "100")


def test_a_hold_expired_by_the_sweep_cannot_be_released(setup, admin, funded):
    hold = _expired_hold(setup, funded)
    assert holds.holds_expire() == 1
    release = admin.post(f"/api/v1/holds/{hold.id}/release")
    assert release.status_code == 409 and _error(release)["code"] == "hold_expired"


# --- ledger and alerts -------------------------------------------------------------------------


def test_ledger_is_newest_first_by_cursor(admin, funded):
    hold_id = _place(admin, funded, amount="60").json()["id"]
    admin.post(f"/api/v1/holds/{hold_id}/commit", {"amount": "55"})
    first = admin.get(f"/api/v1/wallets/{funded.id}/ledger?limit=2")
    assert first.status_code == 200
    page = first.json()
    assert [e["kind"] for e in page["results"]] == ["hold_commit", "hold"]
    commit, hold = page["results"]
    assert commit | {"id": 0, "created_at": ""} == {
        "id": 0, "kind": "hold_commit", "amount": "-55", "held_change": "-60", "balance_after": "45",
        "held_after": "0", "hold": hold_id, "rated_event": None, "reference": "session-1", "reason": "",
        "idempotency_key": f"hold:{hold_id}:committed", "created_at": "",
    }
    assert (hold["amount"], hold["held_change"], hold["hold"]) == ("0", "60", hold_id)
    rest = admin.get(page["next"]).json()
    assert [e["kind"] for e in rest["results"]] == ["top_up"] and rest["next"] is None


def test_alerts_list_each_threshold_crossing(admin, funded):
    hold_id = _place(admin, funded, amount="60").json()["id"]  # available 100 → 40: below 50
    response = admin.get(f"/api/v1/wallets/{funded.id}/alerts")
    assert response.status_code == 200
    alerts = response.json()["results"]
    assert len(alerts) == 1 and LowBalanceAlert.objects.count() == 1
    assert alerts[0] | {"id": 0, "entry": 0, "created_at": ""} == {
        "id": 0, "threshold": "50", "available_before": "100", "available_after": "40", "entry": 0, "created_at": "",
    }
    assert alerts[0]["entry"] == WalletEntry.objects.get(hold_id=hold_id, kind="hold").id


# --- tenancy and credentials -------------------------------------------------------------------


def test_another_tenants_wallets_and_holds_are_404(setup, funded):
    hold_id = _place(_client(setup.tenant), funded).json()["id"]
    stranger = _client(priced_setup().tenant)
    gateway = _client(priced_setup().tenant, TenantToken.Kind.INGEST)
    before = _entries(funded)
    for wallet_id in (funded.id, 987654321, 99999999999999999999):
        responses = [
            stranger.get(f"/api/v1/wallets/{wallet_id}"),
            gateway.get(f"/api/v1/wallets/{wallet_id}"),
            stranger.get(f"/api/v1/wallets/{wallet_id}/ledger"),
            stranger.get(f"/api/v1/wallets/{wallet_id}/alerts"),
            stranger.post(f"/api/v1/wallets/{wallet_id}/top-ups", {"amount": "1", "idempotency_key": "x"}),
            stranger.post(
                f"/api/v1/wallets/{wallet_id}/top-ups", {"amount": "1", "idempotency_key": "x", "currency": "USD"}
            ),
            stranger.post(f"/api/v1/wallets/{wallet_id}/holds", HOLD),
            gateway.post(f"/api/v1/wallets/{wallet_id}/holds", {**HOLD, "currency": "USD"}),
        ]
        assert [r.status_code for r in responses] == [404] * 8, [r.content for r in responses]
        assert {_error(r)["code"] for r in responses} == {"not_found"}
    for hold in (hold_id, 987654321):
        for client in (stranger, gateway):
            responses = [
                client.get(f"/api/v1/holds/{hold}"),
                client.post(f"/api/v1/holds/{hold}/commit", {"amount": "1"}),
                client.post(f"/api/v1/holds/{hold}/release"),
            ]
            assert [r.status_code for r in responses] == [404] * 3, [r.content for r in responses]
    assert stranger.get("/api/v1/wallets").json()["count"] == 0
    assert _entries(funded) == before and Hold.objects.get(pk=hold_id).status == Hold.Status.ACTIVE


def test_the_ingest_token_may_place_commit_release_and_read_holds_only(setup, gateway, funded):
    assert gateway.get(f"/api/v1/wallets/{funded.id}").status_code == 200
    placed = _place(gateway, funded, key="g1")
    assert placed.status_code == 201
    assert gateway.get(f"/api/v1/holds/{placed.json()['id']}").status_code == 200
    assert gateway.post(f"/api/v1/holds/{placed.json()['id']}/commit", {"amount": "2"}).status_code == 200
    second = _place(gateway, funded, key="g2").json()["id"]
    assert gateway.post(f"/api/v1/holds/{second}/release").status_code == 200

    refused = [
        gateway.post(f"/api/v1/wallets/{funded.id}/top-ups", {"amount": "1", "idempotency_key": "x"}),
        gateway.get("/api/v1/wallets"),
        gateway.post("/api/v1/wallets", {"customer": setup.customer.id, "currency": "EUR"}),
        gateway.get(f"/api/v1/wallets/{funded.id}/ledger"),
        gateway.get(f"/api/v1/wallets/{funded.id}/alerts"),
    ]
    assert [r.status_code for r in refused] == [403] * 5
    assert {_error(r)["code"] for r in refused} == {"wrong_credential_kind"}
    wallet = Wallet.objects.get(pk=funded.pk)
    assert wallet.balance == Decimal(98) and _entries(funded) == 5


def test_no_token_is_a_401(funded):
    anonymous = APIClient()
    assert anonymous.get(f"/api/v1/wallets/{funded.id}").status_code == 401
    assert anonymous.post(f"/api/v1/wallets/{funded.id}/holds", {}, format="json").status_code == 401


# --- bad input ---------------------------------------------------------------------------------

BAD_AMOUNTS = [
    ("-1", "invalid_amount"),
    ("0", "invalid_amount"),
    ("0.0000000000001", "invalid_amount"),  # 13 decimal places
    ("1e16", "invalid_amount"),
    ("NaN", "invalid_amount"),
    ("ten", "validation_error"),
    (10.5, "validation_error"),  # a JSON float
    (True, "validation_error"),
    (None, "validation_error"),
    ("MISSING", "validation_error"),
]


def _with(body: dict, name: str, value) -> dict:
    body = dict(body)
    if value == "MISSING":
        body.pop(name)
    else:
        body[name] = value
    return body


@pytest.mark.parametrize(("amount", "code"), BAD_AMOUNTS)
def test_bad_top_up_amounts_are_400s_naming_amount(admin, wallet, amount, code):
    body = _with({"amount": "1", "idempotency_key": "k"}, "amount", amount)
    response = admin.post(f"/api/v1/wallets/{wallet.id}/top-ups", body)
    assert response.status_code == 400, response.content
    assert (_error(response)["code"], _error(response)["field"]) == (code, "amount")
    assert _entries(wallet) == 0


HOLD = {"amount": "1", "ttl_seconds": 60, "reference": "s", "idempotency_key": "k"}


@pytest.mark.parametrize(
    ("name", "value", "code"),
    [(("amount", amount, code)) for amount, code in BAD_AMOUNTS]
    + [
        ("ttl_seconds", 0, "validation_error"),
        ("ttl_seconds", 7 * 24 * 3600 + 1, "validation_error"),
        ("ttl_seconds", "soon", "validation_error"),
        ("ttl_seconds", "MISSING", "validation_error"),
        ("idempotency_key", "MISSING", "validation_error"),
        ("idempotency_key", "", "validation_error"),
        ("idempotency_key", "k" * 151, "validation_error"),
        ("reference", "MISSING", "validation_error"),
        ("reference", "", "validation_error"),
        ("reference", "r" * 201, "validation_error"),
    ],
)
def test_bad_holds_are_400s_naming_the_field(admin, funded, name, value, code):
    before = _entries(funded)
    response = admin.post(f"/api/v1/wallets/{funded.id}/holds", _with(HOLD, name, value))
    assert response.status_code == 400, response.content
    assert (_error(response)["code"], _error(response)["field"]) == (code, name)
    assert _entries(funded) == before and not Hold.objects.exists()


def test_a_missing_top_up_idempotency_key_is_a_400(admin, wallet):
    response = admin.post(f"/api/v1/wallets/{wallet.id}/top-ups", {"amount": "1"})
    assert response.status_code == 400 and _error(response)["field"] == "idempotency_key"


@pytest.mark.parametrize(
    ("amount", "code"), [("-1", "invalid_amount"), ("0.0000000000001", "invalid_amount"), (2.5, "validation_error"),
                         ("MISSING", "validation_error")],
)
def test_bad_commit_amounts_are_400s_naming_amount(admin, funded, amount, code):
    hold_id = _place(admin, funded).json()["id"]
    before = _entries(funded)
    response = admin.post(f"/api/v1/holds/{hold_id}/commit", _with({"amount": "1"}, "amount", amount))
    assert response.status_code == 400, response.content
    assert (_error(response)["code"], _error(response)["field"]) == (code, "amount")
    assert _entries(funded) == before and Hold.objects.get(pk=hold_id).status == Hold.Status.ACTIVE


def test_a_body_that_is_not_json_is_a_400(admin, wallet):
    response = admin.generic(
        "POST", f"/api/v1/wallets/{wallet.id}/top-ups", '{"amount": "1",', content_type="application/json"
    )
    assert response.status_code == 400 and _error(response)["code"] == "malformed_json"


# --- concurrency -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_holds_over_http_never_reserve_more_than_the_wallet_has():
    setup = priced_setup()
    admin = _client(setup.tenant)
    wallet_id = admin.post("/api/v1/wallets", {"customer": setup.customer.id, "currency": "USD"}).json()["id"]
    funded = admin.post(f"/api/v1/wallets/{wallet_id}/top-ups", {"amount": "100", "idempotency_key": "f"})
    assert funded.status_code == 201
    token = tenant_token(setup.tenant, TenantToken.Kind.INGEST)
    start = threading.Barrier(20)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def place(n: int) -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
            body = {"amount": "10", "ttl_seconds": 600, "reference": f"session-{n}", "idempotency_key": f"h-{n}"}
            start.wait(timeout=30)
            response = client.post(f"/api/v1/wallets/{wallet_id}/holds", body, format="json")
            if response.status_code == 402:
                assert response.json()["error"]["available"] == "0"
            statuses.append(response.status_code)
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=place, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(statuses) == [201] * 10 + [402] * 10
    wallet = Wallet.objects.get(pk=wallet_id)
    assert (wallet.balance, wallet.held, wallet.available) == (100, 100, 0)
    assert Hold.objects.filter(wallet=wallet, status=Hold.Status.ACTIVE).count() == 10
    assert WalletEntry.objects.filter(wallet=wallet).count() == 11
    assert services.wallets_check() == []


# --- documentation -----------------------------------------------------------------------------


def test_the_schema_documents_every_wallet_route_and_the_402_body(client):
    schema = client.get("/api/schema/?format=json").json()
    paths = schema["paths"]
    routes = {
        ("/api/v1/wallets", "get"), ("/api/v1/wallets", "post"), ("/api/v1/wallets/{wallet_id}", "get"),
        ("/api/v1/wallets/{wallet_id}/top-ups", "post"), ("/api/v1/wallets/{wallet_id}/holds", "post"),
        ("/api/v1/wallets/{wallet_id}/adjustments", "post"),
        ("/api/v1/wallets/{wallet_id}/ledger", "get"), ("/api/v1/wallets/{wallet_id}/alerts", "get"),
        ("/api/v1/holds/{hold_id}", "get"), ("/api/v1/holds/{hold_id}/commit", "post"),
        ("/api/v1/holds/{hold_id}/release", "post"),
    }
    documented = {(path, method) for path, methods in paths.items() for method in methods}
    assert {(path, method) for path, method in documented if "wallet" in path or "hold" in path} == routes
    place = paths["/api/v1/wallets/{wallet_id}/holds"]["post"]
    assert place["responses"]["402"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InsufficientFundsBody"
    }
    assert place["requestBody"]["content"]["application/json"]["examples"]
    commit = paths["/api/v1/holds/{hold_id}/commit"]["post"]
    assert commit["responses"]["200"]["content"]["application/json"]["examples"]
    components = schema["components"]["schemas"]
    commit_input = components[commit["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    assert commit_input["properties"]["allow_over_capture"]["type"] == "boolean"
    assert commit_input["required"] == ["amount"]
    conflict = commit["responses"]["409"]["content"]["application/json"]
    assert conflict["schema"] == {"$ref": "#/components/schemas/HoldCommitConflictBody"}
    assert conflict["examples"]["CommitAboveTheHold"]["value"]["error"]["code"] == "exceeds_hold"
    assert "exceeds_hold" in commit["description"] and "allow_over_capture" in commit["description"]
    top_up = paths["/api/v1/wallets/{wallet_id}/top-ups"]["post"]
    assert "minor_unit" in top_up["responses"]["400"]["description"]
    assert "invalid_currency" in top_up["responses"]["400"]["description"]
    assert schema["components"]["schemas"]["Hold"]["properties"]["amount"]["type"] == "string"
