"""The catalog management API under /api/v1/, for tenant admin tokens only.

One viewset per resource on a shared `TenantScopedViewSet`, rather than STYLE.md's one view per
operation: eleven resources with the same list/create/read/update shape would otherwise be ~45
near-identical views, and the base is where the rules that must hold on every endpoint live:

- every queryset is filtered by `request.tenant` (another tenant's row is a 404, never a 403);
- every write goes through `catalog.services` (model `full_clean`, same-tenant relations,
  catalog generation bump in the same transaction);
- Django validation errors become the API's error shape: 400 `validation_error` with `fields`,
  409 `version_published` for anything that would change a published rate plan version.

No DELETE: ledgers reference catalog rows with PROTECT. The one exception is a metric config of
a DRAFT version. Routes have no trailing slash, like the rest of /api/v1/.
"""

from __future__ import annotations

from django.db.models import Prefetch
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from aforo.exceptions import ApiError
from aforo.periods import period_for
from catalog import services
from catalog.models import (
    ApiKey,
    App,
    Customer,
    Metric,
    MetricConfig,
    Offering,
    Product,
    RatePlan,
    RatePlanVersion,
    Subscription,
    Team,
)

from . import serializers as catalog_serializers
from .base import QueryFilter, TenantScopedViewSet
from .terms import SubscriptionTermsMixin

# --- customers, teams, apps -------------------------------------------------------------------


class CustomerViewSet(TenantScopedViewSet):
    """Customers of the tenant. `external_id` is your own id, unique per tenant when set."""

    model = Customer
    serializer_class = catalog_serializers.CustomerSerializer
    query_filters = (QueryFilter("external_id", "external_id", "string"),)


class TeamViewSet(TenantScopedViewSet):
    """Teams of a customer; usage rolls up team → customer."""

    model = Team
    serializer_class = catalog_serializers.TeamSerializer
    query_filters = (QueryFilter("customer", "customer_id"),)


class AppViewSet(TenantScopedViewSet):
    """Apps and AI agents of a team; they own API keys."""

    model = App
    serializer_class = catalog_serializers.AppSerializer
    query_filters = (
        QueryFilter("team", "team_id"),
        QueryFilter("customer", "team__customer_id"),
        QueryFilter("kind", "kind", "string", tuple(App.Kind.values)),
    )


# --- API keys ----------------------------------------------------------------------------------


@extend_schema_view(
    create=extend_schema(
        summary="Issue an API key",
        description="The response carries the full `key`, once: only its hash is stored, so it cannot be read again.",
        request=catalog_serializers.ApiKeyCreateSerializer,
        responses={201: catalog_serializers.ApiKeyCreatedSerializer},
    ),
)
class ApiKeyViewSet(TenantScopedViewSet):
    """API keys of apps. Listing and reading show the `prefix`, never the key."""

    model = ApiKey
    serializer_class = catalog_serializers.ApiKeySerializer
    query_filters = (
        QueryFilter("app", "app_id"),
        QueryFilter("active", "revoked_at__isnull", "boolean"),
    )

    def get_serializer_class(self):
        if self.action == "create":
            return catalog_serializers.ApiKeyCreateSerializer
        return super().get_serializer_class()

    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        api_key, secret = services.api_key_create(
            app=serializer.validated_data["app"], name=serializer.validated_data.get("name", "")
        )
        api_key.key = secret  # rendered in this response only; never stored
        body = catalog_serializers.ApiKeyCreatedSerializer(api_key, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Revoke an API key",
        description="Events timestamped from now on no longer match the key. `reason` is required (400 "
        "validation_error naming it) and stored on the key as `revoked_reason`, with `revoked_by` (the token's "
        "prefix). Revoking twice keeps the first time, reason and author.",
        request=catalog_serializers.ApiKeyRevokeSerializer,
        responses={200: catalog_serializers.ApiKeySerializer},
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        api_key = self.get_object()
        body = catalog_serializers.ApiKeyRevokeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        revoked_by = f"token:{getattr(request.auth, 'prefix', '?')}"
        api_key = services.api_key_revoke(api_key=api_key, reason=body.validated_data["reason"], revoked_by=revoked_by)
        return Response(catalog_serializers.ApiKeySerializer(api_key, context=self.get_serializer_context()).data)


# --- products, metrics, offerings, rate plans ---------------------------------------------------


class ProductViewSet(TenantScopedViewSet):
    """Products: type `api`, `mcp_server` or `agentic_api`; their billable metrics are /metrics."""

    model = Product
    serializer_class = catalog_serializers.ProductSerializer
    query_filters = (QueryFilter("product_type", "product_type", "string", tuple(Product.Type.values)),)


class MetricViewSet(TenantScopedViewSet):
    """Billable metrics of products; events name a metric by its `code` (unique per tenant)."""

    model = Metric
    serializer_class = catalog_serializers.MetricSerializer
    query_filters = (QueryFilter("product", "product_id"),)


class OfferingViewSet(TenantScopedViewSet):
    """Offerings: a bundle of products, sold through its rate plans."""

    model = Offering
    serializer_class = catalog_serializers.OfferingSerializer
    prefetch_related = ("products",)
    query_filters = (QueryFilter("product", "products__id"),)


class RatePlanViewSet(TenantScopedViewSet):
    """Rate plans of offerings. `offering` and `currency` are fixed at creation."""

    model = RatePlan
    serializer_class = catalog_serializers.RatePlanSerializer
    query_filters = (QueryFilter("offering", "offering_id"),)


# --- rate plan versions and metric configs ------------------------------------------------------

VERSION_PUBLISHED = OpenApiResponse(description="version_published: the version is published; revise it instead")


@extend_schema_view(
    create=extend_schema(
        summary="Create a draft version",
        request=catalog_serializers.RatePlanVersionCreateSerializer,
        responses={201: catalog_serializers.RatePlanVersionSerializer},
    ),
    update=extend_schema(
        summary="Replace a draft version",
        request=catalog_serializers.RatePlanVersionUpdateSerializer,
        responses={200: catalog_serializers.RatePlanVersionSerializer, 409: VERSION_PUBLISHED},
    ),
    partial_update=extend_schema(
        summary="Update a draft version",
        request=catalog_serializers.RatePlanVersionUpdateSerializer,
        responses={200: catalog_serializers.RatePlanVersionSerializer, 409: VERSION_PUBLISHED},
    ),
)
class RatePlanVersionViewSet(TenantScopedViewSet):
    """Effective-dated versions of a rate plan, with their metric configs. A draft is edited
    freely; a published version is immutable (409 `version_published`): revise it instead."""

    model = RatePlanVersion
    serializer_class = catalog_serializers.RatePlanVersionSerializer
    prefetch_related = (
        Prefetch("metric_configs", queryset=MetricConfig.objects.select_related("metric").order_by("id")),
    )
    query_filters = (
        QueryFilter("rate_plan", "rate_plan_id"),
        QueryFilter("status", "status", "string", tuple(RatePlanVersion.Status.values)),
    )

    def get_serializer_class(self):
        if self.action == "create":
            return catalog_serializers.RatePlanVersionCreateSerializer
        if self.action in ("update", "partial_update"):
            return catalog_serializers.RatePlanVersionUpdateSerializer
        if self.action in ("publish", "revise"):
            return catalog_serializers.EffectiveFromSerializer
        return super().get_serializer_class()

    def _render(self, version: RatePlanVersion, status_code: int = status.HTTP_200_OK) -> Response:
        version = self.get_queryset().get(pk=version.pk)  # re-read with its configs prefetched
        body = catalog_serializers.RatePlanVersionSerializer(version, context=self.get_serializer_context()).data
        return Response(body, status=status_code)

    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = services.rate_plan_version_create(**serializer.validated_data)
        return self._render(version, status.HTTP_201_CREATED)

    def update(self, request: Request, *args, **kwargs) -> Response:
        version = self.get_object()
        if version.is_published:
            raise catalog_serializers.version_published_error(version.pk)
        serializer = self.get_serializer(version, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        self.perform_update(serializer)
        return self._render(version)

    @extend_schema(
        summary="Publish a draft version",
        description="From then on it is immutable and in force from `effective_from` (the body's, or the draft's). "
        "A version needs at least one metric config to be published.",
        request=catalog_serializers.EffectiveFromSerializer,
        responses={
            200: catalog_serializers.RatePlanVersionSerializer,
            409: OpenApiResponse(description="version_published (already published) / version_not_publishable"),
        },
    )
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, pk: str | None = None) -> Response:
        version = self.get_object()
        if version.is_published:
            raise catalog_serializers.version_published_error(
                version.pk, f"Rate plan version {version.pk} is already published."
            )
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = services.rate_plan_version_publish(
            version=version, effective_from=serializer.validated_data.get("effective_from")
        )
        return self._render(version)

    @extend_schema(
        summary="Revise a version",
        description="\"Editing\" a published version: a new draft, numbered next, copying its metric configs.",
        request=catalog_serializers.EffectiveFromSerializer,
        responses={201: catalog_serializers.RatePlanVersionSerializer},
    )
    @action(detail=True, methods=["post"])
    def revise(self, request: Request, pk: str | None = None) -> Response:
        version = self.get_object()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        draft = services.rate_plan_version_revise(
            version=version, effective_from=serializer.validated_data.get("effective_from")
        )
        return self._render(draft, status.HTTP_201_CREATED)


@extend_schema_view(
    create=extend_schema(
        summary="Set a metric's price in a draft version",
        description="Creates the config (201), or replaces the metric's existing config in that version (200).",
        responses={
            200: catalog_serializers.MetricConfigSerializer,
            201: catalog_serializers.MetricConfigSerializer,
            409: VERSION_PUBLISHED,
        },
    ),
    destroy=extend_schema(
        summary="Remove a metric's price from a draft version",
        responses={204: None, 409: VERSION_PUBLISHED},
    ),
)
class MetricConfigViewSet(mixins.DestroyModelMixin, TenantScopedViewSet):
    """Pricing of one metric in one rate plan version: `config` is the pricing model and its
    parameters, validated by the rating engine. Changes only while the version is a draft."""

    model = MetricConfig
    serializer_class = catalog_serializers.MetricConfigSerializer
    select_related = ("version",)
    query_filters = (
        QueryFilter("version", "version_id"),
        QueryFilter("metric", "metric_id"),
        QueryFilter("rate_plan", "version__rate_plan_id"),
    )

    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        version = data["version"]
        existed = MetricConfig.objects.filter(version=version, metric=data["metric"]).exists()
        serializer.instance = services.metric_config_set(version=version, metric=data["metric"], config=data["config"])
        return Response(serializer.data, status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED)

    def update(self, request: Request, *args, **kwargs) -> Response:
        metric_config = self.get_object()
        if metric_config.version.is_published:
            raise catalog_serializers.version_published_error(metric_config.version_id)
        return super().update(request, *args, **kwargs)

    def perform_update(self, serializer: serializers.ModelSerializer) -> None:
        metric_config = serializer.instance
        serializer.instance = services.metric_config_set(
            version=metric_config.version,
            metric=metric_config.metric,
            config=serializer.validated_data.get("config", metric_config.config),
        )

    def perform_destroy(self, instance: MetricConfig) -> None:
        if instance.version.is_published:
            raise catalog_serializers.version_published_error(instance.version_id)
        services.metric_config_delete(metric_config=instance)


# --- subscriptions -----------------------------------------------------------------------------


class SubscriptionViewSet(SubscriptionTermsMixin, TenantScopedViewSet):
    """A customer's subscription to an offering on a rate plan. `currency` defaults to the plan's
    and `billing_anchor` to `started_at`; customer, offering, rate plan and currency are fixed at
    creation (to change plan, end this subscription and start another)."""

    model = Subscription
    serializer_class = catalog_serializers.SubscriptionSerializer

    @extend_schema(
        summary="Cancel a subscription",
        description="Ends it now, at a later `at`, or at the end of its current billing period (`at_period_end`), "
        "with a required `reason` (stored with `canceled_at`). Events timestamped from the end no longer rate "
        "against it; its last, partial period is settled — the final invoice — by the settlement sweep once the "
        "end has passed. Never backdated (400 naming `at`); a subscription canceled or ended already is a 409 "
        "`not_cancelable`.",
        request=catalog_serializers.SubscriptionCancelSerializer,
        responses={200: catalog_serializers.SubscriptionSerializer},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        subscription = self.get_object()
        body = catalog_serializers.SubscriptionCancelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        now = timezone.now()
        end = body.validated_data.get("at")
        if body.validated_data.get("at_period_end"):
            end = period_for(cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, at=max(now, subscription.started_at))[1]
        try:
            subscription = services.subscription_cancel(
                subscription=subscription, reason=body.validated_data["reason"], ended_at=end, now=now
            )
        except services.SubscriptionNotCancelable as refused:
            if "__all__" in refused.message_dict:
                raise ApiError(code="not_cancelable", message=" ".join(refused.message_dict["__all__"]), status_code=409) from None
            raise serializers.ValidationError({"at" if k == "ended_at" else k: v for k, v in refused.message_dict.items()}) from None
        return Response(catalog_serializers.SubscriptionSerializer(subscription, context=self.get_serializer_context()).data)
    query_filters = (
        QueryFilter("customer", "customer_id"),
        QueryFilter("offering", "offering_id"),
        QueryFilter("rate_plan", "rate_plan_id"),
        QueryFilter("status", "status", "string", tuple(Subscription.Status.values)),
        QueryFilter("billing_mode", "billing_mode", "string", tuple(Subscription.BillingMode.values)),
    )
