"""The invoice lifecycle in the operator admin (mark paid / uncollectible ask on a form page;
nothing happens before it is submitted; credit notes read-only) and on the customer dashboard
(payment status, 0 due once void, drafts not shown)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.invoicing import invoice_void_and_reissue
from billing.models import CreditNote, Invoice
from catalog.models import CustomerUser, TenantMember
from tests.billing.test_invoice_lifecycle import settle, terms
from tests.billing.test_settlement import rate
from tests.factories import priced_setup


@pytest.fixture
def setup():
    setup = priced_setup(rate="0.5")
    rate(setup, "a", "10")
    setup.invoice = settle(setup)
    return setup


@pytest.fixture
def root(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.mark.django_db
def test_mark_paid_asks_for_the_reference_before_acting(setup, root):
    changelist = root.post("/admin/billing/invoice/", {"action": "mark_paid", "_selected_action": [setup.invoice.pk]})
    assert changelist.status_code == 302 and "/admin/billing/invoice/mark-paid/" in changelist["Location"]
    assert Invoice.objects.get(pk=setup.invoice.pk).status == "finalized"  # the action alone did nothing
    form = root.get(changelist["Location"])
    assert form.status_code == 200 and setup.invoice.number in form.content.decode()
    assert 'name="reference"' in form.content.decode()

    url = "/admin/billing/invoice/mark-paid/"
    blank = root.post(url, {"ids": str(setup.invoice.pk), "reference": ""})
    assert blank.status_code == 200 and "This field is required" in blank.content.decode()
    future = (timezone.now() + timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
    ahead = root.post(url, {"ids": str(setup.invoice.pk), "reference": "TX-1", "paid_at": future})
    assert ahead.status_code == 200 and "future" in ahead.content.decode()
    assert Invoice.objects.get(pk=setup.invoice.pk).status == "finalized"

    done = root.post(url, {"ids": str(setup.invoice.pk), "reference": "TX-1"})
    assert done.status_code == 302
    paid = Invoice.objects.get(pk=setup.invoice.pk)
    assert (paid.status, paid.payment_reference) == ("paid", "TX-1")
    page = root.get(f"/admin/billing/invoice/{paid.pk}/change/").content.decode()
    assert f"paid on {paid.paid_at:%Y-%m-%d} (TX-1)" in page and f"{setup.metric.name}" in page
    assert f"5 {paid.currency}" in page  # amounts with their currency


@pytest.mark.django_db
def test_mark_uncollectible_asks_for_the_reason(setup, root):
    url = "/admin/billing/invoice/mark-uncollectible/"
    assert 'name="reason"' in root.get(f"{url}?ids={setup.invoice.pk}").content.decode()
    assert root.post(url, {"ids": str(setup.invoice.pk), "reason": ""}).status_code == 200
    assert Invoice.objects.get(pk=setup.invoice.pk).status == "finalized"
    assert root.post(url, {"ids": str(setup.invoice.pk), "reason": "no answer"}).status_code == 302
    assert Invoice.objects.get(pk=setup.invoice.pk).uncollectible_reason == "no answer"


@pytest.mark.django_db
def test_an_operator_acts_only_on_their_tenants_invoices(setup, client, django_user_model):
    other = priced_setup(rate="1")
    operator = django_user_model.objects.create_user("op", password="pw", is_staff=True, is_superuser=False)
    TenantMember.objects.create(user=operator, tenant=other.tenant)
    from django.contrib.auth.models import Permission

    operator.user_permissions.add(*Permission.objects.filter(content_type__app_label="billing", codename__in=[
        "view_invoice", "change_invoice"]))
    client.force_login(operator)
    response = client.post("/admin/billing/invoice/mark-paid/", {"ids": str(setup.invoice.pk), "reference": "TX"})
    assert response.status_code == 404
    assert client.get(f"/admin/billing/invoice/{setup.invoice.pk}/lines.csv").status_code == 404
    assert Invoice.objects.get(pk=setup.invoice.pk).status == "finalized"


@pytest.mark.django_db
def test_credit_notes_are_read_only_in_the_admin(setup, root):
    note = invoice_void_and_reissue(invoice=setup.invoice, reason="typo").credit_note
    listing = root.get("/admin/billing/creditnote/").content.decode()
    assert note.number in listing and setup.invoice.number in listing
    assert root.get("/admin/billing/creditnote/add/").status_code == 403
    detail = root.get(f"/admin/billing/creditnote/{note.pk}/change/")
    assert detail.status_code == 200 and 'name="reason"' not in detail.content.decode()
    page = root.get(f"/admin/billing/invoice/{setup.invoice.pk}/change/").content.decode()
    assert note.number in page
    assert CreditNote.objects.count() == 1


@pytest.mark.django_db
def test_the_dashboard_shows_payment_status_and_zero_due_once_void(setup, client, django_user_model):
    login = django_user_model.objects.create_user("buyer", password="pw")
    CustomerUser.objects.create(user=login, customer=setup.customer)
    client.force_login(login)
    due_on = f"Due on {setup.invoice.due_at:%Y-%m-%d}"
    assert due_on in client.get("/dashboard/").content.decode()
    reissue = invoice_void_and_reissue(invoice=setup.invoice, reason="typo")
    Invoice.objects.filter(pk=reissue.replacement.pk).update(due_at=timezone.now() - timedelta(days=1))
    page = client.get("/dashboard/").content.decode()
    assert "Void" in page and "Overdue" in page
    void_page = client.get(f"/dashboard/invoices/{setup.invoice.pk}/").content.decode()
    assert "0.00" in void_page and "cancelled by its credit note" in void_page
    from billing.invoices.services import invoice_mark_paid

    invoice_mark_paid(invoice_id=reissue.replacement.pk, reference="TX-5")
    assert f"Paid on {timezone.now():%Y-%m-%d}" in client.get("/dashboard/").content.decode()


@pytest.mark.django_db
def test_the_dashboard_does_not_show_drafts(client, django_user_model):
    setup = priced_setup(rate="1")
    terms(setup, invoice_grace_hours=10)
    rate(setup, "a", "1")
    draft = settle(setup)
    login = django_user_model.objects.create_user("buyer", password="pw")
    CustomerUser.objects.create(user=login, customer=setup.customer)
    client.force_login(login)
    assert draft.number not in client.get("/dashboard/").content.decode()
    assert client.get(f"/dashboard/invoices/{draft.pk}/").status_code == 404
    assert client.get(f"/dashboard/invoices/{draft.pk}/lines.csv").status_code == 404


@pytest.mark.django_db
def test_net_terms_in_the_subscription_admin(setup, root):
    page = root.get(f"/admin/catalog/subscription/{setup.subscription.pk}/change/").content.decode()
    assert 'name="net_terms_days"' in page and 'name="invoice_grace_hours"' in page


@pytest.mark.django_db
def test_the_admin_void_action_refuses_a_paid_invoice_with_a_message(setup, root):
    from billing.invoices.services import invoice_mark_paid

    invoice_mark_paid(invoice_id=setup.invoice.pk, reference="TX-1")
    selection = {"action": "void_and_reissue", "_selected_action": [setup.invoice.pk]}
    asked = root.post("/admin/billing/invoice/", selection)  # the confirmation page says it will be refused
    assert asked.status_code == 200 and "paid: will be refused" in asked.content.decode()
    response = root.post("/admin/billing/invoice/", {**selection, "_confirm": "1", "reason": "try"}, follow=True)
    assert response.status_code == 200 and "invoice_paid" in response.content.decode()
    assert Invoice.objects.get(pk=setup.invoice.pk).status == "paid" and not CreditNote.objects.exists()
