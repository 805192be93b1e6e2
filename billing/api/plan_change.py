"""The plan change API (tenant admin token):

    POST /api/v1/subscriptions/{id}/change-plan   {rate_plan, offering?, at?, reason?}

Ends the subscription at `at` (default now; never in the past: 400 naming `at`) and starts its
successor there on `rate_plan` (billing.plan_change): 201 with both. The plan must be in the
subscription's currency and of `offering` (default the current one); a subscription canceled or
ended already is a 409 `not_changeable`; another tenant's subscription a 404 and its plan a 400."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.parsers import JSONParser
from aforo.exceptions import ApiError
from catalog.api.serializers import SubscriptionSerializer, TenantPrimaryKeyRelatedField, request_tenant
from catalog.auth import IsTenantAdmin
from catalog.models import Offering, RatePlan, Subscription

from ..plan_change import PlanChangeRefused, plan_change


class PlanChangeSerializer(serializers.Serializer):
    rate_plan = TenantPrimaryKeyRelatedField(queryset=RatePlan.objects.all(), help_text="The new plan's id.")
    offering = TenantPrimaryKeyRelatedField(
        queryset=Offering.objects.all(), required=False, help_text="The new plan's offering (default: the current one)."
    )
    at = serializers.DateTimeField(required=False, help_text="When the new plan takes over: now (default) or later.")
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")

    def validate_reason(self, value: str) -> str:
        if "\x00" in value:
            raise serializers.ValidationError("Null characters are not allowed.")
        return value


class PlanChangeView(APIView):
    permission_classes = [IsTenantAdmin]
    parser_classes = [JSONParser]

    @extend_schema(
        summary="Change a subscription's plan at an instant",
        request=PlanChangeSerializer,
        responses={201: inline_serializer("PlanChangeResult", {"ended": SubscriptionSerializer(), "started": SubscriptionSerializer()})},
        tags=["subscription"],
    )
    def post(self, request, subscription_id: int) -> Response:
        subscription = get_object_or_404(Subscription, pk=subscription_id, tenant=request_tenant(request))
        body = PlanChangeSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        try:
            change = plan_change(
                subscription=subscription, rate_plan=body.validated_data["rate_plan"],
                offering=body.validated_data.get("offering"), at=body.validated_data.get("at"),
                reason=body.validated_data["reason"],
            )
        except PlanChangeRefused as refused:
            if "__all__" in refused.message_dict:
                raise ApiError(code="not_changeable", message=" ".join(refused.message_dict["__all__"]), status_code=409) from None
            raise serializers.ValidationError(refused.message_dict) from None
        context = {"request": request}
        return Response(
            {"ended": SubscriptionSerializer(change.ended, context=context).data,
             "started": SubscriptionSerializer(change.started, context=context).data},
            status=status.HTTP_201_CREATED,
        )
