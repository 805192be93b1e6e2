"""The operator admin for invoices and settlement runs: read-only (a finalized invoice never
changes; void-and-reissue is a service, not an edit), tenant-scoped (catalog.admin). An invoice
shows its lines inline; each usage line links to the rated events changelist filtered to
exactly the events it sums (its subscription, metric, dimension, period and id range), and
from there each rated event links to its raw event."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from catalog.admin import ReadOnlyAdminMixin, TenantScopedModelAdmin
from metering.admin import LedgerAdmin, admin_link, exact_decimal

from .invoicing import InvoiceAlreadyVoid, invoice_void_and_reissue
from .trace import line_is_traceable
from .models import Invoice, InvoiceLine, RolloverGrant, RolloverPolicy, SettlementRun


def line_events_url(line: InvoiceLine, *, subscription_id: int) -> str:
    """The rated events changelist, filtered to the events a usage line sums."""
    query = {
        "subscription__id__exact": subscription_id,
        "metric__id__exact": line.metric_id,
        "dimension_key": line.dimension_key,
        "period": line.period_start.isoformat(),
        "id__gt": line.rated_from_id or 0,
        "id__lte": line.rated_to_id,
    }
    return f"{reverse('admin:billing_ratedevent_changelist')}?{urlencode(query)}"


class InvoiceLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = (
        "position", "kind", "description", "metric", "dimension_key", "period_start", "units_exact", "event_count",
        "amount_unrounded_exact", "amount", "rated_events",
    )
    readonly_fields = fields
    units_exact = exact_decimal("units")
    amount_unrounded_exact = exact_decimal("amount_unrounded")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("metric", "invoice")

    @admin.display(description="rated events")
    def rated_events(self, line: InvoiceLine) -> str:
        if not line_is_traceable(line):
            return "—"
        url = line_events_url(line, subscription_id=line.invoice.subscription_id)
        return format_html('<a href="{}">{} event{}</a>', url, line.event_count, "" if line.event_count == 1 else "s")


@admin.register(Invoice)
class InvoiceAdmin(LedgerAdmin):
    list_display = (
        "number", "customer", "period", "total_text", "amount_due_text", "status", "issued_at",
    )
    list_select_related = ("customer",)
    list_filter = ("status", "currency")
    search_fields = ("=number", "customer__name", "customer__external_id")
    date_hierarchy = "issued_at"
    ordering = ("-issued_at", "-id")
    inlines = (InvoiceLineInline,)
    actions = ("void_and_reissue",)
    fieldsets = [
        (None, {"fields": ["number", "status", "customer", "subscription", "currency", "period_start", "period_end",
                           "issued_at", "replaces", "replaced_by_link", "settlement_run_link", "voided_at",
                           "void_reason"]}),
        ("Totals", {"fields": ["subtotal", "discount_total", "tax_total", "total", "wallet_applied", "amount_due"]}),
    ]
    readonly_fields = ("replaced_by_link", "settlement_run_link")

    @admin.action(description="Void and reissue")
    def void_and_reissue(self, request, queryset) -> None:
        """Each selected invoice voided and reissued (billing.invoicing); void ones are skipped."""
        for invoice in queryset.order_by("id"):
            try:
                reissue = invoice_void_and_reissue(invoice=invoice, reason=f"Voided in the admin by {request.user}")
            except InvoiceAlreadyVoid:
                self.message_user(request, f"{invoice.number} is void already.", messages.WARNING)
                continue
            self.message_user(request, f"{invoice.number} voided, reissued as {reissue.replacement.number}.")

    @admin.display(description="period", ordering="period_start")
    def period(self, invoice: Invoice) -> str:
        return f"{invoice.period_start:%Y-%m-%d} → {invoice.period_end:%Y-%m-%d}"

    @admin.display(description="total", ordering="total")
    def total_text(self, invoice: Invoice) -> str:
        return f"{invoice.total.normalize():f} {invoice.currency}"

    @admin.display(description="amount due", ordering="amount_due")
    def amount_due_text(self, invoice: Invoice) -> str:
        return f"{invoice.amount_due.normalize():f} {invoice.currency}"

    @admin.display(description="replaced by")
    def replaced_by_link(self, invoice: Invoice) -> str:
        replacement = Invoice.objects.filter(replaces=invoice).first()
        if replacement is None:
            return "—"
        return admin_link(self.admin_site, "billing_invoice", replacement.pk, replacement.number)

    @admin.display(description="settlement run")
    def settlement_run_link(self, invoice: Invoice) -> str:
        run = SettlementRun.objects.filter(invoice=invoice).first()
        return admin_link(self.admin_site, "billing_settlementrun", run.pk, str(run)) if run else "—"


@admin.register(SettlementRun)
class SettlementRunAdmin(LedgerAdmin):
    list_display = ("id", "subscription", "period_start", "period_end", "kind", "sequence", "watermark", "invoice_link",
                    "created_at")
    list_select_related = ("subscription__customer", "invoice")
    list_filter = ("kind",)
    search_fields = ("=invoice__number", "subscription__customer__name")
    date_hierarchy = "period_start"
    ordering = ("-created_at", "-id")
    fields = ("subscription", "period_start", "period_end", "kind", "sequence", "watermark", "invoice_link",
              "created_at", "stage_log")
    readonly_fields = ("invoice_link", "stage_log")

    @admin.display(description="invoice", ordering="invoice__number")
    def invoice_link(self, run: SettlementRun) -> str:
        if run.invoice_id is None:
            return "—"
        return admin_link(self.admin_site, "billing_invoice", run.invoice_id, run.invoice.number)

    @admin.display(description="what each stage did")
    def stage_log(self, run: SettlementRun) -> str:
        if not run.stages:
            return "—"
        rows = (
            (stage.get("stage", "?"), json.dumps({k: v for k, v in stage.items() if k != "stage"}, sort_keys=True))
            for stage in run.stages
        )
        return format_html(
            "<table>{}</table>", format_html_join("", "<tr><th>{}</th><td><code>{}</code></td></tr>", rows)
        )


class RolloverGrantInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = RolloverGrant
    fk_name = "run"
    extra = 0
    can_delete = False
    fields = ("metric", "earned_period_start", "last_period_start", "units")
    readonly_fields = fields


SettlementRunAdmin.inlines = (*SettlementRunAdmin.inlines, RolloverGrantInline)


@admin.register(RolloverPolicy)
class RolloverPolicyAdmin(TenantScopedModelAdmin):
    """Read/write: a subscription's rollover terms per metric (billing.settlement.rollover)."""

    list_display = ("subscription", "metric", "included_units", "cap_units", "expires_after_periods")
    list_select_related = ("subscription__customer", "metric")
    search_fields = ("subscription__customer__name", "metric__code")
    fields = ("subscription", "metric", "included_units", "cap_units", "expires_after_periods")
