"""Trials in the operator admin: the conversions (a read-only list: when, why, the event that
crossed a usage threshold), the trial's free units and its conversion on the subscription's page,
the conversion on the customer's page, and "End trial now" as an admin action."""

from __future__ import annotations

from django.contrib import admin, messages

from catalog.admin import TenantScopedModelAdmin
from catalog.admin.scoping import ReadOnlyAdminMixin
from catalog.models import Customer, Subscription

from .admin_terms import _TermInline
from .models import TrialConversion, TrialUsage
from .trials.services import TrialNotConvertible, trial_convert

CONVERSION_FIELDS = ("subscription", "cause", "converted_at", "trial_metric", "trial_units", "units_used", "event_id", "reason",
                     "recorded_at")


@admin.register(TrialConversion)
class TrialConversionAdmin(ReadOnlyAdminMixin, TenantScopedModelAdmin):
    list_display = ("subscription", "customer", "cause", "converted_at", "units_used", "event_id", "recorded_at")
    list_select_related = ("subscription__customer", "subscription__rate_plan", "customer")
    list_filter = ("cause",)
    search_fields = ("customer__name", "customer__external_id", "event_id")
    ordering = ("-recorded_at",)
    fields = readonly_fields = ("customer", *CONVERSION_FIELDS, "raw_event_id")


class TrialConversionInline(_TermInline):
    model = TrialConversion
    fk_name = "subscription"
    fields = readonly_fields = CONVERSION_FIELDS[1:]


class CustomerTrialConversionInline(_TermInline):
    model = TrialConversion
    fk_name = "customer"
    fields = readonly_fields = CONVERSION_FIELDS


class TrialUsageInline(_TermInline):
    model = TrialUsage
    verbose_name = verbose_name_plural = "trial usage (free)"
    fields = readonly_fields = ("units", "free_events", "latest_free_at", "updated_at")


@admin.action(description="End the trial now (converts it; usage from now on is billed)", permissions=["change"])
def end_trial_now(model_admin, request, queryset):
    converted = refused = 0
    for subscription_id in queryset.values_list("pk", flat=True):
        try:
            result = trial_convert(subscription_id=subscription_id, reason=f"Ended in the admin by {request.user}")
        except TrialNotConvertible:
            refused += 1
            continue
        converted += result.created
    model_admin.message_user(request, f"{converted} trial(s) converted; {refused} without a trial to convert.", messages.INFO)


# The catalog's admins show what billing keeps on their rows (billing is the layer above).
registered = admin.site._registry[Subscription]
registered.inlines = (*registered.inlines, TrialUsageInline, TrialConversionInline)
registered.actions = (*(registered.actions or ()), end_trial_now)
admin.site._registry[Customer].inlines = (*admin.site._registry[Customer].inlines, CustomerTrialConversionInline)
