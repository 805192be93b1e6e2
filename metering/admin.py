"""The operator admin for the raw usage ledger and unmatched usage: read-only (the ledger is
immutable), tenant-scoped (catalog.admin), searchable by event id. Unmatched usage can be
replayed from here once the missing key, subscription or price exists.

Every ledger list reads like a ledger of millions (catalog.admin.ledger): newest first by id,
one indexed scan per page, a capped count, no date drill-down over the whole table."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html

from aforo.money import decimal_text
from catalog.admin import ReadOnlyAdminMixin, TenantScopedModelAdmin, metric_code_filter
from catalog.admin.ledger import CappedCountPaginator, LedgerChangeList, tenant_ids, written_date_filter

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


DATE_PARTS = {"date", "year", "iso_year", "quarter", "month", "week", "iso_week_day", "week_day", "day", "hour", "minute",
              "second", "time"}


class LedgerAdmin(ReadOnlyAdminMixin, TenantScopedModelAdmin):
    """Ledgers are large. A page is one indexed scan in `ordering` (the id's, newest first, for
    the ledgers written by the consumer: (tenant, id) serves an operator): no full-table count
    (show_full_result_count off, and a paginator that stops counting at 10,000), no sorting by
    a column (each would sort the whole ledger), no date_hierarchy (written_date_filter instead).

    The ledgers' search box looks up identifiers through indexes: `search_filter` turns the term
    into one indexed condition (an event id through the unique (tenant, event_id) index, a customer
    resolved in the catalog first…), instead of Django's OR of icontains over joined columns."""

    show_full_result_count = False
    list_per_page = 100
    paginator = CappedCountPaginator
    sortable_by = ()
    # The related rows a list shows, fetched by id for the page's rows (one query each) rather than
    # joined: the page's query stays on the ledger alone, so a misestimated filter (a metric of a
    # small tenant: PostgreSQL assumes the tenant and the metric independent) cannot turn a join
    # into a nested loop over the customer table for every candidate row (1.4 s at 10M events).
    list_prefetch_related: tuple[str, ...] = ()

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related(*self.list_prefetch_related)

    def get_changelist(self, request, **kwargs):
        return LedgerChangeList

    def lookup_allowed(self, lookup, value, request):
        """No date parts in a hand-typed URL (?timestamp__year=…&timestamp__month=…, the old date
        drill-down's): each is a function of a column no index holds, filtered along the walk by
        id — seconds at 10M rows. The written-date filter finds days through the id instead."""
        if DATE_PARTS.intersection(lookup.split("__")[1:]):
            return False
        return super().lookup_allowed(lookup, value, request)

    # (request, term) -> Q: the rows `term` finds, as one indexed condition. None: Django's
    # search over `search_fields` (the derived tables, small next to the ledgers).
    search_filter = None

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if self.search_filter is None or not term:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(self.search_filter(request, term)), False


def raw_event_ids(request, term: str) -> list[int]:
    """The raw events whose event id is exactly `term`, in the tenants the request may read: one
    probe of the unique (tenant, event_id) index per tenant."""
    return list(RawEvent.objects.filter(tenant_id__in=tenant_ids(request), event_id=term).values_list("pk", flat=True))


@admin.register(RawEvent)
class RawEventAdmin(LedgerAdmin):
    list_display = (
        "event_id", "metric", "quantity_exact", "timestamp", "received_at", "billed_as", "is_late", "outcome",
    )
    list_prefetch_related = ("ratings", "unmatched")
    # is_late: the partial index (tenant, id) WHERE is_late; persisted: the id window.
    list_filter = (metric_code_filter("metric"), "is_late", written_date_filter("created_at", "persisted"))
    search_fields = ("event_id",)
    search_help_text = "An event id, exactly as sent."
    ordering = ("-id",)
    readonly_fields = ("outcome",)
    quantity_exact = exact_decimal("quantity")

    def search_filter(self, request, term: str) -> Q:
        return Q(tenant_id__in=tenant_ids(request), event_id=term)

    @admin.display(description="billed as")
    def billed_as(self, raw_event: RawEvent) -> str:
        """The key prefix the event carried, or the customer / subscription it named."""
        return f"{raw_event.api_key_prefix}…" if raw_event.api_key_prefix else raw_event.subject

    @admin.display(description="outcome")
    def outcome(self, raw_event: RawEvent) -> str:
        ratings = sorted(raw_event.ratings.all(), key=lambda rated: rated.pk)  # prefetched
        rated = ratings[-1] if ratings else None
        if rated is not None and rated.reverses_id is not None:
            return admin_link(self.admin_site, "billing_ratedevent", rated.pk, "reversed")
        if rated is not None:
            corrected = " (re-rated)" if len(ratings) > 1 else ""
            text = f"rated: {decimal_text(rated.amount)} {rated.currency}{corrected}"
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
    list_filter = (
        _ResolvedFilter, "reason", metric_code_filter("raw_event__metric"),
        written_date_filter("created_at", "recorded"),
    )
    search_fields = ("raw_event__event_id",)
    search_help_text = "An event id, exactly as sent."
    ordering = ("-id",)

    def search_filter(self, request, term: str) -> Q:
        return Q(raw_event_id__in=raw_event_ids(request, term))

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
from . import admin_reconciliation  # noqa: E402,F401 - registers the reconciliation page
