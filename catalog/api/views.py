"""The catalog management API under /api/v1/, for tenant admin tokens only.

One viewset per resource on a shared `TenantScopedViewSet`, rather than STYLE.md's one view per
operation: eleven resources with the same list/create/read/update shape would otherwise be ~45
near-identical views, and the base is where the rules that must hold on every endpoint live:

- every queryset is filtered by `request.tenant` (another tenant's row is a 404, never a 403);
- every write goes through `catalog.services` (model `full_clean`, same-tenant relations,
  catalog generation bump on commit);
- Django validation errors become the API's error shape: 400 `validation_error` with `fields`,
  409 `version_published` for anything that would change a published rate plan version.

No DELETE: ledgers reference catalog rows with PROTECT. The one exception is a metric config of
a DRAFT version. Routes have no trailing slash, like the rest of /api/v1/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import Model, Prefetch, QuerySet
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.filters import BaseFilterBackend
from rest_framework.request import Request
from rest_framework.response import Response

from aforo.exceptions import ApiError
from catalog import services
from catalog.models import (
    ApiKey,
    App,
    Customer,
    Metric,
    MetricConfig,
    Offering,
    Product,
    PublishedVersionError,
    RatePlan,
    RatePlanVersion,
    Subscription,
    Team,
)

from . import serializers as catalog_serializers


class TenantTokenScheme(OpenApiAuthenticationExtension):
    """OpenAPI security scheme of `catalog.auth.TenantTokenAuthentication` (every /api/v1/ view)."""

    target_class = "catalog.auth.TenantTokenAuthentication"
    name = "tenantToken"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="AUTHORIZATION", token_prefix="Bearer")


class CatalogAutoSchema(AutoSchema):
    """Groups the operations by resource (its router prefix) in the schema and the docs UI."""

    def get_tags(self) -> list[str]:
        return [getattr(self.view, "basename", None) or super().get_tags()[0]]


# --- errors ------------------------------------------------------------------------------------


def _as_api_error(exc: Exception) -> Exception:
    """Django/database errors raised by services, in the API's error shape (never a 500)."""
    if isinstance(exc, PublishedVersionError):
        return ApiError(code="version_published", message=" ".join(exc.messages), status_code=status.HTTP_409_CONFLICT)
    if isinstance(exc, DjangoValidationError):
        detail = serializers.as_serializer_error(exc)
        if "__all__" in detail:
            detail["non_field_errors"] = detail.pop("__all__")
        return serializers.ValidationError(detail)
    if isinstance(exc, IntegrityError):  # a concurrent write won a uniqueness race
        return ApiError(
            code="conflict",
            message="A conflicting change was committed concurrently; read the current state and retry.",
            status_code=status.HTTP_409_CONFLICT,
        )
    return exc


# --- list filters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryFilter:
    """`?param=value` on a list endpoint → `.filter(lookup=value)` (inside the tenant's rows)."""

    param: str
    lookup: str
    kind: str = "integer"  # integer | string | boolean
    choices: tuple[str, ...] = ()

    def parse(self, raw: str) -> Any:
        if self.kind == "integer":
            if not raw.isdigit():
                raise serializers.ValidationError({self.param: [f"Must be an integer id, got {raw!r}."]})
            return int(raw)
        if self.kind == "boolean":
            if raw.lower() not in ("true", "false", "1", "0"):
                raise serializers.ValidationError({self.param: ["Must be true or false."]})
            return raw.lower() in ("true", "1")
        if "\x00" in raw:  # PostgreSQL text cannot hold NUL: a 400 here, not a DataError
            raise serializers.ValidationError({self.param: ["Null characters are not allowed."]})
        if self.choices and raw not in self.choices:
            raise serializers.ValidationError({self.param: [f"Must be one of {', '.join(self.choices)}."]})
        return raw


class QueryParamFilter(BaseFilterBackend):
    """Applies the view's `query_filters` to its list action."""

    def filter_queryset(self, request: Request, queryset: QuerySet, view) -> QuerySet:
        if getattr(view, "action", None) != "list":
            return queryset
        for query_filter in getattr(view, "query_filters", ()):
            raw = request.query_params.get(query_filter.param)
            if raw not in (None, ""):
                queryset = queryset.filter(**{query_filter.lookup: query_filter.parse(raw)})
        return queryset

    def get_schema_operation_parameters(self, view) -> list[dict[str, Any]]:
        return [
            {
                "name": f.param,
                "in": "query",
                "required": False,
                "schema": {"type": f.kind, **({"enum": list(f.choices)} if f.choices else {})},
            }
            for f in getattr(view, "query_filters", ())
        ]


# --- the base viewset --------------------------------------------------------------------------


class TenantScopedViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """List, create, retrieve and update (PUT/PATCH) the request tenant's rows of `model`."""

    model: type[Model]
    query_filters: tuple[QueryFilter, ...] = ()
    select_related: tuple[str, ...] = ()
    prefetch_related: tuple[str | Prefetch, ...] = ()
    filter_backends = [QueryParamFilter]
    schema = CatalogAutoSchema()
    lookup_value_regex = r"\d+"

    def get_queryset(self) -> QuerySet:
        tenant = catalog_serializers.request_tenant(self.request)
        if getattr(self, "swagger_fake_view", False) or tenant is None:  # schema generation: no tenant
            return self.model.objects.none()
        queryset = self.model.objects.filter(tenant=tenant)
        if self.select_related:
            queryset = queryset.select_related(*self.select_related)
        if self.prefetch_related:
            queryset = queryset.prefetch_related(*self.prefetch_related)
        return queryset.order_by("id")

    def handle_exception(self, exc: Exception) -> Response:
        return super().handle_exception(_as_api_error(exc))

    def perform_create(self, serializer: serializers.ModelSerializer) -> None:
        fields, many_to_many = self._split_many_to_many(serializer.validated_data)
        serializer.instance = services.catalog_object_save_with_relations(
            instance=self.model(tenant=self.request.tenant, **fields), many_to_many=many_to_many
        )

    def perform_update(self, serializer: serializers.ModelSerializer) -> None:
        fields, many_to_many = self._split_many_to_many(serializer.validated_data)
        instance = serializer.instance
        for name, value in fields.items():
            setattr(instance, name, value)
        services.catalog_object_save_with_relations(instance=instance, many_to_many=many_to_many)

    def _split_many_to_many(self, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[Model]]]:
        names = {field.name for field in self.model._meta.many_to_many}
        return (
            {k: v for k, v in data.items() if k not in names},
            {k: list(v) for k, v in data.items() if k in names},
        )


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
        description="Events timestamped from now on no longer match the key. Revoking twice keeps the first time.",
        request=None,
        responses={200: catalog_serializers.ApiKeySerializer},
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        api_key = services.api_key_revoke(api_key=self.get_object())
        return Response(self.get_serializer(api_key).data)


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
        try:
            version = services.rate_plan_version_publish(
                version=version, effective_from=serializer.validated_data.get("effective_from")
            )
        except PublishedVersionError as error:  # a draft the service refuses: nothing priced, date clash
            raise ApiError(
                code="version_not_publishable", message=" ".join(error.messages), status_code=status.HTTP_409_CONFLICT
            ) from None
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


class SubscriptionViewSet(TenantScopedViewSet):
    """A customer's subscription to an offering on a rate plan. `currency` defaults to the plan's
    and `billing_anchor` to `started_at`; customer, offering, rate plan and currency are fixed at
    creation (to change plan, end this subscription and start another)."""

    model = Subscription
    serializer_class = catalog_serializers.SubscriptionSerializer
    query_filters = (
        QueryFilter("customer", "customer_id"),
        QueryFilter("offering", "offering_id"),
        QueryFilter("rate_plan", "rate_plan_id"),
        QueryFilter("status", "status", "string", tuple(Subscription.Status.values)),
        QueryFilter("billing_mode", "billing_mode", "string", tuple(Subscription.BillingMode.values)),
    )
