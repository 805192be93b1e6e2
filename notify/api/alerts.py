"""Alert rules and their firings (tenant admin token):

    GET/POST         /api/v1/alert-rules              list / create (kind, thresholds, metric, rate_plan | subscription, …)
    GET/PATCH/DELETE /api/v1/alert-rules/{id}         read / change / delete (its firings keep their record: deactivate instead)
    GET              /api/v1/alerts?customer=&subscription=&kind=&active=true   firings, newest first
"""

from __future__ import annotations

from django.db.models import ProtectedError
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.exceptions import ApiError
from aforo.pagination import BoundedLimitOffsetPagination
from aforo.params import query_int

from ..alerts import alert_rule_save
from ..models import AlertFiring, AlertRule
from .views import _body


class AlertRuleSerializer(serializers.ModelSerializer):
    metric = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = AlertRule
        fields = [
            "id", "name", "kind", "metric", "thresholds", "rate_plan", "subscription", "factor", "window_minutes",
            "baseline_minutes", "min_units", "is_active", "created_at", "updated_at",
        ]


class AlertRuleWriteSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, max_length=100)
    kind = serializers.ChoiceField(choices=AlertRule.Kind.choices)
    metric = serializers.CharField(required=False, allow_null=True, help_text="The metric's code (or id).")
    thresholds = serializers.ListField(child=serializers.CharField(), required=False, help_text='e.g. ["80", "100"]')
    rate_plan = serializers.IntegerField(required=False, allow_null=True, help_text="A default for the plan.")
    subscription = serializers.IntegerField(required=False, allow_null=True, help_text="An override for one subscription.")
    factor = serializers.CharField(required=False, help_text="anomaly: window rate above factor × baseline rate (3)")
    window_minutes = serializers.IntegerField(required=False, help_text="anomaly: 1–60 (5)")
    baseline_minutes = serializers.IntegerField(required=False, help_text="anomaly: window–1440 (60)")
    min_units = serializers.CharField(required=False, help_text="anomaly: fewer units in the window never alert (100)")
    is_active = serializers.BooleanField(required=False)


class AlertFiringSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertFiring
        fields = [
            "id", "rule", "kind", "customer_id", "subscription_id", "metric", "dimension_key", "period_start",
            "period_end", "threshold", "observed", "reference", "currency", "rated_event_id", "event_id", "message",
            "triggered_at",
        ]


def _rule(request, rule_id: int) -> AlertRule:
    rule = AlertRule.objects.filter(tenant=request.tenant, pk=rule_id).select_related("metric").first()
    if rule is None:
        raise ApiError(code="not_found", message=f"No alert rule {rule_id} in this tenant.", status_code=404)
    return rule


class AlertRuleListView(APIView):
    @extend_schema(operation_id="alert_rules_list", tags=["alerts"], responses=AlertRuleSerializer(many=True))
    def get(self, request):
        rows = AlertRule.objects.filter(tenant=request.tenant).select_related("metric").order_by("-id")
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(AlertRuleSerializer(page, many=True).data)

    @extend_schema(operation_id="alert_rules_create", tags=["alerts"], request=AlertRuleWriteSerializer,
                   responses={201: AlertRuleSerializer})
    def post(self, request):
        rule = alert_rule_save(tenant_id=request.tenant.pk, data=_body(request))
        return Response(AlertRuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class AlertRuleDetailView(APIView):
    @extend_schema(operation_id="alert_rules_read", tags=["alerts"], responses=AlertRuleSerializer)
    def get(self, request, rule_id: int):
        return Response(AlertRuleSerializer(_rule(request, rule_id)).data)

    @extend_schema(operation_id="alert_rules_update", tags=["alerts"], request=AlertRuleWriteSerializer,
                   responses=AlertRuleSerializer)
    def patch(self, request, rule_id: int):
        rule = alert_rule_save(tenant_id=request.tenant.pk, data=_body(request), instance=_rule(request, rule_id))
        return Response(AlertRuleSerializer(rule).data)

    @extend_schema(operation_id="alert_rules_delete", tags=["alerts"], responses={204: None},
                   description="Deletes a rule that never fired; one that did is kept with its firings (409): deactivate it.")
    def delete(self, request, rule_id: int):
        rule = _rule(request, rule_id)
        try:
            rule.delete()
        except ProtectedError:
            raise ApiError(
                code="rule_has_firings", status_code=409,
                message="This rule has fired: its firings keep it. Set is_active to false instead.",
            ) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class AlertFiringListView(APIView):
    @extend_schema(
        operation_id="alerts_list", tags=["alerts"], responses=AlertFiringSerializer(many=True),
        parameters=[
            OpenApiParameter("customer", int), OpenApiParameter("subscription", int),
            OpenApiParameter("kind", str, enum=AlertRule.Kind.values),
            OpenApiParameter("active", bool, description="Only firings of periods not yet ended."),
        ],
    )
    def get(self, request):
        rows = AlertFiring.objects.filter(tenant=request.tenant).order_by("-id")
        customer = query_int(request, "customer")
        if customer is not None:
            rows = rows.filter(customer_id=customer)
        subscription = query_int(request, "subscription")
        if subscription is not None:
            rows = rows.filter(subscription_id=subscription)
        kind = request.query_params.get("kind")
        if kind:
            if kind not in AlertRule.Kind.values:
                raise ApiError(code="validation_error", field="kind", message=f"kind: one of {AlertRule.Kind.values}.")
            rows = rows.filter(kind=kind)
        active = request.query_params.get("active")
        if active not in (None, "", "true", "false"):
            raise ApiError(code="validation_error", field="active", message="active: true or false.")
        if active == "true":
            rows = rows.filter(period_end__gt=timezone.now())
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(AlertFiringSerializer(page, many=True).data)
