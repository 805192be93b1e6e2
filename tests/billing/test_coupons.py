"""Coupons: an amount taken off a customer's invoices after the discounts and before tax, what one
invoice does not use carried over to the next; a void gives its part back and the reissue takes
it again; an expired coupon is not used; two subscriptions never spend the same balance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.invoicing import invoice_void_and_reissue
from billing.models import Coupon, CouponRedemption, Discount, TaxRate
from billing.settlement import settlement_run
from billing.settlement.coupons import coupon_remaining
from tests.factories import priced_setup, rated_event, tenant_token

pytestmark = pytest.mark.django_db

JUL = datetime(2026, 7, 1, tzinfo=UTC)


@pytest.fixture
def setup():
    return priced_setup(rate="1", started_at=JUL)


def _settle(setup, month: int):
    return settlement_run(subscription_id=setup.subscription.pk, at=datetime(2026, month, 20, tzinfo=UTC)).invoice


def _discounts(invoice):
    return [(line.description, line.amount) for line in invoice.lines.filter(kind="discount").order_by("position")]


def test_a_coupon_carries_over_until_used_up_after_discounts_and_before_tax(setup):
    coupon = Coupon.objects.create(tenant=setup.tenant, customer=setup.customer, code="WELCOME50", currency="USD", amount=Decimal(50))
    Discount.objects.create(tenant=setup.tenant, subscription=setup.subscription, kind="percent", value=Decimal(10))
    TaxRate.objects.create(tenant=setup.tenant, customer=setup.customer, name="VAT", percent=Decimal(20))
    rated_event(setup, "oct", "30", at=datetime(2026, 10, 5, tzinfo=UTC))
    rated_event(setup, "nov", "40", at=datetime(2026, 11, 5, tzinfo=UTC))
    october = _settle(setup, 10)
    assert _discounts(october) == [("10% off", Decimal("-3.00")), ("Coupon WELCOME50: 27.00 applied, 23 left", Decimal("-27.00"))]
    assert october.total == Decimal("0.00") and coupon_remaining(coupon) == Decimal(23)
    november = _settle(setup, 11)  # 40 − 4 = 36, the coupon's 23 left, then VAT on 13
    assert _discounts(november)[-1] == ("Coupon WELCOME50: 23.00 applied, 0 left", Decimal("-23.00"))
    assert november.total == Decimal("15.60") and coupon_remaining(coupon) == Decimal(0)
    rated_event(setup, "dec", "5", at=datetime.now(UTC) - timedelta(minutes=5))
    december = settlement_run(subscription_id=setup.subscription.pk, at=datetime.now(UTC)).invoice
    assert all("Coupon" not in text for text, _ in _discounts(december))  # used up

    # Voiding October gives its 27 back and the reissue takes it again: still used up, once.
    replacement = invoice_void_and_reissue(invoice=october, reason="address").replacement
    assert _discounts(replacement)[-1] == ("Coupon WELCOME50: 27.00 applied, 0 left", Decimal("-27.00"))
    assert coupon_remaining(coupon) == Decimal(0)
    assert CouponRedemption.objects.filter(coupon=coupon).count() == 3  # October (void), November, the reissue


def test_an_expired_coupon_or_another_currency_is_not_used_and_soonest_expiring_goes_first(setup):
    now = datetime.now(UTC)
    Coupon.objects.create(tenant=setup.tenant, customer=setup.customer, code="OLD", currency="USD", amount=Decimal(5),
                          expires_at=now - timedelta(days=1))
    Coupon.objects.create(tenant=setup.tenant, customer=setup.customer, code="EURO", currency="EUR", amount=Decimal(5))
    Coupon.objects.create(tenant=setup.tenant, customer=setup.customer, code="LATER", currency="USD", amount=Decimal(5))
    Coupon.objects.create(tenant=setup.tenant, customer=setup.customer, code="SOON", currency="USD", amount=Decimal(5),
                          expires_at=now + timedelta(days=3))
    rated_event(setup, "oct", "7", at=datetime(2026, 10, 5, tzinfo=UTC))
    october = _settle(setup, 10)
    assert [text for text, _ in _discounts(october)] == ["Coupon SOON: 5.00 applied, 0 left", "Coupon LATER: 2.00 applied, 3 left"]


def test_the_coupons_api(api_client, setup):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant)}")
    created = api_client.post("/api/v1/coupons", {"customer": setup.customer.pk, "code": "SPRING", "currency": "USD",
                                                  "amount": "25.50"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["amount"], body["remaining"], body["currency"]) == ("25.5", "25.5", "USD")
    for bad, field in (({"amount": 10.5}, "amount"), ({"amount": "0"}, "amount"), ({"currency": "XYZ"}, "currency"),
                       ({"amount": "1.001"}, "amount")):
        refused = api_client.post("/api/v1/coupons", {"customer": setup.customer.pk, "currency": "USD", "amount": "5", **bad}, format="json")
        assert refused.status_code == 400 and field in refused.json()["error"]["fields"], refused.content
    rated_event(setup, "oct", "10", at=datetime(2026, 10, 5, tzinfo=UTC))
    _settle(setup, 10)
    read = api_client.get(f"/api/v1/coupons/{body['id']}").json()
    assert read["remaining"] == "15.5" and read["redemptions"][0]["amount"] == "10"
    assert api_client.delete(f"/api/v1/coupons/{body['id']}").status_code == 409  # redeemed: it stays
    assert api_client.patch(f"/api/v1/coupons/{body['id']}", {"amount": "100"}, format="json").status_code == 400
    ends = api_client.patch(f"/api/v1/coupons/{body['id']}", {"expires_at": "2027-01-01T00:00:00Z"}, format="json")
    assert ends.status_code == 200 and ends.json()["expires_at"].startswith("2027-01-01")
