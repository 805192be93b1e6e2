"""An invoice as CSV through the API (tenant admin token), streamed (billing.invoices.exports):

    GET /api/v1/invoices/{id}/lines.csv     every line: position, kind, description, metric code and name,
                                            dimension, units, exact amount, amount to the minor unit, currency
    GET /api/v1/invoices/{id}/events.csv    the rated events behind each usage line, in event-time order,
                                            with the client's event id and the raw event's id

Another tenant's invoice is a 404 like a missing id (a JSON error, as everywhere in the API)."""

from __future__ import annotations

import orjson
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.views import APIView

from aforo.exceptions import ApiError
from catalog.api.serializers import request_tenant
from catalog.auth import IsTenantAdmin

from ..invoices.exports import EVENT_COLUMNS, LINE_COLUMNS, invoice_csv_response
from ..models import Invoice
from .docs import ADMIN_ONLY, UNAUTHENTICATED


class CsvRenderer(BaseRenderer):
    """Lets a client ask for text/csv; the body itself is the view's streamed response. An error
    raised before it (404, 401) is still the API's JSON error body."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, (bytes, str)) else orjson.dumps(data)


class _InvoiceCsvView(APIView):
    permission_classes = [IsTenantAdmin]
    renderer_classes = [JSONRenderer, CsvRenderer]
    what = ""

    def get(self, request, invoice_id: int):
        tenant = request_tenant(request)
        invoice = Invoice.objects.filter(tenant=tenant, pk=invoice_id).first() if tenant is not None else None
        if invoice is None:
            raise ApiError(code="not_found", message=f"No invoice {invoice_id} in this tenant.", status_code=404)
        return invoice_csv_response(invoice, what=self.what)


_ERRORS = {
    401: UNAUTHENTICATED, 403: ADMIN_ONLY,
    404: OpenApiResponse(description="not_found: no such invoice in the token's tenant"),
}


class InvoiceLinesCsvView(_InvoiceCsvView):
    what = "lines"

    @extend_schema(
        operation_id="invoices_lines_csv",
        summary="The invoice's lines as CSV",
        description=f"Columns: {', '.join(LINE_COLUMNS)}. amount is to the currency's minor unit, amount_unrounded "
        "exact; streamed.",
        tags=["invoices"],
        responses={(200, "text/csv"): OpenApiResponse(response=OpenApiTypes.STR, description="CSV"), **_ERRORS},
    )
    def get(self, request, invoice_id: int):
        return super().get(request, invoice_id)


class InvoiceEventsCsvView(_InvoiceCsvView):
    what = "events"

    @extend_schema(
        operation_id="invoices_events_csv",
        summary="The rated events behind the invoice's usage lines, as CSV",
        description=f"Columns: {', '.join(EVENT_COLUMNS)}. For each usage and late_usage line in order, its rated "
        "events in event-time order; their amounts sum exactly to the line's amount_unrounded. Streamed in chunks: "
        "any size of invoice.",
        tags=["invoices"],
        responses={(200, "text/csv"): OpenApiResponse(response=OpenApiTypes.STR, description="CSV"), **_ERRORS},
    )
    def get(self, request, invoice_id: int):
        return super().get(request, invoice_id)
