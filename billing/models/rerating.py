"""Re-rating jobs and single-event reversals (billing.rerating): `manage.py rerate`,
POST /api/v1/rerating-jobs, POST /api/v1/events/{id}/reverse and the admin start one.

RatingCorrection: one job — its scope (a subscription, a customer or a rate plan, and a month),
its reason, whether it is a dry run, what it found (the report: the difference per customer, per
invoice line and in total, and the first changed events) and what it wrote. A job's row is
bookkeeping: its status and report are updated in place. The money it moves is in the rated
ledger, append-only: for each event whose rating changed, a reversal of its old rating
(`RatedEvent.reverses`) and its new rating, both linked to the raw event and to the job
(`RatedEvent.correction`)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from catalog.models import Tenant


class RatingCorrection(models.Model):
    class Kind(models.TextChoices):
        RERATE = "rerate", "Re-rating at today's prices"
        REVERSAL = "reversal", "One event reversed"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Settled(models.TextChoices):
        ADJUST = "adjust", "Adjustment lines on the next invoice"
        REISSUE = "reissue", "Void and reissue the settled invoice"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.RERATE)
    subscription_id = models.BigIntegerField(null=True, blank=True, help_text="Scope: this subscription's periods.")
    customer_id = models.BigIntegerField(null=True, blank=True, help_text="Scope: this customer's subscriptions.")
    rate_plan_id = models.BigIntegerField(null=True, blank=True, help_text="Scope: every subscription of this rate plan.")
    period = models.CharField(max_length=7, blank=True, help_text="YYYY-MM: the periods that start in this month.")
    raw_event_id = models.BigIntegerField(null=True, blank=True, help_text="Reversal: the raw event reversed.")
    reason = models.CharField(max_length=300)
    dry_run = models.BooleanField(default=False, help_text="Report the difference; write nothing.")
    settled = models.CharField(
        max_length=8, choices=Settled.choices, default=Settled.ADJUST,
        help_text="What happens to a difference in a period already settled.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "id"], name="rating_correction_tenant_id")]

    def __str__(self) -> str:
        what = "reversal" if self.kind == self.Kind.REVERSAL else "re-rating"
        return f"{what.capitalize()} #{self.pk}{' (dry run)' if self.dry_run else ''}: {self.status}"
