"""The operator admin for the catalog, and the tenant scoping every Aforo admin shares.

Scoping contract (reused by metering.admin and billing.admin):
- a superuser sees every tenant's rows, with a tenant column and a tenant list filter;
- any other staff user sees only the rows of the tenant of their `TenantMember` row (none
  without one): querysets, foreign-key and many-to-many choices and list-filter choices are
  all confined to it, the tenant of a new row is set from it and is never a form field.
Writes go through the catalog services (`catalog_object_save`, `api_key_create`, …), so model
validation (`full_clean` → `clean()`: same-tenant relations, pricing config) shows as form
errors; published rate plan versions are view-only and are changed by revising them.
"""

from . import people, pricing, subscriptions  # noqa: F401 - registers the admin classes
from .scoping import (
    ReadOnlyAdminMixin,
    TenantScopedAdminMixin,
    TenantScopedModelAdmin,
    TenantScopedTabularInline,
    is_unscoped,
    metric_code_filter,
    operator_tenant,
    tenant_confine,
)

__all__ = [
    "ReadOnlyAdminMixin",
    "TenantScopedAdminMixin",
    "TenantScopedModelAdmin",
    "TenantScopedTabularInline",
    "is_unscoped",
    "metric_code_filter",
    "operator_tenant",
    "tenant_confine",
]
