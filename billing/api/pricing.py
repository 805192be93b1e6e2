"""POST /api/v1/pricing/quote (tenant admin token): what a config charges for some usage, with
its breakdown (billing.pricing.pricing_quote, which `manage.py quote` answers through too)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.parsers import JSONParser
from aforo.exceptions import ApiError
from billing.pricing import QuoteInputError, pricing_quote
from billing.rating import MODELS
from billing.rating.params import MAX_EVENTS

from .views import DecimalStringField


class QuoteSerializer(serializers.Serializer):
    """Documents the body; `pricing_quote` parses it (see the module docstring)."""

    config = serializers.JSONField(
        help_text='A pricing config as a metric config holds it, e.g. {"model": "per_unit", "rate": "0.003"}; '
        f"model is one of {', '.join(MODELS)}, optionally with dimension overrides. Decimals are strings."
    )
    units = DecimalStringField(
        required=False,
        help_text="Usage in the period (decimal string or integer). Optional when events are given: "
        "then it is their exact sum, and when both are given they must agree.",
    )
    events = serializers.ListField(
        child=DecimalStringField(),
        required=False,
        max_length=MAX_EVENTS,
        help_text="Transaction amounts in arrival order (percentage prices each one).",
    )
    dimensions = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        help_text="Event dimensions; they pick the config's most specific matching override.",
    )


class QuoteLineSerializer(serializers.Serializer):
    description = serializers.CharField()
    tier = serializers.IntegerField(required=False, help_text="1-based; graduated and volume only.")
    units = DecimalStringField(required=False)
    unit_amount = DecimalStringField(required=False)
    flat_amount = DecimalStringField(required=False)
    amount = DecimalStringField()


class QuoteResultSerializer(serializers.Serializer):
    amount = DecimalStringField(help_text="The exact charge for the period, unrounded; the lines sum to it.")
    model = serializers.ChoiceField(choices=list(MODELS), help_text="The model of the price that applied.")
    dimension_key = serializers.CharField(
        allow_blank=True, help_text='The matching override\'s key (e.g. "region=eu"); empty for the base price.'
    )
    units = DecimalStringField(help_text="The units priced.")
    config = serializers.JSONField(help_text="The config normalised: every parameter present, decimals as strings.")
    breakdown = QuoteLineSerializer(many=True)


GRADUATED_CONFIG = {
    "model": "graduated",
    "tiers": [
        {"up_to": "1000", "unit_amount": "0.01"},
        {"up_to": "10000", "unit_amount": "0.008"},
        {"up_to": None, "unit_amount": "0.005", "flat_amount": "5"},
    ],
}
GRADUATED_QUOTE = {
    "amount": "97",
    "model": "graduated",
    "dimension_key": "",
    "units": "12000",
    "config": {
        "model": "graduated",
        "tiers": [
            {"up_to": "1000", "unit_amount": "0.01", "flat_amount": "0"},
            {"up_to": "10000", "unit_amount": "0.008", "flat_amount": "0"},
            {"up_to": None, "unit_amount": "0.005", "flat_amount": "5"},
        ],
    },
    "breakdown": [
        {
            "description": "tier 1 (0, 1000]",
            "tier": 1,
            "units": "1000",
            "unit_amount": "0.01",
            "flat_amount": "0",
            "amount": "10",
        },
        {
            "description": "tier 2 (1000, 10000]",
            "tier": 2,
            "units": "9000",
            "unit_amount": "0.008",
            "flat_amount": "0",
            "amount": "72",
        },
        {
            "description": "tier 3 (10000, ∞)",
            "tier": 3,
            "units": "2000",
            "unit_amount": "0.005",
            "flat_amount": "5",
            "amount": "15",
        },
    ],
}
PERCENTAGE_CONFIG = {"model": "percentage", "rate": "2.9", "fixed_fee": "0.30"}
PERCENTAGE_QUOTE = {
    "amount": "4.95",
    "model": "percentage",
    "dimension_key": "",
    "units": "150",
    "config": {
        "model": "percentage",
        "rate": "2.9",
        "fixed_fee": "0.3",
        "per_transaction_min": "0",
        "per_transaction_max": None,
        "min_fee": "0",
        "free_events": 0,
        "free_amount": "0",
    },
    "breakdown": [
        {"description": "transaction 1", "units": "100", "unit_amount": "0.029", "flat_amount": "0.3", "amount": "3.2"},
        {"description": "transaction 2", "units": "50", "unit_amount": "0.029", "flat_amount": "0.3", "amount": "1.75"},
    ],
}
QUOTE_EXAMPLES = [
    OpenApiExample("Graduated tiers", value={"config": GRADUATED_CONFIG, "units": "12000"}, request_only=True),
    OpenApiExample("Graduated tiers", value=GRADUATED_QUOTE, response_only=True),
    OpenApiExample(
        "Percentage per transaction", value={"config": PERCENTAGE_CONFIG, "events": ["100", "50"]}, request_only=True
    ),
    OpenApiExample("Percentage per transaction", value=PERCENTAGE_QUOTE, response_only=True),
]


class PricingQuoteView(APIView):
    parser_classes = (JSONParser,)

    @extend_schema(
        operation_id="pricing_quote",
        summary="Quote a pricing config for some usage",
        description=(
            "Prices one period of one metric with the rating engine, without storing anything: the exact amount "
            "(unrounded decimal string), the model of the price that applied, the dimension key of the override "
            "the dimensions matched (empty for the base price), the normalised config and the breakdown per tier, "
            "package or transaction, whose amounts sum to the amount. Send `units`, or `events` (transaction "
            "amounts in arrival order, as percentage prices them) and the units are their exact sum. Decimals are "
            "strings or integers; JSON floats are refused as inexact. A 400 names the field at fault as a path into "
            "the body: `invalid_config` (`config.tiers[1].up_to`), `invalid_usage` (`units`, `events[3]`), "
            "`invalid_dimensions` (`dimensions.region`)."
        ),
        tags=["pricing"],
        request=QuoteSerializer,
        responses={
            200: QuoteResultSerializer,
            400: OpenApiResponse(
                description="invalid_config / invalid_usage / invalid_dimensions, with `field`; invalid_body; "
                "malformed_json"
            ),
            401: OpenApiResponse(description="missing_credentials / invalid_credentials"),
            403: OpenApiResponse(description="wrong_credential_kind: this needs a tenant admin token"),
            415: OpenApiResponse(description="unsupported_media_type: send application/json"),
        },
        examples=QUOTE_EXAMPLES,
    )
    def post(self, request):
        body = request.data
        if not isinstance(body, dict):
            raise ApiError(code="invalid_body", message='Send an object: {"config": {...}, "units": "1000"}.')
        unknown = sorted(set(body) - {"config", "units", "events", "dimensions"})
        if unknown:
            raise ApiError(
                code="invalid_body", message=f"{unknown[0]}: is not part of a quote request.", field=unknown[0]
            )
        try:
            answer = pricing_quote(
                config=body.get("config"),
                units=body.get("units"),
                events=body.get("events"),
                dimensions=body.get("dimensions"),
            )
        except QuoteInputError as error:
            raise ApiError(code=error.code, message=str(error), field=error.field) from None
        return Response(answer)
