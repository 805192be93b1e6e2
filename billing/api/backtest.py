"""POST /api/v1/pricing/backtest (tenant admin token): a candidate price over a metric's rated
usage of a range of months, against what was charged (billing.backtest.pricing_backtest, which
`manage.py backtest` and the admin page answer through too). Synchronous: the range is bounded
(24 months) and the read cancelled past BACKTEST_TIMEOUT_S."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.exceptions import ApiError
from aforo.parsers import JSONParser
from billing.backtest import MAX_MONTHS, BacktestInputError, pricing_backtest

from .views import DecimalStringField

BACKTEST_TIMEOUT_S = 30
FIELDS = {"config", "metric", "plan", "from", "to"}


class BacktestSerializer(serializers.Serializer):
    """Documents the body; `pricing_backtest` parses it."""

    config = serializers.JSONField(help_text="The candidate pricing config, as a metric config holds it (same validator).")
    metric = serializers.CharField(help_text="The metric's code.")
    plan = serializers.IntegerField(required=False, help_text="Only subscriptions rated on this rate plan (its id).")
    # "from" is a Python keyword: declared through the fields mapping below.


BacktestSerializer._declared_fields["from"] = serializers.CharField(help_text="First month of the periods' starts, YYYY-MM (UTC).")
BacktestSerializer._declared_fields["to"] = serializers.CharField(
    help_text=f"Last month of the periods' starts, YYYY-MM (UTC); at most {MAX_MONTHS} months from `from`."
)


class ComparisonSerializer(serializers.Serializer):
    currency = serializers.CharField()
    charged = DecimalStringField(help_text="What the rated ledger charged (usage and zero-usage charges), to the minor unit.")
    candidate = DecimalStringField(help_text="The same usage under the candidate price, to the minor unit.")
    difference = DecimalStringField(help_text="candidate − charged, to the minor unit.")
    change_percent = DecimalStringField(allow_null=True, help_text="difference / charged in %, to 0.1; null if nothing was charged.")


class BacktestRowSerializer(ComparisonSerializer):
    customer = serializers.IntegerField()
    customer_name = serializers.CharField()
    period_start = serializers.DateTimeField()
    events = serializers.IntegerField()
    units = DecimalStringField()


class BacktestCustomerSerializer(ComparisonSerializer):
    customer = serializers.IntegerField()
    customer_name = serializers.CharField()


class BacktestTotalSerializer(ComparisonSerializer):
    customers = serializers.IntegerField()


class BucketSerializer(serializers.Serializer):
    bucket = serializers.CharField()
    customers = serializers.IntegerField()


class DistributionSerializer(serializers.Serializer):
    better_off = serializers.IntegerField()
    worse_off = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    histogram = BucketSerializer(many=True)


class BacktestResultSerializer(serializers.Serializer):
    metric = serializers.CharField()
    plan = serializers.IntegerField(allow_null=True)
    periods_from = serializers.DateTimeField()
    periods_before = serializers.DateTimeField()
    config = serializers.JSONField(help_text="The candidate normalised.")
    events = serializers.IntegerField()
    priced_per_transaction = serializers.BooleanField()
    rows = BacktestRowSerializer(many=True)
    customers = BacktestCustomerSerializer(many=True)
    totals = BacktestTotalSerializer(many=True)
    distribution = DistributionSerializer()


class PricingBacktestView(APIView):
    parser_classes = (JSONParser,)

    @extend_schema(
        operation_id="pricing_backtest",
        summary="Backtest a candidate price over a metric's historical usage",
        description=(
            "For each customer and billing period starting in the months [from, to] (UTC): what the metric's rated "
            "usage was charged (the rated ledger's amounts and each price's zero-usage charge, as settlement's Rate "
            "stage bills them, unprorated) and what the candidate price would have charged for the same usage; "
            "per customer over the range, totals per currency, and the distribution of the changes (customers "
            "better off, worse off, unchanged; a histogram of the % change). Reads only. A 400 names the field: "
            "`invalid_config` (`config.tiers[1].up_to`), `invalid_metric`, `invalid_plan`, `invalid_range` "
            "(`from`, `to`); 404 `not_found` (`metric`, `plan`); 422 `backtest_too_large`."
        ),
        tags=["pricing"],
        request=BacktestSerializer,
        responses={
            200: BacktestResultSerializer,
            400: OpenApiResponse(description="invalid_config / invalid_metric / invalid_plan / invalid_range, with `field`; invalid_body; malformed_json"),
            404: OpenApiResponse(description="not_found: no such metric or rate plan in the token's tenant (`field`)"),
            422: OpenApiResponse(description="backtest_too_large: the range takes too long to read; narrow it"),
        },
    )
    def post(self, request):
        body = request.data
        if not isinstance(body, dict):
            raise ApiError(code="invalid_body", message='Send an object: {"config": {...}, "metric": "api_calls", "from": "2026-01", "to": "2026-03"}.')
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            raise ApiError(code="invalid_body", message=f"{unknown[0]}: is not part of a backtest request.", field=unknown[0])
        try:
            answer = pricing_backtest(
                tenant_id=request.tenant.pk, config=body.get("config"), metric=body.get("metric"), plan=body.get("plan"),
                start=body.get("from"), end=body.get("to"), timeout_s=BACKTEST_TIMEOUT_S,
            )
        except BacktestInputError as error:
            raise ApiError(code=error.code, message=str(error), field=error.field, status_code=error.status) from None
        return Response(answer)
