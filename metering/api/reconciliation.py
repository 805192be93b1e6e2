"""GET /api/v1/reconciliation?customer=&period=: proof that no usage event was lost (tenant
admin token). See metering.reconciliation.report."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.exceptions import ApiError
from aforo.kafka import BrokerUnavailable
from aforo.params import query_int
from catalog.auth import IsTenantAdmin
from catalog.models import Customer
from metering.reconciliation.report import PeriodInvalid, period_parse, reconciliation_report


class ReconciliationView(APIView):
    permission_classes = [IsTenantAdmin]

    @extend_schema(
        operation_id="reconciliation_retrieve",
        summary="Reconciliation: accepted events against what became of them",
        description=(
            "Per customer reference (the API key, customer id or subscription id the events carried) and period of "
            "arrival: events accepted by the ingest API, persisted (new in the raw ledger: rated or unmatched), "
            "duplicates, dead-lettered (by reason), in flight (not consumed yet), rated, unmatched and replayed. "
            "`difference` = accepted − (persisted + duplicates + dead_lettered + in_flight) must be 0; when it is "
            "not, the usage topic is read over the minutes that do not balance and the event ids are named "
            "(missing_event_ids, not_accepted_event_ids, in_flight_event_ids). `period`: YYYY-MM, YYYY-MM-DD or "
            "<start>/<end> (ISO 8601 with an offset, at most 62 days); default today (UTC)."
        ),
        tags=["events"],
        parameters=[
            OpenApiParameter("customer", int, description="Only this customer's events (Aforo customer id)."),
            OpenApiParameter("period", str, description="YYYY-MM, YYYY-MM-DD or <start>/<end>; default today (UTC)."),
            OpenApiParameter("scan", str, description="`false`: do not read the topic to name event ids."),
        ],
        responses={
            200: OpenApiResponse(description="The report"),
            400: OpenApiResponse(description="validation_error naming customer or period"),
            503: OpenApiResponse(description="broker_unavailable: the topic could not be read (retry, or scan=false)"),
        },
    )
    def get(self, request):
        now = timezone.now()
        customer_id = query_int(request, "customer")
        if customer_id is not None and not Customer.objects.filter(tenant=request.tenant, pk=customer_id).exists():
            raise ApiError(code="validation_error", message=f"customer: no customer {customer_id} in this tenant.", field="customer")
        try:
            period = period_parse(request.query_params.get("period"), now=now)
        except PeriodInvalid as error:
            raise ApiError(code="validation_error", message=f"period: {error}", field="period") from None
        scan = request.query_params.get("scan", "true").lower() not in ("false", "0", "no")
        try:
            report = reconciliation_report(tenant_id=request.tenant.pk, period=period, customer_id=customer_id, scan=scan, now=now)
        except BrokerUnavailable as error:
            raise ApiError(
                code="broker_unavailable", message=f"The usage topic could not be read: {error}. Retry, or pass scan=false.",
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE, retry_after_s=5,
            ) from None
        return Response(report.as_dict())
