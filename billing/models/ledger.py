"""The rated ledger, the running totals and the hourly usage rollups.

RatedEvent: immutable, one per raw event; `amount` is the exact delta of its (subscription,
metric, dimension, period) — quote(units_after) − quote(units_before), or for percentage the
change of max(fees, min_fee) — with the tier breakdown of that delta for tiered models; under a
"block" limit, the delta of the capped price (units past the limit are its `blocked_units`,
rated at zero: billing.rating.Model.rate_limited).
RunningTotal: derived, updated in the same transaction as the rated events it sums, under a
row lock; for every key, `amount == sum(rated.amount)` and `units == sum(rated.quantity)`,
so `amount == quote(total) − quote(zero usage)` (settlement adds quote(zero usage) once).
UsageRollup: derived the same way, one row per hour of event time (billing.rollups).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from aforo.money import AMOUNT, UNITS
from catalog.models import Customer, Metric, MetricConfig, RatePlanVersion, Subscription, Tenant
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
    # A raw event's first rating is unique (the constraint below): it is rated once. A
    # re-rating or a reversal (billing.rerating) adds rows for it, each naming its correction.
    raw_event = models.ForeignKey(
        RawEvent, on_delete=models.PROTECT, related_name="ratings", db_constraint=False, db_index=False,
    )
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
    # Trial usage (billing.trials): timestamped before its subscription's trial converted, rated
    # at zero — `amount` is 0, the running total still counts its units (the trial's units are
    # the period's first: the paid ones are priced from there on).
    trial = models.BooleanField(default=False, db_default=False)
    # Corrections (billing.rerating), append-only: a reversal row cancels the rating it names
    # (`reverses`: quantity, amount, tiers and blocked units negated, event count −1); a new
    # rating after it is an ordinary row. Both name the job (`correction`). An event's current
    # rating is its newest row, unless that row is a reversal (then the event counts for nothing).
    reverses = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_constraint=False, db_index=False,
    )
    correction = models.ForeignKey(
        "billing.RatingCorrection", on_delete=models.PROTECT, null=True, blank=True, related_name="rated_events",
        db_constraint=False, db_index=False,
    )

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
            models.Index(fields=["correction", "id"], name="rated_event_correction", condition=models.Q(correction__isnull=False)),
            models.Index(fields=["reverses"], name="rated_event_reverses", condition=models.Q(reverses__isnull=False)),
        ]
        constraints = [
            # One index for both rules, led by raw_event (a raw event's ratings, in one range):
            # its first rating (NULL, NULL) once; per job, one reversal of a given rating and one
            # new rating (NULL reverses).
            models.UniqueConstraint(
                fields=["raw_event", "correction", "reverses"], nulls_distinct=False, name="rated_event_rated_once",
            )
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
