"""Serializers of the invoices API (billing.api.invoices): invoices, their lines and settlement
run, a usage line's rated events, and the void body.

Amounts are decimal strings, never JSON numbers: invoice figures and rounded line amounts are
shown with at least the currency's minor digits ("5.00", `money_text`, which the invoice pages
use too), exact amounts (amount_unrounded, rated amounts) as plain exact text ("0.003")."""

from __future__ import annotations

from decimal import Decimal

from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from aforo.money import LEGACY_MINOR_UNITS, currency_minor_units, decimal_text

from .. import trace
from ..invoices import lifecycle
from ..models import CreditNote, Invoice, InvoiceLine
from .views import DecimalStringField, ExactDecimalField


def money_text(value: Decimal, currency: str) -> str:
    """Exact, with at least the currency's minor digits: 5 → "5.00", 0.125 → "0.125"."""
    text = decimal_text(value)
    minor = currency_minor_units(currency, default=LEGACY_MINOR_UNITS)
    whole, _, fraction = text.partition(".")
    if len(fraction) >= minor:
        return text
    return f"{whole}.{fraction.ljust(minor, '0')}" if minor else whole


class _Money(DecimalStringField):
    """A rounded invoice figure in the invoice's currency (see money_text)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def get_attribute(self, instance):
        value = super().get_attribute(instance)
        currency = instance.currency if isinstance(instance, Invoice) else instance.invoice.currency
        return None if value is None else money_text(value, currency)

    def to_representation(self, value):
        return value


class _AmountDue(_Money):
    """What is owed now: 0 on a void invoice (its credit note cancels it); `original_amount_due`
    keeps the figure as issued."""

    def get_attribute(self, instance):
        if instance.status == Invoice.Status.VOID:
            return money_text(Decimal(0), instance.currency)
        return super().get_attribute(instance)


# status and kind are plain strings in the schema, not enums: more enum-valued fields of those names
# make drf-spectacular's enum naming collide (see wallets/api/serializers.py).


class InvoiceSummarySerializer(serializers.ModelSerializer):
    status = serializers.CharField(
        help_text="draft (settled, within the subscription's grace; finalized by then or on demand), finalized, "
        "paid, uncollectible, or void (then replaced_by names its reissue)."
    )
    customer = serializers.IntegerField(source="customer_id")
    customer_name = serializers.CharField(source="customer.name")
    subscription = serializers.IntegerField(source="subscription_id")
    subtotal = _Money()
    discount_total = _Money()
    tax_total = _Money()
    total = _Money()
    wallet_applied = _Money(help_text="Paid from the prepaid wallet (in real time and at settlement).")
    amount_due = _AmountDue(help_text="What the customer owes on this invoice: 0 once void.")
    original_amount_due = _Money(source="amount_due", help_text="The amount due as issued (also on a void invoice).")
    finalized_at = serializers.DateTimeField(allow_null=True, help_text="When it was finalized (null for a draft).")
    due_at = serializers.DateTimeField(
        allow_null=True, help_text="finalized_at + the subscription's net terms (null for a draft)."
    )
    overdue = serializers.SerializerMethodField(help_text="Finalized or uncollectible, and past due_at.")
    payment_status = serializers.SerializerMethodField(
        help_text="draft, due, overdue, paid, void or uncollectible (overdue wins when past due)."
    )
    paid_at = serializers.DateTimeField(allow_null=True, help_text="When the payment arrived (paid invoices).")
    url = serializers.SerializerMethodField()

    class Meta:
        model = Invoice
        fields = [
            "id", "number", "status", "customer", "customer_name", "subscription", "currency", "period_start",
            "period_end", "subtotal", "discount_total", "tax_total", "total", "wallet_applied", "amount_due",
            "original_amount_due", "issued_at", "finalized_at", "due_at", "overdue", "payment_status", "paid_at", "url",
        ]

    def get_url(self, invoice: Invoice) -> str:
        return self.context["request"].build_absolute_uri(reverse("invoice-detail", args=[invoice.pk]))

    def get_overdue(self, invoice: Invoice) -> bool:
        return lifecycle.is_overdue(status=invoice.status, due_at=invoice.due_at, now=timezone.now())

    def get_payment_status(self, invoice: Invoice) -> str:
        return lifecycle.payment_status(status=invoice.status, due_at=invoice.due_at, now=timezone.now())


class InvoiceLineSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(
        help_text="usage, late_usage, base, overage (usage beyond a blocked hard limit, negative), allowance (rolled-over "
        "and granted units, negative), commitment, cap, discount or tax (in that order on the invoice)."
    )
    metric = serializers.SerializerMethodField(help_text="The metric code (null for lines of no metric).")
    metric_name = serializers.SerializerMethodField(help_text="The metric's name (null for lines of no metric).")
    currency = serializers.SerializerMethodField(help_text="The currency of amount and amount_unrounded.")
    units = ExactDecimalField(allow_null=True)
    amount_unrounded = ExactDecimalField(help_text="Exact: for a usage line, the sum of its rated events' amounts.")
    amount = _Money(help_text="amount_unrounded rounded once to the currency's minor unit (half up).")
    events = serializers.SerializerMethodField(
        help_text="usage and late_usage lines: the URL of the rated events behind the line; null otherwise."
    )
    subscription = serializers.IntegerField(
        source="subscription_id", allow_null=True,
        help_text="A combined invoice (a plan change in its period): the subscription of the line's part. Null: the "
        "invoice's subscription (a one-part invoice), or a line of the whole combined invoice (coupons, taxes).",
    )
    part = serializers.CharField(
        help_text='A combined invoice: the heading of the line\'s part ("Starter plan, 1 Nov – 16 Nov 10:00"); '
        "empty on a one-part invoice and for lines of the whole invoice."
    )

    class Meta:
        model = InvoiceLine
        fields = [
            "id", "position", "kind", "description", "metric", "metric_name", "dimension_key", "period_start", "units",
            "event_count", "amount_unrounded", "amount", "currency", "events", "subscription", "part",
        ]

    def get_metric(self, line: InvoiceLine) -> str | None:
        return line.metric.code if line.metric_id else None

    def get_metric_name(self, line: InvoiceLine) -> str | None:
        return line.metric.name if line.metric_id else None

    def get_currency(self, line: InvoiceLine) -> str:
        return line.invoice.currency

    def get_events(self, line: InvoiceLine) -> str | None:
        if not trace.line_is_traceable(line):
            return None
        return self.context["request"].build_absolute_uri(
            reverse("invoice-line-events", args=[line.invoice_id, line.pk])
        )


class SettlementRunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    subscription = serializers.IntegerField(source="subscription_id", help_text="The subscription it settled.")
    kind = serializers.CharField(help_text="final (the period's invoice) or interim (a threshold invoice).")
    sequence = serializers.IntegerField(help_text="Interim invoices of a period are numbered 1, 2, …; final is 0.")
    watermark = serializers.IntegerField(help_text="The highest rated event id this run settled.")
    created_at = serializers.DateTimeField()
    stages = serializers.ListField(
        child=serializers.DictField(),
        help_text='What each stage did, in order: {"stage": "aggregate", "groups": 2, "events": 5001, …}.',
    )


class InvoiceDetailSerializer(InvoiceSummarySerializer):
    replaces = serializers.IntegerField(
        source="replaces_id", allow_null=True, help_text="The voided invoice this reissues."
    )
    replaced_by = serializers.SerializerMethodField(help_text="The invoice that reissued this one, if voided.")
    voided_at = serializers.DateTimeField(allow_null=True, help_text="When it was voided (null unless void).")
    void_reason = serializers.CharField(allow_blank=True, help_text="Why it was voided (empty unless void).")
    finalize_after = serializers.DateTimeField(
        allow_null=True, help_text="A draft: when the draft sweep finalizes it (the end of its grace)."
    )
    payment_reference = serializers.CharField(allow_blank=True, help_text="The payment's reference (paid invoices).")
    uncollectible_at = serializers.DateTimeField(allow_null=True, help_text="When it was written off.")
    uncollectible_reason = serializers.CharField(allow_blank=True, help_text="Why it was written off.")
    credit_note = serializers.SerializerMethodField(help_text="The credit note its void issued (null otherwise).")
    settlement = serializers.SerializerMethodField(help_text="The run of the invoice's subscription.")
    settlements = serializers.SerializerMethodField(
        help_text="Every run on the invoice: one, or on a combined invoice (a plan change in its period) one per part."
    )
    parts = serializers.SerializerMethodField(
        help_text="A combined invoice's parts, in order: each subscription's heading and the sum of its lines "
        "(before the invoice's coupons and taxes); [] on a one-part invoice."
    )
    lines = InvoiceLineSerializer(many=True)

    class Meta(InvoiceSummarySerializer.Meta):
        fields = [
            *InvoiceSummarySerializer.Meta.fields, "finalize_after", "payment_reference", "uncollectible_at",
            "uncollectible_reason", "replaces", "replaced_by", "voided_at", "void_reason", "credit_note", "settlement",
            "settlements", "parts", "lines",
        ]

    @extend_schema_field({"type": "object", "nullable": True, "properties": {
        "id": {"type": "integer"}, "number": {"type": "string"}, "amount": {"type": "string"},
        "currency": {"type": "string"}, "url": {"type": "string"}}})
    def get_credit_note(self, invoice: Invoice) -> dict | None:
        credit_note = CreditNote.objects.filter(invoice_id=invoice.pk).first()
        if credit_note is None:
            return None
        return {
            "id": credit_note.pk, "number": credit_note.number, "currency": credit_note.currency,
            "amount": money_text(credit_note.amount, credit_note.currency),
            "url": self.context["request"].build_absolute_uri(reverse("credit-note-detail", args=[credit_note.pk])),
        }

    def get_replaced_by(self, invoice: Invoice) -> int | None:
        replacement = getattr(invoice, "replaced_by", None)
        return replacement.pk if replacement is not None else None

    @extend_schema_field(SettlementRunSerializer(allow_null=True))
    def get_settlement(self, invoice: Invoice) -> dict | None:
        runs = invoice.settlement_runs.all()
        run = next((run for run in runs if run.subscription_id == invoice.subscription_id), None)
        return None if run is None else SettlementRunSerializer(run).data

    @extend_schema_field(SettlementRunSerializer(many=True))
    def get_settlements(self, invoice: Invoice) -> list[dict]:
        return SettlementRunSerializer(sorted(invoice.settlement_runs.all(), key=lambda run: run.pk), many=True).data

    @extend_schema_field({"type": "array", "items": {"type": "object", "properties": {
        "subscription": {"type": "integer"}, "part": {"type": "string"}, "amount": {"type": "string"}}}})
    def get_parts(self, invoice: Invoice) -> list[dict]:
        return [
            {"subscription": part.subscription_id, "part": part.heading, "amount": money_text(part.amount, invoice.currency)}
            for part in trace.invoice_parts(invoice)
        ]


class RatedEventTraceSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The rated event's id (in the line's (rated_from, rated_to] range).")
    event_id = serializers.CharField(source="raw_event.event_id", help_text="The client's event id.")
    timestamp = serializers.DateTimeField(source="raw_event.timestamp", help_text="The event's original time.")
    dimension_key = serializers.CharField(allow_blank=True)
    quantity = ExactDecimalField()
    units_before = ExactDecimalField(help_text="The period's units before this event.")
    units_after = ExactDecimalField()
    amount = ExactDecimalField(
        help_text="Exact: quote(units_after) − quote(units_before); the line's events sum to its amount_unrounded."
    )
    tiers = serializers.JSONField(allow_null=True, help_text="Tiered models: how the amount falls across tiers.")
    rate_plan_version = serializers.IntegerField(source="rate_plan_version_id")
    config_hash = serializers.CharField(
        source="pricing_snapshot.config_hash", help_text="The exact config it was rated with."
    )
    rated_at = serializers.DateTimeField()
    reverses = serializers.IntegerField(
        source="reverses_id", allow_null=True,
        help_text="A re-rating's reversal row: the rated event it cancels (its quantity and amount negated).",
    )
    correction = serializers.IntegerField(
        source="correction_id", allow_null=True,
        help_text="The re-rating job or reversal (GET /api/v1/rerating-jobs/{id}) that wrote this row; null for a first rating.",
    )
    raw_event = serializers.SerializerMethodField(help_text="GET it for the original dimensions and gateway metadata.")

    def get_raw_event(self, rated_event) -> str:
        return self.context["request"].build_absolute_uri(reverse("event-detail", args=[rated_event.raw_event_id]))


class LineEventsPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    line_amount_unrounded = DecimalStringField(help_text="The line's exact amount.")
    event_count = serializers.IntegerField(help_text="How many rated events the line sums.")
    sum_amount = DecimalStringField(
        required=False,
        help_text="On the first page only (no cursor): the sum of the amounts of ALL the line's rated events, "
        "equal to line_amount_unrounded.",
    )
    results = RatedEventTraceSerializer(many=True)


class InvoiceVoidInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, help_text="Why the invoice is voided (kept on it).")


class InvoiceMarkPaidInputSerializer(serializers.Serializer):
    reference = serializers.CharField(
        max_length=200, help_text="The payment's reference (bank transfer id, …): printable, at most 200 characters."
    )
    paid_at = serializers.DateTimeField(required=False, help_text="When the payment arrived (default now; not in the future).")


class InvoiceMarkUncollectibleInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, help_text="Why it is written off (kept on the invoice).")


class CreditNoteSerializer(serializers.ModelSerializer):
    invoice = serializers.IntegerField(source="invoice_id")
    invoice_number = serializers.CharField(source="invoice.number")
    customer = serializers.IntegerField(source="customer_id")
    amount = serializers.SerializerMethodField(help_text="The amount credited (the voided invoice's total).")

    class Meta:
        model = CreditNote
        fields = ["id", "number", "invoice", "invoice_number", "customer", "currency", "amount", "reason", "created_at"]

    def get_amount(self, credit_note: CreditNote) -> str:
        return money_text(credit_note.amount, credit_note.currency)
