"""The invoice PDF (billing.invoice_pdf): it opens, carries the seller, the buyer, every line's
metric name and amount with its currency and the totals; page 1 renders to a non-blank A4
image; a long invoice runs over pages with the header repeated; a void invoice says VOID and
names its replacement; another tenant's invoice is a 404, and a customer downloads its own
invoices only (the dashboard, and the admin's link)."""

from __future__ import annotations

import sys
from datetime import timedelta
from decimal import Decimal

import pypdfium2
import pytest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from billing.invoice_pdf import invoice_document_context, price_for_dimension, unit_price
from billing.invoicing import invoice_void_and_reissue
from billing.models import Discount, Invoice, InvoiceLine, TaxRate
from catalog.models import CustomerUser
from tests.billing.test_invoices_api import rate, settle
from tests.factories import MetricFactory, priced_setup, tenant_token
from tests.test_admin import change_url, operator

pytestmark = pytest.mark.django_db

A4_POINTS = (595.28, 841.89)  # 210 × 297 mm at 72 points per inch


def pdf_pages_text(pdf: bytes) -> list[str]:
    document = pypdfium2.PdfDocument(pdf)
    try:
        return [" ".join(page.get_textpage().get_text_range().split()) for page in document]
    finally:
        document.close()


@pytest.fixture
def invoiced(django_user_model):
    """A postpaid customer with seller and buyer details, 15 units at 0.5 USD in two lines (two
    metrics), a 10% discount and 20% VAT, settled; and its customer login."""
    setup = priced_setup(rate="0.5", metric_code="api_calls")
    tenant = setup.tenant
    tenant.legal_name, tenant.country, tenant.tax_id = "Aforo Demo GmbH", "DE", "DE123456789"
    tenant.address, tenant.billing_email = "Torstraße 1\n10119 Berlin", "billing@aforo.example"
    tenant.save()
    customer = setup.customer
    customer.billing_name, customer.country, customer.tax_id = "Acme SAS", "FR", "FR40303265045"
    customer.billing_address, customer.billing_email = "12 rue de la Paix\n75002 Paris", "ap@acme.example"
    customer.save()
    setup.metric.name = "API calls"
    setup.metric.save()
    TaxRate.objects.create(tenant=tenant, customer=customer, name="VAT", percent=Decimal(20))
    Discount.objects.create(tenant=tenant, subscription=setup.subscription, kind="percent", value=Decimal(10))
    for n in range(5):
        rate(setup, f"evt-{n}", str(n + 1))
    setup.invoice = settle(setup)
    setup.login = django_user_model.objects.create_user("acme-user", password="pw")
    CustomerUser.objects.create(user=setup.login, customer=customer)
    return setup


def _api_pdf(api_client, setup, invoice_id: int, suffix: str = ".pdf"):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant)}")
    return api_client.get(f"/api/v1/invoices/{invoice_id}{suffix}")


def test_the_pdf_opens_and_carries_seller_buyer_lines_and_totals(api_client, invoiced):
    invoice = invoiced.invoice
    response = _api_pdf(api_client, invoiced, invoice.pk)
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="invoice-{invoice.number}.pdf"'
    pages = pdf_pages_text(response.content)
    assert len(pages) == 1
    text = pages[0]
    assert f"Invoice {invoice.number}" in text and "Finalized" in text
    for seller in ("Aforo Demo GmbH", "Torstraße 1", "10119 Berlin", "Germany (DE)", "DE123456789", "billing@aforo.example"):
        assert seller in text
    for buyer in ("Acme SAS", "12 rue de la Paix", "France (FR)", "FR40303265045", "ap@acme.example"):
        assert buyer in text
    assert "API calls (api_calls)" in text  # the metric's name, and its code
    assert "15 0.5 USD 7.50 USD" in text  # units, the exact unit price, the line's amount with its currency
    lines = {line.kind: line for line in invoice.lines.all()}
    assert lines["discount"].amount == Decimal("-0.75") and lines["tax"].amount == Decimal("1.35")
    assert "-0.75 USD" in text and "1.35 USD" in text
    for label, figure in (("Subtotal", "7.50"), ("Discounts", "-0.75"), ("Tax", "1.35"), ("Total", "8.10"),
                          ("Paid from wallet", "0.00"), ("Amount due", "8.10")):
        assert f"{label} {figure} USD" in text
    assert "Issue date" in text and "Billing period" in text


def test_page_one_renders_to_a_non_blank_a4_image(api_client, invoiced):
    pdf = _api_pdf(api_client, invoiced, invoiced.invoice.pk).content
    document = pypdfium2.PdfDocument(pdf)
    width, height = document[0].get_size()
    assert abs(width - A4_POINTS[0]) < 0.5 and abs(height - A4_POINTS[1]) < 0.5
    image = document[0].render(scale=1).to_pil().convert("L")
    document.close()
    assert image.size == (596, 842)  # whole pixels at 72 dpi
    histogram = image.histogram()  # 256 bins of grey, 0 black
    ink = sum(histogram[:128]) / sum(histogram)
    assert 0.005 < ink < 0.2, ink  # text on a white page: neither blank nor a block of colour
    top_left = image.crop((30, 60, 300, 200))  # the title and the seller block
    assert top_left.getextrema()[0] < 64


def test_a_long_invoice_runs_over_pages_with_the_header_repeated(api_client, invoiced):
    invoice = invoiced.invoice
    metrics = [MetricFactory(tenant=invoiced.tenant, product=invoiced.metric.product, name=f"Tool call {n}") for n in range(3)]
    InvoiceLine.objects.bulk_create([
        InvoiceLine(
            invoice=invoice, position=100 + n, kind=InvoiceLine.Kind.USAGE, description=f"region r{n}",
            metric=metrics[n % 3], dimension_key=f"region=r{n}", units=Decimal(n + 1),
            amount_unrounded=Decimal(n + 1) / 100, amount=Decimal(n + 1) / 100,
        )
        for n in range(300)
    ])
    pdf = _api_pdf(api_client, invoiced, invoice.pk).content
    pages = pdf_pages_text(pdf)
    assert len(pages) >= 5
    for number, text in enumerate(pages, start=1):
        assert f"Aforo Demo GmbH · Invoice {invoice.number} · Acme SAS" in text  # the running header
        assert f"Page {number} of {len(pages)}" in text
        assert "# Item Dimension Units Unit price Amount" in text  # the lines' header, on every page
    everything = " ".join(pages)
    for n in (0, 149, 299):
        assert f"Tool call {n % 3}" in everything and f"region=r{n}" in everything
    assert "3.00 USD" in everything  # the 300th line: 300 units, 3.00 USD
    assert "Amount due" in pages[-1] and "Amount due" not in pages[0]


def test_a_void_invoice_says_void_names_its_replacement_and_shows_nothing_due(api_client, invoiced):
    old = invoiced.invoice
    replacement = invoice_void_and_reissue(invoice=old, reason="Wrong VAT rate").replacement
    pdf = _api_pdf(api_client, invoiced, old.pk).content
    text = pdf_pages_text(pdf)[0]
    assert "VOID" in text and f"replaced by invoice {replacement.number}" in text and "Wrong VAT rate" in text
    assert "Amount due (void) 0.00 USD" in text and "Total 8.10 USD" in text  # the figures as issued
    reissued = pdf_pages_text(_api_pdf(api_client, invoiced, replacement.pk).content)[0]
    assert "VOID" not in reissued and f"Replaces invoice {old.number} (void)" in reissued


def test_another_tenants_invoice_is_a_404_whatever_the_accept_header(api_client, invoiced):
    other = priced_setup(rate="1")
    rate(other, "other-0", "2")
    foreign = settle(other)
    response = _api_pdf(api_client, invoiced, foreign.pk)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    asking_for_pdf = api_client.get(f"/api/v1/invoices/{foreign.pk}.pdf", HTTP_ACCEPT="application/pdf")
    assert asking_for_pdf.status_code == 404 and asking_for_pdf.json()["error"]["code"] == "not_found"
    assert _api_pdf(api_client, invoiced, 10**12).status_code == 404
    api_client.credentials()
    assert api_client.get(f"/api/v1/invoices/{invoiced.invoice.pk}.pdf").status_code == 401


def test_the_pdf_route_has_a_path_alias(api_client, invoiced):
    response = _api_pdf(api_client, invoiced, invoiced.invoice.pk, suffix="/pdf")
    assert response.status_code == 200 and response.content.startswith(b"%PDF-")


def test_the_customer_downloads_its_own_invoice_from_the_dashboard_and_no_other(client, invoiced, django_user_model):
    invoice = invoiced.invoice
    pdf_url = reverse("dashboard-invoice-pdf", args=[invoice.pk])
    client.force_login(invoiced.login)
    page = client.get(reverse("dashboard-invoice", args=[invoice.pk])).content.decode()
    assert f'href="{pdf_url}"' in page and "Download PDF" in page
    response = client.get(pdf_url)
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert "Acme SAS" in pdf_pages_text(response.content)[0]
    neighbour = priced_setup(tenant=invoiced.tenant, rate="1")
    rate(neighbour, "neighbour-0", "2")
    neighbour_invoice = settle(neighbour)
    assert client.get(reverse("dashboard-invoice-pdf", args=[neighbour_invoice.pk])).status_code == 404
    other_login = django_user_model.objects.create_user("neighbour-user", password="pw")
    CustomerUser.objects.create(user=other_login, customer=neighbour.customer)
    client.force_login(other_login)
    assert client.get(pdf_url).status_code == 404
    client.logout()
    assert client.get(pdf_url).status_code == 302  # to the login page


def test_the_admin_invoice_page_links_to_its_pdf(admin_client, invoiced):
    invoice = invoiced.invoice
    page = admin_client.get(change_url(invoice)).content.decode()
    pdf_url = reverse("dashboard-invoice-pdf", args=[invoice.pk])
    assert f'href="{pdf_url}"' in page and "Download PDF" in page
    response = admin_client.get(pdf_url)
    assert response.status_code == 200 and response.content.startswith(b"%PDF-")


def test_a_tenant_operator_downloads_its_tenants_invoices_only(client, invoiced):
    other = priced_setup(rate="1")
    rate(other, "other-0", "2")
    foreign = settle(other)
    client.force_login(operator(invoiced.tenant))
    assert "Download PDF" in client.get(change_url(invoiced.invoice)).content.decode()
    assert client.get(reverse("dashboard-invoice-pdf", args=[invoiced.invoice.pk])).status_code == 200
    assert client.get(reverse("dashboard-invoice-pdf", args=[foreign.pk])).status_code == 404


def test_a_due_date_is_shown_when_the_invoice_has_one(invoiced):
    invoice = Invoice.objects.get(pk=invoiced.invoice.pk)
    invoice.due_at = None  # a draft has none yet
    html = render_to_string("invoices/invoice_pdf.html", invoice_document_context(invoice=invoice))
    assert "Due date" not in html
    invoice.due_at = timezone.now() + timedelta(days=30)
    html = render_to_string("invoices/invoice_pdf.html", invoice_document_context(invoice=invoice))
    assert f"Due date</th><td>{invoice.due_at:%Y-%m-%d}" in html


def test_amounts_follow_the_currencys_minor_unit():
    from billing.invoice_pdf import money_text

    assert money_text(Decimal("1234.5"), "USD") == "1,234.50 USD"
    assert money_text(Decimal("1500"), "JPY") == "1,500 JPY"
    assert money_text(Decimal("1.2345"), "KWD") == "1.235 KWD"


def _line(units: str, amount: str, key: str = "") -> InvoiceLine:
    return InvoiceLine(kind="usage", units=Decimal(units), amount_unrounded=Decimal(amount), dimension_key=key)


def test_the_unit_price_is_shown_only_when_one_per_unit_price_made_the_whole_line():
    per_unit = {"model": "per_unit", "rate": "0.003", "included_free": "0"}
    assert unit_price(line=_line("1000", "3"), config=per_unit) == Decimal("0.003")
    assert unit_price(line=_line("1000", "2.7"), config=per_unit) is None  # free units, or a second price
    assert unit_price(line=_line("0", "0"), config=per_unit) is None
    graduated = {"model": "graduated", "tiers": [{"up_to": None, "unit_amount": "1", "flat_amount": "0"}]}
    assert unit_price(line=_line("2", "2"), config=graduated) is None  # tiers: no single unit price
    overridden = {**per_unit, "overrides": [{"match": {"region": ["eu"]}, "price": {"model": "per_unit", "rate": "0.01",
                                                                                      "included_free": "0"}}]}
    assert price_for_dimension(overridden, "region=eu")["rate"] == "0.01"
    assert unit_price(line=_line("10", "0.1", key="region=eu"), config=overridden) == Decimal("0.01")
    assert unit_price(line=_line("10", "0.03"), config=overridden) == Decimal("0.003")
    assert unit_price(line=_line("10", "0.1", key="region=us"), config=overridden) is None
    assert unit_price(line=_line("10", "0.1"), config={"model": "per_unit"}) is None  # an unreadable snapshot


def test_without_weasyprint_the_pdf_route_is_a_503_not_a_500(api_client, invoiced, monkeypatch):
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # what `import weasyprint` meets without it (or Pango)
    response = _api_pdf(api_client, invoiced, invoiced.invoice.pk)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "pdf_unavailable" and "libpango-1.0-0" in error["message"]


def test_a_long_invoice_costs_the_same_few_queries(api_client, invoiced, django_assert_max_num_queries):
    invoice = invoiced.invoice
    InvoiceLine.objects.bulk_create([
        InvoiceLine(invoice=invoice, position=100 + n, kind=InvoiceLine.Kind.USAGE, description=f"line {n}",
                    metric=invoiced.metric, dimension_key=f"region=r{n}", units=Decimal(1), rated_from_id=0,
                    rated_to_id=invoice.lines.get(kind="usage").rated_to_id, period_start=invoice.period_start,
                    amount_unrounded=Decimal("0.5"), amount=Decimal("0.5"))
        for n in range(50)
    ])
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(invoiced.tenant)}")
    with django_assert_max_num_queries(12):
        assert api_client.get(f"/api/v1/invoices/{invoice.pk}.pdf").status_code == 200
