"""Budget leases: a slice of a metric's hard limit (units) granted to a gateway node for a TTL.

Lease: one grant and its accounting (billing.leases.plan states the rules). `leased` grows with
renewals; `consumed` is the units of rated events that carried the lease's id (added in the
rating transaction); `reported` is the most the gateway said it used. At close (return or
expiry) `used`, `returned` and `expired` are fixed, and used + returned + expired == leased
(a database constraint). Every change runs under the subscription's row lock, then the lease's.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from aforo.money import UNITS
from catalog.models import Customer, Metric, Subscription, Tenant


class Lease(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        RETURNED = "returned"
        EXPIRED = "expired"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="leases")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    metric = models.ForeignKey(Metric, on_delete=models.PROTECT, related_name="+")
    dimension_key = models.CharField(max_length=200, blank=True, default="")
    # The billing period whose limit the lease draws on; it expires at the period's end at the latest.
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    holder = models.CharField(max_length=200, help_text="The gateway node holding the lease.")
    idempotency_key = models.CharField(max_length=200)
    # The creating request, as sent (a retry with the same key must send the same).
    requested_units = models.DecimalField(**UNITS)
    min_units = models.DecimalField(**UNITS, default=0)
    ttl_seconds = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    leased = models.DecimalField(**UNITS, help_text="Units granted (the first grant and renewals' top-ups).")
    consumed = models.DecimalField(**UNITS, default=0, help_text="Units of rated events sent under the lease.")
    reported = models.DecimalField(**UNITS, default=0, help_text="The most the holder reported using.")
    used = models.DecimalField(**UNITS, default=0, help_text="Fixed at close: min(max(reported, consumed), leased).")
    returned = models.DecimalField(**UNITS, default=0)
    expired = models.DecimalField(**UNITS, default=0)
    overrun = models.DecimalField(**UNITS, default=0, help_text="Units rated under the lease beyond `used` after it closed.")
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "idempotency_key"], name="lease_idempotency_key_unique"),
            models.CheckConstraint(
                condition=Q(status="active") | Q(used=F("leased") - F("returned") - F("expired")),
                name="lease_closed_accounts_for_every_unit",
            ),
            models.CheckConstraint(
                condition=Q(leased__gt=0) & Q(consumed__gte=0) & Q(returned__gte=0) & Q(expired__gte=0),
                name="lease_figures_not_negative",
            ),
        ]
        indexes = [
            # What reserves against a (subscription, metric, dimension, period): the grant check's sum.
            models.Index(fields=["subscription", "metric", "dimension_key", "period_start"], name="lease_budget_key"),
            models.Index(fields=["expires_at"], condition=Q(status="active"), name="lease_active_expiry"),
            models.Index(fields=["tenant", "id"], name="lease_tenant_id"),
        ]

    def __str__(self) -> str:
        return f"lease {self.pk} {self.leased} ({self.status})"
