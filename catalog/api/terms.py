"""A subscription's terms versions over the API (catalog.terms):

    GET/POST  /api/v1/subscriptions/{id}/terms      list the versions / add one
    PATCH     /api/v1/subscriptions/{id}            a change of the terms fields adds a version

A version governs the billing periods starting from its `effective_from` (`first_period`); one
before the current billing period is a 409 `terms_retroactive` unless `retroactive: true`."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from aforo.exceptions import ApiError
from catalog import services
from catalog.models import TERMS_FIELDS, Subscription, SubscriptionTermsVersion
from catalog.terms import TermsRetroactive, terms_first_period, terms_version_add, terms_version_baseline

from .serializers import TermAmountField


class TermsVersionSerializer(serializers.ModelSerializer):
    """A version of a subscription's settlement terms (read)."""

    min_commitment = TermAmountField()
    spend_cap = TermAmountField()
    invoice_threshold = TermAmountField()
    first_period = serializers.SerializerMethodField(
        help_text="The first billing period this version governs ({start, end}): a period's terms are those in "
        "effect at its start, so a version effective mid-period governs from the next one.",
    )
    in_effect_now = serializers.SerializerMethodField(help_text="The version the subscription's own fields copy.")

    class Meta:
        model = SubscriptionTermsVersion
        fields = [
            "id", "subscription", "effective_from", "first_period", "in_effect_now", "min_commitment", "spend_cap",
            "spend_cap_action", "invoice_threshold", "net_terms_days", "invoice_grace_hours", "metric_minimums",
            "reason", "retroactive", "created_at",
        ]
        read_only_fields = fields

    def get_first_period(self, version: SubscriptionTermsVersion) -> dict[str, str]:
        start, end = terms_first_period(subscription=version.subscription, effective_from=version.effective_from)
        return {"start": start.isoformat(), "end": end.isoformat()}

    def get_in_effect_now(self, version: SubscriptionTermsVersion) -> bool:
        return version.pk == version.subscription.terms_version_id


class TermsVersionCreateSerializer(serializers.Serializer):
    """A new version: the terms given over those of the version in effect at `effective_from`."""

    effective_from = serializers.DateTimeField(
        required=False, help_text="Default now; not before the current billing period's start unless retroactive.",
    )
    min_commitment = TermAmountField(help_text="Minimum spend per period (null: none).")
    spend_cap = TermAmountField(help_text="Maximum spend per period (null: none).")
    spend_cap_action = serializers.ChoiceField(choices=Subscription._meta.get_field("spend_cap_action").choices, required=False)
    invoice_threshold = TermAmountField(help_text="Interim invoice threshold (null: none).")
    net_terms_days = serializers.IntegerField(required=False, min_value=0, max_value=365)
    invoice_grace_hours = serializers.IntegerField(required=False, min_value=0, max_value=720)
    metric_minimums = serializers.JSONField(required=False, help_text='{"metric_code": "50.00"}; {} for none.')
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
    retroactive = serializers.BooleanField(
        required=False, default=False,
        help_text="true: effective before the current billing period (a correction); void and reissue the affected "
        "invoices to apply it to them.",
    )

    def validate_reason(self, value: str) -> str:
        if "\x00" in value:
            raise serializers.ValidationError("Null characters are not allowed.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not set(attrs) & set(TERMS_FIELDS):
            raise serializers.ValidationError({"non_field_errors": [
                f"Give at least one term to change: {', '.join(TERMS_FIELDS)}."
            ]})
        return attrs


class SubscriptionTermsMixin:
    """The terms side of SubscriptionViewSet."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, TermsRetroactive):
            exc = ApiError(code="terms_retroactive", message=str(exc), field="effective_from", status_code=409,
                           current_period_start=exc.period_start.isoformat())
        return super().handle_exception(exc)

    def perform_create(self, serializer) -> None:
        """The subscription, and its first terms version (its terms, effective from its start)."""
        with transaction.atomic():
            super().perform_create(serializer)
            terms_version_baseline(subscription=serializer.instance)

    def perform_update(self, serializer) -> None:
        """The subscription's other fields as they are; its terms (TERMS_FIELDS) as a new terms
        version effective from `terms_effective_from` (default now), when any of them changes:
        the fields then copy the version in effect now (catalog.terms)."""
        data = dict(serializer.validated_data)
        effective_from = data.pop("terms_effective_from", None)
        subscription = serializer.instance
        changed = {
            name: data.pop(name) for name in TERMS_FIELDS
            if name in data and data[name] != getattr(subscription, name)
        }
        for name in TERMS_FIELDS:
            data.pop(name, None)
        with transaction.atomic():
            for name, value in data.items():
                setattr(subscription, name, value)
            services.catalog_object_save_with_relations(instance=subscription)
            if changed:
                terms_version_add(
                    subscription=subscription, values=changed, effective_from=effective_from,
                    reason="Changed with PATCH /api/v1/subscriptions/{id}",
                )
        subscription.refresh_from_db()

    @extend_schema(
        methods=["get"], summary="List the versions of a subscription's terms",
        description="Oldest first. A billing period settles under the version in effect at its start.",
        responses={200: TermsVersionSerializer(many=True)},
    )
    @extend_schema(
        methods=["post"], summary="Add a version of a subscription's terms",
        description="The terms given, over those of the version in effect at `effective_from` (default now). "
        "It governs the billing periods starting from `effective_from` (`first_period` in the answer): a version "
        "effective mid-period applies from the next period, and the periods before keep their terms. Before the "
        "current billing period only with `retroactive: true` (else a 409 `terms_retroactive`): the issued "
        "invoices stay as they are until voided and reissued. Versions are never changed or deleted. Terms the "
        "version in effect at that instant already has add nothing: 200 with that version (a retry is safe).",
        request=TermsVersionCreateSerializer,
        responses={201: TermsVersionSerializer, 200: TermsVersionSerializer},
    )
    @action(detail=True, methods=["get", "post"], url_path="terms")
    def terms(self, request: Request, pk: str | None = None) -> Response:
        subscription = self.get_object()
        if request.method == "GET":
            versions = SubscriptionTermsVersion.objects.filter(subscription=subscription).select_related("subscription")
            versions = versions.order_by("effective_from", "id")
            return Response(TermsVersionSerializer(versions, many=True).data)
        body = TermsVersionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        effective_from, reason, retroactive = data.pop("effective_from", None), data.pop("reason"), data.pop("retroactive")
        added = terms_version_add(
            subscription=subscription, values=data, effective_from=effective_from, reason=reason, retroactive=retroactive,
        )
        return Response(
            TermsVersionSerializer(added.version).data,
            status=status.HTTP_201_CREATED if added.created else status.HTTP_200_OK,
        )
