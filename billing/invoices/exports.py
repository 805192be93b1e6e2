"""An invoice as CSV, for a finance team's spreadsheet: its lines (lines.csv) and the rated
events behind each usage line (events.csv). Streamed: rows are produced as the response is
written, the events read by a server-side cursor in chunks of 2,000, so an invoice of millions
of events never sits in memory. The same files are served by the API, the admin and the
customer dashboard (each confines which invoices its caller may see).

Line amounts are to the currency's minor unit ("5.00"; they were rounded once, at settlement),
exact amounts as plain exact text ("0.003"); times are UTC ISO 8601. Each usage line's events'
amounts sum exactly to its amount_unrounded (its own subscription's events: a combined invoice's
part's)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone as dt_timezone
from decimal import ROUND_HALF_UP, Decimal

from django.http import StreamingHttpResponse

from aforo.money import LEGACY_MINOR_UNITS, decimal_text, quantize_to_minor_unit

from ..models import Invoice, InvoiceLine
from ..trace import invoice_line_rated_events, line_is_traceable

LINE_COLUMNS = (
    "invoice", "position", "kind", "description", "metric_code", "metric_name", "dimension_key", "period_start",
    "units", "event_count", "amount_unrounded", "amount", "currency", "part", "subscription",
)
EVENT_COLUMNS = (
    "invoice", "line_position", "metric_code", "metric_name", "dimension_key", "event_id", "raw_event_id",
    "timestamp", "received_at", "quantity", "units_before", "units_after", "amount", "currency", "blocked_units",
    "rated_event_id", "rated_at",
)
CHUNK = 2000


class _Echo:
    """A file whose write() returns what it was given: csv.writer then yields rows as text."""

    def write(self, value: str) -> str:
        return value


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z")


def minor_text(amount: Decimal, currency: str) -> str:
    """An amount to the currency's minor unit, as text ("5.00", JPY "500", KWD "1.250")."""
    return f"{quantize_to_minor_unit(amount, currency, rounding=ROUND_HALF_UP, default=LEGACY_MINOR_UNITS):f}"


def _lines(invoice: Invoice) -> Iterable[InvoiceLine]:
    return InvoiceLine.objects.filter(invoice=invoice).select_related("metric").order_by("position").iterator(CHUNK)


def invoice_lines_rows(invoice: Invoice) -> Iterator[str]:
    """lines.csv: the header, then every line in position order; `part` and `subscription` say
    which part of a combined invoice (a plan change in its period) a line is of (both blank for
    a line of the whole combined invoice: coupons, taxes)."""
    combined = InvoiceLine.objects.filter(invoice=invoice).exclude(part="").exists()
    writer = csv.writer(_Echo())
    yield writer.writerow(LINE_COLUMNS)
    for line in _lines(invoice):
        yield writer.writerow([
            invoice.number, line.position, line.kind, line.description, line.metric.code if line.metric else "",
            line.metric.name if line.metric else "", line.dimension_key, _iso(line.period_start),
            "" if line.units is None else decimal_text(line.units), line.event_count,
            decimal_text(line.amount_unrounded), minor_text(line.amount, invoice.currency), invoice.currency,
            line.part, line.subscription_id or ("" if combined else invoice.subscription_id),
        ])


def invoice_events_rows(invoice: Invoice) -> Iterator[str]:
    """events.csv: the header, then for each usage (and late usage) line in position order, the
    rated events it sums in event-time order (then id), each with its client event id and its
    raw event's id."""
    writer = csv.writer(_Echo())
    yield writer.writerow(EVENT_COLUMNS)
    for line in _lines(invoice):
        if not line_is_traceable(line):
            continue
        code, name = (line.metric.code, line.metric.name) if line.metric else ("", "")
        events = (
            invoice_line_rated_events(line=line, subscription_id=invoice.subscription_id)
            .order_by("event_timestamp", "id")
            .values_list(
                "raw_event__event_id", "raw_event_id", "event_timestamp", "raw_event__received_at", "quantity",
                "units_before", "units_after", "amount", "currency", "blocked_units", "id", "rated_at",
            )
        )
        for event_id, raw_id, at, received, quantity, before, after, amount, currency, blocked, rated_id, rated_at in (
            events.iterator(chunk_size=CHUNK)
        ):
            yield writer.writerow([
                invoice.number, line.position, code, name, line.dimension_key, event_id, raw_id, _iso(at),
                _iso(received), decimal_text(quantity), decimal_text(before), decimal_text(after),
                decimal_text(amount), currency, decimal_text(blocked), rated_id, _iso(rated_at),
            ])


def csv_response(rows: Iterator[str], *, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename.replace(chr(34), "")}"'
    return response


def invoice_csv_response(invoice: Invoice, *, what: str) -> StreamingHttpResponse:
    """`what` "lines" or "events": the streamed file, named <number>-<what>.csv."""
    rows = invoice_lines_rows(invoice) if what == "lines" else invoice_events_rows(invoice)
    return csv_response(rows, filename=f"{invoice.number}-{what}.csv")
