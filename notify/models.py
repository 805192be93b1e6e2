"""Webhooks: a tenant's endpoints (the event types each wants, its signing secrets) and the
delivery log (one row per endpoint and event: status, attempts, response code, latency); alert
rules (when to tell) and their firings (what was told, once per crossing)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from catalog.models import Tenant, TenantOwned

# What Aforo tells endpoints about. "*" subscribes an endpoint to all of them.
EVENT_TYPES = (
    "invoice.finalized", "invoice.paid", "invoice.voided", "invoice.uncollectible",
    "wallet.low_balance", "hold.expired", "lease.expired", "alert.triggered", "usage.anomaly",
    "subscription.trial_converted",
)


class WebhookEndpoint(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list, help_text='Event types to send, or ["*"] for all.')
    secret = models.CharField(max_length=80, help_text="Signs every delivery (HMAC-SHA256).")
    # Rotation: the secret before the last rotation keeps signing (a second v1= in the header)
    # until this moment, so a receiver can switch without missing a delivery.
    previous_secret = models.CharField(max_length=80, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["tenant", "id"], name="webhook_endpoint_tenant")]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return self.is_active and ("*" in self.event_types or event_type in self.event_types)


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RETRYING = "retrying", "Retrying"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (gave up)"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries")
    event_id = models.CharField(max_length=100, help_text="The event's id: the same on every attempt and resend.")
    event_type = models.CharField(max_length=40)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = [models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_delivery_once")]
        indexes = [models.Index(fields=["tenant", "id"], name="webhook_delivery_tenant")]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} → {self.endpoint_id}: {self.status}"


class AlertRule(TenantOwned):
    """When to tell a tenant about a subscription's usage or spend (billing.alerts evaluates it
    on every rated record, in the `alerts` consumer). A rule with neither rate plan nor
    subscription is the tenant's default; one with a rate plan applies to that plan's
    subscriptions; one with a subscription to that subscription alone. For one (kind, metric) the
    most specific rule wins — an inactive one silences the others for its scope.

    Kinds and their thresholds (a list; each fires once per crossing per period):
    - quota_percent: percent of the price's included units (allowance, free units, quota);
    - limit_percent: percent of the price's hard limit (100 = "limit reached");
    - commitment_percent: percent of the subscription's minimum commitment (spend so far);
    - spend_amount: spend so far this period, in the subscription's currency (the metric's
      alone when the rule names one);
    - anomaly: no thresholds — the metric's rate over the last `window_minutes` above `factor`
      times its trailing `baseline_minutes` rate (billing.alerts.anomaly documents the method)."""

    class Kind(models.TextChoices):
        QUOTA_PERCENT = "quota_percent", "Percent of included quota"
        LIMIT_PERCENT = "limit_percent", "Percent of hard limit"
        COMMITMENT_PERCENT = "commitment_percent", "Percent of minimum commitment"
        SPEND_AMOUNT = "spend_amount", "Spend in the period"
        ANOMALY = "anomaly", "Usage anomaly"

    name = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=24, choices=Kind.choices)
    metric = models.ForeignKey("catalog.Metric", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    thresholds = models.JSONField(default=list, blank=True, help_text='Decimal strings, e.g. ["80", "100"].')
    rate_plan = models.ForeignKey(
        "catalog.RatePlan", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text="A default for this plan's subscriptions.",
    )
    subscription = models.ForeignKey(
        "catalog.Subscription", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text="An override for one subscription.",
    )
    factor = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    window_minutes = models.PositiveIntegerField(null=True, blank=True)
    baseline_minutes = models.PositiveIntegerField(null=True, blank=True)
    min_units = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    is_active = models.BooleanField(default=True)
    same_tenant_fields = ("metric", "rate_plan", "subscription")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind", "metric", "rate_plan", "subscription"], nulls_distinct=False,
                name="alert_rule_one_per_scope",
            ),
            models.CheckConstraint(
                condition=models.Q(rate_plan__isnull=True) | models.Q(subscription__isnull=True),
                name="alert_rule_plan_or_subscription",
            ),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.get_kind_display()} {', '.join(self.thresholds)}".strip()

    def scope(self) -> str:
        if self.subscription_id:
            return f"subscription {self.subscription_id}"
        if self.rate_plan_id:
            return f"plan {self.rate_plan_id}"
        return "tenant"


class AlertFiring(models.Model):
    """One crossing of one rule's threshold by one subscription in one period (or one anomaly's
    onset): unique, so replays of the rated records never fire it twice."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    rule = models.ForeignKey(AlertRule, on_delete=models.PROTECT, related_name="firings")
    kind = models.CharField(max_length=24, choices=AlertRule.Kind.choices)
    customer_id = models.BigIntegerField()
    subscription_id = models.BigIntegerField()
    metric = models.CharField(max_length=100, blank=True)
    dimension_key = models.CharField(max_length=500, blank=True)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    threshold_key = models.CharField(max_length=60, help_text="The threshold crossed, or the anomaly's onset minute.")
    threshold = models.DecimalField(max_digits=30, decimal_places=6, null=True, blank=True)
    observed = models.DecimalField(max_digits=30, decimal_places=6, help_text="Units, spend or rate when it fired.")
    reference = models.DecimalField(
        max_digits=30, decimal_places=6, null=True, blank=True,
        help_text="What the threshold is a percent of (quota, limit, commitment), or the baseline rate.",
    )
    currency = models.CharField(max_length=3, blank=True)
    rated_event_id = models.BigIntegerField(null=True, blank=True, help_text="The rated event that crossed it.")
    event_id = models.CharField(max_length=200, blank=True, help_text="Its usage event's id.")
    message = models.CharField(max_length=300)
    triggered_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "subscription_id", "period_start", "metric", "dimension_key", "threshold_key"],
                name="alert_firing_once",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "-id"], name="alert_firing_tenant"),
            models.Index(fields=["customer_id", "period_end"], name="alert_firing_customer"),
        ]

    def __str__(self) -> str:
        return self.message
