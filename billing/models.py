"""The rated ledger and the running totals.

RatedEvent: immutable, one per raw event; `amount` is the exact delta of its (subscription,
metric, dimension, period) — quote(units_after) − quote(units_before), or for percentage the
change of max(fees, min_fee) — with the tier breakdown of that delta for tiered models.
RunningTotal: derived, updated in the same transaction as the rated events it sums, under a
row lock; for every key, `amount == sum(rated.amount)` and `units == sum(rated.quantity)`,
so `amount == quote(total) − quote(zero usage)` (settlement adds quote(zero usage) once).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from aforo.money import AMOUNT, UNITS
from catalog.models import Customer, Metric, MetricConfig, RatePlanVersion, Subscription, Tenant, same_tenant_check
from metering.models import RawEvent



class PricingSnapshot(models.Model):
    """A metric config exactly as an event was rated with it, stored once per distinct config."""

    config_hash = models.CharField(max_length=64, unique=True)
    config = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.config.get('model', '?')} {self.config_hash[:10]}"


class RatedEvent(models.Model):
    # Hot-path ledger: the catalog foreign keys carry neither an index of their own (the
    # composite indexes below serve every query) nor a database constraint. Django makes FK
    # constraints DEFERRABLE INITIALLY DEFERRED, so each would cost a row check and a
    # KEY SHARE lock on a catalog row at COMMIT for every rated event (measured: most of the
    # commit time of a 2,000-event batch). The ids come from the catalog through enrichment,
    # catalog rows are never deleted (PROTECT; no delete in the API), and verify_ledger
    # checks them. The link to the raw event keeps its unique index (a raw event is rated at
    # most once) but not its constraint either: both rows are written by the same batch in the
    # same transaction (billing.usage), raw events are never deleted, and verify_ledger checks
    # the link; the per-row check cost ~18% of the consumer's throughput (issue 12).
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False)
    raw_event = models.OneToOneField(RawEvent, on_delete=models.PROTECT, related_name="rated", db_constraint=False)
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="rated_events", db_index=False, db_constraint=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="rated_events", db_index=False, db_constraint=False)
    metric = models.ForeignKey(Metric, on_delete=models.PROTECT, related_name="rated_events", db_index=False, db_constraint=False)
    dimension_key = models.CharField(max_length=200, blank=True, default="")
    rate_plan_version = models.ForeignKey(RatePlanVersion, on_delete=models.PROTECT, related_name="rated_events", db_index=False, db_constraint=False)
    metric_config = models.ForeignKey(MetricConfig, on_delete=models.PROTECT, related_name="rated_events", db_index=False, db_constraint=False)
    pricing_snapshot = models.ForeignKey(PricingSnapshot, on_delete=models.PROTECT, related_name="rated_events", db_index=False, db_constraint=False)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    event_timestamp = models.DateTimeField()
    quantity = models.DecimalField(**UNITS)
    units_before = models.DecimalField(**UNITS)
    units_after = models.DecimalField(**UNITS)
    amount = models.DecimalField(**AMOUNT)
    # Tiered models: how `amount` falls across tiers, [{"tier": 2, "units": "5", "amount": "0.05"}, …]
    # (volume: leaving a tier shows as negative units and amount on it). Null for other models.
    tiers = models.JSONField(null=True, blank=True)
    currency = models.CharField(max_length=3)
    rated_at = models.DateTimeField(default=timezone.now)
    # Units of `quantity` past a "block" limit of the price: recorded (units_after counts them),
    # never charged — `amount` is the charge of the rest (billing.rating.Model.rate_limited).
    blocked_units = models.DecimalField(**UNITS, default=0, db_default=0)

    class Meta:
        # (subscription, metric, period_start): settlement and the invoice-line trace. The others
        # serve the read side (billing.admin), each a list page as one range scan by id, newest
        # first: (tenant, id) an operator's list (it replaced (tenant, rated_at), which nothing
        # read), (tenant, period_start, id) the period filter, (customer, id) a customer search.
        indexes = [
            models.Index(fields=["subscription", "metric", "period_start"]),
            models.Index(fields=["tenant", "id"], name="rated_event_tenant_id"),
            models.Index(fields=["tenant", "period_start", "id"], name="rated_event_tenant_period"),
            models.Index(fields=["customer", "id"], name="rated_event_customer_id"),
        ]

    def __str__(self) -> str:
        return f"{self.metric} {self.quantity} → {self.amount} {self.currency}"


class RunningTotal(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="running_totals")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="running_totals")
    metric = models.ForeignKey(Metric, on_delete=models.PROTECT, related_name="running_totals")
    dimension_key = models.CharField(max_length=200, blank=True, default="")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    currency = models.CharField(max_length=3)
    units = models.DecimalField(**UNITS, default=0)
    amount = models.DecimalField(**AMOUNT, default=0)
    event_count = models.BigIntegerField(default=0)
    # Percentage model: the per-transaction fees so far before the period minimum (min_fee), which
    # the next event's delta needs and `amount` cannot give back below the minimum. Zero otherwise.
    transaction_fees = models.DecimalField(**AMOUNT, default=0)
    updated_at = models.DateTimeField(default=timezone.now)
    # The newest of its rated events (the highest id) and the config snapshot that event was rated
    # with, kept in the same UPDATE: a settlement whose range is the whole period reads the total
    # instead of summing its events (billing.settlement.aggregate). Null before the first event.
    last_rated_id = models.BigIntegerField(null=True, blank=True)
    pricing_snapshot = models.ForeignKey(
        PricingSnapshot, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_constraint=False,
        db_index=False,
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "metric", "dimension_key", "period_start"],
                name="running_total_unique_key",
            )
        ]
        indexes = [models.Index(fields=["customer", "period_start"])]

    def __str__(self) -> str:
        return f"{self.subscription_id}/{self.metric_id} {self.period_start:%Y-%m-%d}: {self.units}"


class UsageRollup(models.Model):
    """One hour of a (subscription, metric, dimension key)'s rated usage, by the events' own
    timestamps: added to in the rating transaction (billing.rollups), read by the usage series
    API and the dashboard's charts. Catalog ids without constraints, as on the rated ledger."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False)
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False)
    metric = models.ForeignKey(Metric, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False)
    dimension_key = models.CharField(max_length=200, blank=True, default="")
    hour = models.DateTimeField(help_text="The hour's start (UTC) the events' timestamps fall in.")
    units = models.DecimalField(**UNITS, default=0)
    amount = models.DecimalField(**AMOUNT, default=0)
    blocked_units = models.DecimalField(**UNITS, default=0)
    event_count = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscription", "metric", "dimension_key", "hour"], name="usage_rollup_unique_hour")
        ]
        indexes = [models.Index(fields=["customer", "metric", "hour"], name="usage_rollup_customer_series")]

    def __str__(self) -> str:
        return f"{self.subscription_id}/{self.metric_id} {self.hour:%Y-%m-%d %H}:00: {self.units}"


# --- settlement --------------------------------------------------------------------------------


class TaxRate(models.Model):
    """A tax the customer pays on the discounted subtotal; several apply side by side (not compounding)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="tax_rates")
    name = models.CharField(max_length=100)
    percent = models.DecimalField(max_digits=7, decimal_places=4)

    def __str__(self) -> str:
        return f"{self.name} {self.percent}%"


class Discount(models.Model):
    """A subscription's discount, applied in `position` order to the subtotal, never below zero."""

    class Kind(models.TextChoices):
        PERCENT = "percent"
        FIXED = "fixed"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="discounts")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    value = models.DecimalField(max_digits=20, decimal_places=6, help_text="Percent (10 = 10%), or an amount.")
    position = models.PositiveIntegerField(default=0)
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.value}{'%' if self.kind == self.Kind.PERCENT else ''} off"


class Invoice(models.Model):
    class Status(models.TextChoices):
        FINALIZED = "finalized"
        VOID = "void"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="invoices")
    number = models.CharField(max_length=40)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.FINALIZED)
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

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "number"], name="invoice_number_unique_per_tenant")]
        indexes = [models.Index(fields=["customer", "-issued_at"]), models.Index(fields=["subscription", "-issued_at"])]

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
    invoice = models.OneToOneField(Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="settlement_run")
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


# --- rollover --------------------------------------------------------------------------------


class RolloverPolicy(models.Model):
    """A subscription's rollover terms for one metric. The plan includes `included_units` of the
    metric per period (normally priced free by the rating config's included units); what the
    period leaves unused (included − used, never below zero) carries forward as a lot usable in
    the next `expires_after_periods` periods. The carried balance (all live lots) never exceeds
    `cap_units` (null: no cap). Lots are consumed soonest-expiring first by usage beyond the
    period's included units, and applied as an `allowance` line (billing.settlement.allowance)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="rollover_policies")
    metric = models.ForeignKey(Metric, on_delete=models.PROTECT, related_name="+")
    included_units = models.DecimalField(**UNITS, help_text="Units the plan includes per period.")
    cap_units = models.DecimalField(
        **UNITS, null=True, blank=True, help_text="Most units carried at any time (empty: no cap)."
    )
    expires_after_periods = models.PositiveIntegerField(
        default=1, help_text="Carried units are usable in this many following periods, then expire."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscription", "metric"], name="rollover_policy_once_per_metric"),
            models.CheckConstraint(condition=models.Q(included_units__gte=0), name="rollover_included_not_negative"),
            models.CheckConstraint(
                condition=models.Q(cap_units__isnull=True) | models.Q(cap_units__gte=0), name="rollover_cap_not_negative"
            ),
            models.CheckConstraint(condition=models.Q(expires_after_periods__gte=1), name="rollover_expiry_at_least_one"),
        ]

    def clean(self) -> None:
        super().clean()
        same_tenant_check(self, ("subscription", "metric"))

    def __str__(self) -> str:
        return f"{self.metric} rollover: {self.included_units} included, cap {self.cap_units}"


class RolloverGrant(models.Model):
    """Append-only: the rollover lots a final settlement run leaves for the periods after it —
    the surviving remainder of older lots plus the lot earned in the run's period. The next
    final run reads the lots of the latest earlier final run (nothing else), so each run's rows
    are the complete carried balance at its period's end. A lot is usable in periods starting
    at or before `last_period_start`."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    run = models.ForeignKey(SettlementRun, on_delete=models.PROTECT, related_name="rollover_grants")
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="+")
    metric = models.ForeignKey(Metric, on_delete=models.PROTECT, related_name="+")
    earned_period_start = models.DateTimeField(help_text="The period whose unused included units these are.")
    last_period_start = models.DateTimeField(help_text="The last period they can be used in.")
    units = models.DecimalField(**UNITS)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "metric", "earned_period_start"], name="rollover_grant_once_per_lot"),
            models.CheckConstraint(condition=models.Q(units__gt=0), name="rollover_grant_positive"),
        ]
        indexes = [models.Index(fields=["subscription", "metric"])]

    def __str__(self) -> str:
        return f"{self.metric_id}: {self.units} until {self.last_period_start:%Y-%m-%d}"


class AllowanceGrant(models.Model):
    """Units of a metric granted free for one period of a subscription (a goodwill credit, a
    trial top-up, a promotion): the final settlement of that period applies them like rolled-over
    units (billing.settlement.allowance), after any rolled-over units, priced with the events'
    config. Unused granted units lapse with the period. `period_start` is the start of the
    subscription's period containing the date the operator gives (normalised on save)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="allowance_grants")
    metric = models.ForeignKey(Metric, on_delete=models.PROTECT, related_name="+")
    period_start = models.DateTimeField(help_text="Any instant in the period; stored as the period's start.")
    units = models.DecimalField(**UNITS, help_text="Free units for that period.")
    description = models.CharField(max_length=200, blank=True, default="")
    idempotency_key = models.CharField(
        max_length=200, blank=True, default="",
        help_text="The API caller's key (unique per subscription): a retried create returns this grant.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(units__gt=0), name="allowance_grant_positive"),
            models.UniqueConstraint(
                fields=["subscription", "idempotency_key"], condition=~models.Q(idempotency_key=""),
                name="allowance_grant_key_once_per_subscription",
            ),
        ]
        indexes = [models.Index(fields=["subscription", "period_start"])]

    def clean(self) -> None:
        super().clean()
        same_tenant_check(self, ("subscription", "metric"))
        if self.units is not None and self.units <= 0:
            raise ValidationError({"units": "Must be more than zero."})
        if self.subscription_id and self.period_start and self.period_start < self.subscription.started_at:
            raise ValidationError({"period_start": "Is before the subscription started."})

    def save(self, *args, **kwargs) -> None:
        from .periods import period_for

        subscription = self.subscription
        self.period_start = period_for(cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, at=self.period_start)[0]
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return f"{self.units} {self.metric} for {self.period_start:%Y-%m-%d}"
