"""The dashboard's charts and projections (insights.json, polled with usage.json) and a wallet's
full ledger page. Who sees whom is billing.views.dashboard_customer's rule, unchanged: a
customer login sees its own customer, staff pass ?customer=ID within their tenant."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from aforo.params import parse_id
from wallets.models import Wallet
from wallets.selectors import wallet_entries_page

from .insights import dashboard_insights
from .invoice_pdf import PdfUnavailable, invoice_pdf_filename, invoice_pdf_render
from .trace import invoice_with_lines
from .invoices.exports import invoice_csv_response
from .views import dashboard_customer, dashboard_invoices, dashboard_json


@dashboard_json
def insights_json(request: HttpRequest, customer) -> JsonResponse:
    return JsonResponse(dashboard_insights(customer=customer))


@never_cache
@login_required
def wallet_entries(request: HttpRequest, wallet_id: int):
    """Every ledger entry of one of the customer's wallets, newest first, ENTRIES_PER_PAGE at a
    time (?before=ID). A wallet not this login's to see is a 404, like one that does not exist."""
    customer = dashboard_customer(request)
    if customer is None:
        raise Http404("Pick a customer first.")
    wallet = Wallet.objects.filter(pk=wallet_id, customer_id=customer.pk).first()
    if wallet is None:
        raise Http404("No such wallet.")
    page = wallet_entries_page(wallet=wallet, before=parse_id(request.GET.get("before")))
    customer_query = request.GET.get("customer")
    return render(
        request,
        "dashboard/wallet_entries.html",
        {
            "customer": customer, "wallet": wallet, "entries": page["entries"], "next_before": page["next_before"],
            "is_first_page": not request.GET.get("before"),
            "customer_query": f"customer={parse_id(customer_query)}" if parse_id(customer_query) else "",
        },
    )


@never_cache
@login_required
def invoice_pdf(request: HttpRequest, invoice_id: int):
    """The invoice as a PDF, for whoever may open its page: the customer's own login, staff of
    its tenant (the operator admin links here). Anyone else gets the 404 of a missing invoice."""
    invoice = invoice_with_lines(invoices=dashboard_invoices(request), invoice_id=invoice_id)
    if invoice is None:
        raise Http404("No such invoice.")
    try:
        pdf = invoice_pdf_render(invoice=invoice)
    except PdfUnavailable as unavailable:
        return HttpResponse(str(unavailable), status=503, content_type="text/plain; charset=utf-8")
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{invoice_pdf_filename(invoice)}"'
    return response


def invoice_csv(request: HttpRequest, invoice_id: int, what: str):
    """An invoice's lines.csv or events.csv (billing.invoices.exports, streamed), for the
    invoices this login may see (billing.views.dashboard_invoices); any other is a 404."""
    invoice = dashboard_invoices(request).filter(pk=invoice_id).first()
    if invoice is None:
        raise Http404("No such invoice.")
    return invoice_csv_response(invoice, what=what)
