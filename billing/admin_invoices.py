"""The operator admin for invoices and settlement runs: read-only (a finalized invoice never
changes; void-and-reissue is a service, not an edit), tenant-scoped (catalog.admin). An invoice
shows its lines inline; each usage line links to the rated events changelist filtered to
exactly the events it sums (its subscription, metric, dimension, period and id range), and
from there each rated event links to its raw event. Rollover policies and allowance grants are
edited here too; a grant only while its period has no final settlement run."""

from __future__ import annotations

import json
from decimal import Decimal
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from catalog.admin import ReadOnlyAdminMixin, TenantScopedModelAdmin
from catalog.admin.scoping import TenantScopedModelForm
from metering.admin import LedgerAdmin, admin_link, exact_decimal

from .admin_invoice_lifecycle import InvoiceLifecycleAdminMixin, payment_status_text
from .grants import (
    AllowanceGrantPeriodSettled,
    allowance_grant_delete,
    allowance_grant_save,
    allowance_grants_with_applied,
)
from .admin_void import void_and_reissue_confirmed
from .models import AllowanceGrant, Invoice, InvoiceLine, RolloverGrant, RolloverPolicy, SettlementRun
from .periods import period_for
from .trace import invoice_parts, line_is_traceable


def line_events_url(line: InvoiceLine, *, subscription_id: int) -> str:
    """The rated events changelist, filtered to the events a usage line sums."""
    query = {
        "subscription__id__exact": subscription_id,
        "metric__id__exact": line.metric_id,
        "dimension_key": line.dimension_key,
        "period": line.period_start.isoformat(),
        "id__gt": line.rated_from_id or 0,
        "id__lte": line.rated_to_id,
        "trial__exact": int(line.trial),
    }
    return f"{reverse('admin:billing_ratedevent_changelist')}?{urlencode(query)}"


def _money(amount, currency: str) -> str:
    return f"{amount.normalize():f} {currency}"


class InvoiceLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = (
        "position", "part_text", "kind", "description", "metric", "metric_name", "dimension_key", "period_start",
        "units_exact", "event_count", "amount_unrounded_exact", "amount_text", "rated_events",
    )
    readonly_fields = fields
    units_exact = exact_decimal("units")
    amount_unrounded_exact = exact_decimal("amount_unrounded")

    @admin.display(description="part")
    def part_text(self, line: InvoiceLine) -> str:
        """A combined invoice (a plan change in its period): the line's part, linked to its
        subscription; "—" on a one-part invoice and for lines of the whole invoice."""
        if not line.part:
            return "—"
        return admin_link(self.admin_site, "catalog_subscription", line.subscription_id, line.part)

    @admin.display(description="metric name")
    def metric_name(self, line: InvoiceLine) -> str:
        return line.metric.name if line.metric_id else "—"

    @admin.display(description="amount")
    def amount_text(self, line: InvoiceLine) -> str:
        return _money(line.amount, line.invoice.currency)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("metric", "invoice")

    @admin.display(description="rated events")
    def rated_events(self, line: InvoiceLine) -> str:
        if not line_is_traceable(line):
            return "—"
        url = line_events_url(line, subscription_id=line.subscription_id or line.invoice.subscription_id)
        return format_html('<a href="{}">{} event{}</a>', url, line.event_count, "" if line.event_count == 1 else "s")


@admin.register(Invoice)
class InvoiceAdmin(InvoiceLifecycleAdminMixin, LedgerAdmin):
    list_display = (
        "number", "customer", "period", "total_text", "amount_due_text", "status", "payment_text", "issued_at",
    )
    list_select_related = ("customer",)
    list_filter = ("status", "currency")
    search_fields = ("=number", "customer__name", "customer__external_id")
    date_hierarchy = "issued_at"
    ordering = ("-issued_at", "-id")
    sortable_by = None  # one invoice per subscription and period: not a ledger of events
    inlines = (InvoiceLineInline,)
    actions = ("void_and_reissue", "mark_paid", "mark_uncollectible")
    fieldsets = [
        (None, {"fields": ["number", "status", "customer", "subscription", "currency", "period_start", "period_end",
                           "issued_at", "replaces", "replaced_by_link", "settlement_run_link", "parts_text", "voided_at",
                           "void_reason"]}),
        ("Totals", {"fields": ["subtotal_text", "discount_total_text", "tax_total_text", "total_text", "wallet_applied_text",
                               "amount_due_text", "original_amount_due_text"]}),
        ("Payment", {"fields": list(InvoiceLifecycleAdminMixin.lifecycle_fields)}),
    ]
    readonly_fields = (
        "replaced_by_link", "settlement_run_link", "parts_text", "subtotal_text", "discount_total_text", "tax_total_text",
        "wallet_applied_text", "original_amount_due_text", *InvoiceLifecycleAdminMixin.lifecycle_fields,
    )

    @admin.action(description="Void and reissue…")
    def void_and_reissue(self, request, queryset):
        """Asks for confirmation and a reason first (billing.admin_void)."""
        return void_and_reissue_confirmed(self, request, queryset)

    @admin.display(description="period", ordering="period_start")
    def period(self, invoice: Invoice) -> str:
        return f"{invoice.period_start:%Y-%m-%d} → {invoice.period_end:%Y-%m-%d}"

    @admin.display(description="subtotal")
    def subtotal_text(self, invoice: Invoice) -> str:
        return _money(invoice.subtotal, invoice.currency)

    @admin.display(description="discounts")
    def discount_total_text(self, invoice: Invoice) -> str:
        return _money(invoice.discount_total, invoice.currency)

    @admin.display(description="tax")
    def tax_total_text(self, invoice: Invoice) -> str:
        return _money(invoice.tax_total, invoice.currency)

    @admin.display(description="total", ordering="total")
    def total_text(self, invoice: Invoice) -> str:
        return _money(invoice.total, invoice.currency)

    @admin.display(description="paid from wallet")
    def wallet_applied_text(self, invoice: Invoice) -> str:
        return _money(invoice.wallet_applied, invoice.currency)

    @admin.display(description="amount due", ordering="amount_due")
    def amount_due_text(self, invoice: Invoice) -> str:
        """0 once void (its credit note cancels it); the issued figure is original_amount_due."""
        return _money(invoice.amount_due if invoice.status != Invoice.Status.VOID else Decimal(0),
                      invoice.currency)

    @admin.display(description="amount due as issued")
    def original_amount_due_text(self, invoice: Invoice) -> str:
        return _money(invoice.amount_due, invoice.currency)

    @admin.display(description="payment")
    def payment_text(self, invoice: Invoice) -> str:
        return payment_status_text(invoice)

    @admin.display(description="replaced by")
    def replaced_by_link(self, invoice: Invoice) -> str:
        replacement = Invoice.objects.filter(replaces=invoice).first()
        if replacement is None:
            return "—"
        return admin_link(self.admin_site, "billing_invoice", replacement.pk, replacement.number)

    @admin.display(description="settlement runs")
    def settlement_run_link(self, invoice: Invoice) -> str:
        """Its run — or, on a combined invoice, one per part."""
        runs = SettlementRun.objects.filter(invoice=invoice).order_by("pk")
        links = [admin_link(self.admin_site, "billing_settlementrun", run.pk, str(run)) for run in runs]
        return format_html_join(", ", "{}", ((link,) for link in links)) if links else "—"

    @admin.display(description="parts")
    def parts_text(self, invoice: Invoice) -> str:
        """A combined invoice (a plan change in its period): each part's heading and sum."""
        parts = invoice_parts(invoice)
        if not parts:
            return "— (one subscription)"
        return format_html_join(
            "", "<p>{}: {}</p>", ((part.heading, _money(part.amount, invoice.currency)) for part in parts)
        )


@admin.register(SettlementRun)
class SettlementRunAdmin(LedgerAdmin):
    list_display = ("id", "subscription", "period_start", "period_end", "kind", "sequence", "watermark", "invoice_link",
                    "created_at")
    list_select_related = ("subscription__customer", "invoice")
    list_filter = ("kind",)
    search_fields = ("=invoice__number", "subscription__customer__name")
    date_hierarchy = "period_start"
    ordering = ("-created_at", "-id")
    sortable_by = None  # one run per subscription and period: not a ledger of events
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


class AllowanceGrantForm(TenantScopedModelForm):
    """Validated by the model's clean() (same tenant, units > 0, not before the subscription
    started) and refused for a period whose final settlement run exists: it would never apply."""

    def clean(self):
        cleaned = super().clean()
        subscription = cleaned.get("subscription") or getattr(self.instance, "subscription", None)
        at = cleaned.get("period_start")
        if subscription is not None and at is not None:
            start, _ = period_for(cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, at=at)
            run = SettlementRun.objects.filter(subscription=subscription, period_start=start, kind=SettlementRun.Kind.FINAL).first()
            if run is not None:
                self.add_error(
                    "period_start",
                    f"The period starting {start:%Y-%m-%d} is settled already (final settlement run {run.pk}): "
                    "a grant for it would never be applied. Grant for a later period.",
                )
        return cleaned


@admin.register(AllowanceGrant)
class AllowanceGrantAdmin(TenantScopedModelAdmin):
    """Read/write while the grant's period is open: free units for one period of a subscription
    (billing.settlement.allowance). Once the period's final run exists the grant is applied (on
    that invoice): view only, never changed or deleted — the `applied` column says so."""

    form = AllowanceGrantForm
    list_display = ("subscription", "metric", "period_start", "units_exact", "description", "applied_text")
    list_select_related = ("subscription__customer", "subscription__rate_plan", "metric")
    search_fields = ("subscription__customer__name", "subscription__customer__external_id", "metric__code",
                     "description")
    date_hierarchy = "period_start"
    ordering = ("-period_start", "-id")
    fields = ("subscription", "metric", "period_start", "units", "description", "applied_text", "idempotency_key",
              "created_at")
    readonly_fields = ("applied_text", "idempotency_key", "created_at")
    units_exact = exact_decimal("units")

    def get_queryset(self, request):
        applied_invoice = SettlementRun.objects.filter(
            subscription_id=OuterRef("subscription_id"), period_start=OuterRef("period_start"), kind=SettlementRun.Kind.FINAL
        ).values("invoice__number")[:1]
        queryset = allowance_grants_with_applied(super().get_queryset(request))
        return queryset.annotate(applied_invoice=Subquery(applied_invoice))

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "subscription"] if obj is not None else fields  # a grant never moves

    @staticmethod
    def _applied(grant: AllowanceGrant) -> bool:
        if hasattr(grant, "applied"):
            return grant.applied
        return SettlementRun.objects.filter(
            subscription_id=grant.subscription_id, period_start=grant.period_start, kind=SettlementRun.Kind.FINAL
        ).exists()

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and not (obj is not None and self._applied(obj))

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and not (obj is not None and self._applied(obj))

    @admin.display(description="applied")
    def applied_text(self, grant: AllowanceGrant) -> str:
        if grant.pk is None:
            return "—"
        if not self._applied(grant):
            return "no: applied by the period's final settlement"
        number = getattr(grant, "applied_invoice", None)
        return f"yes, on invoice {number}: settled, read-only" if number else "yes: settled, read-only"

    def save_model(self, request, obj, form, change):
        try:
            allowance_grant_save(grant=obj)
        except AllowanceGrantPeriodSettled as settled:  # settled between the form's check and the save
            raise PermissionDenied(str(settled)) from None

    def delete_model(self, request, obj):
        try:
            allowance_grant_delete(grant=obj)
        except AllowanceGrantPeriodSettled as settled:
            raise PermissionDenied(str(settled)) from None

    def delete_queryset(self, request, queryset):
        for grant in queryset.order_by("id"):
            try:
                allowance_grant_delete(grant=grant)
            except AllowanceGrantPeriodSettled as settled:
                self.message_user(request, f"{grant} was not deleted: {settled}", messages.WARNING)
