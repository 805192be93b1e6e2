"""The invoice lifecycle in the operator admin: "Mark paid" and "Mark uncollectible" (actions on
the invoice list and buttons on an invoice's page) open a form page that asks for the payment
reference (and when it arrived) or the reason, and act only when it is submitted — never in one
click; the lines and events as CSV (billing.invoices.exports); the payment status and the credit
note on the invoice page; credit notes read-only.

Each form acts through billing.invoices.services, invoice by invoice, and reports what happened
to each (recorded, already so: nothing changed, or refused and why). Recording a payment or a
write-off needs the change permission on invoices (the invoice admin is otherwise read-only)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from metering.admin import LedgerAdmin, admin_link

from .invoices import lifecycle
from .invoices.exports import invoice_csv_response
from .invoices.services import (
    REASON_MAX,
    REFERENCE_MAX,
    InvoiceInputInvalid,
    InvoiceTransitionRefused,
    invoice_mark_paid,
    invoice_mark_uncollectible,
)
from .models import CreditNote, Invoice


class MarkPaidForm(forms.Form):
    reference = forms.CharField(
        max_length=REFERENCE_MAX, help_text="The payment's reference (bank transfer id, cheque number, …)."
    )
    paid_at = forms.DateTimeField(
        required=False, help_text="When the payment arrived (YYYY-MM-DD HH:MM, UTC); empty: now. Never in the future."
    )


class MarkUncollectibleForm(forms.Form):
    reason = forms.CharField(
        max_length=REASON_MAX, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why it is written off (kept on the invoice). A later payment can still mark it paid.",
    )


# name → (title, form, service call, what the form asks)
MOVES = {
    "mark_paid": ("Mark paid", MarkPaidForm,
                  lambda invoice_id, data: invoice_mark_paid(
                      invoice_id=invoice_id, reference=data["reference"], paid_at=data.get("paid_at"))),
    "mark_uncollectible": ("Mark uncollectible", MarkUncollectibleForm,
                           lambda invoice_id, data: invoice_mark_uncollectible(invoice_id=invoice_id, reason=data["reason"])),
}


def payment_status_text(invoice: Invoice) -> str:
    """paid on DATE / due on DATE / overdue since DATE / draft until DATE / void / uncollectible."""
    status = lifecycle.payment_status(status=invoice.status, due_at=invoice.due_at, now=timezone.now())
    if status == "paid":
        return f"paid on {invoice.paid_at:%Y-%m-%d} ({invoice.payment_reference})"
    if status == "due":
        return f"due on {invoice.due_at:%Y-%m-%d}"
    if status == "overdue":
        return f"overdue since {invoice.due_at:%Y-%m-%d}" + (" (uncollectible)" if invoice.status == "uncollectible" else "")
    if status == "draft" and invoice.finalize_after:
        return f"draft until {invoice.finalize_after:%Y-%m-%d %H:%M} UTC"
    return status


class InvoiceLifecycleAdminMixin:
    """Mixed into billing.admin_invoices.InvoiceAdmin: the lifecycle's URLs, actions and fields."""

    lifecycle_fields = ("payment_status_text", "finalize_after", "finalized_at", "due_at", "paid_at",
                        "payment_reference", "uncollectible_at", "uncollectible_reason", "credit_note_link",
                        "csv_links")

    def get_urls(self):
        name = f"{self.model._meta.app_label}_{self.model._meta.model_name}"
        view = self.admin_site.admin_view
        return [
            path("<int:invoice_id>/lines.csv", view(self.lines_csv_view), name=f"{name}_lines_csv"),
            path("<int:invoice_id>/events.csv", view(self.events_csv_view), name=f"{name}_events_csv"),
            path("mark-paid/", view(self.mark_paid_view), name=f"{name}_mark_paid"),
            path("mark-uncollectible/", view(self.mark_uncollectible_view), name=f"{name}_mark_uncollectible"),
            *super().get_urls(),
        ]

    # --- CSV ----------------------------------------------------------------------------------

    def _visible(self, request: HttpRequest, invoice_id: int) -> Invoice:
        invoice = self.get_queryset(request).filter(pk=invoice_id).first()  # confined to the operator's tenant
        if invoice is None:
            raise Http404("No such invoice in your tenant.")
        return invoice

    def lines_csv_view(self, request: HttpRequest, invoice_id: int):
        return invoice_csv_response(self._visible(request, invoice_id), what="lines")

    def events_csv_view(self, request: HttpRequest, invoice_id: int):
        return invoice_csv_response(self._visible(request, invoice_id), what="events")

    @admin.display(description="CSV")
    def csv_links(self, invoice: Invoice) -> str:
        if invoice.pk is None:
            return "—"
        name = f"{self.admin_site.name}:billing_invoice"
        return format_html(
            '<a href="{}">lines.csv</a> · <a href="{}">events.csv</a> (the rated events behind each usage line)',
            reverse(f"{name}_lines_csv", args=[invoice.pk]), reverse(f"{name}_events_csv", args=[invoice.pk]),
        )

    @admin.display(description="payment")
    def payment_status_text(self, invoice: Invoice) -> str:
        return payment_status_text(invoice)

    @admin.display(description="credit note")
    def credit_note_link(self, invoice: Invoice) -> str:
        note = CreditNote.objects.filter(invoice_id=invoice.pk).first()
        if note is None:
            return "—"
        return admin_link(self.admin_site, "billing_creditnote", note.pk, f"{note.number}: {note.amount:f} {note.currency}")

    # --- mark paid / uncollectible: a form page, then the service ------------------------------

    @admin.action(description="Mark paid… (asks for the payment reference)")
    def mark_paid(self, request, queryset):
        return self._to_form(request, queryset, "mark_paid")

    @admin.action(description="Mark uncollectible… (asks for the reason)")
    def mark_uncollectible(self, request, queryset):
        return self._to_form(request, queryset, "mark_uncollectible")

    def _to_form(self, request, queryset, move: str):
        ids = ",".join(str(pk) for pk in queryset.order_by("id").values_list("id", flat=True))
        return HttpResponseRedirect(f"{reverse(f'{self.admin_site.name}:billing_invoice_{move}')}?ids={ids}")

    def mark_paid_view(self, request: HttpRequest):
        return self._move_view(request, "mark_paid")

    def mark_uncollectible_view(self, request: HttpRequest):
        return self._move_view(request, "mark_uncollectible")

    def _move_view(self, request: HttpRequest, move: str):
        opts = self.model._meta
        if not request.user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}"):
            raise PermissionDenied("Recording a payment or a write-off needs the change permission on invoices.")
        ids = [int(part) for part in (request.POST.get("ids") or request.GET.get("ids", "")).split(",") if part.isdigit()]
        invoices = list(self.get_queryset(request).filter(pk__in=ids).select_related("customer").order_by("id"))
        if not invoices:
            raise Http404("No such invoice in your tenant.")
        title, form_class, call = MOVES[move]
        form = form_class(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            if self._apply(request, form, invoices, call):
                target = (reverse(f"{self.admin_site.name}:billing_invoice_change", args=[invoices[0].pk]) if len(invoices) == 1
                          else reverse(f"{self.admin_site.name}:billing_invoice_changelist"))
                return HttpResponseRedirect(target)
        context = {
            **self.admin_site.each_context(request), "title": f"{title}: {', '.join(i.number for i in invoices)}",
            "action_title": title, "opts": opts, "form": form, "ids": ",".join(str(i.pk) for i in invoices),
            "invoices": [(invoice, payment_status_text(invoice)) for invoice in invoices],
        }
        return TemplateResponse(request, "admin/billing/invoice/lifecycle_form.html", context)

    def _apply(self, request, form, invoices, call) -> bool:
        """Each invoice through the service; False (the form again, nothing changed) when the
        input itself is refused (a future paid_at)."""
        for invoice in invoices:
            try:
                change = call(invoice.pk, form.cleaned_data)
            except InvoiceInputInvalid as invalid:
                form.add_error(invalid.field if invalid.field in form.fields else None, invalid.message)
                return False
            except InvoiceTransitionRefused as refused:
                self.message_user(request, f"{refused.message} ({refused.code})", messages.ERROR)
                continue
            if change.changed:
                self.message_user(request, f"{invoice.number}: now {change.invoice.status}.")
            else:
                self.message_user(request, f"{invoice.number}: {change.invoice.status} already; nothing changed.",
                                  messages.WARNING)
        return True


@admin.register(CreditNote)
class CreditNoteAdmin(LedgerAdmin):
    """Read-only: credit notes are issued by voids (billing.invoicing), never edited."""

    list_display = ("number", "customer", "invoice_link", "amount_text", "reason", "created_at")
    list_select_related = ("customer", "invoice")
    search_fields = ("=number", "=invoice__number", "customer__name")
    ordering = ("-created_at", "-id")
    fields = ("number", "customer", "invoice_link", "amount_text", "reason", "created_at")
    readonly_fields = ("invoice_link", "amount_text")

    @admin.display(description="invoice")
    def invoice_link(self, note: CreditNote) -> str:
        return admin_link(self.admin_site, "billing_invoice", note.invoice_id, note.invoice.number)

    @admin.display(description="amount credited")
    def amount_text(self, note: CreditNote) -> str:
        return f"{note.amount.normalize():f} {note.currency}"
