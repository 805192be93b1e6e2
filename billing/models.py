"""The rated ledger and the running totals.

RatedEvent: immutable, one per raw event; `amount` is the exact delta of its (subscription,
metric, dimension, period) — quote(units_after) − quote(units_before), or for percentage the
change of max(fees, min_fee) — with the tier breakdown of that delta for tiered models.
RunningTotal: derived, updated in the same transaction as the rated events it sums, under a
row lock; for every key, `amount == sum(rated.amount)` and `units == sum(rated.quantity)`,
so `amount == quote(total) − quote(zero usage)` (settlement adds quote(zero usage) once).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from catalog.models import Customer, Metric, MetricConfig, RatePlanVersion, Subscription, Tenant
from metering.models import RawEvent

# Parameters have at most 12 places and units 12: products fit 26 places (percentage: 26).
AMOUNT = {"max_digits": 64, "decimal_places": 26}
UNITS = {"max_digits": 38, "decimal_places": 12}


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
    # checks them. The link to the raw event keeps its constraint.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False)
    raw_event = models.OneToOneField(RawEvent, on_delete=models.PROTECT, related_name="rated")
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

    class Meta:
        indexes = [
            models.Index(fields=["subscription", "metric", "period_start"]),
            models.Index(fields=["tenant", "rated_at"]),
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
