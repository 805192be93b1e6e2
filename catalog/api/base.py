"""The shared base of the catalog API views: tenant scoping, list filters, error mapping.
See catalog/api/views.py for why viewsets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import Model, Prefetch, QuerySet
from drf_spectacular.openapi import AutoSchema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.filters import BaseFilterBackend
from rest_framework.request import Request
from rest_framework.response import Response

from aforo.exceptions import ApiError
from aforo.params import parse_id
from catalog import services
from catalog.models import (
    PublishedVersionError,
    VersionNotPublishable,
)

from . import serializers as catalog_serializers


class CatalogAutoSchema(AutoSchema):
    """Groups the operations by resource (its router prefix) in the schema and the docs UI."""

    def get_tags(self) -> list[str]:
        return [getattr(self.view, "basename", None) or super().get_tags()[0]]


# --- errors ------------------------------------------------------------------------------------


def _as_api_error(exc: Exception) -> Exception:
    """Django/database errors raised by services, in the API's error shape (never a 500)."""
    if isinstance(exc, VersionNotPublishable):  # a draft the service refuses: nothing priced, date clash
        return ApiError(code="version_not_publishable", message=" ".join(exc.messages), status_code=status.HTTP_409_CONFLICT)
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
            value = parse_id(raw)
            if value is None:
                raise serializers.ValidationError({self.param: [f"Must be an integer id, got {raw[:40]!r}."]})
            return value
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
