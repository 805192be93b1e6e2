"""The invoices API (tenant admin token): the seed's dispute question answered without database
access — an invoice, its lines, and for each usage line the rated events it sums, each linking
to the raw event with its original timestamp, dimensions and gateway metadata.

    GET /api/v1/invoices?customer=ID&subscription=ID&status=S&overdue=true   newest first, limit/offset
    GET /api/v1/invoices/{id}                            totals, settlement stages, lines
    GET /api/v1/invoices/{id}/lines/{line_id}/events     a usage line's rated events, by cursor
    POST /api/v1/invoices/{id}/void {reason}             void it and reissue: 201 the new invoice
    (finalize, mark-paid, mark-uncollectible, credit notes: invoice_actions.py; CSV: invoice_exports.py)

Contracts: another tenant's invoice or line is a 404 exactly like a missing id. Amounts are
decimal strings, never JSON numbers: invoice figures and rounded line amounts are shown with at
least the currency's minor digits ("5.00"), exact amounts (amount_unrounded, rated amounts) as
plain exact text ("0.003"). Lines other than usage and late_usage sum no rated events: their
`events` is null and their events route is a 404 `line_not_traceable`.

The views are here; their serializers are invoice_serializers.py, their response examples docs.py."""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.exceptions import ApiError
from aforo.money import decimal_text
from aforo.params import query_int
from catalog.api.serializers import request_tenant
from catalog.auth import IsTenantAdmin

from .. import trace
from ..invoices import lifecycle
from ..invoices.services import InvoiceTransitionRefused
from ..invoicing import InvoiceAlreadyVoid, invoice_void_and_reissue
from ..models import Invoice, InvoiceLine
from .docs import (
    ADMIN_ONLY,
    INVOICE_DETAIL_EXAMPLE,
    INVOICE_SUMMARY_EXAMPLE,
    LINE_EVENTS_EXAMPLE,
    UNAUTHENTICATED,
)
from .invoice_serializers import (
    InvoiceDetailSerializer,
    InvoiceSummarySerializer,
    InvoiceVoidInputSerializer,
    LineEventsPageSerializer,
    RatedEventTraceSerializer,
)


def _not_found(what: str, row_id: int) -> ApiError:
    return ApiError(code="not_found", message=f"No {what} {row_id} in this tenant.", status_code=404)


def _tenant_invoices(request):
    tenant = request_tenant(request)
    return Invoice.objects.filter(tenant=tenant) if tenant is not None else Invoice.objects.none()


def invoices_lifecycle_filter(request, invoices):
    """?status= (one of the lifecycle's) and ?overdue=true|false, each validated naming itself."""
    status = request.query_params.get("status")
    if status not in (None, ""):
        if status not in lifecycle.STATUSES:
            raise ApiError(code="validation_error", field="status",
                           message=f"status: one of {', '.join(lifecycle.STATUSES)}.")
        invoices = invoices.filter(status=status)
    overdue = request.query_params.get("overdue")
    if overdue not in (None, ""):
        if overdue not in ("true", "false"):
            raise ApiError(code="validation_error", field="overdue", message="overdue: true or false.")
        is_overdue = Q(status__in=sorted(lifecycle.OPEN), due_at__lt=timezone.now())
        invoices = invoices.filter(is_overdue) if overdue == "true" else invoices.exclude(is_overdue)
    return invoices


class InvoiceListView(ListAPIView):
    permission_classes = [IsTenantAdmin]
    serializer_class = InvoiceSummarySerializer

    def get_queryset(self):
        tenant = request_tenant(self.request)
        if tenant is None or getattr(self, "swagger_fake_view", False):
            return Invoice.objects.none()
        invoices = trace.invoices_for_tenant(
            tenant=tenant, customer_id=query_int(self.request, "customer"),
            subscription_id=query_int(self.request, "subscription"),
        )
        return invoices_lifecycle_filter(self.request, invoices)

    @extend_schema(
        operation_id="invoices_list",
        summary="List invoices, newest first",
        description="The tenant's invoices ordered by issued_at then id, newest first; limit/offset pagination. "
        "Figures are decimal strings in the invoice's currency.",
        tags=["invoices"],
        parameters=[
            OpenApiParameter("customer", OpenApiTypes.INT, description="Only this customer's invoices."),
            OpenApiParameter("subscription", OpenApiTypes.INT, description="Only this subscription's invoices (and the combined invoices of a period with a plan change it is a part of)."),
            OpenApiParameter("status", OpenApiTypes.STR, enum=list(lifecycle.STATUSES), description="Only this status."),
            OpenApiParameter("overdue", OpenApiTypes.BOOL, description="true: only the overdue (finalized or "
                             "uncollectible, past due_at); false: all but those."),
        ],
        responses={200: InvoiceSummarySerializer(many=True), 400: OpenApiResponse(description="validation_error: "
                   "customer / subscription is not an integer, status not a status, overdue not true/false"), 401: UNAUTHENTICATED, 403: ADMIN_ONLY},
        examples=[OpenApiExample("A page of invoices", value=[INVOICE_SUMMARY_EXAMPLE], response_only=True)],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class InvoiceDetailView(APIView):
    permission_classes = [IsTenantAdmin]

    @extend_schema(
        operation_id="invoices_retrieve",
        summary="An invoice with its lines and what each settlement stage did",
        description="Totals (the total is the sum of the rounded lines), the settlement run's stages, and the lines "
        "in order. usage and late_usage lines carry `events`: the URL of the rated events they sum (late_usage: "
        "events of an already-settled period, `period_start` naming it).",
        tags=["invoices"],
        responses={
            200: InvoiceDetailSerializer, 401: UNAUTHENTICATED, 403: ADMIN_ONLY,
            404: OpenApiResponse(description="not_found: no such invoice in the token's tenant"),
        },
        examples=[OpenApiExample("An invoice", value=INVOICE_DETAIL_EXAMPLE, response_only=True)],
    )
    def get(self, request, invoice_id: int):
        invoice = trace.invoice_with_lines(invoices=_tenant_invoices(request), invoice_id=invoice_id)
        if invoice is None:
            raise _not_found("invoice", invoice_id)
        return Response(InvoiceDetailSerializer(invoice, context={"request": request}).data)


class LineEventsPagination(CursorPagination):
    """By rated event id, ascending: a cursor stays cheap at any depth of a large line."""

    ordering = "id"
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000


class InvoiceLineEventsView(APIView):
    permission_classes = [IsTenantAdmin]

    @extend_schema(
        operation_id="invoices_line_events",
        summary="The rated events behind a usage line",
        description="The rated events a usage or late_usage line sums, by id, paginated by cursor (`limit` up to "
        "1000; follow `next`). Each shows its exact amount (the delta it added to the period's charge), units "
        "before and after, the tier breakdown, the rate plan version and config hash it was rated with, and a "
        "link to its raw event (original timestamp, dimensions, gateway metadata). The amounts of all of them "
        "sum exactly to `line_amount_unrounded`; the first page (no cursor) carries that sum as `sum_amount`. "
        "Other lines (base, commitment, cap, discount, tax) sum no rated events: 404 line_not_traceable.",
        tags=["invoices"],
        parameters=[
            OpenApiParameter("cursor", OpenApiTypes.STR, description="From `next` / `previous`."),
            OpenApiParameter("limit", OpenApiTypes.INT, description="Page size (default 100, at most 1000)."),
        ],
        responses={
            200: LineEventsPageSerializer, 401: UNAUTHENTICATED, 403: ADMIN_ONLY,
            404: OpenApiResponse(description="not_found: no such invoice or line in the token's tenant; "
                                 "line_not_traceable: the line is not a usage line"),
        },
        examples=[OpenApiExample("First page", value=LINE_EVENTS_EXAMPLE, response_only=True)],
    )
    def get(self, request, invoice_id: int, line_id: int):
        line = (
            InvoiceLine.objects.filter(invoice__in=_tenant_invoices(request), invoice_id=invoice_id, pk=line_id)
            .select_related("invoice")
            .first()
        )
        if line is None:
            raise _not_found(f"line {line_id} of invoice", invoice_id)
        if not trace.line_is_traceable(line):
            raise ApiError(
                code="line_not_traceable", status_code=404,
                message=f"Line {line.position} is a {line.kind} line: it sums no rated events (only usage and "
                "late_usage lines do).",
            )
        subscription_id = line.invoice.subscription_id
        events = trace.invoice_line_rated_events(line=line, subscription_id=subscription_id).select_related(
            "raw_event", "pricing_snapshot"
        )
        paginator = LineEventsPagination()
        page = paginator.paginate_queryset(events, request, view=self)
        body = {
            "next": paginator.get_next_link(),
            "previous": paginator.get_previous_link(),
            "line_amount_unrounded": decimal_text(line.amount_unrounded),
            "event_count": line.event_count,
        }
        if not request.query_params.get(paginator.cursor_query_param):
            total, _ = trace.invoice_line_rated_sum(line=line, subscription_id=subscription_id)
            body["sum_amount"] = decimal_text(total)
        body["results"] = RatedEventTraceSerializer(page, many=True, context={"request": request}).data
        return Response(body)


class InvoiceVoidView(APIView):
    permission_classes = [IsTenantAdmin]

    @extend_schema(
        operation_id="invoices_void",
        summary="Void an invoice and reissue it",
        description="A finalized invoice never changes: this marks it void (status, voided_at, void_reason — "
        "nothing else) and issues a new invoice with a new number, whose `replaces` is the voided one; the "
        "settlement run now points to the new invoice. The new invoice is recomputed over exactly the rated events "
        "the old one settled, with the subscription's terms as they are now (a corrected tax rate, discount, "
        "commitment, cap or allowance grant shows on it; the usage lines are the same). A prepaid or hybrid wallet "
        "takes or gives back only the difference. A finalized or uncollectible invoice's void issues a credit note "
        "for its total (`credit_note`; a draft's does not) and sends invoice.voided. Voiding a void invoice is a 409 "
        "`invoice_void` naming its replacement; a paid one a 409 `invoice_paid`.",
        tags=["invoices"],
        request=InvoiceVoidInputSerializer,
        responses={
            201: InvoiceDetailSerializer, 400: OpenApiResponse(description="validation_error: reason missing"),
            401: UNAUTHENTICATED, 403: ADMIN_ONLY,
            404: OpenApiResponse(description="not_found: no such invoice in the token's tenant"),
            409: OpenApiResponse(description="invoice_void: already void; `replaced_by` is its replacement's id. "
                                 "invoice_paid: a paid invoice is never voided"),
        },
    )
    def post(self, request, invoice_id: int):
        invoice = _tenant_invoices(request).filter(pk=invoice_id).first()
        if invoice is None:
            raise _not_found("invoice", invoice_id)
        data = InvoiceVoidInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            reissue = invoice_void_and_reissue(invoice=invoice, reason=data.validated_data["reason"])
        except InvoiceAlreadyVoid as already:
            replacement = already.replacement
            raise ApiError(
                code="invoice_void", status_code=409,
                message=f"Invoice {invoice.number} is void already"
                + (f": it was reissued as {replacement.number}." if replacement else "."),
                replaced_by=replacement.pk if replacement else None,
            ) from None
        except InvoiceTransitionRefused as refused:  # a paid invoice is never voided
            raise ApiError(code=refused.code, status_code=409, message=refused.message, status=refused.invoice.status) from None
        replacement = trace.invoice_with_lines(invoices=_tenant_invoices(request), invoice_id=reissue.replacement.pk)
        return Response(InvoiceDetailSerializer(replacement, context={"request": request}).data, status=201)
