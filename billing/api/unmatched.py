"""POST /api/v1/unmatched-usage/replay: rate the unmatched usage that now matches the catalog
(the list itself is metering's: GET /api/v1/unmatched-usage). Replaying is rating, so it lives
here, above metering."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.kafka import BrokerUnavailable
from catalog.auth import IsTenantAdmin

from ..services import rated_records_publish
from ..usage import unmatched_usage_replay


class UnmatchedUsageReplayView(APIView):
    permission_classes = [IsTenantAdmin]

    @extend_schema(
        request=None,
        responses=inline_serializer("ReplayResult", {"rated": serializers.IntegerField(), "still_unmatched": serializers.IntegerField()}),
        summary="Rate unmatched usage that now matches the catalog (after creating the key, subscription or price)",
    )
    def post(self, request):
        counts, rated = unmatched_usage_replay(tenant_id=request.tenant.id)
        try:
            rated_records_publish(records=rated)
        except BrokerUnavailable:
            counts["rated_not_published"] = len(rated)
        return Response(counts)
