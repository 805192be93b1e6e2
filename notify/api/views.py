"""Webhook endpoints and deliveries (tenant admin token):

    GET/POST        /api/v1/webhook-endpoints                     list / create (the secret is shown here and on rotation)
    GET/PATCH/DELETE /api/v1/webhook-endpoints/{id}               read / change url, event_types, description, is_active / deactivate
    POST            /api/v1/webhook-endpoints/{id}/rotate-secret  a new secret; the old one signs too for 24 h
    GET             /api/v1/webhook-deliveries?endpoint=&status=  the delivery log, newest first
    POST            /api/v1/webhook-deliveries/{id}/resend        send again (same event id)
"""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.exceptions import ApiError
from aforo.pagination import BoundedLimitOffsetPagination
from aforo.params import query_int

from ..models import EVENT_TYPES, WebhookDelivery, WebhookEndpoint
from ..services import (
    webhook_delivery_resend,
    webhook_endpoint_create,
    webhook_event_types_check,
    webhook_secret_rotate,
    webhook_url_check,
)


class EndpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "description", "event_types", "is_active", "created_at", "previous_secret_expires_at"]


class EndpointWithSecretSerializer(EndpointSerializer):
    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "secret"]


class EndpointWriteSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="http(s) URL Aforo POSTs the signed JSON to.")
    event_types = serializers.ListField(child=serializers.CharField(), help_text=f'{list(EVENT_TYPES)} or ["*"]')
    description = serializers.CharField(required=False, allow_blank=True, max_length=200)
    is_active = serializers.BooleanField(required=False)


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id", "endpoint", "event_id", "event_type", "status", "attempts", "response_status", "latency_ms",
            "last_error", "next_attempt_at", "created_at", "delivered_at", "payload",
        ]


def _body(request) -> dict:
    if not isinstance(request.data, dict):
        raise ApiError(code="invalid_body", message="Send a JSON object.")
    return request.data


def _endpoint(request, endpoint_id: int) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(tenant=request.tenant, pk=endpoint_id).first()
    if endpoint is None:
        raise ApiError(code="not_found", message=f"No webhook endpoint {endpoint_id} in this tenant.", status_code=404)
    return endpoint


class EndpointListView(APIView):
    @extend_schema(operation_id="webhook_endpoints_list", tags=["webhooks"], responses=EndpointSerializer(many=True))
    def get(self, request):
        rows = WebhookEndpoint.objects.filter(tenant=request.tenant).order_by("-id")
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(EndpointSerializer(page, many=True).data)

    @extend_schema(
        operation_id="webhook_endpoints_create", tags=["webhooks"], request=EndpointWriteSerializer,
        responses={201: EndpointWithSecretSerializer},
        description="The response carries the signing secret (whsec_…): store it; later reads do not show it.",
    )
    def post(self, request):
        body = _body(request)
        endpoint = webhook_endpoint_create(
            tenant_id=request.tenant.pk, url=body.get("url"), event_types=body.get("event_types"),
            description=str(body.get("description") or ""),
        )
        return Response(EndpointWithSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class EndpointDetailView(APIView):
    @extend_schema(operation_id="webhook_endpoints_read", tags=["webhooks"], responses=EndpointSerializer)
    def get(self, request, endpoint_id: int):
        return Response(EndpointSerializer(_endpoint(request, endpoint_id)).data)

    @extend_schema(operation_id="webhook_endpoints_update", tags=["webhooks"], request=EndpointWriteSerializer,
                   responses=EndpointSerializer)
    def patch(self, request, endpoint_id: int):
        endpoint, body = _endpoint(request, endpoint_id), _body(request)
        if "url" in body:
            endpoint.url = webhook_url_check(body["url"])
        if "event_types" in body:
            endpoint.event_types = webhook_event_types_check(body["event_types"])
        if "description" in body:
            endpoint.description = str(body["description"] or "")[:200]
        if "is_active" in body:
            if not isinstance(body["is_active"], bool):
                raise ApiError(code="validation_error", field="is_active", message="is_active: true or false.")
            endpoint.is_active = body["is_active"]
        endpoint.save()
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(operation_id="webhook_endpoints_deactivate", tags=["webhooks"], responses={204: None},
                   description="Deactivates the endpoint (its delivery log is kept).")
    def delete(self, request, endpoint_id: int):
        endpoint = _endpoint(request, endpoint_id)
        endpoint.is_active = False
        endpoint.save(update_fields=["is_active"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointRotateView(APIView):
    @extend_schema(operation_id="webhook_endpoints_rotate_secret", tags=["webhooks"], request=None,
                   responses=EndpointWithSecretSerializer,
                   description="A new secret; deliveries carry a signature under the old one too for 24 hours.")
    def post(self, request, endpoint_id: int):
        with transaction.atomic():
            endpoint = webhook_secret_rotate(endpoint=_endpoint(request, endpoint_id))
        return Response(EndpointWithSecretSerializer(endpoint).data)


class DeliveryListView(APIView):
    @extend_schema(
        operation_id="webhook_deliveries_list", tags=["webhooks"], responses=DeliverySerializer(many=True),
        parameters=[OpenApiParameter("endpoint", int), OpenApiParameter("status", str, enum=WebhookDelivery.Status.values)],
    )
    def get(self, request):
        rows = WebhookDelivery.objects.filter(tenant=request.tenant).order_by("-id")
        endpoint = query_int(request, "endpoint")
        if endpoint is not None:
            rows = rows.filter(endpoint_id=endpoint)
        wanted = request.query_params.get("status")
        if wanted:
            if wanted not in WebhookDelivery.Status.values:
                raise ApiError(code="validation_error", field="status",
                               message=f"status: one of {WebhookDelivery.Status.values}.")
            rows = rows.filter(status=wanted)
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(DeliverySerializer(page, many=True).data)


class DeliveryResendView(APIView):
    @extend_schema(operation_id="webhook_deliveries_resend", tags=["webhooks"], request=None,
                   responses=DeliverySerializer)
    def post(self, request, delivery_id: int):
        delivery = WebhookDelivery.objects.filter(tenant=request.tenant, pk=delivery_id).first()
        if delivery is None:
            raise ApiError(code="not_found", message=f"No webhook delivery {delivery_id} in this tenant.", status_code=404)
        with transaction.atomic():
            delivery = webhook_delivery_resend(delivery=delivery)
        delivery.refresh_from_db()
        return Response(DeliverySerializer(delivery).data)
