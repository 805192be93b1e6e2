"""Tenant scoping shared by every Aforo admin (see catalog/admin/__init__.py)."""


from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.options import InlineModelAdmin
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from .. import services
from ..models import (
    Metric,
    Tenant,
    TenantMember,
    TenantOwned,
)

admin.site.site_header = "Aforo operator admin"
admin.site.site_title = "Aforo admin"
admin.site.index_title = "Catalog, ledgers and running totals"

SHOWN_ONCE = "copy it now: only its hash is stored, it will not be shown again."


# --- tenant scoping -------------------------------------------------------------------------


def operator_tenant(request: HttpRequest) -> Tenant | None:
    """The tenant a staff user operates (their TenantMember row), memoised on the request."""
    if not hasattr(request, "_operator_tenant"):
        membership = TenantMember.objects.select_related("tenant").filter(user_id=request.user.pk).first()
        request._operator_tenant = membership.tenant if membership else None
    return request._operator_tenant


def is_unscoped(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.is_superuser)


def _has_tenant_field(model: type[Model]) -> bool:
    return any(f.name == "tenant" for f in model._meta.concrete_fields)


def tenant_confine(queryset: QuerySet, *, tenant: Tenant | None, lookup: str = "tenant") -> QuerySet:
    """`queryset` limited to one tenant's rows (no rows at all when there is no tenant)."""
    if tenant is None:
        return queryset.none()
    return queryset.filter(**{lookup: tenant.pk})


class TenantScopedModelForm(forms.ModelForm):
    """The form of every scoped admin. Two Django defaults would turn a validation error into
    a 500 when the tenant is set by the admin rather than typed in:
    - constraints involving a field the form lacks are not validated, so per-tenant unique
      codes would fail at INSERT: the tenant stays in validation whenever it is already set;
    - model errors naming a field the form lacks raise ValueError: they become non-field errors.
    """

    def _get_validation_exclusions(self):
        exclusions = super()._get_validation_exclusions()
        if getattr(self.instance, "tenant_id", None) is not None:
            exclusions.discard("tenant")
        return exclusions

    def _update_errors(self, errors: ValidationError) -> None:
        if hasattr(errors, "error_dict"):
            kept: dict[str, list] = {}
            for name, field_errors in errors.error_dict.items():
                if name == NON_FIELD_ERRORS or name in self.fields:
                    kept.setdefault(name, []).extend(field_errors)
                else:
                    kept.setdefault(NON_FIELD_ERRORS, []).extend(
                        f"{name}: {message}" for message in ValidationError(field_errors).messages
                    )
            errors = ValidationError(kept)
        super()._update_errors(errors)


class TenantScopedAdminMixin:
    """Confines a ModelAdmin or an inline to the operator's tenant (see the module docstring).

    `tenant_lookup` is the ORM path from the model to its Tenant's pk ("tenant" for rows that
    carry one, "customer__tenant" for customer logins, "pk" for Tenant itself)."""

    tenant_lookup = "tenant"
    form = TenantScopedModelForm

    def _tenant_is_field(self) -> bool:
        return self.tenant_lookup == "tenant" and _has_tenant_field(self.model)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if is_unscoped(request):
            return queryset
        return tenant_confine(queryset, tenant=operator_tenant(request), lookup=self.tenant_lookup)

    def scoped_choices(self, request, queryset: QuerySet) -> QuerySet:
        """Choices of a relation field: the operator's tenant's rows only."""
        if is_unscoped(request):
            return queryset
        if queryset.model is Tenant:
            return tenant_confine(queryset, tenant=operator_tenant(request), lookup="pk")
        if _has_tenant_field(queryset.model):
            return tenant_confine(queryset, tenant=operator_tenant(request))
        return queryset  # not tenant data (users): the admin restricts those where it offers them

    def _scope_relation_kwargs(self, db_field, request, kwargs: dict) -> dict:
        if not is_unscoped(request):
            queryset = kwargs.get("queryset")
            if queryset is None:
                queryset = self.get_field_queryset(None, db_field, request)
            if queryset is None:
                queryset = db_field.remote_field.model._default_manager.all()
            kwargs["queryset"] = self.scoped_choices(request, queryset)
        return kwargs

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        kwargs = self._scope_relation_kwargs(db_field, request, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        kwargs = self._scope_relation_kwargs(db_field, request, kwargs)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_exclude(self, request, obj=None):
        exclude = list(super().get_exclude(request, obj) or [])
        # Inline rows take the parent's tenant; a scoped operator's rows take theirs.
        if self._tenant_is_field() and (isinstance(self, InlineModelAdmin) or not is_unscoped(request)):
            exclude.append("tenant")
        return exclude

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if "tenant" in self.get_exclude(request, obj):
            fields = [name for name in fields if name != "tenant"]
        return fields


def _bind_tenant(form_class: type[forms.ModelForm], tenant: Tenant) -> type[forms.ModelForm]:
    class TenantBoundForm(form_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # Set before validation, so clean() checks the same-tenant relations.
            self.instance.tenant = tenant

    TenantBoundForm.__name__ = form_class.__name__
    return TenantBoundForm


class TenantScopedModelAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """The base of every Aforo ModelAdmin."""

    list_select_related: tuple[str, ...] = ()

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        if obj is None and self._tenant_is_field() and not is_unscoped(request):
            tenant = operator_tenant(request)
            if tenant is None:
                raise PermissionDenied("Your staff user belongs to no tenant.")
            return _bind_tenant(form_class, tenant)
        return form_class

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and self._tenant_is_field() and is_unscoped(request) and "tenant" not in fields:
            fields.insert(0, "tenant")  # rows never move between tenants
        return fields

    def get_list_display(self, request):
        display = tuple(super().get_list_display(request))
        if is_unscoped(request) and self._tenant_is_field() and "tenant" not in display:
            display = (*display, "tenant")
        return display

    def get_list_filter(self, request):
        filters = tuple(super().get_list_filter(request))
        if is_unscoped(request) and self.tenant_lookup != "pk":
            filters = (self.tenant_lookup, *filters)
        return filters

    def get_list_select_related(self, request):
        related = super().get_list_select_related(request)
        if is_unscoped(request) and self._tenant_is_field() and isinstance(related, (list, tuple)):
            return (*related, "tenant")
        return related

    def save_model(self, request, obj, form, change):
        if isinstance(obj, TenantOwned):
            services.catalog_object_save(instance=obj)
        else:
            super().save_model(request, obj, form, change)


class TenantInlineFormSet(forms.BaseInlineFormSet):
    def _construct_form(self, i, **kwargs):
        form = super()._construct_form(i, **kwargs)
        if _has_tenant_field(form.instance.__class__):
            form.instance.tenant_id = self.instance.tenant_id  # same tenant as the parent row
        return form


class TenantScopedTabularInline(TenantScopedAdminMixin, admin.TabularInline):
    formset = TenantInlineFormSet
    extra = 0


class ReadOnlyAdminMixin:
    """Ledgers and derived rows: viewable and searchable, never added, changed or deleted here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def metric_code_filter(lookup: str) -> type[admin.SimpleListFilter]:
    """A list filter by metric code, whose choices come from the (small) Metric table of the
    operator's tenant, never from a DISTINCT over a ledger. `lookup` is the path to the code."""

    class MetricCodeFilter(admin.SimpleListFilter):
        title = "metric"
        parameter_name = "metric"

        def lookups(self, request, model_admin):
            metrics = Metric.objects.all()
            if not is_unscoped(request):
                metrics = tenant_confine(metrics, tenant=operator_tenant(request))
            codes = metrics.order_by("code").values_list("code", flat=True).distinct()
            return [(code, code) for code in codes]

        def queryset(self, request, queryset):
            if not self.value():
                return queryset
            if lookup.endswith("__code"):
                # The code's metrics looked up first, in the small Metric table (the operator's
                # tenant): the ledger is then filtered by metric id, not joined to every metric
                # sharing the code in every tenant.
                metrics = Metric.objects.filter(code=self.value())
                if not is_unscoped(request):
                    metrics = tenant_confine(metrics, tenant=operator_tenant(request))
                relation = lookup.removesuffix("__code")
                return queryset.filter(**{f"{relation}_id__in": list(metrics.values_list("pk", flat=True))})
            return queryset.filter(**{lookup: self.value()})

    return MetricCodeFilter


def adopt_saved(target: Model, saved: Model) -> None:
    """Make the admin's unsaved `target` the row a service just created (the admin goes on
    to log and redirect with `target`)."""
    for field in saved._meta.concrete_fields:
        setattr(target, field.attname, getattr(saved, field.attname))
    target._state.adding = False
    target._state.db = saved._state.db
