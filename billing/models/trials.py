"""Trials (billing.trials): the free units a trial used, and its conversion to paid.

TrialUsage: derived, one row per subscription with a trial, locked (FOR UPDATE) by every
rating batch with events of the subscription still in its trial and by every conversion — the
lock that orders the usage threshold's crossing against a date or operator conversion.
TrialConversion: append-only, at most one per subscription (the unique constraint is the
"converted once" rule): when, why, and the event that crossed the usage threshold."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from aforo.money import UNITS
from catalog.models import Customer, Metric, Subscription, Tenant


class TrialUsage(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    subscription = models.OneToOneField(Subscription, on_delete=models.PROTECT, related_name="trial_usage")
    units = models.DecimalField(**UNITS, default=0, help_text="Units of the trial metric rated free.")
    free_events = models.BigIntegerField(default=0, help_text="Events rated free (any metric).")
    latest_free_at = models.DateTimeField(
        null=True, blank=True, help_text="The latest timestamp of an event rated free (a conversion is after it).",
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "trial usage"
        verbose_name_plural = "trial usage"

    def __str__(self) -> str:
        return f"Trial usage of subscription {self.subscription_id}: {self.units} units"


class TrialConversion(models.Model):
    class Cause(models.TextChoices):
        DATE = "date", "Trial end date"
        USAGE = "usage", "Usage threshold"
        OPERATOR = "operator", "Ended by the operator"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    subscription = models.OneToOneField(Subscription, on_delete=models.PROTECT, related_name="trial_conversion")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="trial_conversions")
    cause = models.CharField(max_length=8, choices=Cause.choices)
    converted_at = models.DateTimeField(help_text="The instant: usage before it is free, from it billed.")
    trial_metric = models.ForeignKey(Metric, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    trial_units = models.DecimalField(**UNITS, null=True, blank=True, help_text="The usage threshold, if any.")
    units_used = models.DecimalField(**UNITS, default=0, help_text="Free units of the trial metric at conversion.")
    # The usage cause: the event whose units reached the threshold (the last free one).
    event_id = models.CharField(max_length=128, blank=True, default="")
    raw_event_id = models.BigIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True, default="")
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["tenant", "-recorded_at"], name="trial_conversion_tenant")]

    def __str__(self) -> str:
        return f"Subscription {self.subscription_id} converted ({self.cause}) at {self.converted_at:%Y-%m-%d %H:%M:%S}"
