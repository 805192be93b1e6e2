"""The coupons API (tenant admin token): a customer's coupons, taken off its invoices after the
discounts and before tax until used up or expired (billing.models.Coupon).

    GET/POST          /api/v1/coupons          ?customer=ID
    GET/PATCH/DELETE  /api/v1/coupons/{id}

`amount` is an exact decimal string in `currency` (ISO 4217), more than zero, in the currency's
minor unit; `customer`, `currency` and `amount` are fixed at creation (400 naming the field);
PATCH sets `code`, `description` or `expires_at`. A coupon an invoice has used is never deleted
(409 `coupon_redeemed`): expire it. Reads carry `remaining` and the `redemptions` (invoice,
amount; a void invoice's part is given back)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import mixins, serializers, status
from rest_framework.response import Response

from aforo.exceptions import ApiError
from aforo.money import is_multiple_of_minor_unit
from catalog.api.base import QueryFilter, TenantScopedViewSet
from catalog.api.serializers import CatalogModelSerializer, CurrencyCodeField
from wallets.api.serializers import MoneyField

from ..models import Coupon, Invoice
from ..settlement.coupons import coupon_remaining


class CouponSerializer(CatalogModelSerializer):
    create_only_fields = ("customer", "currency", "amount")
    currency = CurrencyCodeField(help_text="ISO 4217: only invoices in this currency use it.")
    amount = MoneyField(help_text="What it is worth in all, in the currency's minor unit.")
    remaining = serializers.SerializerMethodField()
    redemptions = serializers.SerializerMethodField()

    class Meta:
        model = Coupon
        fields = ["id", "customer", "code", "currency", "amount", "expires_at", "description", "remaining", "redemptions", "created_at"]
        read_only_fields = ["created_at"]

    def get_remaining(self, coupon: Coupon) -> str:
        return MoneyField().to_representation(coupon_remaining(coupon))

    def get_redemptions(self, coupon: Coupon) -> list[dict[str, Any]]:
        rows = coupon.redemptions.select_related("invoice").order_by("id")
        return [
            {"invoice": r.invoice_id, "number": r.invoice.number, "amount": MoneyField().to_representation(r.amount),
             "given_back": r.invoice.status == Invoice.Status.VOID}
            for r in rows
        ]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        amount: Decimal | None = attrs.get("amount")
        currency = attrs.get("currency", getattr(self.instance, "currency", None))
        if amount is not None:
            if not amount.is_finite() or amount <= 0:
                raise serializers.ValidationError({"amount": ["Must be more than zero."]})
            if amount >= Decimal(10) ** 14:
                raise serializers.ValidationError({"amount": ["Must be less than 10^14."]})
            if currency and not is_multiple_of_minor_unit(amount, currency):
                raise serializers.ValidationError({"amount": [f"Must be in whole minor units of {currency}."]})
        for name in ("code", "description"):
            if "\x00" in attrs.get(name, ""):
                raise serializers.ValidationError({name: ["Null characters are not allowed."]})
        return attrs


class CouponViewSet(mixins.DestroyModelMixin, TenantScopedViewSet):
    """A customer's coupons: an amount off its invoices (after discounts, before tax) until used
    up or expired; what one invoice does not use carries over to the next."""

    model = Coupon
    serializer_class = CouponSerializer
    query_filters = (QueryFilter("customer", "customer_id"),)

    def perform_create(self, serializer: serializers.ModelSerializer) -> None:
        coupon = Coupon(tenant=self.request.tenant, **serializer.validated_data)
        coupon.full_clean()
        coupon.save()
        serializer.instance = coupon

    def perform_update(self, serializer: serializers.ModelSerializer) -> None:
        coupon = serializer.instance
        for name, value in serializer.validated_data.items():
            setattr(coupon, name, value)
        coupon.full_clean()
        coupon.save()

    def destroy(self, request, *args, **kwargs) -> Response:
        coupon = self.get_object()
        if coupon.redemptions.exists():
            raise ApiError(code="coupon_redeemed", message=f"Coupon {coupon.pk} was used by an invoice: set expires_at instead.",
                           status_code=status.HTTP_409_CONFLICT)
        coupon.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
