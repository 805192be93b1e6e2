"""The invoice admin's "Void and reissue" action, behind its confirmation step
(catalog.admin.confirm): the page lists the selected invoices and what will happen, and asks
for the reason, which `invoice_void_and_reissue` stores on the voided invoice (void_reason)."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import QuerySet
from django.urls import reverse

from aforo.money import money_display
from catalog.admin.confirm import ReasonForm, action_carry, confirmation_page, is_confirmed

from .invoices.services import InvoiceTransitionRefused
from .invoicing import InvoiceAlreadyVoid, invoice_void_and_reissue
from .models import Invoice

CONSEQUENCES = (
    "Each invoice that is not void already is marked void, as issued: its lines and totals stay as they are, with "
    "your reason and the time.",
    "A replacement is issued with a new number, recomputed from the same rated events with the tax rates, discounts "
    "and grants in force now; it names the invoice it replaces.",
    "For a prepaid or hybrid subscription, the wallet moves by the difference between the two invoices, once.",
    "This cannot be undone: a void invoice stays void (a later correction is another void and reissue).",
)


def void_and_reissue_confirmed(model_admin, request, queryset: QuerySet[Invoice]):
    """The list action: the confirmation page first; with its reason, each selected invoice voided
    and reissued in id order (a void one is skipped with a warning)."""
    invoices = list(queryset.select_related("customer").order_by("id"))
    form = ReasonForm(request.POST if is_confirmed(request) else None)
    if is_confirmed(request) and form.is_valid():
        reason = form.cleaned_data["reason"].strip()
        for invoice in invoices:
            _void_one(model_admin, request, invoice, reason)
        return None  # back to the changelist, with the messages
    rows = [
        (invoice.number, invoice.customer.name, f"{invoice.period_start:%Y-%m-%d} → {invoice.period_end:%Y-%m-%d}",
         _money(invoice.total, invoice.currency), _status_text(invoice))
        for invoice in invoices
    ]
    return confirmation_page(
        model_admin, request, title="Void and reissue", confirm_label="Void and reissue",
        cancel_url=reverse(f"{model_admin.admin_site.name}:billing_invoice_changelist"),
        intro=f"{len(invoices)} invoice{'' if len(invoices) == 1 else 's'} selected. Nothing has changed yet.",
        subject_headers=("invoice", "customer", "period", "total", "status"), subject_rows=rows,
        consequences=CONSEQUENCES, form=form, carry=action_carry(request),
    )


def _money(amount, currency: str) -> str:
    return f"{money_display(amount, currency)} {currency}"


def _status_text(invoice: Invoice) -> str:
    if invoice.status == Invoice.Status.VOID:
        return "void already: will be skipped"
    if invoice.status == Invoice.Status.PAID:
        return "paid: will be refused (a paid invoice is never voided)"
    return invoice.get_status_display()


def _void_one(model_admin, request, invoice: Invoice, reason: str) -> None:
    try:
        reissue = invoice_void_and_reissue(invoice=invoice, reason=reason)
    except InvoiceAlreadyVoid:
        model_admin.message_user(request, f"{invoice.number} is void already: skipped.", messages.WARNING)
        return
    except InvoiceTransitionRefused as refused:  # a paid invoice is never voided
        model_admin.message_user(request, f"{invoice.number}: {refused.message} ({refused.code})", messages.ERROR)
        return
    replacement = reissue.replacement
    model_admin.log_change(request, invoice, f"Voided, reissued as {replacement.number}: {reason}")
    model_admin.message_user(
        request, f"{invoice.number} voided ({reason}), reissued as {replacement.number} "
        f"({_money(replacement.total, replacement.currency)}).", messages.SUCCESS,
    )
