"""The trial API (tenant admin token):

    GET  /api/v1/subscriptions/{id}/trial       the trial: end date, usage threshold, units used, conversion
    POST /api/v1/subscriptions/{id}/end-trial   {reason}: convert it now (billing.trials.services.trial_convert)

Ending a trial converts it now — never before an event already rated free, never after its end
date (a request after that date records the date's conversion). Converting is once: a retry, or
a request for a trial already converted, answers 200 with the conversion and `created: false`.
A subscription without a trial, or one that ended during its trial, is a 409 `not_convertible`;
another tenant's subscription a 404."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.exceptions import ApiError
from aforo.money import decimal_text
from aforo.parsers import JSONParser
from catalog.api.serializers import SubscriptionSerializer, request_tenant
from catalog.auth import IsTenantAdmin
from catalog.models import Subscription

from ..models import TrialConversion, TrialUsage
from ..trials.services import TrialNotConvertible, trial_convert


class EndTrialSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, help_text="Required: why the trial ends now (stored on the conversion).")

    def validate_reason(self, value: str) -> str:
        if "\x00" in value:
            raise serializers.ValidationError("Null characters are not allowed.")
        return value


def _iso(moment) -> str | None:
    return None if moment is None else moment.isoformat()


def conversion_data(conversion: TrialConversion | None) -> dict[str, Any] | None:
    if conversion is None:
        return None
    return {
        "cause": conversion.cause, "converted_at": _iso(conversion.converted_at),
        "units_used": decimal_text(conversion.units_used), "event_id": conversion.event_id or None,
        "reason": conversion.reason, "recorded_at": _iso(conversion.recorded_at),
    }


def trial_data(subscription: Subscription) -> dict[str, Any]:
    """The trial as the API shows it (two indexed reads)."""
    used = TrialUsage.objects.filter(subscription_id=subscription.pk).values_list("units", "free_events").first()
    conversion = TrialConversion.objects.filter(subscription_id=subscription.pk).first()
    return {
        "subscription": subscription.pk, "has_trial": subscription.has_trial,
        "ends_at": _iso(subscription.trial_ends_at),
        "metric": subscription.trial_metric.code if subscription.trial_metric_id else None,
        "units": None if subscription.trial_units is None else decimal_text(subscription.trial_units),
        "units_used": decimal_text(used[0] if used else 0), "free_events": used[1] if used else 0,
        "converted_at": _iso(subscription.trial_converted_at), "conversion": conversion_data(conversion),
    }


TRIAL_SCHEMA = inline_serializer(
    "Trial",
    {
        "subscription": serializers.IntegerField(), "has_trial": serializers.BooleanField(),
        "ends_at": serializers.DateTimeField(allow_null=True), "metric": serializers.CharField(allow_null=True),
        "units": serializers.CharField(allow_null=True), "units_used": serializers.CharField(),
        "free_events": serializers.IntegerField(), "converted_at": serializers.DateTimeField(allow_null=True),
        "conversion": serializers.DictField(allow_null=True),
    },
)


class TrialView(APIView):
    permission_classes = [IsTenantAdmin]

    @extend_schema(summary="A subscription's trial and its conversion", responses={200: TRIAL_SCHEMA}, tags=["subscription"])
    def get(self, request, subscription_id: int) -> Response:
        subscription = get_object_or_404(
            Subscription.objects.select_related("trial_metric"), pk=subscription_id, tenant=request_tenant(request)
        )
        return Response(trial_data(subscription))


class EndTrialView(APIView):
    permission_classes = [IsTenantAdmin]
    parser_classes = [JSONParser]

    @extend_schema(
        summary="End a subscription's trial now",
        request=EndTrialSerializer,
        responses={200: inline_serializer(
            "EndTrialResult",
            {"created": serializers.BooleanField(), "trial": TRIAL_SCHEMA, "subscription": SubscriptionSerializer()},
        )},
        tags=["subscription"],
    )
    def post(self, request, subscription_id: int) -> Response:
        subscription = get_object_or_404(Subscription, pk=subscription_id, tenant=request_tenant(request))
        body = EndTrialSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            result = trial_convert(subscription_id=subscription.pk, reason=body.validated_data["reason"])
        except TrialNotConvertible as refused:
            raise ApiError(code="not_convertible", message=str(refused), status_code=409) from None
        subscription = Subscription.objects.select_related("trial_metric").get(pk=subscription.pk)
        return Response({
            "created": result.created, "trial": trial_data(subscription),
            "subscription": SubscriptionSerializer(subscription, context={"request": request}).data,
        })
