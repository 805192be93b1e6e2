"""GET /api/v1/customers/{id}/usage/series: a customer's usage of one metric over time, per hour
or per day, from the hourly rollups (billing.series) — never a scan of the rated ledger."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from django.utils import timezone as dj_timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.exceptions import ApiError
from billing.series import GRANULARITIES, MAX_BUCKETS, usage_series
from catalog.models import Customer, Metric

DEFAULT_SPAN = {"hour": timedelta(hours=48), "day": timedelta(days=31)}

_point = inline_serializer(
    "UsageSeriesPoint",
    {
        "start": serializers.DateTimeField(help_text="The bucket's start (UTC); it lasts one hour or one day."),
        "units": serializers.CharField(help_text="Units rated in the bucket (exact decimal)."),
        "amount": serializers.CharField(help_text="Their rated usage charge (exact decimal; fees and minimums excluded)."),
        "blocked_units": serializers.CharField(help_text="Units past a block limit: recorded, not charged."),
        "events": serializers.IntegerField(),
    },
)
_series = inline_serializer(
    "UsageSeries",
    {
        "customer_id": serializers.IntegerField(),
        "metric": serializers.CharField(),
        "metric_name": serializers.CharField(),
        "granularity": serializers.ChoiceField(choices=list(GRANULARITIES)),
        "from": serializers.DateTimeField(),
        "to": serializers.DateTimeField(),
        "points": serializers.ListField(child=_point),
    },
)


def _floor(moment: datetime, granularity: str) -> datetime:
    moment = moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if granularity == "day" else moment


def _ceil(moment: datetime, granularity: str) -> datetime:
    floor = _floor(moment, granularity)
    return floor if floor == moment else floor + GRANULARITIES[granularity]


def _moment(request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(raw) if len(raw) <= 64 and raw.isascii() else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ApiError(
            code="validation_error", field=name,
            message=f"{name}: must be an ISO 8601 instant with its offset, such as 2026-12-01T00:00:00Z.",
        )
    try:
        return moment.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise ApiError(code="validation_error", field=name, message=f"{name}: is outside the representable range.") from None


class CustomerUsageSeriesView(APIView):
    @extend_schema(
        operation_id="customer_usage_series",
        summary="A customer's usage of one metric over time",
        description=(
            "Units, rated amount, blocked units and events per UTC hour or day in [from, to), over all of the "
            "customer's subscriptions and dimension keys, every bucket present (zeros included), oldest first. "
            "From hourly rollups the consumer keeps in the rating transaction: exact at every commit, and never a "
            "scan of the rated ledger. `from` is rounded down and `to` up to whole buckets; by default the last 48 "
            f"hours or 31 days up to now. At most {MAX_BUCKETS} buckets."
        ),
        tags=["usage"],
        parameters=[
            OpenApiParameter("metric", OpenApiTypes.STR, required=True, description="The metric code."),
            OpenApiParameter("granularity", OpenApiTypes.STR, enum=list(GRANULARITIES), description="day (default) or hour"),
            OpenApiParameter("from", OpenApiTypes.DATETIME, description="ISO 8601 with offset; default: `to` − 31 days (48 h)"),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="ISO 8601 with offset; default: now"),
        ],
        responses={
            200: _series,
            400: OpenApiResponse(description="validation_error (field: metric, granularity, from, to) / range_too_large"),
            401: OpenApiResponse(description="missing_credentials / invalid_credentials"),
            403: OpenApiResponse(description="wrong_credential_kind: this needs a tenant admin token"),
            404: OpenApiResponse(description="not_found: no such customer, or no such metric, in the token's tenant"),
        },
    )
    def get(self, request, customer_id: int):
        customer = Customer.objects.filter(tenant=request.tenant, pk=customer_id).first()
        if customer is None:
            raise ApiError(code="not_found", message=f"No customer {customer_id} in this tenant.", status_code=404)
        code = request.query_params.get("metric") or ""
        if not code:
            raise ApiError(code="validation_error", field="metric", message="metric: the metric code is required.")
        metric = Metric.objects.filter(tenant=request.tenant, code=code).first() if len(code) <= 100 else None
        if metric is None:
            raise ApiError(code="not_found", field="metric", message=f"No metric {code[:100]!r} in this tenant.", status_code=404)
        granularity = request.query_params.get("granularity") or "day"
        if granularity not in GRANULARITIES:
            raise ApiError(code="validation_error", field="granularity", message="granularity: must be hour or day.")
        end = _ceil(_moment(request, "to") or dj_timezone.now(), granularity)
        start = _floor(_moment(request, "from") or end - DEFAULT_SPAN[granularity], granularity)
        if start >= end:
            raise ApiError(code="validation_error", field="from", message="from: must be before to.")
        buckets = (end - start) // GRANULARITIES[granularity]
        if buckets > MAX_BUCKETS:
            raise ApiError(
                code="range_too_large", field="from",
                message=f"The range holds {buckets} {granularity}s; at most {MAX_BUCKETS} in one request.",
            )
        return Response(usage_series(customer=customer, metric=metric, granularity=granularity, start=start, end=end))
