"""Budget leases: a slice of a customer's remaining units or money granted to a gateway node
for a TTL.

Lease: one grant and its accounting (billing.leases.plan states the rules), in units of a
metric's hard limit (kind "units") or in money of the customer's prepaid wallet (kind "money",
a wallet hold underneath: `hold`, reference `lease:<id>`). `leased` grows with renewals;
`consumed` is what rated events that carried the lease's id used — their units (added in the
rating transaction), or for money what they drew from the hold; `reported` is the most the
gateway said it used. At close (return or expiry) `used`, `returned` and `expired` are fixed,
and used + returned + expired == leased (a database constraint). Every change runs under the
subscription's row lock, then the lease's (then, for money, the wallet's).
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from aforo.money import AMOUNT
from catalog.models import Customer, Metric, Subscription, Tenant
from wallets.models import Hold


class Lease(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        RETURNED = "returned"
        EXPIRED = "expired"

    class Kind(models.TextChoices):
        UNITS = "units"
        MONEY = "money"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=5, choices=Kind.choices, default=Kind.UNITS)
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="leases")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    metric = models.ForeignKey(Metric, on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    # Money leases: the wallet hold that reserves the money, and its currency.
    hold = models.OneToOneField(Hold, on_delete=models.PROTECT, related_name="lease", null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True, default="")
    dimension_key = models.CharField(max_length=200, blank=True, default="")
    # The billing period whose limit the lease draws on; it expires at the period's end at the latest.
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    holder = models.CharField(max_length=200, help_text="The gateway node holding the lease.")
    idempotency_key = models.CharField(max_length=200)
    # The creating request, as sent (a retry with the same key must send the same).
    requested_units = models.DecimalField(**AMOUNT)
    min_units = models.DecimalField(**AMOUNT, default=0)
    ttl_seconds = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    leased = models.DecimalField(**AMOUNT, help_text="Units granted (the first grant and renewals' top-ups).")
    consumed = models.DecimalField(**AMOUNT, default=0, help_text="Units of rated events sent under the lease.")
    reported = models.DecimalField(**AMOUNT, default=0, help_text="The most the holder reported using.")
    used = models.DecimalField(**AMOUNT, default=0, help_text="Fixed at close: min(max(reported, consumed), leased).")
    returned = models.DecimalField(**AMOUNT, default=0)
    expired = models.DecimalField(**AMOUNT, default=0)
    overrun = models.DecimalField(**AMOUNT, default=0, help_text="Units rated under the lease beyond `used` after it closed.")
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
                condition=(Q(kind="units") & Q(metric__isnull=False)) | (Q(kind="money") & Q(metric__isnull=True)),
                name="lease_units_name_a_metric_money_none",
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
