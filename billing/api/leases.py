"""Budget leases under /api/v1/leases: grant, read, list, renew, return (billing.leases).

Admin or ingest token (gateway nodes hold ingest tokens). Thin views: parse the JSON body with
billing.leases.inputs (every field checked, a 400 naming it), call one service, render the lease.
Every read and write is scoped to the credential's tenant: another tenant's lease is a 404."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.exceptions import ApiError
from aforo.pagination import BoundedLimitOffsetPagination
from aforo.params import json_body, query_int
from aforo.money import decimal_text
from billing.api.views import ExactDecimalField
from billing.leases import services
from billing.leases.money import money_consumed_now
from billing.leases.services import lease_state as _state
from billing.leases.inputs import lease_create_parse, lease_renew_parse, lease_return_parse
from billing.models import Lease
from wallets.api.base import IsTenantAdminOrIngest


class LeaseSerializer(serializers.ModelSerializer):
    metric = serializers.CharField(source="metric.code", allow_null=True, help_text="Unit leases: the metric; null for money.")
    leased = ExactDecimalField(help_text="Units granted (first grant and renewals' top-ups).")
    consumed = ExactDecimalField(help_text="Units of rated events sent under the lease (metadata.lease_id).")
    reported = ExactDecimalField(help_text="The most the holder reported using.")
    used = ExactDecimalField(help_text="Fixed at close: min(max(reported, consumed), leased).")
    returned = ExactDecimalField()
    expired = ExactDecimalField()
    overrun = ExactDecimalField(help_text="Units rated under the lease beyond `used` after it closed.")
    reserved = serializers.SerializerMethodField(help_text="Units the lease holds back from others now.")

    class Meta:
        model = Lease
        fields = [
            "id", "kind", "status", "holder", "subscription_id", "customer_id", "metric", "dimension_key", "period_start",
            "period_end", "currency", "hold_id", "leased", "consumed", "reported", "used", "returned", "expired", "overrun", "reserved",
            "expires_at", "created_at", "closed_at", "idempotency_key",
        ]

    @extend_schema_field({"type": "string", "format": "decimal"})
    def get_reserved(self, lease: Lease) -> str:
        return decimal_text(_state(lease).reserved)


ERROR = OpenApiResponse(description='{"error": {"code", "message", "field"?}}')
CREATE_EXAMPLE = {
    "api_key": "sk_live_…", "metric": "api_calls", "units": "500", "min_units": "50", "ttl_seconds": 60,
    "holder": "gw-eu-1", "idempotency_key": "gw-eu-1:2026-12-03T12:00:00Z",
}
MONEY_EXAMPLE = {
    "customer_id": 42, "amount": "25", "min_amount": "5", "ttl_seconds": 300, "holder": "gw-eu-1",
    "idempotency_key": "gw-eu-1:money:0001",
}


def _render(lease: Lease, code: int = status.HTTP_200_OK) -> Response:
    lease = money_consumed_now(Lease.objects.select_related("metric").get(pk=lease.pk))
    return Response(LeaseSerializer(lease).data, status=code)


class LeaseListCreateView(ListAPIView):
    permission_classes = [IsTenantAdminOrIngest]
    serializer_class = LeaseSerializer
    pagination_class = BoundedLimitOffsetPagination

    def get_queryset(self) -> QuerySet[Lease]:
        if getattr(self, "swagger_fake_view", False):
            return Lease.objects.none()
        leases = Lease.objects.filter(tenant=self.request.tenant).select_related("metric").order_by("-id")
        active = self.request.query_params.get("active")
        if active not in (None, "true", "false"):
            raise ApiError(code="validation_error", message="active: must be true or false.", field="active")
        now_active = Q(status=Lease.Status.ACTIVE, expires_at__gt=timezone.now())
        if active == "true":
            leases = leases.filter(now_active)
        elif active == "false":
            leases = leases.exclude(now_active)
        subscription_id = query_int(self.request, "subscription_id")
        if subscription_id is not None:
            leases = leases.filter(subscription_id=subscription_id)
        holder = self.request.query_params.get("holder")
        if holder is not None:
            leases = leases.filter(holder=holder)
        return leases

    @extend_schema(
        operation_id="leases_list",
        summary="Budget leases, newest first",
        description="Admin or ingest token. `active=true`: only leases active now (not returned, not past their "
        "expiry); `active=false`: the others. Filters: subscription_id, holder.",
        tags=["leases"],
        parameters=[
            OpenApiParameter("active", str, enum=["true", "false"]),
            OpenApiParameter("subscription_id", int),
            OpenApiParameter("holder", str),
        ],
        responses={200: LeaseSerializer(many=True), 400: ERROR, 401: ERROR, 403: ERROR},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="leases_create",
        summary="Lease a slice of a metric's limit (gateways)",
        description=(
            "Grants min(units, available) of the hard limit of the price that would rate `metric` for the api_key, "
            "customer_id or subscription_id now (with `dimensions`, its dimension override), until now + ttl_seconds "
            "(1 to 86400; the billing period's end at the latest). available = limit − units rated this period − "
            "units other leases hold, checked under the subscription's row lock. Send events under the lease with "
            "`metadata.lease_id`; report and renew or return it. 201 with the lease; a retry with the same "
            "idempotency_key and body answers 200 with the lease as it is now, another body is 409 "
            "idempotency_key_reused. 409 insufficient_units (with `available`) below max(min_units, any); 409 "
            "no_limit when the price has no limit; 404 unknown_api_key / unknown_customer / unknown_subscription; "
            "409 revoked_api_key / no_active_subscription / metric_not_priced. Money: send `amount` (and "
            "`min_amount`) instead of metric and units: min(amount, the prepaid wallet's available balance) is held "
            "(a wallet hold, reference lease:<id>, reserving against other holds); events naming the lease draw from "
            "it; 402 insufficient_funds, 409 no_wallet_billing / no_wallet."
        ),
        tags=["leases"],
        request={"application/json": {"type": "object"}},
        responses={201: LeaseSerializer, 200: LeaseSerializer, 400: ERROR, 401: ERROR, 404: ERROR, 409: ERROR},
        examples=[
            OpenApiExample("Lease 500 calls for a minute", value=CREATE_EXAMPLE, request_only=True),
            OpenApiExample("Lease 25 of the wallet for 5 minutes", value=MONEY_EXAMPLE, request_only=True),
        ],
    )
    def post(self, request):
        parsed = lease_create_parse(json_body(request, what="the lease request"))
        lease, created = services.lease_create(tenant_id=request.tenant.pk, request=parsed)
        return _render(lease, status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class LeaseDetailView(APIView):
    permission_classes = [IsTenantAdminOrIngest]

    @extend_schema(
        operation_id="leases_retrieve", summary="A budget lease", tags=["leases"],
        description="Admin or ingest token. A lease past its expiry is expired by this read.",
        responses={200: LeaseSerializer, 401: ERROR, 404: ERROR},
    )
    def get(self, request, lease_id: int):
        return _render(services.lease_get(tenant_id=request.tenant.pk, lease_id=lease_id))


class LeaseRenewView(APIView):
    permission_classes = [IsTenantAdminOrIngest]

    @extend_schema(
        operation_id="leases_renew", summary="Report usage and renew a lease", tags=["leases"],
        description=(
            "Admin or ingest token. `used`: units used under the lease so far (a lower figure than before changes "
            "nothing); `ttl_seconds`: the lease now expires that long from now (the period's end at the latest); "
            "`units` (optional): top the lease up so that this many units remain unused, as far as the limit "
            "allows (never takes units back; money leases: 400 top_up_not_supported). A retry changes nothing more. "
            "409 lease_expired / lease_returned."
        ),
        request={"application/json": {"type": "object"}},
        responses={200: LeaseSerializer, 400: ERROR, 401: ERROR, 404: ERROR, 409: ERROR},
        examples=[OpenApiExample("Used 120, keep 500 for another minute", value={"used": "120", "units": "500",
                                 "ttl_seconds": 60}, request_only=True)],
    )
    def post(self, request, lease_id: int):
        parsed = lease_renew_parse(json_body(request, what="the renewal"))
        return _render(services.lease_renew(tenant_id=request.tenant.pk, lease_id=lease_id, request=parsed))


class LeaseReturnView(APIView):
    permission_classes = [IsTenantAdminOrIngest]

    @extend_schema(
        operation_id="leases_return", summary="Return a lease: report usage, give back the rest", tags=["leases"],
        description=(
            "Admin or ingest token. Closes the lease: used = min(max(`used`, units rated under it), leased), "
            "returned = leased − used. Units reported but not rated yet stay reserved until their events are rated. "
            "A retry answers 200 unchanged; 409 lease_expired, or lease_returned for a higher `used` than before."
        ),
        request={"application/json": {"type": "object"}},
        responses={200: LeaseSerializer, 400: ERROR, 401: ERROR, 404: ERROR, 409: ERROR},
        examples=[OpenApiExample("Used 120", value={"used": "120"}, request_only=True)],
    )
    def post(self, request, lease_id: int):
        used = lease_return_parse(json_body(request, what="the return"))
        lease, _ = services.lease_return(tenant_id=request.tenant.pk, lease_id=lease_id, used=used)
        return _render(lease)
