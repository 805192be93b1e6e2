"""Void and reissue on real PostgreSQL: the voided invoice keeps everything but its status, the
replacement (a new number, recomputed over the same rated events with the terms as they are
now) references it and takes its settlement run, the wallet moves only by the difference, the
ledger stays clean, and voiding twice is a 409 naming the replacement."""

from decimal import Decimal

import pytest
from django.utils import timezone

from billing.invoicing import InvoiceAlreadyVoid, invoice_void_and_reissue
from billing.models import AllowanceGrant, Discount, Invoice, SettlementRun, TaxRate
from billing.settlement import settlement_run
from billing.verification import ledger_verify
from catalog.models import Subscription
from tests.billing.test_settlement import lines, rate
from tests.factories import priced_setup, tenant_token
from wallets.models import Wallet, WalletEntry
from wallets.services import wallet_create, wallet_top_up, wallets_check

FIGURES = ("number", "customer_id", "subscription_id", "currency", "period_start", "period_end", "subtotal",
           "discount_total", "tax_total", "total", "wallet_applied", "amount_due", "issued_at", "replaces_id")
LINE = ("position", "kind", "description", "metric_id", "dimension_key", "period_start", "units", "event_count",
        "amount_unrounded", "amount", "rated_from_id", "rated_to_id")


@pytest.fixture
def settled():
    setup = priced_setup(rate="0.333")
    TaxRate.objects.create(tenant=setup.tenant, customer=setup.customer, name="VAT", percent=Decimal(20))
    rate(setup, "a", "10")
    rate(setup, "b", "5")
    setup.invoice = settlement_run(subscription_id=setup.subscription.pk, at=timezone.now()).invoice
    return setup


def snapshot(invoice):
    invoice = Invoice.objects.get(pk=invoice.pk)
    return {name: getattr(invoice, name) for name in FIGURES}, list(invoice.lines.values_list(*LINE))


@pytest.mark.django_db
def test_void_and_reissue_through_the_api(settled, api_client):
    before_figures, before_lines = snapshot(settled.invoice)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(settled.tenant)}")
    url = f"/api/v1/invoices/{settled.invoice.pk}/void"
    response = api_client.post(url, {"reason": "wrong billing address"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["replaces"] == settled.invoice.pk and body["number"] != settled.invoice.number
    assert body["status"] == "finalized" and body["total"] == "6.00"  # 15 × 0.333 = 4.995 → 5.00, VAT 1.00

    old = Invoice.objects.get(pk=settled.invoice.pk)
    assert (old.status, old.void_reason) == ("void", "wrong billing address") and old.voided_at is not None
    assert snapshot(old) == (before_figures, before_lines)  # nothing else changed
    new = Invoice.objects.get(pk=body["id"])
    _, new_lines = snapshot(new)
    assert [line[1:] for line in new_lines] == [line[1:] for line in before_lines]
    assert (new.total, new.subtotal, new.tax_total) == (old.total, old.subtotal, old.tax_total)
    assert SettlementRun.objects.get(subscription=settled.subscription).invoice_id == new.pk
    assert not WalletEntry.objects.exists()
    assert ledger_verify() == []

    detail = api_client.get(f"/api/v1/invoices/{old.pk}").json()
    assert detail["replaced_by"] == new.pk and detail["void_reason"] == "wrong billing address"

    again = api_client.post(url, {"reason": "again"}, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invoice_void" and again.json()["error"]["replaced_by"] == new.pk
    assert Invoice.objects.filter(subscription=settled.subscription).count() == 2


@pytest.mark.django_db
def test_void_needs_a_reason_and_the_tenants_own_invoice(settled, api_client):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(settled.tenant)}")
    assert api_client.post(f"/api/v1/invoices/{settled.invoice.pk}/void", {}, format="json").status_code == 400
    other = priced_setup(rate="1")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(other.tenant)}")
    response = api_client.post(f"/api/v1/invoices/{settled.invoice.pk}/void", {"reason": "x"}, format="json")
    assert response.status_code == 404
    assert Invoice.objects.get(pk=settled.invoice.pk).status == "finalized"


@pytest.mark.django_db
def test_the_service_refuses_a_void_invoice_and_names_its_replacement(settled):
    reissue = invoice_void_and_reissue(invoice=settled.invoice, reason="fix")
    with pytest.raises(InvoiceAlreadyVoid) as raised:
        invoice_void_and_reissue(invoice=settled.invoice, reason="fix")
    assert raised.value.replacement.pk == reissue.replacement.pk
    # A reissue can itself be voided and reissued: a chain, each link referencing the one before.
    third = invoice_void_and_reissue(invoice=reissue.replacement, reason="again").replacement
    assert third.replaces_id == reissue.replacement.pk and ledger_verify() == []


@pytest.mark.django_db
def test_verify_ledger_ignores_void_invoices_lines_for_coverage(settled):
    Invoice.objects.filter(pk=settled.invoice.pk).update(status="void")  # void with no replacement
    problems = ledger_verify()
    assert problems and all("on no usage line" in p for p in problems)


@pytest.mark.django_db
def test_admin_void_and_reissue_asks_for_confirmation_and_a_reason(settled, client, django_user_model):
    from django.contrib.admin.models import LogEntry

    admin_user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin_user)
    selection = {"action": "void_and_reissue", "_selected_action": [settled.invoice.pk]}
    page = client.post("/admin/billing/invoice/", selection)  # the action: the confirmation page only
    html = page.content.decode()
    assert page.status_code == 200 and page.templates[0].name == "admin/confirm_destructive.html"
    assert [settled.invoice.number, settled.customer.name] == page.context["subject_rows"][0][:2]
    assert "6.00 USD" in html and 'name="reason"' in html and "replacement is issued with a new number" in html
    no_reason = client.post("/admin/billing/invoice/", {**selection, "_confirm": "1", "reason": ""})
    assert no_reason.status_code == 200 and no_reason.context["form"].errors["reason"]
    assert Invoice.objects.get(pk=settled.invoice.pk).status == "finalized" and Invoice.objects.count() == 1

    done = client.post("/admin/billing/invoice/", {**selection, "_confirm": "1", "reason": "wrong VAT rate"}, follow=True)
    old = Invoice.objects.get(pk=settled.invoice.pk)
    new = Invoice.objects.get(replaces=old)
    assert (old.status, old.void_reason, new.status) == ("void", "wrong VAT rate", "finalized")
    assert any(f"reissued as {new.number}" in str(m) for m in done.context["messages"])
    assert LogEntry.objects.filter(object_id=str(old.pk), change_message__contains="wrong VAT rate").exists()
    again = client.post("/admin/billing/invoice/", {**selection, "_confirm": "1", "reason": "twice"}, follow=True)
    assert any("void already: skipped" in str(m) for m in again.context["messages"])
    assert Invoice.objects.count() == 2 and Invoice.objects.get(pk=old.pk).void_reason == "wrong VAT rate"


@pytest.mark.django_db
def test_reissue_recomputes_with_the_corrected_tax_and_a_new_discount(settled):
    before_lines = list(settled.invoice.lines.filter(kind="usage").values_list("amount_unrounded", "rated_from_id", "rated_to_id"))
    TaxRate.objects.filter(customer=settled.customer).update(percent=Decimal(10))  # the 20% was wrong
    Discount.objects.create(tenant=settled.tenant, subscription=settled.subscription, kind="fixed", value=Decimal(1))
    rate(settled, "c", "100")  # rated after the settlement: not the reissue's business (the next period's run)
    new = invoice_void_and_reissue(invoice=settled.invoice, reason="tax rate").replacement
    # same usage (15 x 0.333 = 4.995 -> 5.00), a 1.00 discount, 10% of 4.00
    assert lines(new) == [("usage", Decimal("5.00")), ("discount", Decimal("-1.00")), ("tax", Decimal("0.40"))]
    assert (new.subtotal, new.discount_total, new.tax_total, new.total) == (Decimal(5), Decimal(1), Decimal("0.40"), Decimal("4.40"))
    assert list(new.lines.filter(kind="usage").values_list("amount_unrounded", "rated_from_id", "rated_to_id")) == before_lines
    old = Invoice.objects.get(pk=settled.invoice.pk)
    assert (old.total, old.tax_total) == (Decimal("6.00"), Decimal("1.00"))  # the voided document is as issued
    run = SettlementRun.objects.get(subscription=settled.subscription)
    assert run.invoice_id == new.pk and run.stages[-1]["stage"] == "reissue" and run.stages[-1]["voided"] == old.number
    assert ledger_verify() == []


@pytest.mark.django_db
def test_reissue_of_a_prepaid_invoice_moves_the_wallet_by_the_difference_once():
    setup = priced_setup(config={"model": "flat", "amount": "10"}, billing_mode=Subscription.BillingMode.PREPAID)
    wallet = wallet_create(customer=setup.customer, currency="USD")
    wallet_top_up(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal(50), idempotency_key="t")
    rate(setup, "a", "1")
    invoice = settlement_run(subscription_id=setup.subscription.pk, at=timezone.now()).invoice
    assert Wallet.objects.get(pk=wallet.pk).balance == Decimal(40)  # settlement took the 10.00 base charge
    Discount.objects.create(tenant=setup.tenant, subscription=setup.subscription, kind="percent", value=Decimal(25))
    second = invoice_void_and_reissue(invoice=invoice, reason="promised 25% off").replacement
    assert (second.total, second.wallet_applied, second.amount_due) == (Decimal("7.50"), Decimal("7.50"), Decimal(0))
    assert Wallet.objects.get(pk=wallet.pk).balance == Decimal("42.50")  # 2.50 given back
    Discount.objects.all().delete()
    third = invoice_void_and_reissue(invoice=second, reason="the discount was for another customer").replacement
    assert third.total == Decimal(10) and Wallet.objects.get(pk=wallet.pk).balance == Decimal(40)  # 2.50 taken again
    keys = list(WalletEntry.objects.filter(wallet=wallet, kind="debit").order_by("id").values_list("amount", flat=True))
    assert keys == [Decimal(-10), Decimal("2.5"), Decimal("-2.5")]
    assert wallets_check() == [] and ledger_verify() == []


@pytest.mark.django_db
def test_reissue_of_an_interim_invoice_reads_only_what_it_settled():
    setup = priced_setup(rate="1")
    Subscription.objects.filter(pk=setup.subscription.pk).update(invoice_threshold=Decimal(5))
    rate(setup, "a", "6")
    interim = settlement_run(subscription_id=setup.subscription.pk, at=timezone.now(), kind="interim")
    rate(setup, "b", "2")
    final = settlement_run(subscription_id=setup.subscription.pk, at=timezone.now())
    assert lines(final.invoice) == [("usage", Decimal(2))]
    new = invoice_void_and_reissue(invoice=interim.invoice, reason="fix").replacement
    assert lines(new) == [("usage", Decimal(6))]  # not event b, which the final invoice billed
    assert ledger_verify() == []


@pytest.mark.django_db
def test_a_grant_made_after_settlement_shows_on_the_reissue():
    setup = priced_setup(rate="2")
    rate(setup, "a", "10")
    invoice = settlement_run(subscription_id=setup.subscription.pk, at=timezone.now()).invoice
    AllowanceGrant.objects.create(
        tenant=setup.tenant, subscription=setup.subscription, metric=setup.metric, units=Decimal(3), period_start=invoice.period_start
    )
    new = invoice_void_and_reissue(invoice=invoice, reason="goodwill units").replacement
    assert lines(new) == [("usage", Decimal(20)), ("allowance", Decimal(-6))] and new.total == Decimal(14)
