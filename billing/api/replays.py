"""Replay runs (tenant admin token; billing.replay):

    POST /api/v1/replays        {source, partition?, from_offset?, to_offset?, limit?, dry_run?}
                                → 202 and the run; it runs as a Celery task (a dry run writes no
                                  ledger row and produces nothing, but its run holds the report)
    GET  /api/v1/replays/{id}   the run: status, progress, report (counts per outcome, reasons)

A tenant's run replays that tenant's records only; another tenant's run is a 404."""

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

from ..models import ReplayRun
from ..replay.services import MAX_LIMIT, replay_run_create, replay_run_start

OFFSET_MAX = 2**63 - 1


class ReplayCreateSerializer(serializers.Serializer):
    source = serializers.ChoiceField(choices=ReplayRun.Source.values)
    partition = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=100_000)
    from_offset = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=OFFSET_MAX)
    to_offset = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=OFFSET_MAX)
    limit = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_LIMIT)
    dry_run = serializers.BooleanField(required=False, default=False)


def _iso(moment) -> str | None:
    return None if moment is None else moment.isoformat()


def replay_run_data(run: ReplayRun) -> dict[str, Any]:
    return {
        "id": run.pk, "source": run.source, "dry_run": run.dry_run, "status": run.status,
        "partition": run.partition, "from_offset": run.from_offset, "to_offset": run.to_offset, "limit": run.limit,
        "progress": run.progress, "report": run.report, "error": run.error or None,
        "created_at": _iso(run.created_at), "started_at": _iso(run.started_at), "finished_at": _iso(run.finished_at),
    }


REPLAY_RUN_SCHEMA = inline_serializer(
    "ReplayRun",
    {
        "id": serializers.IntegerField(), "source": serializers.CharField(), "dry_run": serializers.BooleanField(),
        "status": serializers.CharField(), "partition": serializers.IntegerField(allow_null=True),
        "from_offset": serializers.IntegerField(allow_null=True), "to_offset": serializers.IntegerField(allow_null=True),
        "limit": serializers.IntegerField(allow_null=True), "progress": serializers.IntegerField(),
        "report": serializers.DictField(), "error": serializers.CharField(allow_null=True),
        "created_at": serializers.DateTimeField(), "started_at": serializers.DateTimeField(allow_null=True),
        "finished_at": serializers.DateTimeField(allow_null=True),
    },
)


class ReplayListView(APIView):
    permission_classes = [IsTenantAdmin]
    parser_classes = [JSONParser]

    @extend_schema(
        summary="Start a replay: the DLQ, unmatched usage, or an offset range of the usage topic",
        request=ReplayCreateSerializer, responses={202: REPLAY_RUN_SCHEMA}, tags=["usage"],
    )
    def post(self, request) -> Response:
        body = ReplayCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        run = replay_run_create(
            source=data["source"], tenant_id=request_tenant(request).pk, dry_run=data["dry_run"],
            partition=data.get("partition"), from_offset=data.get("from_offset"), to_offset=data.get("to_offset"),
            limit=data.get("limit"), requested_by="api",
        )
        replay_run_start(run=run)
        run.refresh_from_db()  # eager tasks (tests) ran already
        return Response(replay_run_data(run), status=202)


class ReplayDetailView(APIView):
    permission_classes = [IsTenantAdmin]

    @extend_schema(summary="A replay run: status, progress and report", responses={200: REPLAY_RUN_SCHEMA}, tags=["usage"])
    def get(self, request, replay_id: int) -> Response:
        run = get_object_or_404(ReplayRun, pk=replay_id, tenant=request_tenant(request))
        return Response(replay_run_data(run))
