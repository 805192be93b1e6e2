"""The ingestion API: POST /api/v1/events (one event or a batch of up to INGEST_MAX_BATCH),
the operator's view of unmatched usage, and GET /api/v1/events/{id} (one raw event, admin token)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.exceptions import ApiError
from aforo.params import json_body
from aforo.pagination import BoundedLimitOffsetPagination
from aforo.money import decimal_text
from catalog.auth import IsTenantAdmin, IsTenantIngest
from aforo.kafka import BrokerUnavailable
from metering.models import RawEvent, UnmatchedUsage
from catalog.models import Customer
from metering.cloudevents import CLOUDEVENT, CLOUDEVENTS_BATCH, cloudevent_to_event, subjects_to_look_up
from metering.services import usage_events_ingest
from metering.validation import EventRejected

EVENT_EXAMPLE = {
    "event_id": "req-7f3a-0001",
    "api_key": "sk_live_…",
    "metric": "api_calls",
    "quantity": "1",
    "timestamp": "2026-11-24T10:00:00Z",
    "dimensions": {"region": "eu"},
    "metadata": {"gateway": "kong", "route": "/v1/search"},
}

_result = inline_serializer(
    "IngestResult",
    {
        "accepted": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "rejected": serializers.IntegerField(),
        "results": serializers.ListField(child=serializers.DictField()),
    },
)


class EventIngestView(APIView):
    permission_classes = [IsTenantIngest]

    @extend_schema(
        operation_id="events_ingest",
        summary="Ingest usage events",
        description=(
            "One event (an object), a batch (an array, or {\"events\": [...]}) of up to 1,000. Answers 202 only "
            "after the event log acknowledged every accepted event. Each index is accepted, duplicate (same "
            "event_id already received) or rejected with a stable code and the field at fault. Each event names "
            "who it bills with exactly one of api_key, customer_id or subscription_id (Aforo ids). Quantities are "
            "decimal strings or integers; JSON floats are rejected as inexact. CloudEvents (structured mode) are "
            "taken as application/cloudevents+json (one) and application/cloudevents-batch+json (an array), mapped "
            "as OpenMeter maps them (README: CloudEvents ingest)."
        ),
        request={"application/json": {"type": "object"}, CLOUDEVENT: {"type": "object"}, CLOUDEVENTS_BATCH: {"type": "array"}},
        responses={
            202: _result,
            400: OpenApiResponse(description="malformed_json, empty_batch, invalid_body, or every event rejected (invalid_events)"),
            401: OpenApiResponse(description="missing_credentials / invalid_credentials"),
            413: OpenApiResponse(description="payload_too_large / batch_too_large"),
            415: OpenApiResponse(description="unsupported_media_type"),
            503: OpenApiResponse(description="broker_unavailable: nothing accepted; retry the same request"),
        },
        examples=[OpenApiExample("One event", value=EVENT_EXAMPLE, request_only=True)],
    )
    def post(self, request):
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        body = json_body(request, what="events", content_types=("application/json", CLOUDEVENT, CLOUDEVENTS_BATCH))
        if content_type in (CLOUDEVENT, CLOUDEVENTS_BATCH):
            payloads = _cloudevents(request, body, batch=content_type == CLOUDEVENTS_BATCH)
        elif isinstance(body, dict) and isinstance(body.get("events"), list):
            payloads = body["events"]
        elif isinstance(body, dict):
            payloads = [body]
        elif isinstance(body, list):
            payloads = body
        else:
            raise ApiError(code="invalid_body", message="Send one event object, an array of events or {\"events\": [...]}.")
        if not payloads:
            raise ApiError(code="empty_batch", message="The batch holds no events.")
        if len(payloads) > settings.INGEST_MAX_BATCH:
            raise ApiError(
                code="batch_too_large",
                message=f"A batch holds at most {settings.INGEST_MAX_BATCH} events; this one has {len(payloads)}.",
                status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        try:
            outcome = usage_events_ingest(tenant=request.tenant, payloads=payloads)
        except BrokerUnavailable as error:
            raise ApiError(
                code="broker_unavailable",
                message=(
                    "The event log did not acknowledge the events, so none can be counted as accepted. "
                    f"Retry the same request (event ids make retries safe). Detail: {error}"
                ),
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                retry_after_s=2,
            ) from None
        body = {
            "accepted": outcome.accepted,
            "duplicates": outcome.duplicates,
            "rejected": outcome.rejected,
            "results": outcome.results,
        }
        if outcome.rejected == len(payloads):
            first = outcome.results[0]
            return Response(
                {"error": {"code": "invalid_events", "message": f"Every event was rejected; first: index 0: {first['message']}"}, **body},
                status=status.HTTP_400_BAD_REQUEST,
            )
        return Response(body, status=status.HTTP_202_ACCEPTED)


def _cloudevents(request, body: object, *, batch: bool) -> list:
    """The CloudEvents of the body as usage event payloads (metering.cloudevents), or the
    EventRejected of those that do not map; subjects that may be external ids in one query."""
    if batch and not isinstance(body, list):
        raise ApiError(code="invalid_body", message="Send a JSON array of CloudEvents (application/cloudevents-batch+json).")
    if not batch and not isinstance(body, dict):
        raise ApiError(code="invalid_body", message="Send one CloudEvent object (application/cloudevents+json).")
    items = body if batch else [body]
    if len(items) > settings.INGEST_MAX_BATCH:
        return items  # the batch size check below answers it
    wanted = subjects_to_look_up(items)
    known = dict(
        Customer.objects.filter(tenant=request.tenant, external_id__in=wanted).values_list("external_id", "id")
    ) if wanted else {}
    received_at = timezone.now()
    payloads: list = []
    for ce in items:
        try:
            payloads.append(cloudevent_to_event(ce, received_at=received_at, customer_by_external_id=known.get))
        except EventRejected as rejection:
            payloads.append(rejection)
    return payloads


class UnmatchedUsageSerializer(serializers.ModelSerializer):
    event_id = serializers.CharField(source="raw_event.event_id")
    metric = serializers.CharField(source="raw_event.metric")
    quantity = serializers.DecimalField(source="raw_event.quantity", max_digits=32, decimal_places=12)
    timestamp = serializers.DateTimeField(source="raw_event.timestamp")
    api_key_prefix = serializers.CharField(source="raw_event.api_key_prefix")

    class Meta:
        model = UnmatchedUsage
        fields = ["id", "event_id", "metric", "quantity", "timestamp", "api_key_prefix", "reason", "detail", "created_at", "resolved_at"]


class UnmatchedUsageListView(APIView):
    permission_classes = [IsTenantAdmin]

    @extend_schema(responses=UnmatchedUsageSerializer(many=True), summary="Unmatched usage (unresolved first)")
    def get(self, request):
        queryset = (
            UnmatchedUsage.objects.filter(tenant=request.tenant)
            .select_related("raw_event")
            .order_by("resolved_at", "-id")
        )
        if request.query_params.get("resolved") in ("false", "0"):
            queryset = queryset.filter(resolved_at__isnull=True)
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(UnmatchedUsageSerializer(page, many=True).data)


class RawEventSerializer(serializers.ModelSerializer):
    quantity = serializers.SerializerMethodField(help_text="Exact decimal string.")
    metadata = serializers.JSONField(help_text="The gateway metadata the event carried, as received.")
    rated_event_id = serializers.SerializerMethodField(
        help_text="Its current rated event (the newest after a re-rating); null if not rated, or reversed."
    )
    reversed = serializers.SerializerMethodField(help_text="True once the event was reversed (POST …/reverse).")

    class Meta:
        model = RawEvent
        fields = [
            "id", "event_id", "timestamp", "received_at", "metric", "quantity", "dimensions", "metadata",
            "api_key_prefix", "is_late", "rated_event_id", "reversed",
        ]

    def get_quantity(self, raw_event: RawEvent) -> str:
        return decimal_text(raw_event.quantity)

    @staticmethod
    def _newest(raw_event: RawEvent):
        ratings = list(raw_event.ratings.all())  # prefetched: its first rating and any corrections
        return max(ratings, key=lambda rated: rated.pk) if ratings else None

    def get_rated_event_id(self, raw_event: RawEvent) -> int | None:
        newest = self._newest(raw_event)
        return newest.pk if newest is not None and newest.reverses_id is None else None

    def get_reversed(self, raw_event: RawEvent) -> bool:
        newest = self._newest(raw_event)
        return newest is not None and newest.reverses_id is not None


RAW_EVENT_EXAMPLE = {
    "id": 771203, "event_id": "req-7f3a-0001", "timestamp": "2026-10-14T09:12:03.120000Z",
    "received_at": "2026-10-14T09:12:03.180000Z", "metric": "api_calls", "quantity": "1000",
    "dimensions": {"region": "eu"}, "metadata": {"gateway": "kong", "route": "/v1/search"},
    "api_key_prefix": "sk_live_3f9a1c2b", "is_late": False, "rated_event_id": 884101, "reversed": False,
}


class RawEventDetailView(APIView):
    """GET /api/v1/events/{id}: a different route from POST /api/v1/events (ingest, ingest token),
    so each keeps its own credential: reading the raw ledger needs the tenant admin token."""

    permission_classes = [IsTenantAdmin]

    @extend_schema(
        operation_id="events_retrieve",
        summary="A raw usage event, as received",
        description="The event exactly as ingested: its original timestamp, when Aforo received it, quantity "
        "(exact decimal string), dimensions, gateway metadata, the prefix of the API key it carried, whether it "
        "arrived late, and the id of the rated event it became (null while unrated or unmatched). `id` is Aforo's "
        "id (the rated events of an invoice line link here), not the client's event_id.",
        tags=["events"],
        responses={
            200: RawEventSerializer, 401: OpenApiResponse(description="missing_credentials / invalid_credentials"),
            403: OpenApiResponse(description="wrong_credential_kind: reading events needs a tenant admin token"),
            404: OpenApiResponse(description="not_found: no such event in the token's tenant"),
        },
        examples=[OpenApiExample("A rated event", value=RAW_EVENT_EXAMPLE, response_only=True)],
    )
    def get(self, request, raw_event_id: int):
        raw_event = RawEvent.objects.prefetch_related("ratings").filter(tenant=request.tenant, pk=raw_event_id).first()
        if raw_event is None:
            raise ApiError(code="not_found", message=f"No event {raw_event_id} in this tenant.", status_code=404)
        return Response(RawEventSerializer(raw_event).data)


SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "usage-event-v1.json"


class UsageEventSchemaView(APIView):
    """The usage event v1 as a JSON Schema (docs/schemas/usage-event-v1.json): public, cached."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(operation_id="usage_event_schema", tags=["events"], auth=[],
                   responses={(200, "application/schema+json"): {"type": "object"}})
    def get(self, request):
        response = HttpResponse(SCHEMA_PATH.read_bytes(), content_type="application/schema+json")
        response["Cache-Control"] = "public, max-age=3600"
        return response
