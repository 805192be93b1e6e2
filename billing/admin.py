"""The operator admin for the rated ledger, running totals and pricing snapshots: read-only,
tenant-scoped (catalog.admin). A rated event links to its raw event (original timestamp,
dimensions, gateway metadata) and shows the exact pricing it was rated with.

The rated ledger's list is read like a ledger of millions (metering.admin.LedgerAdmin): newest
first by id; each filter and search is one indexed scan — an operator's list (tenant, id), a
period (tenant, period_start, id), a customer (customer, id), an event id the raw ledger's
unique (tenant, event_id) then the unique raw_event_id, rated days the id window."""

from __future__ import annotations

import json
from datetime import timedelta

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import Q
from django.utils import formats, timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join

from catalog.admin import is_unscoped, metric_code_filter, operator_tenant, tenant_confine
from catalog.admin.ledger import tenant_ids, written_date_filter
from catalog.models import Customer, Metric, MetricConfig
from metering.admin import LedgerAdmin, admin_link, exact_decimal, raw_event_ids

from .models import PricingSnapshot, RatedEvent, RunningTotal
from .rating import config_hash

PERIOD_CHOICES = 24
SEARCHED_CUSTOMERS = 20  # customers one search term may name (same name, several tenants)


class PeriodFilter(admin.SimpleListFilter):
    """Billing periods by start, newest first; the choices come from the running totals (one row
    per subscription × metric × dimension × period), never from a scan of the rated ledger."""

    title = "period"
    parameter_name = "period"

    def lookups(self, request, model_admin):
        totals = RunningTotal.objects.all()
        if not is_unscoped(request):
            totals = tenant_confine(totals, tenant=operator_tenant(request))
        elif _chosen_tenant(request):
            totals = totals.filter(tenant_id=_chosen_tenant(request))
        starts = totals.order_by("-period_start").values_list("period_start", flat=True).distinct()[:PERIOD_CHOICES]
        return [(start.isoformat(), f"{start:%Y-%m-%d %H:%M}") for start in starts]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        start = parse_datetime(self.value())
        if start is None:
            raise IncorrectLookupParameters(f"period must be an ISO datetime, got {self.value()!r}")
        return queryset.filter(period_start=start)


def _chosen_tenant(request) -> str | None:
    """The superuser's tenant filter (catalog.admin's), if set."""
    value = request.GET.get("tenant__id__exact", "")
    return value if value.isdigit() else None


class LedgerPeriodFilter(PeriodFilter):
    """The period filter of the rated ledger, read through (tenant, period_start, id): an operator's
    tenant, or for a superuser the tenant chosen first in the tenant filter (without one, a period
    of every tenant is no range of any index: the newest rows of an old period would be found by
    walking back over every newer one) — or a subscription, as an invoice line's link to its
    events names (billing.admin_invoices.line_events_url: (subscription, metric, period_start))."""

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        if self.value() and is_unscoped(request) and not _chosen_tenant(request):
            if not request.GET.get("subscription__id__exact"):
                raise IncorrectLookupParameters("the period filter of the rated ledger needs a tenant: choose one first")

    def lookups(self, request, model_admin):
        if is_unscoped(request) and not _chosen_tenant(request):
            return []  # the filter shows once a tenant is chosen
        return super().lookups(request, model_admin)

    def queryset(self, request, queryset):
        """period_start in [start, start + 1 µs), which is period_start = start (period starts are
        whole seconds), read in the order of (tenant, period_start, id) (RatedEventAdmin.get_ordering).
        As an equality, PostgreSQL drops period_start from the ORDER BY and, pricing the primary
        key's walk as sequential and the ledger's periods as spread evenly over the ids, walks
        back from the newest row: for an old period, over every newer one (1.5 s at 1M rows)."""
        if not self.value():
            return queryset
        start = parse_datetime(self.value())
        if start is None:
            raise IncorrectLookupParameters(f"period must be an ISO datetime, got {self.value()!r}")
        return queryset.filter(period_start__gte=start, period_start__lt=start + timedelta(microseconds=1))


@admin.register(RatedEvent)
class RatedEventAdmin(LedgerAdmin):
    list_display = (
        "id", "raw_event_link", "customer", "metric", "dimension_key", "quantity_exact", "amount_exact", "currency",
        "event_timestamp", "period_start", "is_late", "trial",
    )
    list_prefetch_related = ("raw_event", "customer", "metric")
    # Late events: the raw ledger's "is late" filter (its partial index); here it would be a
    # join to every raw event of the tenant.
    list_filter = (
        metric_code_filter("metric__code"), LedgerPeriodFilter, written_date_filter("rated_at", "rated"), "trial",
    )
    search_fields = ("raw_event__event_id", "customer__external_id", "customer__name", "metric__code")
    search_help_text = "An event id, a customer's external id or exact name, or a metric code."
    ordering = ("-id",)
    fieldsets = [
        ("Rated", {"fields": ["raw_event_link", "customer", "subscription", "metric", "dimension_key", "quantity_exact",
                              "units_before_exact", "units_after_exact", "amount_exact", "currency", "trial", "rated_at"]}),
        ("Period", {"fields": ["period_start", "period_end"]}),
        ("Pricing", {"fields": ["rate_plan_version", "metric_config", "pricing", "tier_breakdown"]}),
        ("Original event", {"fields": ["event_timestamp", "raw_received_at", "raw_api_key_prefix", "raw_dimensions",
                                       "raw_metadata", "is_late"]}),
    ]
    readonly_fields = (
        "raw_event_link", "pricing", "tier_breakdown", "raw_received_at", "raw_api_key_prefix", "raw_dimensions", "raw_metadata",
        "is_late", "quantity_exact", "units_before_exact", "units_after_exact", "amount_exact",
    )
    quantity_exact = exact_decimal("quantity")
    units_before_exact = exact_decimal("units_before")
    units_after_exact = exact_decimal("units_after")
    amount_exact = exact_decimal("amount")

    def get_ordering(self, request):
        if request.GET.get(LedgerPeriodFilter.parameter_name):
            return ("-period_start", "-id")  # the same order within one period: its index's (above)
        return super().get_ordering(request)

    def search_filter(self, request, term: str) -> Q:
        """The first kind of identifier `term` is: an event id, else a customer (external id, or
        name ignoring case), else a metric code. Each is looked up in its own small index or table
        first, so the ledger is read by (raw_event_id), (customer, id) or (tenant, id)."""
        raw_ids = raw_event_ids(request, term)
        if raw_ids:
            return Q(raw_event_id__in=raw_ids)
        tenants = tenant_ids(request)
        customers = list(
            Customer.objects.filter(Q(external_id=term) | Q(name__iexact=term), tenant_id__in=tenants)
            .order_by("pk").values_list("pk", flat=True)[:SEARCHED_CUSTOMERS]
        )
        if customers:
            return Q(customer_id__in=customers)
        metrics = list(Metric.objects.filter(tenant_id__in=tenants, code=term).values_list("pk", flat=True))
        return Q(metric_id__in=metrics)

    @admin.display(description="raw event", ordering="raw_event__event_id")
    def raw_event_link(self, rated_event: RatedEvent) -> str:
        raw_event = rated_event.raw_event
        return admin_link(self.admin_site, "metering_rawevent", raw_event.pk, raw_event.event_id)

    @admin.display(description="late", boolean=True)
    def is_late(self, rated_event: RatedEvent) -> bool:
        return rated_event.raw_event.is_late

    @admin.display(description="pricing snapshot")
    def pricing(self, rated_event: RatedEvent) -> str:
        return format_html("<code>{}</code>", json.dumps(rated_event.pricing_snapshot.config, sort_keys=True))

    @admin.display(description="tier breakdown")
    def tier_breakdown(self, rated_event: RatedEvent) -> str:
        if not rated_event.tiers:
            return "—"
        return format_html_join(
            ", ", "tier {}: {} units → {}", ((t["tier"], t["units"], t["amount"]) for t in rated_event.tiers)
        )

    @admin.display(description="received at")
    def raw_received_at(self, rated_event: RatedEvent) -> str:
        return formats.localize(timezone.localtime(rated_event.raw_event.received_at))

    @admin.display(description="API key prefix")
    def raw_api_key_prefix(self, rated_event: RatedEvent) -> str:
        return rated_event.raw_event.api_key_prefix

    @admin.display(description="dimensions")
    def raw_dimensions(self, rated_event: RatedEvent) -> str:
        return format_html("<code>{}</code>", json.dumps(rated_event.raw_event.dimensions, sort_keys=True))

    @admin.display(description="gateway metadata")
    def raw_metadata(self, rated_event: RatedEvent) -> str:
        return format_html("<code>{}</code>", json.dumps(rated_event.raw_event.metadata, sort_keys=True))


@admin.register(RunningTotal)
class RunningTotalAdmin(LedgerAdmin):
    list_display = (  # fits a 1280 px screen: the subscription is on the row's page
        "customer", "metric", "dimension_key", "period_start", "period_end", "units_exact", "amount_exact", "currency",
        "event_count", "updated_at",
    )
    readonly_fields = ("units_exact", "amount_exact")
    units_exact = exact_decimal("units")
    amount_exact = exact_decimal("amount")
    list_select_related = ("customer", "metric")
    list_filter = (metric_code_filter("metric__code"), PeriodFilter, "currency")
    search_fields = ("customer__name", "customer__external_id", "=metric__code", "dimension_key")
    ordering = ("-period_start", "customer_id", "metric_id", "dimension_key")
    # A derived table (one row per subscription × metric × dimension × period): sortable; no
    # date drill-down, the period filter says the same from the same table.
    sortable_by = None


@admin.register(PricingSnapshot)
class PricingSnapshotAdmin(LedgerAdmin):
    """Snapshots are shared by every tenant rating with an identical config: a scoped
    operator sees those of their own metric configs (found by hash in the small catalog
    table: published configs are immutable and never deleted, so they cover every snapshot
    the tenant's rated events use, without a scan of the rated ledger)."""

    list_display = ("config_hash", "pricing_model", "created_at")
    search_fields = ("=config_hash",)
    ordering = ("-id",)

    def get_queryset(self, request):
        queryset = PricingSnapshot.objects.all()
        if is_unscoped(request):
            return queryset
        tenant = operator_tenant(request)
        if tenant is None:
            return queryset.none()
        configs = MetricConfig.objects.filter(tenant_id=tenant.pk).values_list("config", flat=True)
        return queryset.filter(config_hash__in={config_hash(config) for config in configs})

    def get_list_filter(self, request):
        return ()

    @admin.display(description="pricing model")
    def pricing_model(self, snapshot: PricingSnapshot) -> str:
        return str(snapshot.config.get("model", "?"))

from . import admin_backtest, admin_customer, admin_invoices, admin_leases, admin_plan_change, admin_replays, admin_rerating, admin_terms, admin_trials, admin_unmatched  # noqa: F401  (register the backtest, customer and plan change pages, the invoice, settlement run, lease, replay run, terms, trial and unmatched usage admins)
