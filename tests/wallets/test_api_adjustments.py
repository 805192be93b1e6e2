"""POST /api/v1/wallets/{id}/adjustments: an operator's correction through the API needs its
reason (stored on the ledger entry), refuses a debit below zero with a stable code unless
`allow_negative_balance` is true, and keeps idempotency keys working (a retry returns the first
entry, whatever the balance is now)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from catalog.models import TenantToken
from tests.factories import funded_wallet, priced_setup
from tests.wallets.test_api import _client
from wallets import services
from wallets.models import WalletEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def wallet():
    return funded_wallet(priced_setup().customer, "100")


@pytest.fixture
def admin(wallet):
    return _client(wallet.tenant)


def adjust(client, wallet, **body):
    return client.post(f"/api/v1/wallets/{wallet.pk}/adjustments", {"idempotency_key": "adj-1", **body})


def adjustments(wallet) -> list[WalletEntry]:
    return list(WalletEntry.objects.filter(wallet=wallet, kind=WalletEntry.Kind.ADJUSTMENT))


def error_of(response) -> dict:
    return response.json()["error"]


def test_an_adjustment_needs_its_reason(admin, wallet):
    for body in ({"amount": "-10"}, {"amount": "-10", "reason": ""}, {"amount": "-10", "reason": "x" * 501}):
        response = adjust(admin, wallet, **body)
        assert response.status_code == 400, body
        assert (error_of(response)["code"], error_of(response)["field"]) == ("validation_error", "reason")
    blank = adjust(admin, wallet, amount="-10", reason="   ")
    assert blank.status_code == 400 and error_of(blank)["field"] == "reason"
    assert adjustments(wallet) == []

    done = adjust(admin, wallet, amount="-10", reason="duplicate top-up", reference="T-9", currency="USD")
    assert done.status_code == 201, done.content
    body = done.json()
    assert (body["kind"], body["amount"], body["reason"], body["reference"]) == ("adjustment", "-10", "duplicate top-up", "T-9")
    assert body["wallet"]["balance"] == "90" and body["idempotency_key"] == "adjustment:adj-1"
    [entry] = adjustments(wallet)
    assert entry.reason == "duplicate top-up"
    ledger = admin.get(f"/api/v1/wallets/{wallet.pk}/ledger").json()["results"]
    assert ledger[0]["reason"] == "duplicate top-up"


def test_a_debit_below_zero_is_a_409_unless_a_negative_balance_is_allowed(admin, wallet):
    refused = adjust(admin, wallet, amount="-500", reason="chargeback")
    assert refused.status_code == 409
    error = error_of(refused)
    assert (error["code"], error["field"], error["balance"], error["balance_after"], error["currency"]) == (
        "negative_balance_not_allowed", "amount", "100", "-400", "USD",
    )
    assert adjustments(wallet) == []
    not_a_boolean = adjust(admin, wallet, amount="-500", reason="chargeback", allow_negative_balance="yes")
    assert not_a_boolean.status_code == 400 and error_of(not_a_boolean)["field"] == "allow_negative_balance"

    allowed = adjust(admin, wallet, amount="-500", reason="chargeback", allow_negative_balance=True)
    assert allowed.status_code == 201 and allowed.json()["wallet"]["balance"] == "-400"
    # The retry (without the flag, the balance now -400) is the first adjustment, unchanged.
    retry = adjust(admin, wallet, amount="-500", reason="chargeback")
    assert retry.status_code == 200 and retry.json()["id"] == allowed.json()["id"]
    reused = adjust(admin, wallet, amount="-5", reason="chargeback")
    assert reused.status_code == 409 and error_of(reused)["code"] == "idempotency_key_reused"
    credit = adjust(admin, wallet, amount="50", reason="partial repayment", idempotency_key="adj-2")
    assert credit.status_code == 201 and credit.json()["wallet"]["balance"] == "-350"  # still short: a credit
    assert [e.amount for e in adjustments(wallet)] == [Decimal(-500), Decimal(50)]
    assert services.wallets_check() == []


def test_adjustment_amounts_credentials_and_tenants(admin, wallet):
    finer = adjust(admin, wallet, amount="-0.005", reason="rounding")
    assert finer.status_code == 400 and (error_of(finer)["code"], error_of(finer)["minor_unit"]) == ("invalid_amount", "0.01")
    as_float = admin.post(f"/api/v1/wallets/{wallet.pk}/adjustments", {"amount": -1.5, "reason": "x", "idempotency_key": "f"})
    assert as_float.status_code == 400 and error_of(as_float)["field"] == "amount"
    zero = adjust(admin, wallet, amount="0", reason="nothing")
    assert zero.status_code == 400 and error_of(zero)["code"] == "invalid_amount"
    gateway = adjust(_client(wallet.tenant, TenantToken.Kind.INGEST), wallet, amount="5", reason="x")
    assert gateway.status_code == 403
    stranger = adjust(_client(priced_setup().tenant), wallet, amount="5", reason="x")
    assert stranger.status_code == 404
    assert adjustments(wallet) == []
