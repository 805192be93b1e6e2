"""Invoice documents in the API (tenant admin token):

    GET /api/v1/invoices/{id}.pdf      the invoice as a PDF (also /api/v1/invoices/{id}/pdf)

Contracts: another tenant's invoice is a 404 exactly like a missing id (the same JSON error as
every invoice route); errors are JSON whatever the Accept header says (a client asking for a PDF
still reads why it got none); 503 `pdf_unavailable` when the server cannot render PDFs (WeasyPrint's
system libraries missing) — never a 500. The document itself is billing.invoice_pdf's."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.views import APIView

from aforo.exceptions import ApiError
from catalog.api.serializers import request_tenant
from catalog.auth import IsTenantAdmin

from ..invoice_pdf import PdfUnavailable, invoice_pdf_filename, invoice_pdf_render
from ..models import Invoice
from ..trace import invoice_with_lines
from .docs import ADMIN_ONLY, UNAUTHENTICATED


class JsonErrorsWhateverAccept(BaseContentNegotiation):
    """The first renderer (JSON) for errors, whatever Accept says: the document is an
    HttpResponse of its own and needs no negotiation, and `Accept: application/pdf` must not
    turn a 404 into a 406."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def pdf_response(*, invoice: Invoice, disposition: str = "attachment") -> HttpResponse:
    """The invoice's PDF as a download; ApiError 503 when PDFs cannot be rendered here."""
    try:
        pdf = invoice_pdf_render(invoice=invoice)
    except PdfUnavailable as unavailable:
        raise ApiError(code="pdf_unavailable", message=str(unavailable), status_code=503) from None
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'{disposition}; filename="{invoice_pdf_filename(invoice)}"'
    response["Cache-Control"] = "private, no-store"
    return response


class InvoicePdfView(APIView):
    permission_classes = [IsTenantAdmin]
    content_negotiation_class = JsonErrorsWhateverAccept

    @extend_schema(
        operation_id="invoices_pdf",
        summary="The invoice as a PDF",
        description="The invoice document a finance team files: the seller's details (the tenant's legal name, "
        "address, country, tax id, email) and the buyer's (the customer's billing details), number, status, issue "
        "date, period (and due date when the invoice has one), every line with its metric's name and code, "
        "dimension, units, unit price where one per-unit price applies to the whole line, and amount with its "
        "currency; subtotal, discounts, tax, total, wallet applied and amount due. A void invoice is marked VOID, "
        "names its replacement and shows nothing due. Long invoices run over several pages, the header repeated. "
        "Also served at /api/v1/invoices/{id}/pdf.",
        tags=["invoices"],
        responses={
            (200, "application/pdf"): OpenApiTypes.BINARY, 401: UNAUTHENTICATED, 403: ADMIN_ONLY,
            404: OpenApiResponse(description="not_found: no such invoice in the token's tenant"),
            503: OpenApiResponse(description="pdf_unavailable: this server cannot render PDFs (system libraries "
                                 "missing)"),
        },
    )
    def get(self, request, invoice_id: int):
        tenant = request_tenant(request)
        invoices = Invoice.objects.filter(tenant=tenant) if tenant is not None else Invoice.objects.none()
        invoice = invoice_with_lines(invoices=invoices, invoice_id=invoice_id)
        if invoice is None:
            raise ApiError(code="not_found", message=f"No invoice {invoice_id} in this tenant.", status_code=404)
        return pdf_response(invoice=invoice)


@extend_schema(exclude=True)  # the same operation: documented once, under /api/v1/invoices/{id}.pdf
class InvoicePdfAliasView(InvoicePdfView):
    """GET /api/v1/invoices/{id}/pdf, for clients that cannot send a dot in a path segment."""
