"""Settlement's records: invoices and their lines, settlement runs, invoice numbers."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from aforo.money import AMOUNT, UNITS
from catalog.models import Customer, Metric, Subscription, Tenant


class Invoice(models.Model):
    class Status(models.TextChoices):
        # billing.invoices.lifecycle: the allowed moves between them.
        DRAFT = "draft"
        FINALIZED = "finalized"
        PAID = "paid"
        VOID = "void"
        UNCOLLECTIBLE = "uncollectible"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="invoices")
    number = models.CharField(max_length=40)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.FINALIZED)
    currency = models.CharField(max_length=3)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    subtotal = models.DecimalField(max_digits=24, decimal_places=6)
    discount_total = models.DecimalField(max_digits=24, decimal_places=6, default=0)
    tax_total = models.DecimalField(max_digits=24, decimal_places=6, default=0)
    total = models.DecimalField(max_digits=24, decimal_places=6)
    wallet_applied = models.DecimalField(max_digits=24, decimal_places=6, default=0)
    amount_due = models.DecimalField(max_digits=24, decimal_places=6)
    replaces = models.OneToOneField("self", on_delete=models.PROTECT, null=True, blank=True, related_name="replaced_by")
    issued_at = models.DateTimeField(default=timezone.now)
    # Voiding (billing.invoicing.invoice_void_and_reissue) is the only change a finalized invoice
    # ever takes: status, voided_at and void_reason; its lines and figures stay as issued.
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.CharField(max_length=300, blank=True, default="")
    # The lifecycle (billing.invoices): status moves only under the invoice's row lock, through
    # billing.invoices.lifecycle.transition_plan. A draft (settled within the subscription's
    # grace) is finalized at finalize_after by the beat, or on demand; due_at is set then.
    finalize_after = models.DateTimeField(null=True, blank=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    payment_reference = models.CharField(max_length=200, blank=True, default="")
    uncollectible_at = models.DateTimeField(null=True, blank=True)
    uncollectible_reason = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "number"], name="invoice_number_unique_per_tenant"),
            models.CheckConstraint(
                condition=~models.Q(status="paid") | (models.Q(paid_at__isnull=False) & ~models.Q(payment_reference="")),
                name="invoice_paid_has_payment",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="draft") | models.Q(finalized_at__isnull=True), name="invoice_draft_not_finalized"
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "-issued_at"]), models.Index(fields=["subscription", "-issued_at"]),
            # The draft sweep: drafts whose grace is over.
            models.Index(fields=["finalize_after"], condition=models.Q(status="draft"), name="invoice_draft_finalize_after"),
        ]

    def __str__(self) -> str:
        return self.number


class InvoiceLine(models.Model):
    class Kind(models.TextChoices):
        USAGE = "usage"  # rated events of one metric and dimension in (rated_from, rated_to]
        LATE_USAGE = "late_usage"  # the same, for a period already settled (an adjustment line)
        BASE = "base"  # quote(zero usage): flat fees, first-tier flat fee, period minimum
        COMMITMENT = "commitment"  # minimum-spend true-up
        CAP = "cap"  # maximum-spend cap (negative)
        ALLOWANCE = "allowance"  # rolled-over and granted units applied to the period's usage (negative)
        OVERAGE = "overage"  # usage beyond a hard limit whose overage is blocked, taken back (negative)
        DISCOUNT = "discount"
        TAX = "tax"
        CREDIT_GRANT = "credit_grant"  # a credit grant paying a postpaid invoice, after tax (negative)

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=12, choices=Kind.choices)
    description = models.CharField(max_length=300)
    metric = models.ForeignKey(Metric, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    dimension_key = models.CharField(max_length=200, blank=True, default="")
    period_start = models.DateTimeField(null=True, blank=True)  # of the rated events (late lines: their own period)
    units = models.DecimalField(**UNITS, null=True, blank=True)
    event_count = models.BigIntegerField(default=0)
    amount_unrounded = models.DecimalField(**AMOUNT)
    amount = models.DecimalField(max_digits=24, decimal_places=6)
    # The rated events behind a usage line: this subscription, metric, dimension and period, id in (from, to].
    rated_from_id = models.BigIntegerField(null=True, blank=True)
    rated_to_id = models.BigIntegerField(null=True, blank=True)
    # The subscription the line comes from — whose rated events a usage line sums, whose period a
    # commitment line trues up. Null: an invoice-wide line (a coupon, a tax) or a line issued
    # before parts existed; both read as the invoice's subscription.
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    # A combined invoice (a plan change within its period) groups its lines by part: the plan and
    # the span it covered ("Starter, 1 Nov – 16 Nov 10:00"). Blank: a one-part invoice, or a line
    # of the whole invoice (coupons, taxes).
    part = models.CharField(max_length=200, blank=True, default="")
    # A usage line of trial usage (free: its rated events are those of the range with trial = true;
    # the key's paid events are on a line with trial = false).
    trial = models.BooleanField(default=False, db_default=False)

    class Meta:
        ordering = ["position"]

    def __str__(self) -> str:
        return f"{self.description}: {self.amount}"


class SettlementRun(models.Model):
    """One settlement of one subscription's period: `kind` final (at period end, on demand) or
    interim (a threshold invoice, numbered by `sequence`). The unique constraint is the
    idempotency of settlement: running it again finds the same run and its invoice."""

    class Kind(models.TextChoices):
        FINAL = "final"
        INTERIM = "interim"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="settlement_runs")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.FINAL)
    sequence = models.PositiveIntegerField(default=0)
    # Rated events with id <= watermark (and above the previous run's) are settled by this run.
    watermark = models.BigIntegerField()
    # The invoice this run settled onto. One run per invoice, except a period with a plan change
    # in it: one final run per part (each subscription of the period), all on ONE invoice
    # (billing.settlement.combined); `Invoice.subscription` is the period's last one.
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="settlement_runs")
    stages = models.JSONField(default=list, help_text="What each stage did.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "period_start", "kind", "sequence"], name="settlement_run_once_per_period"
            )
        ]

    def __str__(self) -> str:
        return f"{self.subscription_id} {self.period_start:%Y-%m-%d} {self.kind}"


class InvoiceCounter(models.Model):
    """The tenant's next invoice number, taken under a row lock (gapless per tenant)."""

    tenant = models.OneToOneField(Tenant, on_delete=models.PROTECT, related_name="+", primary_key=True)
    next_number = models.PositiveIntegerField(default=1)
