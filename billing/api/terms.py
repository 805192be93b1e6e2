"""The commercial terms API (tenant admin token): a subscription's discounts and a customer's tax
rates, effective-dated (billing.models.terms, billing.terms).

    GET/POST          /api/v1/discounts        ?subscription=ID
    GET/PATCH/DELETE  /api/v1/discounts/{id}
    GET/POST          /api/v1/tax-rates        ?customer=ID
    GET/PATCH/DELETE  /api/v1/tax-rates/{id}

Contracts:
- Amounts and percentages are exact decimal strings (or integers), never JSON floats; a discount's
  value is more than zero (a percentage at most 100), a tax rate's percent from 0 to 100, at most
  6 (4 for tax) decimal places. `metric` scopes the term to one metric's lines; another tenant's
  subscription, customer or metric is a 400 naming the field; another tenant's term a 404.
- A term applied to an issued invoice is *in use* (`in_use: true`): PATCH may then only set
  `ends_at` (now or later) and DELETE is refused — both a 409 `term_in_use` — so that a settled
  period, and its reissue, keep the terms it was settled with. End it and create a new one. To
  correct a settled period's terms, end the term in the past with `retroactive: true`, create
  the right one, and void and reissue the invoice.
- `subscription` and `customer` are fixed at creation.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import mixins, serializers, status
from rest_framework.response import Response

from aforo.exceptions import ApiError
from catalog.api.base import QueryFilter, TenantScopedViewSet
from catalog.api.serializers import CatalogModelSerializer
from wallets.api.serializers import MoneyField

from ..models import Discount, TaxRate
from ..terms import TermInUse, term_delete, term_in_use, term_save


def _exact(value: Decimal, *, places: int, field: str) -> Decimal:
    if not value.is_finite():
        raise serializers.ValidationError(f"Must be a finite number, got {value}.")
    if value.as_tuple().exponent < -places:  # type: ignore[operator]
        raise serializers.ValidationError(f"At most {places} decimal places.")
    if abs(value) >= Decimal(10) ** 12:
        raise serializers.ValidationError("Must be less than 10^12.")
    return value


class _TermSerializer(CatalogModelSerializer):
    in_use = serializers.SerializerMethodField(help_text="Applied to an issued invoice: only ends_at may change.")
    retroactive = serializers.BooleanField(
        write_only=True, required=False, default=False,
        help_text="With ends_at in the past on a term in use: a correction (issued invoices stay as they are; a void "
        "and reissue of a later period leaves the term out).",
    )

    def get_in_use(self, term) -> bool:
        return term_in_use(term)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        starts_at = attrs.get("starts_at", getattr(self.instance, "starts_at", None))
        ends_at = attrs.get("ends_at", getattr(self.instance, "ends_at", None))
        if starts_at and ends_at and ends_at <= starts_at:
            raise serializers.ValidationError({"ends_at": ["Must be after starts_at."]})
        return attrs


class DiscountSerializer(_TermSerializer):
    create_only_fields = ("subscription",)
    value = MoneyField(help_text='Percent ("10" = 10 %, at most 100) or an amount in the subscription\'s currency.')

    class Meta:
        model = Discount
        fields = [
            "id", "subscription", "kind", "value", "metric", "position", "description", "periods", "starts_at", "ends_at",
            "in_use", "retroactive", "created_at",
        ]
        read_only_fields = ["created_at"]
        extra_kwargs = {"periods": {"min_value": 1}}

    def validate_value(self, value: Decimal) -> Decimal:
        value = _exact(value, places=6, field="value")
        if value <= 0:
            raise serializers.ValidationError("Must be more than zero.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        kind = attrs.get("kind", getattr(self.instance, "kind", None))
        value = attrs.get("value", getattr(self.instance, "value", None))
        if kind == Discount.Kind.PERCENT and value is not None and value > 100:
            raise serializers.ValidationError({"value": ["A percentage must be at most 100."]})
        return attrs


class TaxRateSerializer(_TermSerializer):
    create_only_fields = ("customer",)
    percent = MoneyField(help_text='"20" = 20 %; from 0 to 100, at most 4 decimal places.')

    class Meta:
        model = TaxRate
        fields = ["id", "customer", "name", "percent", "metric", "starts_at", "ends_at", "in_use", "retroactive", "created_at"]
        read_only_fields = ["created_at"]

    def validate_percent(self, value: Decimal) -> Decimal:
        value = _exact(value, places=4, field="percent")
        if not (0 <= value <= 100):
            raise serializers.ValidationError("Must be from 0 to 100.")
        return value


class _TermViewSet(mixins.DestroyModelMixin, TenantScopedViewSet):
    select_related = ("metric",)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, TermInUse):
            exc = ApiError(code="term_in_use", message=str(exc), status_code=status.HTTP_409_CONFLICT)
        return super().handle_exception(exc)

    def perform_create(self, serializer: serializers.ModelSerializer) -> None:
        data = dict(serializer.validated_data)
        data.pop("retroactive", None)
        serializer.instance = term_save(term=self.model(tenant=self.request.tenant, **data))

    def perform_update(self, serializer: serializers.ModelSerializer) -> None:
        data = dict(serializer.validated_data)
        retroactive = data.pop("retroactive", False)
        term_save(term=serializer.instance, changed=data, retroactive=retroactive)

    def perform_destroy(self, instance) -> None:
        term_delete(term=instance)


class DiscountViewSet(_TermViewSet):
    """A subscription's discounts, applied in `position` order at settlement (after the minimum
    commitment and the spend cap, before tax): a percentage or a fixed amount, of the whole
    invoice or of one metric's lines, from the period containing `starts_at`, for `periods`
    periods or until `ends_at` (empty: forever)."""

    model = Discount
    serializer_class = DiscountSerializer
    query_filters = (QueryFilter("subscription", "subscription_id"), QueryFilter("metric", "metric_id"))


class TaxRateViewSet(_TermViewSet):
    """A customer's tax rates, side by side on the discounted subtotal; a rate with a metric taxes
    that metric's lines instead of the general rates."""

    model = TaxRate
    serializer_class = TaxRateSerializer
    query_filters = (QueryFilter("customer", "customer_id"), QueryFilter("metric", "metric_id"))
