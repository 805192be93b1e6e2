"""The invoices API (tenant admin token): the seed's dispute question answered without database
access — an invoice, its lines, and for each usage line the rated events it sums, each linking
to the raw event with its original timestamp, dimensions and gateway metadata.

    GET /api/v1/invoices?customer=ID&subscription=ID     newest first, limit/offset
    GET /api/v1/invoices/{id}                            totals, settlement stages, lines
    GET /api/v1/invoices/{id}/lines/{line_id}/events     a usage line's rated events, by cursor
    POST /api/v1/invoices/{id}/void {reason}             void it and reissue: 201 the new invoice

Contracts: another tenant's invoice or line is a 404 exactly like a missing id. Amounts are
decimal strings, never JSON numbers: invoice figures and rounded line amounts are shown with at
least the currency's minor digits ("5.00"), exact amounts (amount_unrounded, rated amounts) as
plain exact text ("0.003"). Lines other than usage and late_usage sum no rated events: their
`events` is null and their events route is a 404 `line_not_traceable`."""

from __future__ import annotations

from decimal import Decimal

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.exceptions import ApiError
from aforo.money import LEGACY_MINOR_UNITS, currency_minor_units
from aforo.params import query_int
from catalog.api.serializers import request_tenant
from catalog.auth import IsTenantAdmin

from ..invoicing import InvoiceAlreadyVoid, invoice_void_and_reissue
from ..models import Invoice, InvoiceLine
from aforo.money import decimal_text
from .. import trace
from .views import DecimalStringField, ExactDecimalField

UNAUTHENTICATED = OpenApiResponse(description="missing_credentials / invalid_credentials")
ADMIN_ONLY = OpenApiResponse(description="wrong_credential_kind: this needs a tenant admin token")


def money_text(value: Decimal, currency: str) -> str:
    """Exact, with at least the currency's minor digits: 5 → "5.00", 0.125 → "0.125"."""
    text = decimal_text(value)
    minor = currency_minor_units(currency, default=LEGACY_MINOR_UNITS)
    whole, _, fraction = text.partition(".")
    if len(fraction) >= minor:
        return text
    return f"{whole}.{fraction.ljust(minor, '0')}" if minor else whole


def _not_found(what: str, row_id: int) -> ApiError:
    return ApiError(code="not_found", message=f"No {what} {row_id} in this tenant.", status_code=404)


class _Money(DecimalStringField):
    """A rounded invoice figure in the invoice's currency (see money_text)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def get_attribute(self, instance):
        value = super().get_attribute(instance)
        currency = instance.currency if isinstance(instance, Invoice) else instance.invoice.currency
        return None if value is None else money_text(value, currency)

    def to_representation(self, value):
        return value


# --- serializers -------------------------------------------------------------------------------


# status and kind are plain strings in the schema, not enums: more enum-valued fields of those names
# make drf-spectacular's enum naming collide (see wallets/api/serializers.py).


class InvoiceSummarySerializer(serializers.ModelSerializer):
    status = serializers.CharField(help_text="finalized, or void (then replaced_by names its reissue).")
    customer = serializers.IntegerField(source="customer_id")
    customer_name = serializers.CharField(source="customer.name")
    subscription = serializers.IntegerField(source="subscription_id")
    subtotal = _Money()
    discount_total = _Money()
    tax_total = _Money()
    total = _Money()
    wallet_applied = _Money(help_text="Paid from the prepaid wallet (in real time and at settlement).")
    amount_due = _Money(help_text="What the customer owes on this invoice.")
    url = serializers.SerializerMethodField()

    class Meta:
        model = Invoice
        fields = [
            "id", "number", "status", "customer", "customer_name", "subscription", "currency", "period_start",
            "period_end", "subtotal", "discount_total", "tax_total", "total", "wallet_applied", "amount_due",
            "issued_at", "url",
        ]

    def get_url(self, invoice: Invoice) -> str:
        return self.context["request"].build_absolute_uri(reverse("invoice-detail", args=[invoice.pk]))


class InvoiceLineSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(
        help_text="usage, late_usage, base, overage (usage beyond a blocked hard limit, negative), allowance (rolled-over "
        "and granted units, negative), commitment, cap, discount or tax (in that order on the invoice)."
    )
    metric = serializers.SerializerMethodField(help_text="The metric code (null for lines of no metric).")
    units = ExactDecimalField(allow_null=True)
    amount_unrounded = ExactDecimalField(help_text="Exact: for a usage line, the sum of its rated events' amounts.")
    amount = _Money(help_text="amount_unrounded rounded once to the currency's minor unit (half up).")
    events = serializers.SerializerMethodField(
        help_text="usage and late_usage lines: the URL of the rated events behind the line; null otherwise."
    )

    class Meta:
        model = InvoiceLine
        fields = [
            "id", "position", "kind", "description", "metric", "dimension_key", "period_start", "units",
            "event_count", "amount_unrounded", "amount", "events",
        ]

    def get_metric(self, line: InvoiceLine) -> str | None:
        return line.metric.code if line.metric_id else None

    def get_events(self, line: InvoiceLine) -> str | None:
        if not trace.line_is_traceable(line):
            return None
        return self.context["request"].build_absolute_uri(
            reverse("invoice-line-events", args=[line.invoice_id, line.pk])
        )


class SettlementRunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField(help_text="final (the period's invoice) or interim (a threshold invoice).")
    sequence = serializers.IntegerField(help_text="Interim invoices of a period are numbered 1, 2, …; final is 0.")
    watermark = serializers.IntegerField(help_text="The highest rated event id this run settled.")
    created_at = serializers.DateTimeField()
    stages = serializers.ListField(
        child=serializers.DictField(),
        help_text='What each stage did, in order: {"stage": "aggregate", "groups": 2, "events": 5001, …}.',
    )


class InvoiceDetailSerializer(InvoiceSummarySerializer):
    replaces = serializers.IntegerField(
        source="replaces_id", allow_null=True, help_text="The voided invoice this reissues."
    )
    replaced_by = serializers.SerializerMethodField(help_text="The invoice that reissued this one, if voided.")
    voided_at = serializers.DateTimeField(allow_null=True, help_text="When it was voided (null unless void).")
    void_reason = serializers.CharField(allow_blank=True, help_text="Why it was voided (empty unless void).")
    settlement = serializers.SerializerMethodField()
    lines = InvoiceLineSerializer(many=True)

    class Meta(InvoiceSummarySerializer.Meta):
        fields = [
            *InvoiceSummarySerializer.Meta.fields, "replaces", "replaced_by", "voided_at", "void_reason", "settlement",
            "lines",
        ]

    def get_replaced_by(self, invoice: Invoice) -> int | None:
        replacement = getattr(invoice, "replaced_by", None)
        return replacement.pk if replacement is not None else None

    @extend_schema_field(SettlementRunSerializer(allow_null=True))
    def get_settlement(self, invoice: Invoice) -> dict | None:
        run = getattr(invoice, "settlement_run", None)
        return None if run is None else SettlementRunSerializer(run).data


class RatedEventTraceSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The rated event's id (in the line's (rated_from, rated_to] range).")
    event_id = serializers.CharField(source="raw_event.event_id", help_text="The client's event id.")
    timestamp = serializers.DateTimeField(source="raw_event.timestamp", help_text="The event's original time.")
    dimension_key = serializers.CharField(allow_blank=True)
    quantity = ExactDecimalField()
    units_before = ExactDecimalField(help_text="The period's units before this event.")
    units_after = ExactDecimalField()
    amount = ExactDecimalField(
        help_text="Exact: quote(units_after) − quote(units_before); the line's events sum to its amount_unrounded."
    )
    tiers = serializers.JSONField(allow_null=True, help_text="Tiered models: how the amount falls across tiers.")
    rate_plan_version = serializers.IntegerField(source="rate_plan_version_id")
    config_hash = serializers.CharField(
        source="pricing_snapshot.config_hash", help_text="The exact config it was rated with."
    )
    rated_at = serializers.DateTimeField()
    raw_event = serializers.SerializerMethodField(help_text="GET it for the original dimensions and gateway metadata.")

    def get_raw_event(self, rated_event) -> str:
        return self.context["request"].build_absolute_uri(reverse("event-detail", args=[rated_event.raw_event_id]))


class LineEventsPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    line_amount_unrounded = DecimalStringField(help_text="The line's exact amount.")
    event_count = serializers.IntegerField(help_text="How many rated events the line sums.")
    sum_amount = DecimalStringField(
        required=False,
        help_text="On the first page only (no cursor): the sum of the amounts of ALL the line's rated events, "
        "equal to line_amount_unrounded.",
    )
    results = RatedEventTraceSerializer(many=True)


# --- examples ----------------------------------------------------------------------------------

_SUMMARY_EXAMPLE = {
    "id": 118, "number": "ACME-000118", "status": "finalized", "customer": 42, "customer_name": "Initech",
    "subscription": 7, "currency": "USD", "period_start": "2026-10-01T00:00:00Z", "period_end": "2026-11-01T00:00:00Z",
    "subtotal": "17.16", "discount_total": "0.00", "tax_total": "3.43", "total": "20.59", "wallet_applied": "0.00",
    "amount_due": "20.59", "issued_at": "2026-11-01T00:05:12Z", "url": "https://aforo.example/api/v1/invoices/118",
}
_DETAIL_EXAMPLE = {
    **_SUMMARY_EXAMPLE,
    "replaces": None,
    "replaced_by": None,
    "voided_at": None,
    "void_reason": "",
    "settlement": {
        "id": 97, "kind": "final", "sequence": 0, "watermark": 884120, "created_at": "2026-11-01T00:05:12Z",
        "stages": [
            {"stage": "quota_check", "allowances": []},
            {"stage": "aggregate", "watermark": 884120, "groups": 1, "events": 3, "late_groups": 0},
            {"stage": "rate", "usage_lines": 1, "base_lines": 1, "charges": "17.16"},
            {"stage": "commit", "charges": "17.16"},
            {"stage": "discount", "applied": [], "subtotal": "17.16"},
            {"stage": "tax", "base": "17.16", "rates": ["VAT 20.0000%"], "tax": "3.43"},
            {"stage": "route", "billing_mode": "postpaid", "total": "20.59", "wallet_realtime": "0",
             "wallet_now": "0", "amount_due": "20.59"},
            {"stage": "settle", "invoice": "ACME-000118", "total": "20.59", "wallet_taken": "0", "amount_due": "20.59"},
        ],
    },
    "lines": [
        {"id": 501, "position": 1, "kind": "usage", "description": "api_calls: 1,350 units", "metric": "api_calls",
         "dimension_key": "", "period_start": "2026-10-01T00:00:00Z", "units": "1350", "event_count": 3,
         "amount_unrounded": "12.155", "amount": "12.16",
         "events": "https://aforo.example/api/v1/invoices/118/lines/501/events"},
        {"id": 502, "position": 2, "kind": "base", "description": "api_calls: base charge for the period",
         "metric": "api_calls", "dimension_key": "", "period_start": "2026-10-01T00:00:00Z", "units": None,
         "event_count": 0, "amount_unrounded": "5", "amount": "5.00", "events": None},
        {"id": 503, "position": 3, "kind": "tax", "description": "VAT 20.0000% of 17.16", "metric": None,
         "dimension_key": "", "period_start": None, "units": None, "event_count": 0, "amount_unrounded": "3.432",
         "amount": "3.43", "events": None},
    ],
}
_EVENTS_EXAMPLE = {
    "next": "https://aforo.example/api/v1/invoices/118/lines/501/events?cursor=cD04ODQxMTk%3D",
    "previous": None,
    "line_amount_unrounded": "12.155",
    "event_count": 3,
    "sum_amount": "12.155",
    "results": [
        {"id": 884101, "event_id": "req-7f3a-0001", "timestamp": "2026-10-14T09:12:03.120000Z", "dimension_key": "",
         "quantity": "1000", "units_before": "0", "units_after": "1000", "amount": "10",
         "tiers": [{"tier": 1, "units": "1000", "amount": "10"}], "rate_plan_version": 3,
         "config_hash": "9c1e…", "rated_at": "2026-10-14T09:12:03.410000Z",
         "raw_event": "https://aforo.example/api/v1/events/771203"},
    ],
}


# --- views -------------------------------------------------------------------------------------


def _tenant_invoices(request):
    tenant = request_tenant(request)
    return Invoice.objects.filter(tenant=tenant) if tenant is not None else Invoice.objects.none()


class InvoiceListView(ListAPIView):
    permission_classes = [IsTenantAdmin]
    serializer_class = InvoiceSummarySerializer

    def get_queryset(self):
        tenant = request_tenant(self.request)
        if tenant is None or getattr(self, "swagger_fake_view", False):
            return Invoice.objects.none()
        return trace.invoices_for_tenant(
            tenant=tenant, customer_id=query_int(self.request, "customer"),
            subscription_id=query_int(self.request, "subscription"),
        )

    @extend_schema(
        operation_id="invoices_list",
        summary="List invoices, newest first",
        description="The tenant's invoices ordered by issued_at then id, newest first; limit/offset pagination. "
        "Figures are decimal strings in the invoice's currency.",
        tags=["invoices"],
        parameters=[
            OpenApiParameter("customer", OpenApiTypes.INT, description="Only this customer's invoices."),
            OpenApiParameter("subscription", OpenApiTypes.INT, description="Only this subscription's invoices."),
        ],
        responses={200: InvoiceSummarySerializer(many=True), 400: OpenApiResponse(description="validation_error: "
                   "customer / subscription is not an integer"), 401: UNAUTHENTICATED, 403: ADMIN_ONLY},
        examples=[OpenApiExample("A page of invoices", value=[_SUMMARY_EXAMPLE], response_only=True)],
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
        examples=[OpenApiExample("An invoice", value=_DETAIL_EXAMPLE, response_only=True)],
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
        examples=[OpenApiExample("First page", value=_EVENTS_EXAMPLE, response_only=True)],
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


class InvoiceVoidInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, help_text="Why the invoice is voided (kept on it).")


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
        "takes or gives back only the difference. Voiding a void invoice is a 409 `invoice_void` naming its "
        "replacement.",
        tags=["invoices"],
        request=InvoiceVoidInputSerializer,
        responses={
            201: InvoiceDetailSerializer, 400: OpenApiResponse(description="validation_error: reason missing"),
            401: UNAUTHENTICATED, 403: ADMIN_ONLY,
            404: OpenApiResponse(description="not_found: no such invoice in the token's tenant"),
            409: OpenApiResponse(description="invoice_void: already void; `replaced_by` is its replacement's id"),
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
        replacement = trace.invoice_with_lines(invoices=_tenant_invoices(request), invoice_id=reissue.replacement.pk)
        return Response(InvoiceDetailSerializer(replacement, context={"request": request}).data, status=201)
