"""The invoice lifecycle through the API (tenant admin token), and the credit notes:

    POST /api/v1/invoices/{id}/finalize                          a draft, now
    POST /api/v1/invoices/{id}/mark-paid {reference, paid_at?}    finalized or uncollectible → paid
    POST /api/v1/invoices/{id}/mark-uncollectible {reason}        finalized → uncollectible
    GET  /api/v1/credit-notes?customer=ID                         newest first, limit/offset
    GET  /api/v1/credit-notes/{id}

Each move answers 200 with the invoice as it now is; a retry of what happened already (finalize
a finalized invoice, the same payment reference, the same reason) is the same 200 and changes
nothing. A refused move is a 409 whose stable code names why (billing.invoices.lifecycle):
invoice_draft, invoice_paid, invoice_void, invoice_already_paid, invoice_already_uncollectible;
`status` is the invoice's. Another tenant's invoice is a 404 like a missing id."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.exceptions import ApiError
from aforo.params import query_int
from catalog.api.serializers import request_tenant
from catalog.auth import IsTenantAdmin

from .. import trace
from ..invoices.services import (
    InvoiceInputInvalid,
    InvoiceTransitionRefused,
    invoice_finalize,
    invoice_mark_paid,
    invoice_mark_uncollectible,
)
from ..models import CreditNote, Invoice
from .docs import ADMIN_ONLY, UNAUTHENTICATED
from .invoice_serializers import (
    CreditNoteSerializer,
    InvoiceDetailSerializer,
    InvoiceMarkPaidInputSerializer,
    InvoiceMarkUncollectibleInputSerializer,
)

REFUSED = OpenApiResponse(
    description="invoice_draft / invoice_paid / invoice_void: not allowed from the invoice's status (`status`); "
    "invoice_already_paid / invoice_already_uncollectible: done already with another reference / reason"
)
NOT_FOUND = OpenApiResponse(description="not_found: no such invoice in the token's tenant")


def _tenant_invoices(request):
    tenant = request_tenant(request)
    return Invoice.objects.filter(tenant=tenant) if tenant is not None else Invoice.objects.none()


def _invoice_id(request, invoice_id: int) -> int:
    if not _tenant_invoices(request).filter(pk=invoice_id).exists():
        raise ApiError(code="not_found", message=f"No invoice {invoice_id} in this tenant.", status_code=404)
    return invoice_id


def _moved(request, invoice_id: int, move) -> Response:
    """Run `move` (a lifecycle service call) and answer with the invoice, or its refusal."""
    try:
        move()
    except InvoiceInputInvalid as invalid:
        raise ApiError(code="validation_error", message=f"{invalid.field}: {invalid.message}", field=invalid.field) from None
    except InvoiceTransitionRefused as refused:
        raise ApiError(
            code=refused.code, status_code=409, message=refused.message, status=refused.invoice.status
        ) from None
    invoice = trace.invoice_with_lines(invoices=_tenant_invoices(request), invoice_id=invoice_id)
    return Response(InvoiceDetailSerializer(invoice, context={"request": request}).data)


class InvoiceFinalizeView(APIView):
    permission_classes = [IsTenantAdmin]

    @extend_schema(
        operation_id="invoices_finalize",
        summary="Finalize a draft invoice now",
        description="A draft (settled within its subscription's grace period) is finalized now: finalized_at, and "
        "due_at from the subscription's net terms; invoice.finalized is sent to webhooks. An invoice finalized "
        "already (finalized, paid, uncollectible) is returned unchanged; a void one is a 409 invoice_void.",
        tags=["invoices"], request=None,
        responses={200: InvoiceDetailSerializer, 401: UNAUTHENTICATED, 403: ADMIN_ONLY, 404: NOT_FOUND, 409: REFUSED},
    )
    def post(self, request, invoice_id: int):
        _invoice_id(request, invoice_id)
        return _moved(request, invoice_id, lambda: invoice_finalize(invoice_id=invoice_id))


class InvoiceMarkPaidView(APIView):
    permission_classes = [IsTenantAdmin]

    @extend_schema(
        operation_id="invoices_mark_paid",
        summary="Record an invoice's payment",
        description="A finalized or uncollectible (a late payment) invoice becomes paid, with the payment's "
        "reference and time (paid_at: default now, never in the future); invoice.paid is sent. The same call again "
        "(same reference) is a no-op answering the same invoice; another reference is a 409 invoice_already_paid. "
        "A draft is a 409 invoice_draft (finalize it first), a void one invoice_void.",
        tags=["invoices"], request=InvoiceMarkPaidInputSerializer,
        responses={
            200: InvoiceDetailSerializer, 401: UNAUTHENTICATED, 403: ADMIN_ONLY, 404: NOT_FOUND, 409: REFUSED,
            400: OpenApiResponse(description="validation_error: reference missing, too long or not printable; "
                                 "paid_at not a date-time or in the future"),
        },
    )
    def post(self, request, invoice_id: int):
        _invoice_id(request, invoice_id)
        data = InvoiceMarkPaidInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        body = data.validated_data
        return _moved(
            request, invoice_id,
            lambda: invoice_mark_paid(invoice_id=invoice_id, reference=body["reference"], paid_at=body.get("paid_at")),
        )


class InvoiceMarkUncollectibleView(APIView):
    permission_classes = [IsTenantAdmin]

    @extend_schema(
        operation_id="invoices_mark_uncollectible",
        summary="Write an invoice off as uncollectible",
        description="A finalized invoice becomes uncollectible, with the reason (kept on it); invoice.uncollectible is "
        "sent. It can still be paid later (mark-paid) or voided. Again with the same reason: a no-op; with another, "
        "a 409 invoice_already_uncollectible. A draft is a 409 invoice_draft, a paid one invoice_paid, a void one "
        "invoice_void.",
        tags=["invoices"], request=InvoiceMarkUncollectibleInputSerializer,
        responses={
            200: InvoiceDetailSerializer, 401: UNAUTHENTICATED, 403: ADMIN_ONLY, 404: NOT_FOUND, 409: REFUSED,
            400: OpenApiResponse(description="validation_error: reason missing, too long or not printable"),
        },
    )
    def post(self, request, invoice_id: int):
        _invoice_id(request, invoice_id)
        data = InvoiceMarkUncollectibleInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        reason = data.validated_data["reason"]
        return _moved(request, invoice_id, lambda: invoice_mark_uncollectible(invoice_id=invoice_id, reason=reason))


def _tenant_credit_notes(request):
    tenant = request_tenant(request)
    if tenant is None:
        return CreditNote.objects.none()
    return CreditNote.objects.filter(tenant=tenant).select_related("invoice").order_by("-created_at", "-id")


class CreditNoteListView(ListAPIView):
    permission_classes = [IsTenantAdmin]
    serializer_class = CreditNoteSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return CreditNote.objects.none()
        credit_notes = _tenant_credit_notes(self.request)
        customer_id = query_int(self.request, "customer")
        return credit_notes if customer_id is None else credit_notes.filter(customer_id=customer_id)

    @extend_schema(
        operation_id="credit_notes_list",
        summary="List credit notes, newest first",
        description="The credit notes issued by voids of finalized (or uncollectible) invoices: number (gapless per "
        "tenant, CN-…), the invoice, the amount credited (its total) in its currency, the reason.",
        tags=["invoices"],
        parameters=[OpenApiParameter("customer", OpenApiTypes.INT, description="Only this customer's credit notes.")],
        responses={200: CreditNoteSerializer(many=True), 401: UNAUTHENTICATED, 403: ADMIN_ONLY},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class CreditNoteDetailView(APIView):
    permission_classes = [IsTenantAdmin]

    @extend_schema(
        operation_id="credit_notes_retrieve", summary="A credit note", tags=["invoices"],
        responses={
            200: CreditNoteSerializer, 401: UNAUTHENTICATED, 403: ADMIN_ONLY,
            404: OpenApiResponse(description="not_found: no such credit note in the token's tenant"),
        },
    )
    def get(self, request, credit_note_id: int):
        credit_note = _tenant_credit_notes(request).filter(pk=credit_note_id).first()
        if credit_note is None:
            raise ApiError(code="not_found", message=f"No credit note {credit_note_id} in this tenant.", status_code=404)
        return Response(CreditNoteSerializer(credit_note).data)
