"""Re-rating jobs and single-event reversal (tenant admin token; billing.rerating):

    POST /api/v1/rerating-jobs          {subscription | customer | rate_plan, period "YYYY-MM", reason,
                                         dry_run?, settled? "adjust"} → 202 and the job; it runs as a
                                         Celery task (a dry run writes no ledger row; its report says
                                         what would change)
    GET  /api/v1/rerating-jobs/{id}     the job: status, report (the difference per event, invoice
                                         line, customer and in total; what was written)
    POST /api/v1/events/{id}/reverse    {reason, dry_run?} → 200 and the job: the raw event's rating
                                         reversed, the later events of its period rated again

Another tenant's job or event is a 404."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.parsers import JSONParser
from catalog.api.serializers import request_tenant
from catalog.auth import IsTenantAdmin

from ..models import RatingCorrection
from ..rerating.services import event_reverse, rerating_job_create, rerating_job_start

ID_MAX = 2**63 - 1


class RerateCreateSerializer(serializers.Serializer):
    subscription = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=ID_MAX)
    customer = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=ID_MAX)
    rate_plan = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=ID_MAX)
    period = serializers.CharField(max_length=7)
    reason = serializers.CharField(max_length=300)
    dry_run = serializers.BooleanField(required=False, default=False)
    settled = serializers.ChoiceField(choices=RatingCorrection.Settled.values, required=False, default="adjust")


class ReverseSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300)
    dry_run = serializers.BooleanField(required=False, default=False)


def _iso(moment) -> str | None:
    return None if moment is None else moment.isoformat()


def rerating_job_data(job: RatingCorrection) -> dict[str, Any]:
    return {
        "id": job.pk, "kind": job.kind, "subscription": job.subscription_id, "customer": job.customer_id,
        "rate_plan": job.rate_plan_id, "period": job.period, "raw_event": job.raw_event_id, "reason": job.reason,
        "dry_run": job.dry_run, "settled": job.settled, "status": job.status, "report": job.report,
        "error": job.error or None, "created_at": _iso(job.created_at), "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }


RERATING_JOB_SCHEMA = inline_serializer(
    "ReratingJob",
    {
        "id": serializers.IntegerField(), "kind": serializers.CharField(),
        "subscription": serializers.IntegerField(allow_null=True), "customer": serializers.IntegerField(allow_null=True),
        "rate_plan": serializers.IntegerField(allow_null=True), "period": serializers.CharField(),
        "raw_event": serializers.IntegerField(allow_null=True), "reason": serializers.CharField(),
        "dry_run": serializers.BooleanField(), "settled": serializers.CharField(), "status": serializers.CharField(),
        "report": serializers.DictField(), "error": serializers.CharField(allow_null=True),
        "created_at": serializers.DateTimeField(), "started_at": serializers.DateTimeField(allow_null=True),
        "finished_at": serializers.DateTimeField(allow_null=True),
    },
)


class RerateJobListView(APIView):
    permission_classes = [IsTenantAdmin]
    parser_classes = [JSONParser]

    @extend_schema(
        summary="Re-rate a month at today's prices: a dry run's report, or the corrections written",
        request=RerateCreateSerializer, responses={202: RERATING_JOB_SCHEMA}, tags=["usage"],
    )
    def post(self, request) -> Response:
        body = RerateCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        job = rerating_job_create(
            tenant_id=request_tenant(request).pk, period=data["period"], reason=data["reason"],
            subscription_id=data.get("subscription"), customer_id=data.get("customer"), rate_plan_id=data.get("rate_plan"),
            dry_run=data["dry_run"], settled=data["settled"], requested_by="api",
        )
        rerating_job_start(job=job)
        job.refresh_from_db()  # eager tasks (tests) ran already
        return Response(rerating_job_data(job), status=202)


class RerateJobDetailView(APIView):
    permission_classes = [IsTenantAdmin]

    @extend_schema(summary="A re-rating job: status and report", responses={200: RERATING_JOB_SCHEMA}, tags=["usage"])
    def get(self, request, job_id: int) -> Response:
        job = get_object_or_404(RatingCorrection, pk=job_id, tenant=request_tenant(request))
        return Response(rerating_job_data(job))


class EventReverseView(APIView):
    permission_classes = [IsTenantAdmin]
    parser_classes = [JSONParser]

    @extend_schema(
        summary="Reverse one event: its rating removed, the later events of its period rated again",
        request=ReverseSerializer, responses={200: RERATING_JOB_SCHEMA}, tags=["usage"],
    )
    def post(self, request, raw_event_id: int) -> Response:
        body = ReverseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        job = event_reverse(
            tenant_id=request_tenant(request).pk, raw_event_id=raw_event_id, reason=body.validated_data["reason"],
            dry_run=body.validated_data["dry_run"], requested_by="api",
        )
        return Response(rerating_job_data(job))
