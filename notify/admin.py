"""Webhooks in the operator admin: endpoints (the secret shown once, on creation and rotation) and
the delivery log with "resend" (tenant-scoped like every Aforo admin)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction

from catalog.admin import ReadOnlyAdminMixin, TenantScopedModelAdmin

from .alerts import alert_rule_fields
from .models import AlertFiring, AlertRule, WebhookDelivery, WebhookEndpoint
from .services import (
    webhook_delivery_resend,
    webhook_endpoint_create,
    webhook_event_types_check,
    webhook_secret_rotate,
    webhook_url_check,
)
from aforo.exceptions import ApiError


class WebhookEndpointForm(forms.ModelForm):
    """The API's checks, as form errors."""

    url = forms.URLField(max_length=500, assume_scheme="https")

    def clean_url(self):
        try:
            return webhook_url_check(self.cleaned_data["url"])
        except ApiError as error:
            raise ValidationError(error.message) from None

    def clean_event_types(self):
        try:
            return webhook_event_types_check(self.cleaned_data["event_types"])
        except ApiError as error:
            raise ValidationError(error.message) from None


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(TenantScopedModelAdmin):
    form = WebhookEndpointForm
    list_display = ("url", "event_types", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("url", "description")
    actions = ["rotate_secret"]

    def get_fields(self, request, obj=None):
        fields = ["tenant", "url", "description", "event_types", "is_active"]
        return [f for f in fields if f not in self.get_exclude(request, obj)]

    def save_model(self, request, obj, form, change):
        if change:
            obj.save()
            return
        created = webhook_endpoint_create(
            tenant_id=obj.tenant_id, url=obj.url, event_types=obj.event_types, description=obj.description
        )
        obj.pk, obj.secret, obj.created_at = created.pk, created.secret, created.created_at
        messages.success(request, f"Signing secret for {created.url}: {created.secret} — shown once; store it now.")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # deactivate instead: the delivery log stays

    @admin.action(description="Rotate the signing secret (the old one signs too for 24 h)", permissions=["change"])
    def rotate_secret(self, request, queryset):
        for endpoint in queryset:
            with transaction.atomic():
                webhook_secret_rotate(endpoint=endpoint)
            messages.success(request, f"New signing secret for {endpoint.url}: {endpoint.secret} — shown once.")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, TenantScopedModelAdmin):
    # Fits a 1280 px screen: the latency is on each delivery's page.
    list_display = ("id", "event_type", "event_id", "endpoint", "status", "attempts", "response_status", "created_at",
                    "delivered_at")
    list_filter = ("status", "event_type")
    search_fields = ("event_id",)
    list_select_related = ("endpoint",)
    actions = ["resend"]

    @admin.action(description="Resend selected deliveries (same event id)", permissions=["view"])
    def resend(self, request, queryset):
        count = 0
        for delivery in queryset:
            with transaction.atomic():
                webhook_delivery_resend(delivery=delivery)
            count += 1
        self.message_user(request, f"Resent {count} deliver{'y' if count == 1 else 'ies'}.", messages.SUCCESS)


class AlertRuleForm(forms.ModelForm):
    """The API's checks (notify.alerts), as form errors on the field they name."""

    class Meta:
        model = AlertRule
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        tenant_id = self.instance.tenant_id or getattr(cleaned.get("tenant"), "pk", None)
        if tenant_id is None:
            return cleaned
        related = {name: getattr(cleaned.get(name), "pk", None) for name in ("metric", "rate_plan", "subscription")}
        data = {
            "name": cleaned.get("name") or "", "kind": cleaned.get("kind"), "thresholds": cleaned.get("thresholds") or [],
            "is_active": bool(cleaned.get("is_active")), **related,
            **{f: cleaned.get(f) for f in ("factor", "window_minutes", "baseline_minutes", "min_units")},
        }
        try:
            fields = alert_rule_fields(tenant_id=tenant_id, data=data)
        except ApiError as error:
            field = error.context.get("field")
            self.add_error(field if field in self.fields else None, error.message)
            return cleaned
        cleaned["thresholds"] = fields["thresholds"]
        for name in ("factor", "window_minutes", "baseline_minutes", "min_units"):
            cleaned[name] = fields[name]
            setattr(self.instance, name, fields[name])
        self.instance.thresholds = fields["thresholds"]
        return cleaned


@admin.register(AlertRule)
class AlertRuleAdmin(TenantScopedModelAdmin):
    form = AlertRuleForm
    list_display = ("__str__", "kind", "metric", "thresholds", "rate_plan", "subscription", "is_active", "updated_at")
    list_filter = ("kind", "is_active")
    search_fields = ("name",)
    list_select_related = ("metric", "rate_plan")

    def has_delete_permission(self, request, obj=None) -> bool:
        return obj is None or not obj.firings.exists()  # a rule that fired stays with its firings: deactivate it


@admin.register(AlertFiring)
class AlertFiringAdmin(ReadOnlyAdminMixin, TenantScopedModelAdmin):
    list_display = ("triggered_at", "kind", "message", "customer_id", "subscription_id", "metric", "period_start")
    list_filter = ("kind",)
    search_fields = ("event_id", "message")
