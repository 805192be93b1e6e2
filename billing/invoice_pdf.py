"""The invoice as a document a finance team accepts: seller and buyer blocks, every line with its
metric's name, code, dimension and units, the unit price where one price applied to the whole
line, every amount to the currency's minor unit with the currency, the totals, and a void
invoice marked VOID with its replacement. Rendered from templates/invoices/invoice_pdf.html by
WeasyPrint (HTML/CSS → PDF: paged media, running headers, a table header repeated on every page).

Contracts:
- Read-only: nothing here writes. The caller confines the invoice to what the requester may see
  (billing.trace.invoice_with_lines over the tenant's, or the customer's, invoices).
- Amounts are shown with aforo.money.money_display (the currency's minor unit, half up) and the
  currency code; invoice figures and lines are rounded already, so this never changes a figure.
  A unit price is exact (0.003 USD is a real price): it is shown only when the line is exactly
  units × the per_unit rate of the price it was rated with, so it is never an average.
- A void invoice is not payable: its amount due is shown as zero, with the figures as issued.
- Fields another change may add (`due_at`, `paid_at`, …) are read with getattr: the document
  works with or without them.
- WeasyPrint needs Pango (Debian: libpango-1.0-0 libpangoft2-1.0-0; scripts/dev and scripts/test
  install them). Without it rendering raises PdfUnavailable, which the views turn into a 503.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone

from aforo.billing_details import address_lines, country_name
from aforo.money import decimal_text, money_display

from .models import Invoice, InvoiceLine, RatedEvent
from .rating import dimension_key
from .trace import line_is_traceable, part_headings

TEMPLATE = "invoices/invoice_pdf.html"
SYSTEM_PACKAGES = "libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core"

# WeasyPrint logs each rendering step at INFO, and fontTools (its fallback font subsetter) each
# font table: an invoice download is not worth seven log lines.
for _chatty in ("weasyprint.progress", "fontTools"):
    logging.getLogger(_chatty).setLevel(logging.WARNING)

KIND_LABELS = {
    InvoiceLine.Kind.USAGE: "Usage",
    InvoiceLine.Kind.LATE_USAGE: "Late usage",
    InvoiceLine.Kind.BASE: "Base charge",
    InvoiceLine.Kind.COMMITMENT: "Minimum commitment",
    InvoiceLine.Kind.CAP: "Spend cap",
    InvoiceLine.Kind.ALLOWANCE: "Allowance",
    InvoiceLine.Kind.OVERAGE: "Blocked overage",
    InvoiceLine.Kind.DISCOUNT: "Discount",
    InvoiceLine.Kind.TAX: "Tax",
}


class PdfUnavailable(RuntimeError):
    """WeasyPrint or the system libraries it loads (Pango) are not installed."""


@dataclass(frozen=True)
class Party:
    """A seller or buyer block, with only what is filled in."""

    name: str
    address: list[str]
    country: str
    tax_id: str
    email: str
    reference: str = ""


def money_text(amount: Decimal, currency: str) -> str:
    """"1,234.50 USD": to the minor unit (aforo.money.money_display), with the currency."""
    return f"{money_display(amount, currency)} {currency}"


def _country(code: str) -> str:
    return f"{country_name(code)} ({code})" if code else ""


def seller_party(tenant) -> Party:
    return Party(
        name=tenant.legal_name or tenant.name, address=address_lines(tenant.address), country=_country(tenant.country),
        tax_id=tenant.tax_id, email=tenant.billing_email,
    )


def buyer_party(customer) -> Party:
    return Party(
        name=customer.billing_name or customer.name, address=address_lines(customer.billing_address),
        country=_country(customer.country), tax_id=customer.tax_id, email=customer.billing_email or customer.email,
        reference=customer.external_id,
    )


def price_for_dimension(config: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The price of a stored (normalised) metric config that rates `key`: the base price for
    "", else the override whose match makes that key; None if none does."""
    if not key:
        return {name: value for name, value in config.items() if name != "overrides"}
    for override in config.get("overrides") or ():
        if dimension_key(override.get("match") or {}) == key:
            return override.get("price")
    return None


def unit_price(*, line: InvoiceLine, config: dict[str, Any] | None) -> Decimal | None:
    """The per_unit rate a usage line was charged at, when its amount is exactly units × that
    rate (no free units, no blocked units, one price across the line); else None."""
    if config is None or not line.units:
        return None
    price = price_for_dimension(config, line.dimension_key)
    if not price or price.get("model") != "per_unit":
        return None
    try:
        rate = Decimal(str(price["rate"]))
    except (KeyError, ArithmeticError, ValueError):  # a snapshot this reader does not understand: no unit price
        return None
    return rate if rate.is_finite() and line.units * rate == line.amount_unrounded else None


def _line_configs(lines: list[InvoiceLine]) -> dict[int, dict[str, Any]]:
    """{rated event id: its pricing config} for the last rated event of every usage line, in one
    query (a line of one price has that price on its last event; unit_price checks the rest)."""
    last_ids = [line.rated_to_id for line in lines if line_is_traceable(line)]
    if not last_ids:
        return {}
    return dict(RatedEvent.objects.filter(id__in=last_ids).values_list("id", "pricing_snapshot__config"))


def _line_row(line: InvoiceLine, *, currency: str, config: dict[str, Any] | None) -> dict[str, Any]:
    rate = unit_price(line=line, config=config) if line_is_traceable(line) else None
    metric = line.metric
    return {
        "position": line.position,
        "kind": line.kind,
        "kind_label": KIND_LABELS.get(line.kind, line.kind),
        "metric_name": metric.name if metric else "",
        "metric_code": metric.code if metric else "",
        "description": line.description,
        "dimension": line.dimension_key,
        "late_period": line.period_start if line.kind == InvoiceLine.Kind.LATE_USAGE else None,
        "units": "" if line.units is None else decimal_text(line.units),
        "unit": metric.unit if metric else "",
        "unit_price": f"{decimal_text(rate)} {currency}" if rate is not None else "",
        "amount": money_text(line.amount, currency),
        "negative": line.amount < 0,
    }


def _replacement(invoice: Invoice) -> Invoice | None:
    try:
        return invoice.replaced_by
    except Invoice.DoesNotExist:
        return None


def invoice_document_context(*, invoice: Invoice) -> dict[str, Any]:
    """What the invoice template shows, every amount already text with its currency."""
    currency = invoice.currency
    lines = list(invoice.lines.all())
    configs = _line_configs(lines)
    is_void = invoice.status == Invoice.Status.VOID
    amount_due = Decimal(0) if is_void else invoice.amount_due
    totals = [
        ("Subtotal", invoice.subtotal),
        ("Discounts", -invoice.discount_total if invoice.discount_total > 0 else invoice.discount_total),
        ("Tax", invoice.tax_total),
        ("Total", invoice.total),
        ("Paid from wallet", -invoice.wallet_applied if invoice.wallet_applied > 0 else invoice.wallet_applied),
    ]
    return {
        "invoice": invoice,
        "status_label": invoice.get_status_display().capitalize(),
        "is_void": is_void,
        "replacement": _replacement(invoice) if is_void else None,
        "replaces": invoice.replaces,
        "due_at": getattr(invoice, "due_at", None),
        "paid_at": getattr(invoice, "paid_at", None),
        "seller": seller_party(invoice.tenant),
        "buyer": buyer_party(invoice.customer),
        "lines": [
            {**_line_row(line, currency=currency, config=configs.get(line.rated_to_id)), "heading": heading}
            for line, heading in zip(lines, part_headings(lines), strict=True)
        ],
        "totals": [(label, money_text(value, currency)) for label, value in totals],
        "amount_due": money_text(amount_due, currency),
        "currency": currency,
        "generated_at": timezone.now(),
    }


def _refuse_fetch(url: str, *args, **kwargs):
    raise ValueError(f"The invoice template loads nothing from outside ({url[:80]!r})")


def invoice_pdf_render(*, invoice: Invoice) -> bytes:
    """The invoice as PDF bytes (A4). Raises PdfUnavailable when WeasyPrint cannot load."""
    html = render_to_string(TEMPLATE, invoice_document_context(invoice=invoice))
    try:
        import weasyprint  # imported here: loading Pango costs ~0.1 s, and only this needs it
    except (ImportError, OSError) as missing:
        raise PdfUnavailable(
            f"PDF rendering is not available on this server: {missing}. Install WeasyPrint (requirements.txt) and "
            f"the Debian packages {SYSTEM_PACKAGES} (scripts/dev and scripts/test do)."
        ) from None
    return weasyprint.HTML(string=html, url_fetcher=_refuse_fetch).write_pdf()


def invoice_pdf_filename(invoice: Invoice) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in invoice.number)
    return f"invoice-{safe}.pdf"
