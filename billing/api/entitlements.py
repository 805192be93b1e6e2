"""POST /api/v1/entitlements/check: may this key use `units` more of `metric` now? (ingest token,
what gateways hold). One check (an object) or many ({"checks": [...]}, up to 1,000), answered
from Redis with no database query (billing.entitlements).

This view documents the endpoint (OpenAPI) and answers it under Django's test client; the web
server answers it in front of Django, with the same core (billing.api.entitlements_wsgi: the
middleware stack and DRF cost ~0.5 ms a request, three times the check itself)."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.params import json_body
from billing.entitlements import entitlements_answer
from catalog.auth import IsTenantIngest

CHECK_EXAMPLE = {"api_key": "sk_live_…", "metric": "tool_calls", "units": "1", "dimensions": {"tool_name": "generate"}}
DECISION_EXAMPLE = {
    "allow": True, "reason": "within_limit", "metric": "tool_calls", "limit": "100", "used": "42", "reserved": "0", "remaining": "58",
    "resets_at": "2027-01-01T00:00:00Z", "overage": "block", "subscription_id": 12, "dimension_key": "tool_name=generate",
    "degraded": False,
}

_decision = inline_serializer(
    "EntitlementDecision",
    {
        "allow": serializers.BooleanField(help_text="Let the call through."),
        "reason": serializers.ChoiceField(
            choices=[
                "no_limit", "within_limit", "over_limit_billed", "limit_reached", "counters_unavailable",
                "unknown_api_key", "revoked_api_key", "unknown_customer", "no_active_subscription", "metric_not_priced",
            ],
            help_text="Why: within_limit (used + units <= limit), limit_reached (a block limit: deny), over_limit_billed "
            "(a bill limit: allowed, charged as overage), no_limit, counters_unavailable (Redis down: the limit's "
            "fail setting decided, open allows, closed denies), or why nothing would rate the call.",
        ),
        "metric": serializers.CharField(),
        "limit": serializers.CharField(allow_null=True, help_text="The price's limit in units per period, or null."),
        "used": serializers.CharField(allow_null=True, help_text="Units rated so far this period (exact decimal)."),
        "reserved": serializers.CharField(
            allow_null=True, help_text="Units budget leases hold and have not used yet, or null without a limit."
        ),
        "remaining": serializers.CharField(
            allow_null=True, help_text="max(limit − used − reserved, 0), or null without a limit."
        ),
        "resets_at": serializers.DateTimeField(allow_null=True, help_text="When the period ends and the count restarts."),
        "overage": serializers.CharField(allow_null=True, help_text="block | bill | null"),
        "subscription_id": serializers.IntegerField(allow_null=True),
        "dimension_key": serializers.CharField(help_text="The dimension override that prices the call, or \"\"."),
        "degraded": serializers.BooleanField(help_text="True when the answer was made without the counters."),
    },
)


class EntitlementCheckView(APIView):
    # The default credentials (a query per request): the web server's fast path, which answers this
    # URL in production, remembers tokens (CachedTenantTokenAuthentication) and queries nothing.
    permission_classes = [IsTenantIngest]

    @extend_schema(
        operation_id="entitlements_check",
        summary="Check an entitlement (gateways, on the request path)",
        description=(
            "Whether `units` more of `metric` (default 1) for an api_key or customer_id are allowed now, against "
            "the hard limit of the price that would rate them (its dimension override included), from counters the "
            "consumer keeps in Redis as it rates: no database query per check. Answers reflect events rated so far "
            "(the consumer's lag, typically under 100 ms). One check (an object) answers one decision; "
            "{\"checks\": [...]} (up to 1,000) answers {\"results\": [...]} in order, where an invalid check is "
            "{\"error\": {code, field, message}} and the others are still decided. Nothing is reserved: use budget "
            "leases for that."
        ),
        request={"application/json": {"type": "object"}},
        responses={
            200: _decision,
            400: OpenApiResponse(description="malformed_json, invalid_body, empty_batch, or the check's own code "
                                 "(missing_field, invalid_metric, invalid_quantity, …) with its field"),
            401: OpenApiResponse(description="missing_credentials / invalid_credentials"),
            403: OpenApiResponse(description="wrong_credential_kind: an ingest token is needed"),
            413: OpenApiResponse(description="payload_too_large / batch_too_large"),
            415: OpenApiResponse(description="unsupported_media_type"),
        },
        examples=[
            OpenApiExample("One check", value=CHECK_EXAMPLE, request_only=True),
            OpenApiExample("Allowed", value=DECISION_EXAMPLE, response_only=True),
        ],
    )
    def post(self, request):
        body = json_body(request, what="checks")
        return Response(entitlements_answer(tenant_id=request.tenant.pk, body=body, now=timezone.now()))
