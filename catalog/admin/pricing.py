"""Admin for products, metrics, offerings, rate plans, versions and metric configs."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms.fields import InvalidJSONInput
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import redirect
from django.utils.html import format_html
from django.urls import path, reverse, reverse_lazy

from billing.rating import ConfigError, validate_config

from .. import services
from ..models import (
    Metric,
    MetricConfig,
    Offering,
    Product,
    RatePlan,
    RatePlanVersion,
)

admin.site.site_header = "Aforo operator admin"
admin.site.site_title = "Aforo admin"
admin.site.index_title = "Catalog, ledgers and running totals"

SHOWN_ONCE = "copy it now: only its hash is stored, it will not be shown again."


from .config_builder import config_preview_view
from .pricing_preview import CONFIG_HELP_SHORT, config_reference, price_preview_html
from .scoping import (
    TenantInlineFormSet,
    TenantScopedModelAdmin,
    TenantScopedTabularInline,
    adopt_saved,
)

# --- products, offerings, plans -------------------------------------------------------------


class MetricInline(TenantScopedTabularInline):
    model = Metric
    fields = ("code", "name", "unit", "description")


@admin.register(Product)
class ProductAdmin(TenantScopedModelAdmin):
    list_display = ("name", "code", "product_type", "created_at")
    list_filter = ("product_type",)
    search_fields = ("name", "code")
    inlines = (MetricInline,)


@admin.register(Metric)
class MetricAdmin(TenantScopedModelAdmin):
    list_display = ("code", "name", "unit", "product")
    list_select_related = ("product",)
    list_filter = ("product__product_type", ("product", admin.RelatedOnlyFieldListFilter))
    search_fields = ("code", "name", "product__name")


@admin.register(Offering)
class OfferingAdmin(TenantScopedModelAdmin):
    list_display = ("name", "code", "created_at")
    search_fields = ("name", "code")
    filter_horizontal = ("products",)


@admin.register(RatePlan)
class RatePlanAdmin(TenantScopedModelAdmin):
    list_display = ("name", "code", "offering", "currency")
    list_select_related = ("offering",)
    list_filter = ("currency", ("offering", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "code", "offering__name")


class ConfigJSONField(forms.JSONField):
    """The config textarea: indented JSON, so tiers and overrides read one per line, in the
    engine's order (model first) rather than the database's (jsonb sorts keys by length)."""

    def prepare_value(self, value):
        if isinstance(value, InvalidJSONInput):
            return value
        if value is None:
            return ""
        try:
            value = validate_config(value)
        except ConfigError:
            pass  # shown as typed: the engine's error is on the field
        return json.dumps(value, ensure_ascii=False, indent=2, cls=self.encoder)


def config_json_html(config) -> str:
    return format_html('<pre class="pricing-config">{}</pre>', ConfigJSONField().prepare_value(config))


def config_formfield_kwargs(*, rows: int, cols: int) -> dict:
    attrs = {
        "rows": rows, "cols": cols, "class": "vLargeTextField pricing-config", "spellcheck": "false",
        "data-preview-url": reverse_lazy("admin:catalog_metricconfig_preview"),  # the builder's live preview
    }
    return {"form_class": ConfigJSONField, "widget": forms.Textarea(attrs=attrs)}


def _currency(config: MetricConfig) -> str:
    """The plan's currency (the inline's rows share their parent version: one query per page)."""
    return config.version.rate_plan.currency if config.version_id else ""


class MetricConfigInlineFormSet(TenantInlineFormSet):
    def _construct_form(self, i, **kwargs):
        form = super()._construct_form(i, **kwargs)
        form.instance.version = self.instance  # every row's preview reads the parent's currency: no N+1
        if "config" in form.fields and self.instance.pk:
            form.fields["config"].widget.attrs["data-currency"] = self.instance.rate_plan.currency
        return form


class MetricConfigInline(TenantScopedTabularInline):
    """Prices of one version; editable while the version is a draft, read-only once published.
    Each row shows a compact price preview of its config (catalog/admin/pricing_preview.py)."""

    model = MetricConfig
    formset = MetricConfigInlineFormSet
    fields = ("metric", "config", "price_preview")
    readonly_fields = ("price_preview", "config_json")

    def get_fields(self, request, obj=None):
        return ("metric", "config", "price_preview") if self._editable(obj) else ("metric", "config_json", "price_preview")

    @admin.display(description="config")
    def config_json(self, config: MetricConfig):
        return config_json_html(config.config)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "config":
            kwargs.update(config_formfield_kwargs(rows=10, cols=60))
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "config":
            formfield.help_text = CONFIG_HELP_SHORT
        return formfield

    @admin.display(description="price preview")
    def price_preview(self, config: MetricConfig):
        return price_preview_html(config.config, currency=_currency(config), compact=True)

    def _editable(self, obj) -> bool:
        return obj is None or not obj.is_published

    def has_add_permission(self, request, obj=None) -> bool:
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._editable(obj) and super().has_delete_permission(request, obj)


@admin.register(RatePlanVersion)
class RatePlanVersionAdmin(TenantScopedModelAdmin):
    """Drafts are edited here (with their metric configs) and published; a published version is
    view-only: "Revise" copies it into a new draft (`rate_plan_version_revise`)."""

    list_display = ("__str__", "rate_plan", "version", "status", "effective_from", "published_at")
    list_select_related = ("rate_plan",)

    class Media:  # the metric configs' builder and live preview
        js = ("js/config_builder.js",)
        css = {"all": ("css/config_builder.css",)}
    list_filter = ("status", ("rate_plan", admin.RelatedOnlyFieldListFilter))
    search_fields = ("rate_plan__name", "rate_plan__code", "notes")
    date_hierarchy = "effective_from"
    inlines = (MetricConfigInline,)
    actions = ("publish_selected", "revise_selected")

    def render_change_form(self, request, context, *args, **kwargs):
        context["pricing_reference"] = config_reference()
        return super().render_change_form(request, context, *args, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            excluded = self.get_exclude(request)
            return [name for name in ("tenant", "rate_plan", "effective_from", "notes") if name not in excluded]
        return ["rate_plan", "version", "status", "effective_from", "published_at", "notes"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        if obj.is_published:
            return self.get_fields(request, obj)
        return ["rate_plan", "version", "status", "published_at"]

    def has_change_permission(self, request, obj=None) -> bool:
        return (obj is None or not obj.is_published) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return (obj is None or not obj.is_published) and super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        if change:
            services.catalog_object_save(instance=obj)
            return
        draft = services.rate_plan_version_create(
            rate_plan=obj.rate_plan, effective_from=obj.effective_from, notes=obj.notes
        )
        adopt_saved(obj, draft)  # the inline metric configs are saved against this row next

    def save_formset(self, request, form, formset, change):
        configs = formset.save(commit=False)
        for deleted in formset.deleted_objects:
            deleted.delete()
        for config in configs:
            services.catalog_object_save(instance=config)

    # -- publish / revise: buttons on the change page, and list actions --

    def get_urls(self):
        name = f"{self.model._meta.app_label}_{self.model._meta.model_name}"
        return [
            path("<path:object_id>/publish/", self.admin_site.admin_view(self.publish_view), name=f"{name}_publish"),
            path("<path:object_id>/revise/", self.admin_site.admin_view(self.revise_view), name=f"{name}_revise"),
            *super().get_urls(),
        ]

    def _change_url(self, version: RatePlanVersion) -> str:
        return reverse(f"{self.admin_site.name}:catalog_rateplanversion_change", args=[version.pk])

    def _publish(self, request, version: RatePlanVersion) -> bool:
        try:
            published = services.rate_plan_version_publish(version=version)
        except ValidationError as error:  # PublishedVersionError included
            self.message_user(request, f"{version} was not published: {' '.join(error.messages)}", messages.ERROR)
            return False
        in_force = f"{published.effective_from:%Y-%m-%d %H:%M} UTC"
        self.message_user(request, f"Published {published}, in force from {in_force}.")
        return True

    def _revise(self, request, version: RatePlanVersion) -> RatePlanVersion:
        draft = services.rate_plan_version_revise(version=version)
        self.message_user(request, f"Created draft {draft} from v{version.version}: edit its prices, then publish it.")
        return draft

    def _object_for_action(self, request, object_id: str) -> RatePlanVersion:
        version = self.get_object(request, object_id)
        if version is None:
            raise PermissionDenied("No such rate plan version in your tenant.")
        return version

    def publish_view(self, request, object_id: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        version = self._object_for_action(request, object_id)
        if not self.has_change_permission(request, version):
            raise PermissionDenied("Only a draft can be published.")
        self._publish(request, version)
        return HttpResponseRedirect(self._change_url(version))

    def revise_view(self, request, object_id: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        version = self._object_for_action(request, object_id)
        if not self.has_add_permission(request):
            raise PermissionDenied("Revising a version needs the add permission.")
        return redirect(self._change_url(self._revise(request, version)))

    @admin.action(description="Publish selected drafts", permissions=["change"])
    def publish_selected(self, request, queryset):
        for version in queryset.filter(status=RatePlanVersion.Status.DRAFT).order_by("id"):
            self._publish(request, version)

    @admin.action(description="Revise selected published versions (new drafts)", permissions=["add"])
    def revise_selected(self, request, queryset):
        for version in queryset.filter(status=RatePlanVersion.Status.PUBLISHED).order_by("id"):
            self._revise(request, version)


@admin.register(MetricConfig)
class MetricConfigAdmin(TenantScopedModelAdmin):
    list_display = ("metric", "version", "pricing_model", "version_status")

    class Media:
        js = ("js/config_builder.js",)
        css = {"all": ("css/config_builder.css",)}

    def get_urls(self):
        preview = path("preview/", self.admin_site.admin_view(config_preview_view), name="catalog_metricconfig_preview")
        return [preview, *super().get_urls()]

    list_select_related = ("metric", "version__rate_plan")
    list_filter = ("version__status", ("metric", admin.RelatedOnlyFieldListFilter))
    search_fields = ("metric__code", "version__rate_plan__name")
    readonly_fields = ("price_preview", "config_json")

    def get_fields(self, request, obj=None):
        """A published config reads as indented JSON (Django would print jsonb on one line)."""
        fields = [f for f in super().get_fields(request, obj) if f != "config_json"]
        if obj is not None and not self._editable(obj):
            fields = ["config_json" if f == "config" else f for f in fields]
        return fields

    @admin.display(description="config")
    def config_json(self, config: MetricConfig):
        return config_json_html(config.config)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "version":
            drafts = RatePlanVersion.objects.filter(status=RatePlanVersion.Status.DRAFT)
            kwargs["queryset"] = drafts.select_related("rate_plan")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "config":
            kwargs.update(config_formfield_kwargs(rows=18, cols=90))
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "config":
            formfield.help_text = config_reference()
        return formfield

    @admin.display(description="price preview")
    def price_preview(self, config: MetricConfig):
        """The quote at a few volumes of the config on the form: the saved one, or the submitted
        one once it validated (the form's instance holds it when another field is at fault)."""
        return price_preview_html(config.config, currency=_currency(config))

    @admin.display(description="pricing model")
    def pricing_model(self, config: MetricConfig) -> str:
        return str(config.config.get("model", "?")) if isinstance(config.config, dict) else "?"

    @admin.display(description="version status", ordering="version__status")
    def version_status(self, config: MetricConfig) -> str:
        return config.version.get_status_display()

    def _editable(self, obj) -> bool:
        return obj is None or not obj.version.is_published

    def has_change_permission(self, request, obj=None) -> bool:
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._editable(obj) and super().has_delete_permission(request, obj)
