"""Subscriptions: Customer × Offering × Rate plan (+ billing mode, cadence, anchor, currency, and
the settlement terms billing.settlement applies per period)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.utils import timezone

from .customers import Customer
from .pricing import Metric, Offering, RatePlan, validate_currency_code
from .tenants import TenantOwned


class Subscription(TenantOwned):
    """A customer's subscription to an offering on a rate plan. Events are rated against the
    subscription active at the event's timestamp (started_at <= T < ended_at) whose rate plan
    version in force at T prices the event's metric."""

    class BillingMode(models.TextChoices):
        POSTPAID = "postpaid", "Postpaid"
        PREPAID = "prepaid", "Prepaid"
        HYBRID = "hybrid", "Hybrid"

    class Cadence(models.TextChoices):
        MONTHLY = "monthly", "Monthly"
        WEEKLY = "weekly", "Weekly"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        CANCELED = "canceled", "Canceled"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="subscriptions")
    offering = models.ForeignKey(Offering, on_delete=models.PROTECT, related_name="subscriptions")
    rate_plan = models.ForeignKey(RatePlan, on_delete=models.PROTECT, related_name="subscriptions")
    billing_mode = models.CharField(max_length=16, choices=BillingMode.choices, default=BillingMode.POSTPAID)
    billing_cadence = models.CharField(max_length=16, choices=Cadence.choices, default=Cadence.MONTHLY)
    billing_anchor = models.DateTimeField(
        help_text="Start of the first billing period; later periods follow at the cadence.",
    )
    currency = models.CharField(max_length=3, default="USD", validators=[validate_currency_code])
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    # Settlement terms (billing.settlement): per period, in the subscription's currency.
    min_commitment = models.DecimalField(
        max_digits=20, decimal_places=6, null=True, blank=True,
        help_text="Minimum spend per period: a true-up line brings lower charges up to it.",
    )
    spend_cap = models.DecimalField(
        max_digits=20, decimal_places=6, null=True, blank=True, help_text="Maximum spend per period."
    )
    spend_cap_action = models.CharField(
        max_length=8, choices=[("cap", "Cap the charges"), ("alert", "Alert only")], default="cap",
    )
    invoice_threshold = models.DecimalField(
        max_digits=20, decimal_places=6, null=True, blank=True,
        help_text="Interim invoice as soon as the period's accrued charges (not yet invoiced) reach this amount.",
    )
    # A cancellation (catalog.services.subscription_cancel): when it was decided and why; it takes
    # effect at `ended_at` (now, or a later end the operator chose).
    canceled_at = models.DateTimeField(null=True, blank=True, editable=False)
    canceled_reason = models.CharField(max_length=500, blank=True, default="", editable=False)
    customer_may_change_plan = models.BooleanField(
        default=False,
        help_text="The customer may switch to another plan of the offering (same currency) from their dashboard.",
    )
    # A plan change (billing.plan_change) ends this subscription at an instant and starts its
    # successor there, on the new plan, with the same billing anchor: `changed_from` links them.
    changed_from = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, editable=False, related_name="changed_to",
    )
    # Invoice terms (billing.invoices): when an invoice is due, and how long a settled one stays a draft.
    net_terms_days = models.PositiveSmallIntegerField(
        default=30, validators=[MaxValueValidator(365)],
        help_text="Net payment terms: an invoice is due this many days after it is finalized (0: due on issue).",
    )
    invoice_grace_hours = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(720)],
        help_text="A settled invoice stays a draft this many hours before it is finalized (0: finalized at once).",
    )
    metric_minimums = models.JSONField(
        default=dict, blank=True,
        help_text='Per-metric minimum spend per period, {"metric_code": "amount"}: a true-up line per metric.',
    )
    # The version of the terms above that these fields copy (SubscriptionTermsVersion): the one in
    # effect now. None: the subscription never had a version (its fields are its only terms).
    terms_version = models.ForeignKey(
        "SubscriptionTermsVersion", on_delete=models.PROTECT, null=True, blank=True, editable=False, related_name="+",
    )
    # A free trial (billing.trials): usage timestamped before the conversion instant is rated at
    # zero, and fixed fees and the minimum commitment are charged from that instant. It converts
    # at `trial_ends_at`, or when the trial's units of `trial_metric` reach `trial_units` (the
    # event that reaches them is the last free one), or when the operator ends it — whichever
    # comes first. `trial_converted_at` is that instant, set once by billing.trials (never here).
    trial_ends_at = models.DateTimeField(
        null=True, blank=True, help_text="The trial converts to paid at this instant (usage before it is free).",
    )
    trial_metric = models.ForeignKey(
        Metric, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text="A usage-based trial: the metric whose units end it (with trial_units).",
    )
    trial_units = models.DecimalField(
        max_digits=30, decimal_places=10, null=True, blank=True,
        help_text="A usage-based trial: it converts once this many units of trial_metric were used free.",
    )
    trial_converted_at = models.DateTimeField(
        null=True, blank=True, editable=False,
        help_text="When the trial converted to paid (set by the conversion: date, usage or the operator).",
    )
    same_tenant_fields = ("customer", "offering", "rate_plan", "trial_metric")

    class Meta:
        indexes = [models.Index(fields=["customer", "status"])]

    def __str__(self) -> str:
        return f"{self.customer} · {self.rate_plan}"

    def clean(self) -> None:
        super().clean()
        errors: dict[str, str] = {}
        if self.rate_plan_id and self.offering_id and self.rate_plan.offering_id != self.offering_id:
            errors["rate_plan"] = "The rate plan must belong to the subscription's offering."
        if self.rate_plan_id and self.currency and self.rate_plan.currency != self.currency:
            errors["currency"] = f"Must match the rate plan's currency ({self.rate_plan.currency})."
        if self.ended_at and self.started_at and self.ended_at <= self.started_at:
            errors["ended_at"] = "Must be after started_at."
        if self.billing_anchor and self.started_at and self.billing_anchor > self.started_at:
            errors["billing_anchor"] = "Must be at or before started_at."
        errors.update(self._trial_errors())
        if errors:
            raise ValidationError(errors)

    @property
    def has_trial(self) -> bool:
        return self.trial_ends_at is not None or self.trial_units is not None

    def _trial_errors(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        if self.trial_ends_at and self.started_at and self.trial_ends_at <= self.started_at:
            errors["trial_ends_at"] = "Must be after started_at."
        elif self.trial_ends_at and self.ended_at and self.trial_ends_at > self.ended_at:
            errors["trial_ends_at"] = "Must be at or before ended_at."
        if (self.trial_metric_id is None) != (self.trial_units is None):
            missing = "trial_units" if self.trial_units is None else "trial_metric"
            errors[missing] = "A usage-based trial needs both trial_metric and trial_units."
        elif self.trial_units is not None and (not self.trial_units.is_finite() or self.trial_units <= 0):
            errors["trial_units"] = "Must be a positive number of units."
        return errors

    def save(self, *args, **kwargs) -> None:
        # A canceled subscription stops rating events from its end; without one, from now.
        if self.status == self.Status.CANCELED and self.ended_at is None:
            self.ended_at = timezone.now()
        super().save(*args, **kwargs)


# The subscription's settlement terms, versioned (SubscriptionTermsVersion): copied onto the
# subscription from the version in effect now (catalog.terms).
TERMS_FIELDS = (
    "min_commitment", "spend_cap", "spend_cap_action", "invoice_threshold", "net_terms_days", "invoice_grace_hours",
    "metric_minimums",
)


class TermsVersionImmutable(ValidationError):
    """A terms version is append-only: never changed or deleted (add a new one)."""


class SubscriptionTermsVersion(TenantOwned):
    """An effective-dated version of a subscription's settlement terms, append-only like a
    published rate plan version. The version governing a billing period is the one in effect at
    its start (the latest `effective_from` <= max(period start, started_at); of two at the same
    instant, the later created): a change applies from a moment, and the periods before it keep
    the terms they were settled with (catalog.terms states the rules of adding one)."""

    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="terms_versions")
    effective_from = models.DateTimeField(help_text="Governs the billing periods starting from this instant.")
    min_commitment = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    spend_cap = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    spend_cap_action = models.CharField(
        max_length=8, choices=[("cap", "Cap the charges"), ("alert", "Alert only")], default="cap",
    )
    invoice_threshold = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    net_terms_days = models.PositiveSmallIntegerField(default=30, validators=[MaxValueValidator(365)])
    invoice_grace_hours = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(720)])
    metric_minimums = models.JSONField(default=dict, blank=True, help_text='{"metric_code": "amount"}')
    reason = models.CharField(max_length=500, blank=True, default="")
    retroactive = models.BooleanField(
        default=False, editable=False, help_text="Added effective before the current period (a correction)."
    )
    same_tenant_fields = ("subscription",)

    class Meta:
        ordering = ["subscription_id", "effective_from", "id"]
        indexes = [models.Index(fields=["subscription", "effective_from"])]

    def __str__(self) -> str:
        return f"Terms of subscription {self.subscription_id} from {self.effective_from:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and type(self).objects.filter(pk=self.pk).exists():
            raise TermsVersionImmutable("A terms version never changes: add a new version.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TermsVersionImmutable("A terms version is never deleted: add a new version.")
