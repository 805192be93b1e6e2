"""manage.py settle: settle a subscription's period on demand (or a customer's, or every due
period) and print the invoice with what each stage did; --dry-run previews it writing nothing.

Which period: the one containing --at (an ISO datetime with a UTC offset), or with --period
YYYY-MM the one containing that month's first instant, YYYY-MM-01T00:00Z — for a calendar
monthly subscription that is the month itself; for an anniversary anchor (say the 15th) it is
the period from the 15th of the month BEFORE; for a weekly one, the week containing the 1st.
Neither: the current period (settling it now closes it early: later events of that period land
on the next invoice as late lines). --due: every period that is over and has no final invoice,
oldest first, as the beat sweep settles them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone as django_timezone

from billing.cadence import customer_settle_due, customers_due
from billing.periods import period_for
from aforo.money import decimal_text
from billing.settlement import SettlementResult, settlement_run
from billing.settlement.context import round_money
from catalog.models import Customer, Subscription

TOTALS = ("subtotal", "discount_total", "tax_total", "total", "wallet_applied", "amount_due")
CHARGE_KINDS = ("usage", "late_usage", "base", "commitment", "cap")


def _at_arg(options: dict[str, Any]) -> datetime | None:
    if options["period"]:
        try:
            month = datetime.strptime(options["period"], "%Y-%m")
        except ValueError:
            raise CommandError(f"--period: expected YYYY-MM (e.g. 2026-10), got {options['period']!r}") from None
        return month.replace(tzinfo=UTC)
    if options["at"]:
        try:
            at = datetime.fromisoformat(options["at"])
        except ValueError:
            raise CommandError(f"--at: expected an ISO 8601 datetime (e.g. 2026-10-15T12:00Z), got {options['at']!r}") from None
        if at.tzinfo is None:
            raise CommandError(f"--at: {options['at']!r} has no UTC offset; write e.g. {options['at']}Z")
        return at
    return None


def _settleable(subscription: Subscription, at: datetime, now: datetime) -> str | None:
    """Why the period of `subscription` containing `at` cannot be settled, or None."""
    start, end = period_for(cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, at=at)
    if start > now:
        return f"its period containing {at.isoformat()} starts {start.isoformat()}, in the future"
    if subscription.started_at >= end:
        return f"it starts {subscription.started_at.isoformat()}, after the period containing {at.isoformat()}"
    if subscription.ended_at is not None and subscription.ended_at <= start:
        return f"it ended {subscription.ended_at.isoformat()}, before the period containing {at.isoformat()}"
    return None


def _money(value: Decimal, currency: str) -> str:
    return str(round_money(value, currency))


def _document(result: SettlementResult, subscription: Subscription) -> dict[str, Any]:
    """The invoice as a JSON-ready document (decimals as strings), from the database, or for a
    dry run from the pipeline's context."""
    currency = subscription.currency
    if result.invoice is not None:
        invoice = result.invoice
        lines = list(invoice.lines.select_related("metric").order_by("position"))
        document = {
            "settlement": "created" if result.created else "existing", "number": invoice.number,
            "status": invoice.status, "issued_at": invoice.issued_at.isoformat(),
            **{name: _money(getattr(invoice, name), currency) for name in TOTALS},
        }
        rows = [(line.position, line, line.metric.code if line.metric else None) for line in lines]
        stages = result.run.stages if result.run is not None else []
        start, end = invoice.period_start, invoice.period_end
    else:
        context = result.context
        totals = {
            "subtotal": context.total(*CHARGE_KINDS), "discount_total": -context.total("discount"),
            "tax_total": context.total("tax"), "total": context.total(),
            "wallet_applied": context.wallet_realtime + context.wallet_now, "amount_due": context.amount_due,
        }
        document = {
            "settlement": "preview", "number": None, "status": "preview", "issued_at": None,
            **{name: _money(value, currency) for name, value in totals.items()},
        }
        rows = [(position, line, None) for position, line in enumerate(context.lines, start=1)]
        stages = context.stages
        start, end = context.period_start, context.period_end
    document.update(
        subscription=subscription.pk, customer=subscription.customer_id, currency=currency,
        period_start=start.isoformat(), period_end=end.isoformat(),
        lines=[
            {
                "position": position, "kind": line.kind, "description": line.description, "metric": code,
                "dimension_key": line.dimension_key,
                "period_start": line.period_start.isoformat() if line.period_start else None,
                "units": None if line.units is None else decimal_text(line.units), "event_count": line.event_count,
                "amount_unrounded": decimal_text(line.amount_unrounded), "amount": _money(line.amount, currency),
                "rated_from_id": line.rated_from_id, "rated_to_id": line.rated_to_id,
            }
            for position, line, code in rows
        ],
        stages=json.loads(json.dumps(stages, default=str)),
    )
    return document


def _table(lines: list[dict[str, Any]]) -> list[str]:
    """The lines as an aligned table: text left, numbers right."""
    header = ["#", "kind", "description", "units", "events", "amount"]
    rows = [
        [str(line["position"]), line["kind"], line["description"], line["units"] or "",
         str(line["event_count"] or ""), line["amount"]]
        for line in lines
    ]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    left = {1, 2}

    def render(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [render(header), "  ".join("-" * w for w in widths), *(render(row) for row in rows)]


def _text(document: dict[str, Any]) -> list[str]:
    headline = {
        "created": f"Invoice {document['number']} ({document['status']}): settled now",
        "existing": f"Invoice {document['number']} ({document['status']}): this period was settled already; its existing invoice",
        "preview": "Invoice preview (dry run: nothing written)",
    }[document["settlement"]]
    out = [
        headline,
        (
            f"subscription {document['subscription']}, customer {document['customer']}, "
            f"period {document['period_start']} → {document['period_end']}, {document['currency']}"
        ),
        "",
        *(_table(document["lines"]) if document["lines"] else ["(no lines)"]),
        "",
    ]
    labels = {"subtotal": "subtotal", "discount_total": "discounts", "tax_total": "tax", "total": "total",
              "wallet_applied": "wallet applied", "amount_due": "amount due"}
    shown = {name: document[name] for name in labels}
    if shown["discount_total"] != _money(Decimal(0), document["currency"]):
        shown["discount_total"] = f"-{shown['discount_total']}"  # what the discounts take off
    width = max(len(value) for value in shown.values())
    out += [f"{label:>15}  {shown[name]:>{width}}" for name, label in labels.items()]
    out += ["", "stages:"]
    for stage in document["stages"]:
        details = ", ".join(f"{key}={value}" for key, value in stage.items() if key != "stage")
        out.append(f"  {stage['stage']}: {details}")
    return out


class Command(BaseCommand):
    help = (
        "Settle a period and print its invoice and what each stage did. --period YYYY-MM means the period "
        "containing YYYY-MM-01T00:00Z (anniversary and weekly subscriptions: the period holding that instant). "
        "Example: settle --subscription 12 --period 2026-10 --dry-run"
    )

    def add_arguments(self, parser):
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--subscription", type=int, help="Settle this subscription's period.")
        who.add_argument("--customer", type=int, help="Settle the period of each of this customer's subscriptions.")
        who.add_argument("--due", action="store_true", help="Settle every period that is over and has no final invoice, oldest first.")
        when = parser.add_mutually_exclusive_group()
        when.add_argument("--period", help="YYYY-MM: the period containing that month's first instant (UTC).")
        when.add_argument("--at", help="ISO datetime with UTC offset: the period containing it. Default: the current period.")
        parser.add_argument("--dry-run", action="store_true", help="Preview the invoice; write nothing.")
        parser.add_argument(
            "--json", action="store_true",
            help="Print the invoice as JSON (decimals as strings); a list for --customer and --due.",
        )

    def handle(self, *args, **options):
        now = django_timezone.now()
        at = _at_arg(options)
        dry_run = options["dry_run"]
        if options["due"]:
            if at is not None:
                raise CommandError("--due settles every period that is over; it takes no --period or --at")
            results = [
                result for customer_id in customers_due(now=now)
                for result in customer_settle_due(customer_id=customer_id, now=now, dry_run=dry_run)
            ]
        else:
            results = [
                settlement_run(subscription_id=subscription.pk, at=at or now, dry_run=dry_run)
                for subscription in self._subscriptions(options, at or now, now)
            ]
        subscriptions = Subscription.objects.in_bulk({self._subscription_id(r) for r in results})
        documents = [_document(r, subscriptions[self._subscription_id(r)]) for r in results]
        if options["json"]:
            payload = documents[0] if options["subscription"] else documents
            self.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False))
            return
        if not documents:
            self.stdout.write("nothing is due: every period that is over has its invoice")
        for n, document in enumerate(documents):
            if n:
                self.stdout.write("\n" + "=" * 72 + "\n")
            for row in _text(document):
                self.stdout.write(row)

    @staticmethod
    def _subscription_id(result: SettlementResult) -> int:
        return result.run.subscription_id if result.run is not None else result.context.subscription.pk

    @staticmethod
    def _subscriptions(options: dict[str, Any], at: datetime, now: datetime) -> list[Subscription]:
        if options["subscription"]:
            subscription = Subscription.objects.filter(pk=options["subscription"]).first()
            if subscription is None:
                raise CommandError(f"subscription {options['subscription']} does not exist")
            reason = _settleable(subscription, at, now)
            if reason:
                raise CommandError(f"subscription {subscription.pk} cannot be settled: {reason}")
            return [subscription]
        if not Customer.objects.filter(pk=options["customer"]).exists():
            raise CommandError(f"customer {options['customer']} does not exist")
        subscriptions = [
            s for s in Subscription.objects.filter(customer_id=options["customer"]).order_by("pk") if _settleable(s, at, now) is None
        ]
        if not subscriptions:
            raise CommandError(f"customer {options['customer']} has no subscription with a period containing {at.isoformat()} to settle")
        return subscriptions
