"""The operator admin for the raw usage ledger and unmatched usage: read-only (the ledger is
immutable), tenant-scoped (catalog.admin), searchable by event id, key prefix and metric.
Unmatched usage can be replayed from here once the missing key, subscription or price exists."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from aforo.money import decimal_text
from catalog.admin import ReadOnlyAdminMixin, TenantScopedModelAdmin, metric_code_filter

from .models import RawEvent, UnmatchedUsage


def exact_decimal(attribute: str):
    """An admin column showing a Decimal field exactly, without the trailing zeros of its
    storage precision (0.003, not 0.00300000000000000000000000)."""

    @admin.display(description=attribute.replace("_", " "), ordering=attribute)
    def column(model_admin, row) -> str:
        value = getattr(row, attribute)
        return "—" if value is None else decimal_text(value)  # e.g. a commitment true-up line has no units

    column.__name__ = f"{attribute}_exact"
    return column


def admin_link(admin_site: admin.AdminSite, model_label: str, pk: int, text: str) -> str:
    """A link to the admin change (view) page of one row; model_label like "metering_rawevent"."""
    return format_html('<a href="{}">{}</a>', reverse(f"{admin_site.name}:{model_label}_change", args=[pk]), text)


class LedgerAdmin(ReadOnlyAdminMixin, TenantScopedModelAdmin):
    """Ledgers are large: no full-table count under the paginator."""

    show_full_result_count = False
    list_per_page = 100


@admin.register(RawEvent)
class RawEventAdmin(LedgerAdmin):
    list_display = (
        "event_id", "metric", "quantity_exact", "timestamp", "received_at", "billed_as", "is_late", "outcome",
    )
    list_select_related = ("rated", "unmatched")
    list_filter = (metric_code_filter("metric"), "is_late")
    search_fields = ("=event_id", "api_key_prefix", "=metric", "=subject")
    date_hierarchy = "timestamp"
    ordering = ("-timestamp", "-id")
    readonly_fields = ("outcome",)
    quantity_exact = exact_decimal("quantity")

    @admin.display(description="billed as")
    def billed_as(self, raw_event: RawEvent) -> str:
        """The key prefix the event carried, or the customer / subscription it named."""
        return f"{raw_event.api_key_prefix}…" if raw_event.api_key_prefix else raw_event.subject

    @admin.display(description="outcome")
    def outcome(self, raw_event: RawEvent) -> str:
        rated = getattr(raw_event, "rated", None)
        if rated is not None:
            text = f"rated: {decimal_text(rated.amount)} {rated.currency}"
            return admin_link(self.admin_site, "billing_ratedevent", rated.pk, text)
        unmatched = getattr(raw_event, "unmatched", None)
        if unmatched is not None:
            state = "resolved" if unmatched.resolved_at else "unmatched"
            return admin_link(self.admin_site, "metering_unmatchedusage", unmatched.pk, f"{state}: {unmatched.reason}")
        return "—"


class _ResolvedFilter(admin.SimpleListFilter):
    title = "resolved"
    parameter_name = "resolved"

    def lookups(self, request, model_admin):
        return [("no", "Unresolved"), ("yes", "Resolved")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(resolved_at__isnull=self.value() == "no")
        return queryset


@admin.register(UnmatchedUsage)
class UnmatchedUsageAdmin(LedgerAdmin):
    list_display = (
        "event", "metric", "quantity", "event_timestamp", "api_key_prefix", "reason", "detail", "created_at",
        "resolved_at",
    )
    list_select_related = ("raw_event",)
    list_filter = (_ResolvedFilter, "reason", metric_code_filter("raw_event__metric"))
    search_fields = ("=raw_event__event_id", "raw_event__api_key_prefix", "=raw_event__metric", "detail")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")

    @admin.display(description="event", ordering="raw_event__event_id")
    def event(self, unmatched: UnmatchedUsage) -> str:
        return admin_link(self.admin_site, "metering_rawevent", unmatched.raw_event_id, unmatched.raw_event.event_id)

    @admin.display(description="metric", ordering="raw_event__metric")
    def metric(self, unmatched: UnmatchedUsage) -> str:
        return unmatched.raw_event.metric

    @admin.display(description="quantity")
    def quantity(self, unmatched: UnmatchedUsage) -> str:
        return decimal_text(unmatched.raw_event.quantity)

    @admin.display(description="event time", ordering="raw_event__timestamp")
    def event_timestamp(self, unmatched: UnmatchedUsage):
        return unmatched.raw_event.timestamp

    @admin.display(description="key prefix")
    def api_key_prefix(self, unmatched: UnmatchedUsage) -> str:
        return unmatched.raw_event.api_key_prefix
