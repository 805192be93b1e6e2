"""The allowance grants API (tenant admin token): free units of a metric for one billing period
of a subscription, applied by that period's final settlement run (billing.settlement.allowance).

    GET    /api/v1/subscriptions/{id}/allowance-grants             newest period first, limit/offset
    POST   /api/v1/subscriptions/{id}/allowance-grants             201 the grant
    DELETE /api/v1/subscriptions/{id}/allowance-grants/{grant_id}  204

Contracts:
- Another tenant's subscription, grant or metric is "does not exist": a 404 for the route's ids,
  a 400 naming `metric` / `metric_code` for the body's.
- `units` is an exact decimal string or an integer, more than zero, at most 12 decimal places;
  a JSON float is a 400 (JSON bodies only, so a float reaches the field as a float).
- A grant belongs to the period containing `at` (or `period`'s first instant, like
  `manage.py settle --period`). A period whose FINAL settlement run exists never applies a grant
  again: creating a grant for it, or deleting one from it (it is part of that invoice), is a 409
  `period_settled`. The check runs under the subscription's row lock, the lock the settlement run
  holds, so a grant is either settled with its period or refused, never silently lost.
- Idempotent creates: a POST carrying `idempotency_key` (yours, unique per subscription) made
  again with the same key and parameters answers 200 with the first grant and creates nothing
  (a retry after a lost response); the same key with other parameters is a 409
  `idempotency_key_reused`. Without a key every POST creates a grant.

The services and selectors (`allowance_grant_*`) are billing.grants; the admin calls them too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.parsers import JSONParser
from aforo.exceptions import ApiError
from catalog.api.serializers import TenantPrimaryKeyRelatedField, request_tenant
from catalog.auth import IsTenantAdmin
from catalog.models import Metric, Subscription
from wallets.api.serializers import MoneyField

from ..grants import (
    AllowanceGrantKeyReused,
    AllowanceGrantPeriodSettled,
    allowance_grant_create,
    allowance_grant_delete,
    allowance_grant_period,
    allowance_grants_with_applied,
)
from ..models import AllowanceGrant
from ..periods import period_for
from .docs import ADMIN_ONLY, UNAUTHENTICATED
from .views import ExactDecimalField

MAX_PLACES = 12
MAX_UNITS = Decimal(10) ** 26  # the column holds 38 digits, 12 of them decimals

# --- serializers -------------------------------------------------------------------------------


@extend_schema_field(OpenApiTypes.DATETIME)
class _InstantField(serializers.Field):
    """An ISO 8601 instant WITH a UTC offset ("2026-11-15T12:00:00Z"); a naive one is refused."""

    def to_internal_value(self, data: Any) -> datetime:
        if not isinstance(data, str) or len(data) > 40:
            raise serializers.ValidationError("Must be an ISO 8601 datetime such as 2026-11-15T12:00:00Z.")
        try:
            instant = datetime.fromisoformat(data)
        except ValueError:
            raise serializers.ValidationError(
                f"Must be an ISO 8601 datetime such as 2026-11-15T12:00:00Z, got {data!r}."
            ) from None
        if instant.tzinfo is None:
            raise serializers.ValidationError(f"{data!r} has no UTC offset; write e.g. {data}Z.")
        return instant

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


class AllowanceGrantCreateInputSerializer(serializers.Serializer):
    metric = TenantPrimaryKeyRelatedField(
        queryset=Metric.objects.all(), required=False, help_text="The metric's id (or send metric_code)."
    )
    metric_code = serializers.CharField(max_length=100, required=False, help_text="The metric's code (or send metric).")
    units = MoneyField(help_text="Free units for the period: more than zero, at most 12 decimal places.")
    period = serializers.CharField(
        required=False, help_text="YYYY-MM: the period containing that month's first instant (UTC), as "
        "`manage.py settle --period` reads it. Or send `at`; neither: the current period."
    )
    at = _InstantField(required=False, help_text="Any instant in the period, with a UTC offset.")
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    idempotency_key = serializers.CharField(
        max_length=200, required=False, default="",
        help_text="Yours, unique per subscription: a retry with the same key and parameters returns the first grant "
        "(200) and creates nothing; the same key with other parameters is a 409 idempotency_key_reused.",
    )

    def validate_units(self, value: Decimal) -> Decimal:
        if not value.is_finite() or value <= 0:
            raise serializers.ValidationError("Must be more than zero.")
        if value.as_tuple().exponent < -MAX_PLACES:  # type: ignore[operator]
            raise serializers.ValidationError(f"At most {MAX_PLACES} decimal places.")
        if value >= MAX_UNITS:
            raise serializers.ValidationError("Must be less than 10^26.")
        return value

    def validate_period(self, value: str) -> datetime:
        try:
            return datetime.strptime(value, "%Y-%m").replace(tzinfo=UTC)
        except ValueError:
            raise serializers.ValidationError(f"Expected YYYY-MM (e.g. 2026-11), got {value[:40]!r}.") from None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        subscription: Subscription = self.context["subscription"]
        if ("metric" in attrs) == ("metric_code" in attrs):
            raise serializers.ValidationError({"metric": "Send either metric (an id) or metric_code."})
        if "metric_code" in attrs:
            attrs["metric"] = Metric.objects.filter(tenant_id=subscription.tenant_id, code=attrs["metric_code"]).first()
            if attrs["metric"] is None:
                raise serializers.ValidationError({"metric_code": f"No metric {attrs['metric_code']!r} in this tenant."})
        if "period" in attrs and "at" in attrs:
            raise serializers.ValidationError({"period": "Send either period or at, not both."})
        field = "period" if "period" in attrs else "at"
        at = attrs.pop("period", None) or attrs.get("at") or timezone.now()
        if at < subscription.started_at:
            raise serializers.ValidationError(
                {field: f"{at.isoformat()} is before the subscription started ({subscription.started_at.isoformat()})."}
            )
        start, _ = period_for(cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, at=at)
        if subscription.ended_at is not None and start >= subscription.ended_at:
            raise serializers.ValidationError(
                {field: f"Its period starts after the subscription ended ({subscription.ended_at.isoformat()})."}
            )
        attrs["at"], attrs["field"] = at, field
        return attrs


class AllowanceGrantSerializer(serializers.ModelSerializer):
    subscription = serializers.IntegerField(source="subscription_id")
    metric = serializers.IntegerField(source="metric_id")
    metric_code = serializers.CharField(source="metric.code")
    period_start = serializers.DateTimeField(help_text="The start of the billing period the grant belongs to.")
    period_end = serializers.SerializerMethodField(help_text="Its end (exclusive).")
    units = ExactDecimalField(help_text="Free units, exact.")
    applied = serializers.SerializerMethodField(
        help_text="Whether the period's final settlement run exists: the grant is on that invoice (allowance line) "
        "and can no longer be deleted."
    )

    class Meta:
        model = AllowanceGrant
        fields = [
            "id", "subscription", "metric", "metric_code", "period_start", "period_end", "units", "description",
            "idempotency_key", "created_at", "applied",
        ]

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_period_end(self, grant: AllowanceGrant) -> str:
        return serializers.DateTimeField().to_representation(allowance_grant_period(grant=grant)[1])

    def get_applied(self, grant: AllowanceGrant) -> bool:
        return bool(getattr(grant, "applied", False))


# --- examples ----------------------------------------------------------------------------------

_GRANT_EXAMPLE = {
    "id": 31, "subscription": 7, "metric": 12, "metric_code": "api_calls", "period_start": "2026-11-01T00:00:00Z",
    "period_end": "2026-12-01T00:00:00Z", "units": "1000", "description": "Goodwill: outage on 2026-11-03",
    "idempotency_key": "goodwill-2026-11-03-sub7", "created_at": "2026-11-04T09:30:00Z", "applied": False,
}
_CREATE_EXAMPLE = {"metric_code": "api_calls", "units": "1000", "period": "2026-11",
                   "description": "Goodwill: outage on 2026-11-03", "idempotency_key": "goodwill-2026-11-03-sub7"}
PERIOD_SETTLED = OpenApiResponse(
    description="period_settled: the period's final settlement run exists (its invoice is issued): grant for a "
    "later period; an applied grant cannot be deleted"
)
KEY_REUSED_OR_SETTLED = OpenApiResponse(
    description="period_settled: the period's final settlement run exists (grant for a later period); "
    "idempotency_key_reused: the key made a grant with other parameters"
)
NOT_FOUND = OpenApiResponse(description="not_found: no such subscription (or grant) in the token's tenant")


# --- views -------------------------------------------------------------------------------------


def _subscription(request, subscription_id: int) -> Subscription:
    tenant = request_tenant(request)
    subscription = Subscription.objects.filter(tenant=tenant, pk=subscription_id).first() if tenant else None
    if subscription is None:
        raise ApiError(code="not_found", message=f"No subscription {subscription_id} in this tenant.", status_code=404)
    return subscription


def _period_settled(exc: AllowanceGrantPeriodSettled) -> ApiError:
    run = exc.run
    return ApiError(
        code="period_settled", status_code=status.HTTP_409_CONFLICT,
        message=f"The period {run.period_start:%Y-%m-%d} → {run.period_end:%Y-%m-%d} is settled already (final "
        "settlement run): a grant for it would never be applied and an applied grant is part of its invoice. "
        "Grant for a later period.",
        period_start=serializers.DateTimeField().to_representation(run.period_start),
        period_end=serializers.DateTimeField().to_representation(run.period_end),
    )


class AllowanceGrantApiMixin:
    """JSON bodies only, the admin token, and the error mapping (400s name the `field` at fault)."""

    parser_classes = [JSONParser]
    permission_classes = [IsTenantAdmin]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, AllowanceGrantPeriodSettled):
            exc = _period_settled(exc)
        elif isinstance(exc, AllowanceGrantKeyReused):
            exc = ApiError(code="idempotency_key_reused", status_code=status.HTTP_409_CONFLICT, message=str(exc),
                           field="idempotency_key", grant=exc.grant.pk)
        elif isinstance(exc, IntegrityError):
            exc = ApiError(code="conflict", status_code=status.HTTP_409_CONFLICT,
                           message="A conflicting change was committed concurrently; read the current state and retry.")
        response = super().handle_exception(exc)  # type: ignore[misc]
        error = response.data.get("error") if isinstance(response.data, dict) else None
        if isinstance(error, dict) and isinstance(error.get("fields"), dict) and "field" not in error:
            error["field"] = next(iter(error["fields"]), None)
        return response


class AllowanceGrantListCreateView(AllowanceGrantApiMixin, ListAPIView):
    serializer_class = AllowanceGrantSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return AllowanceGrant.objects.none()
        subscription = _subscription(self.request, self.kwargs["subscription_id"])
        grants = AllowanceGrant.objects.filter(subscription=subscription).select_related("subscription", "metric")
        return allowance_grants_with_applied(grants).order_by("-period_start", "-id")

    @extend_schema(
        operation_id="allowance_grants_list",
        summary="A subscription's allowance grants, newest period first",
        description="Free units granted per billing period; `applied` tells whether the period's final settlement "
        "run exists (the grant is on its invoice as an allowance line). limit/offset pagination.",
        tags=["allowance grants"],
        responses={200: AllowanceGrantSerializer(many=True), 401: UNAUTHENTICATED, 403: ADMIN_ONLY, 404: NOT_FOUND},
        # drf-spectacular wraps a list example in the pagination envelope: the value is one row.
        examples=[OpenApiExample("A page of grants", value=_GRANT_EXAMPLE, response_only=True)],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="allowance_grants_create",
        summary="Grant free units of a metric for one period",
        description="The period is the subscription's billing period containing `at`, or `period`'s first instant "
        "(YYYY-MM), or now. Its final settlement applies the granted units after any rolled-over units, priced "
        "with the events' config per dimension key: credit = quote(used) − quote(used − granted); unused units "
        "lapse with the period. 409 period_settled when that period's final run exists already. With an "
        "`idempotency_key`, a retry answers 200 with the first grant.",
        tags=["allowance grants"],
        request=AllowanceGrantCreateInputSerializer,
        responses={
            201: AllowanceGrantSerializer,
            200: OpenApiResponse(AllowanceGrantSerializer, description="a retry: the grant its idempotency_key made"),
            400: OpenApiResponse(description="validation_error naming the `field`: units (a float, not more than "
                                 "zero, more than 12 decimal places), metric / metric_code (none in this tenant), "
                                 "period / at (malformed, before the subscription started)"),
            401: UNAUTHENTICATED, 403: ADMIN_ONLY, 404: NOT_FOUND, 409: KEY_REUSED_OR_SETTLED,
        },
        examples=[
            OpenApiExample("Grant 1000 api_calls for November", value=_CREATE_EXAMPLE, request_only=True),
            OpenApiExample("The grant", value=_GRANT_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    )
    def post(self, request, subscription_id: int):
        subscription = _subscription(request, subscription_id)
        data = AllowanceGrantCreateInputSerializer(
            data=request.data, context={"request": request, "subscription": subscription}
        )
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            grant, created = allowance_grant_create(
                subscription=subscription, metric=values["metric"], units=values["units"], at=values["at"],
                description=values["description"], idempotency_key=values["idempotency_key"],
            )
        except DjangoValidationError as invalid:  # the model's rules, should the input checks ever miss one
            detail = serializers.as_serializer_error(invalid)
            if "period_start" in detail:
                detail[values["field"]] = detail.pop("period_start")
            raise serializers.ValidationError(detail) from None
        grant = allowance_grants_with_applied(AllowanceGrant.objects.select_related("subscription", "metric")).get(
            pk=grant.pk
        )
        return Response(AllowanceGrantSerializer(grant).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class AllowanceGrantDeleteView(AllowanceGrantApiMixin, APIView):
    @extend_schema(
        operation_id="allowance_grants_delete",
        summary="Withdraw a grant whose period is not settled",
        description="409 period_settled when the period's final settlement run exists: the grant is applied, part of "
        "an issued invoice.",
        tags=["allowance grants"],
        responses={204: None, 401: UNAUTHENTICATED, 403: ADMIN_ONLY, 404: NOT_FOUND, 409: PERIOD_SETTLED},
    )
    def delete(self, request, subscription_id: int, grant_id: int):
        subscription = _subscription(request, subscription_id)
        grant = AllowanceGrant.objects.filter(subscription=subscription, pk=grant_id).first()
        if grant is None:
            raise ApiError(
                code="not_found", status_code=404,
                message=f"No allowance grant {grant_id} of subscription {subscription_id} in this tenant.",
            )
        allowance_grant_delete(grant=grant)
        return Response(status=status.HTTP_204_NO_CONTENT)
