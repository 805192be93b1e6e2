"""The usage API: GET /api/v1/customers/{id}/usage — the current period's running totals of a
customer of the token's tenant (admin token)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.exceptions import ApiError
from aforo.money import decimal_text
from billing.selectors import customer_usage_current
from wallets.selectors import credit_grants_for_customer
from catalog.models import Customer


@extend_schema_field({"type": "string", "format": "decimal", "example": "0.003"})
class DecimalStringField(serializers.CharField):
    """An exact decimal, as a string (never a JSON number)."""


class ExactDecimalField(DecimalStringField):
    """A read-only exact decimal without trailing zeros ("1000", "0.000003")."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return decimal_text(value)


class MetricLimitSerializer(serializers.Serializer):
    units = DecimalStringField(help_text="The hard limit: units allowed per period.")
    overage = serializers.ChoiceField(
        choices=["block", "bill"],
        help_text="block: usage beyond the limit is recorded and rated at zero as it comes (never charged; the "
        "gateway should refuse it); bill: it is charged as usual, as overage.",
    )
    blocked = DecimalStringField(
        help_text='Units past a "block" limit so far: recorded, not charged ("0" for "bill" or within the limit).'
    )
    remaining = DecimalStringField(help_text="max(limit − units, 0).")
    reached = serializers.BooleanField(help_text="units >= limit: a gateway blocks the next call.")
    exceeded = serializers.BooleanField(help_text="units > limit: usage already went past the limit.")
    percent_used = DecimalStringField(
        help_text='units / limit × 100, 2 places ROUND_HALF_UP, may pass 100. A limit of 0: "100" once anything is '
        'used, else "0".'
    )


class MetricIncludedSerializer(serializers.Serializer):
    units = DecimalStringField(
        help_text="Units the price includes: per_unit included_free, included_quota quota, package free_units, or a "
        "free first tier of graduated/volume."
    )
    remaining = DecimalStringField(help_text="max(included − units, 0).")
    percent_used = DecimalStringField(help_text="units / included × 100, 2 places ROUND_HALF_UP, may pass 100.")


class MetricUsageSerializer(serializers.Serializer):
    metric = serializers.CharField(help_text="The metric code events carry.")
    metric_name = serializers.CharField()
    unit = serializers.CharField()
    dimension_key = serializers.CharField(
        allow_blank=True, help_text="Empty unless the metric is priced per dimension."
    )
    units = DecimalStringField(help_text="Units so far this period.")
    amount = DecimalStringField(help_text="Usage charges rated so far this period, exact (not yet rounded).")
    event_count = serializers.IntegerField()
    limit = MetricLimitSerializer(
        allow_null=True,
        help_text="The hard usage limit of this row's price in the version in force, or null (none, or a dimension "
        "key the version in force no longer prices).",
    )
    included = MetricIncludedSerializer(
        allow_null=True, help_text="The included allowance of this row's price in the version in force, or null."
    )


class SubscriptionUsageSerializer(serializers.Serializer):
    subscription_id = serializers.IntegerField()
    offering = serializers.CharField()
    rate_plan = serializers.CharField()
    rate_plan_version_id = serializers.IntegerField(allow_null=True, help_text="The version in force now.")
    currency = serializers.CharField()
    billing_mode = serializers.ChoiceField(choices=["postpaid", "prepaid", "hybrid"])
    billing_cadence = serializers.ChoiceField(choices=["monthly", "weekly"])
    period_start = serializers.DateTimeField(help_text="Start of the current period (inclusive).")
    period_end = serializers.DateTimeField(help_text="End of the current period (exclusive).")
    amount_total = DecimalStringField(help_text="Sum of the metrics' amounts.")
    metrics = MetricUsageSerializer(many=True)


class CreditGrantUsageSerializer(serializers.Serializer):
    grant_id = serializers.IntegerField()
    wallet_id = serializers.IntegerField()
    currency = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.CharField()
    amount = serializers.CharField(help_text="Exact decimal string.")
    remaining = serializers.CharField(help_text="What it has left: exact decimal string.")
    priority = serializers.IntegerField()
    starts_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    status = serializers.CharField()
    usable_now = serializers.BooleanField()


class CustomerUsageSerializer(serializers.Serializer):
    customer_id = serializers.IntegerField()
    as_of = serializers.DateTimeField()
    subscriptions = SubscriptionUsageSerializer(many=True)
    credit_grants = CreditGrantUsageSerializer(many=True, required=False)


USAGE_EXAMPLE = {
    "customer_id": 42,
    "as_of": "2026-11-24T10:00:02.120000Z",
    "subscriptions": [
        {
            "subscription_id": 7,
            "offering": "Growth",
            "rate_plan": "Growth (USD)",
            "rate_plan_version_id": 3,
            "currency": "USD",
            "billing_mode": "postpaid",
            "billing_cadence": "monthly",
            "period_start": "2026-11-01T00:00:00Z",
            "period_end": "2026-12-01T00:00:00Z",
            "amount_total": "12.003",
            "metrics": [
                {"metric": "api_calls", "metric_name": "API calls", "unit": "call", "dimension_key": "",
                 "units": "5001", "amount": "12.003", "event_count": 5001,
                 "limit": {"units": "10000", "overage": "block", "remaining": "4999", "reached": False,
                           "exceeded": False, "percent_used": "50.01"},
                 "included": {"units": "1000", "remaining": "0", "percent_used": "500.1"}},
                {"metric": "llm_tokens", "metric_name": "LLM tokens", "unit": "token", "dimension_key": "",
                 "units": "0", "amount": "0", "event_count": 0, "limit": None, "included": None},
            ],
        }
    ],
}


class CustomerUsageView(APIView):
    @extend_schema(
        operation_id="customer_usage_current",
        summary="A customer's usage so far in the current period",
        description=(
            "Per active subscription: the current billing period [period_start, period_end) and, per metric (and "
            "dimension where priced per dimension), units, amount and event count so far — read from the running "
            "totals (updated in the same transaction as each rated event), never summed over the rated ledger, "
            "so its cost does not grow with the number of events. Metrics priced by the version in force with no "
            "usage yet appear with zeros. "
            "Amounts are exact decimal strings; flat fees and minimums are added at settlement. "
            "Each metric row also carries `limit` (the price's hard usage limit: `reached` when units >= limit, "
            "`exceeded` when units > limit) and `included` (its included allowance), both against the units so far "
            "and both null when the price has none: a gateway polls this to refuse calls once a `block` limit is "
            "reached. `credit_grants`: the customer's active and consumed credit grants (every currency) in "
            "consumption order, each with its `remaining` and `expires_at`."
        ),
        tags=["usage"],
        responses={
            200: CustomerUsageSerializer,
            401: OpenApiResponse(description="missing_credentials / invalid_credentials"),
            403: OpenApiResponse(description="wrong_credential_kind: this needs a tenant admin token"),
            404: OpenApiResponse(description="not_found: no such customer in the token's tenant"),
        },
        examples=[OpenApiExample("Current usage", value=USAGE_EXAMPLE, response_only=True)],
    )
    def get(self, request, customer_id: int):
        customer = Customer.objects.filter(tenant=request.tenant, pk=customer_id).first()
        if customer is None:
            raise ApiError(code="not_found", message=f"No customer {customer_id} in this tenant.", status_code=404)
        usage = customer_usage_current(customer=customer)
        usage["credit_grants"] = credit_grants_for_customer(customer=customer)
        return Response(CustomerUsageSerializer(usage).data)
