"""Free units: rollover policies and the grants they make, and allowance grants."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from aforo.money import UNITS
from catalog.models import Metric, Subscription, Tenant, same_tenant_check

from .settlement import SettlementRun


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
        verbose_name_plural = "rollover policies"
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
        from billing.periods import period_for

        subscription = self.subscription
        self.period_start = period_for(cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, at=self.period_start)[0]
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return f"{self.units} {self.metric} for {self.period_start:%Y-%m-%d}"
