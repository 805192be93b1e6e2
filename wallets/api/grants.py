"""The credit grants routes of the wallets API (tenant admin token):

    GET/POST  /api/v1/credit-grants            ?customer=ID &status= &currency=
    GET       /api/v1/credit-grants/{id}
    POST      /api/v1/credit-grants/{id}/void  {"reason": "..."}

A grant is credit in the customer's wallet in `currency` (created if missing), consumed before
the paid balance in (priority, soonest expiry, oldest) order while starts_at <= now < expires_at
(wallets.grants). Creating is idempotent on `idempotency_key` (201, then 200 with the same
grant; other terms under the same key: 409 idempotency_key_reused). The rules and error codes
are the services' (base.py maps them); the body's types are checked here, each error naming its
field."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.exceptions import ApiError
from aforo.money import currency_is_valid
from aforo.params import query_int
from catalog.api.serializers import CurrencyCodeField, TenantPrimaryKeyRelatedField, invalid_currency_error, request_tenant
from catalog.models import Customer
from wallets import grants as grant_services
from wallets.models import CreditGrant

from . import docs
from .base import WalletApiMixin, not_found
from .serializers import IDEMPOTENCY_KEY_MAX, ErrorBodySerializer, MoneyField


class CreditGrantCreateInputSerializer(serializers.Serializer):
    customer = TenantPrimaryKeyRelatedField(queryset=Customer.objects.all(), help_text="A customer of your tenant.")
    currency = CurrencyCodeField(help_text="ISO 4217: the wallet (customer + currency) the credit goes to.")
    amount = MoneyField(help_text="More than zero, in whole minor units of the currency, as a decimal string.")
    name = serializers.CharField(max_length=grant_services.MAX_NAME, help_text='Shown on invoices: "Credit grant <name>".')
    kind = serializers.ChoiceField(choices=CreditGrant.Kind.choices, default=CreditGrant.Kind.PROMOTIONAL)
    priority = serializers.IntegerField(min_value=0, max_value=grant_services.MAX_PRIORITY, default=100,
                                        help_text="Lower is consumed first (0–1000).")
    starts_at = serializers.DateTimeField(required=False, help_text="Usable from (default: now).")
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None,
                                           help_text="Usable until (exclusive); null: never expires.")
    reason = serializers.CharField(max_length=grant_services.MAX_REASON, required=False, allow_blank=True, default="")
    idempotency_key = serializers.CharField(
        max_length=IDEMPOTENCY_KEY_MAX, help_text="Yours, unique per wallet: a retry returns the first grant."
    )

    def validate_priority(self, value: Any) -> int:
        if isinstance(self.initial_data.get("priority"), (bool, float)):
            raise serializers.ValidationError("Must be an integer.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        starts_at, expires_at = attrs.get("starts_at"), attrs.get("expires_at")
        if starts_at is not None and expires_at is not None and expires_at <= starts_at:
            raise serializers.ValidationError({"expires_at": ["Must be after starts_at."]})
        return attrs


class CreditGrantVoidInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=grant_services.MAX_REASON, help_text="Why the grant is voided.")


class CreditGrantSerializer(serializers.ModelSerializer):
    customer = serializers.IntegerField(source="wallet.customer_id", read_only=True)
    currency = serializers.CharField(source="wallet.currency", read_only=True)
    amount = MoneyField(read_only=True)
    remaining = MoneyField(read_only=True, help_text="What it has left (exact: usage debits are not rounded).")

    class Meta:
        model = CreditGrant
        fields = [
            "id", "customer", "wallet", "currency", "name", "kind", "amount", "remaining", "priority", "starts_at",
            "expires_at", "status", "reason", "void_reason", "created_at", "resolved_at",
        ]
        read_only_fields = fields


def tenant_grants(request) -> QuerySet[CreditGrant]:
    tenant = request_tenant(request)
    grants = CreditGrant.objects.filter(tenant=tenant) if tenant is not None else CreditGrant.objects.none()
    return grants.select_related("wallet")


class CreditGrantListCreateView(WalletApiMixin, ListAPIView):
    serializer_class = CreditGrantSerializer

    def get_queryset(self) -> QuerySet[CreditGrant]:
        grants = tenant_grants(self.request).order_by("id")
        customer = query_int(self.request, "customer")
        if customer is not None:
            grants = grants.filter(wallet__customer_id=customer)
        grant_status = self.request.query_params.get("status")
        if grant_status not in (None, ""):
            if grant_status not in CreditGrant.Status.values:
                raise ApiError(code="invalid_status", message=f"status must be one of {', '.join(CreditGrant.Status.values)}",
                               field="status", status_code=400)
            grants = grants.filter(status=grant_status)
        currency = self.request.query_params.get("currency")
        if currency not in (None, ""):
            if not currency_is_valid(currency.strip().upper()):
                raise invalid_currency_error(currency, "currency")
            grants = grants.filter(wallet__currency=currency.strip().upper())
        return grants

    @extend_schema(
        operation_id="credit_grants_list", summary="List credit grants", tags=["credit grants"],
        parameters=[
            OpenApiParameter("customer", OpenApiTypes.INT, description="Only this customer's grants."),
            OpenApiParameter("status", OpenApiTypes.STR, enum=CreditGrant.Status.values, description="Only grants in this status."),
            OpenApiParameter("currency", OpenApiTypes.STR, description="Only grants in this currency (ISO 4217)."),
        ],
        responses={200: CreditGrantSerializer(many=True), 400: docs.BAD_INPUT, 401: docs.UNAUTHENTICATED, 403: docs.ADMIN_ONLY},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="credit_grants_create", summary="Grant credit to a customer", tags=["credit grants"],
        description="Promotional or paid credit in the customer's wallet in `currency` (created if missing), as one "
        "`grant` ledger entry. Consumed before the paid balance — prepaid/hybrid by each usage debit in real time, "
        "postpaid at settlement as \"Credit grant\" invoice lines after tax — in (priority, soonest expiry, oldest) "
        "order while starts_at <= now < expires_at; at expires_at what is left leaves the wallet as a `grant_expiry` "
        "entry. 201 the first time; a retry with the same idempotency_key answers 200 with the same grant.",
        request=CreditGrantCreateInputSerializer,
        responses={
            201: CreditGrantSerializer,
            200: OpenApiResponse(CreditGrantSerializer, description="A retry: the first grant"),
            400: OpenApiResponse(ErrorBodySerializer, description="validation_error / invalid_amount / invalid_currency / "
                                 "invalid_priority / invalid_expires_at / invalid_name, with `field`"),
            401: docs.UNAUTHENTICATED, 403: docs.ADMIN_ONLY,
            409: OpenApiResponse(ErrorBodySerializer, description="idempotency_key_reused"),
        },
        examples=[OpenApiExample("50 USD of promotional credit for 90 days", request_only=True, value={
            "customer": 42, "currency": "USD", "amount": "50", "name": "Welcome credit", "kind": "promotional",
            "priority": 10, "expires_at": "2027-03-01T00:00:00Z", "idempotency_key": "welcome-42",
        })],
    )
    def post(self, request):
        body = CreditGrantCreateInputSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        grant, created = grant_services.credit_grant_create(**body.validated_data)
        grant = tenant_grants(request).get(pk=grant.pk)
        return Response(CreditGrantSerializer(grant).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


GRANT_NOT_FOUND = OpenApiResponse(ErrorBodySerializer, description="not_found: no such credit grant in the token's tenant")


class CreditGrantDetailView(WalletApiMixin, APIView):
    @extend_schema(
        operation_id="credit_grants_retrieve", summary="A credit grant with what it has left", tags=["credit grants"],
        responses={200: CreditGrantSerializer, 401: docs.UNAUTHENTICATED, 403: docs.ADMIN_ONLY, 404: GRANT_NOT_FOUND},
    )
    def get(self, request, grant_id: int):
        grant = tenant_grants(request).filter(pk=grant_id).first()
        if grant is None:
            raise not_found("credit grant", grant_id)
        return Response(CreditGrantSerializer(grant).data)


class CreditGrantVoidView(WalletApiMixin, APIView):
    @extend_schema(
        operation_id="credit_grants_void", summary="Void a credit grant", tags=["credit grants"],
        description="What the grant has left leaves the wallet (a `grant_void` ledger entry); what it already paid "
        "stays paid. Idempotent: voiding a voided grant answers 200 and changes nothing.",
        request=CreditGrantVoidInputSerializer,
        responses={
            200: CreditGrantSerializer, 400: OpenApiResponse(ErrorBodySerializer, description="reason_required / validation_error"),
            401: docs.UNAUTHENTICATED, 403: docs.ADMIN_ONLY, 404: GRANT_NOT_FOUND,
            409: OpenApiResponse(ErrorBodySerializer, description="grant_expired: an expired grant has nothing to void"),
        },
    )
    def post(self, request, grant_id: int):
        body = CreditGrantVoidInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        grant, _ = grant_services.credit_grant_void(tenant_id=request.tenant.id, grant_id=grant_id, reason=body.validated_data["reason"])
        return Response(CreditGrantSerializer(tenant_grants(request).get(pk=grant.pk)).data)
