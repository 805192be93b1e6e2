"""Webhooks: a tenant's endpoints (the event types each wants, its signing secrets) and the
delivery log (one row per endpoint and event: status, attempts, response code, latency)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from catalog.models import Tenant

# What Aforo tells endpoints about. "*" subscribes an endpoint to all of them.
EVENT_TYPES = ("invoice.finalized", "wallet.low_balance", "hold.expired", "alert.triggered", "usage.anomaly")


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
