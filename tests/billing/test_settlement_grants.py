"""Credit grants at settlement: a postpaid invoice is paid after tax by the customer's usable
grants in priority order ("Credit grant" lines, the amount due reduced), what one invoice does
not use carries over; a void gives the parts back and the reissue takes them again, once; an
expired grant pays nothing; a prepaid settlement's wallet part consumes grants first. After
every test the whole ledger verifies (grants included)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.invoicing import invoice_void_and_reissue
from billing.models import TaxRate
from billing.settlement import settlement_run
from billing.verification import ledger_verify
from catalog.models import Subscription
from tests.factories import priced_setup, rated_event
from wallets.grants import credit_grant_create
from wallets.models import CreditGrant, CreditGrantDraw, Wallet, WalletEntry

pytestmark = pytest.mark.django_db

JUL = datetime(2026, 7, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def verified():
    yield
    assert ledger_verify() == []


def _grant(setup, name, amount, key, **terms):
    return credit_grant_create(customer=setup.customer, currency="USD", amount=Decimal(amount), name=name,
                               idempotency_key=key, **terms)[0]


def _grant_lines(invoice):
    return [(line.description, line.amount) for line in invoice.lines.filter(kind="credit_grant").order_by("position")]


def _remaining(*grants):
    return [CreditGrant.objects.get(pk=g.pk).remaining for g in grants]


def test_grants_pay_postpaid_invoices_after_tax_in_priority_order_void_gives_back_reissue_retakes():
    setup = priced_setup(rate="1", started_at=JUL)
    TaxRate.objects.create(tenant=setup.tenant, customer=setup.customer, name="VAT", percent=Decimal(20))
    later = _grant(setup, "Annual prepay", "50", "g-b", kind="paid", priority=5)
    first = _grant(setup, "Welcome", "10", "g-a", priority=1)
    rated_event(setup, "oct", "30", at=datetime(2026, 10, 5, tzinfo=UTC))
    rated_event(setup, "nov", "40", at=datetime(2026, 11, 5, tzinfo=UTC))
    october = settlement_run(subscription_id=setup.subscription.pk, at=datetime(2026, 10, 20, tzinfo=UTC)).invoice
    # 30 + VAT 6 = 36: Welcome (priority 1) pays 10, then Annual prepay 26 of its 50
    assert _grant_lines(october) == [("Credit grant Welcome: 10.00 applied, 0 left", Decimal("-10.00")),
                                     ("Credit grant Annual prepay: 26.00 applied, 24 left", Decimal("-26.00"))]
    assert (october.tax_total, october.total, october.amount_due) == (Decimal("6.00"), Decimal("0.00"), Decimal("0.00"))
    assert _remaining(first, later) == [0, 24]
    november = settlement_run(subscription_id=setup.subscription.pk, at=datetime(2026, 11, 20, tzinfo=UTC)).invoice
    assert _grant_lines(november) == [("Credit grant Annual prepay: 24.00 applied, 0 left", Decimal("-24.00"))]
    assert november.amount_due == Decimal("24.00")  # 48 − 24
    wallet = Wallet.objects.get(customer=setup.customer)
    assert wallet.balance == 0 and CreditGrant.objects.get(pk=first.pk).status == "consumed"

    # Void October: its 36 goes back to the grants, the reissue takes it again — once.
    replacement = invoice_void_and_reissue(invoice=october, reason="address").replacement
    assert [amount for _, amount in _grant_lines(replacement)] == [Decimal("-10.00"), Decimal("-26.00")]
    assert _remaining(first, later) == [0, 0]
    kinds = list(WalletEntry.objects.filter(wallet=wallet).order_by("id").values_list("kind", "amount"))
    assert kinds[-4:] == [("grant_return", Decimal(26)), ("grant_return", Decimal(10)),
                          ("grant_use", Decimal(-10)), ("grant_use", Decimal(-26))]
    assert sum(d.amount for d in CreditGrantDraw.objects.filter(invoice=october)) == 0  # taken, given back
    wallet.refresh_from_db()
    assert wallet.balance == 0


def test_an_expired_or_future_grant_pays_nothing_and_a_void_returns_only_to_grants_still_usable():
    setup = priced_setup(rate="1", started_at=JUL)
    now = datetime.now(UTC)
    _grant(setup, "Later", "5", "g-future", starts_at=now + timedelta(days=2))
    soon = _grant(setup, "Soon", "5", "g-soon", starts_at=now - timedelta(days=1), expires_at=now + timedelta(hours=1))
    rated_event(setup, "oct", "8", at=datetime(2026, 10, 5, tzinfo=UTC))
    settled_at = now + timedelta(minutes=2)  # past the watermark lag of the event just rated
    october = settlement_run(subscription_id=setup.subscription.pk, at=datetime(2026, 10, 20, tzinfo=UTC), now=settled_at).invoice
    assert _grant_lines(october) == [("Credit grant Soon: 5.00 applied, 0 left", Decimal("-5.00"))]
    # Voided after Soon expired: its part stays spent (it would have expired), the reissue pays more.
    replacement = invoice_void_and_reissue(invoice=october, reason="late", now=now + timedelta(hours=2)).replacement
    assert _grant_lines(replacement) == [] and replacement.amount_due == Decimal("8.00")
    assert CreditGrant.objects.get(pk=soon.pk).remaining == 0


def test_a_prepaid_settlement_wallet_part_consumes_grants_first():
    setup = priced_setup(rate="1", started_at=JUL, billing_mode=Subscription.BillingMode.PREPAID)
    grant = _grant(setup, "Promo", "4", "g-p")
    rated_event(setup, "a", "3", at=datetime.now(UTC) - timedelta(minutes=5))  # real time: 3 from the grant
    assert CreditGrant.objects.get(pk=grant.pk).remaining == 1
    rated_event(setup, "b", "2", at=datetime.now(UTC) - timedelta(minutes=4))  # 1 from the grant, 1 paid (→ −1)
    wallet = Wallet.objects.get(customer=setup.customer)
    assert (wallet.balance, CreditGrant.objects.get(pk=grant.pk).status) == (Decimal(-1), "consumed")
    draws = CreditGrantDraw.objects.filter(grant=grant).order_by("id")
    assert [(d.amount, d.rated_event.raw_event.event_id) for d in draws] == [(Decimal(3), "a"), (Decimal(1), "b")]
