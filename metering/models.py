"""The raw usage ledger: every event accepted from the usage topic, immutable, once per
(tenant, event_id) forever. Events whose billing context could not be resolved are kept
as unmatched usage (visible to the operator, replayable) — never dropped."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from catalog.models import Tenant


class RawEvent(models.Model):
    # (tenant, event_id) and (tenant, timestamp) lead with tenant: no separate tenant index;
    # no deferred constraint check per event either (see billing.models.RatedEvent).
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False)
    event_id = models.CharField(max_length=128)
    api_key_prefix = models.CharField(max_length=24, blank=True, help_text="The start of the key the event carried, if any.")
    subject = models.CharField(
        max_length=80, help_text="Who the event bills: key:<sha256 of the key>, customer:<id> or subscription:<id>."
    )
    metric = models.CharField(max_length=100)
    quantity = models.DecimalField(max_digits=32, decimal_places=12)
    timestamp = models.DateTimeField(help_text="When the usage happened (the event's own time).")
    received_at = models.DateTimeField(help_text="When Aforo received it (ingest API / Kafka record time).")
    dimensions = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    is_late = models.BooleanField(default=False, help_text="Older than 24 h on arrival: flagged for reconciliation.")
    source_partition = models.IntegerField(null=True, blank=True)
    source_offset = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, help_text="When the consumer persisted it.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "event_id"], name="raw_event_unique_per_tenant")]
        # The read side (metering.admin): (tenant, id) is an operator's list, newest first, one
        # range scan (it replaced (tenant, timestamp), which only the admin's date drill-down
        # used); the partial index holds late events only (flagged for reconciliation, few),
        # the "is late" filter's scan, and costs nothing for the others.
        indexes = [
            models.Index(fields=["tenant", "id"], name="raw_event_tenant_id"),
            models.Index(fields=["tenant", "id"], name="raw_event_late", condition=models.Q(is_late=True)),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} ({self.metric} × {self.quantity})"


class UnmatchedUsage(models.Model):
    """A raw event that could not be rated, with why. Replaying it (after the key, the
    subscription or the price exists) rates it and marks it resolved."""

    class Reason(models.TextChoices):
        UNKNOWN_API_KEY = "unknown_api_key", "Unknown API key"
        UNKNOWN_CUSTOMER = "unknown_customer", "Unknown customer id"
        UNKNOWN_SUBSCRIPTION = "unknown_subscription", "Unknown subscription id"
        REVOKED_API_KEY = "revoked_api_key", "API key revoked before the event"
        NO_ACTIVE_SUBSCRIPTION = "no_active_subscription", "No subscription active at the event time"
        METRIC_NOT_PRICED = "metric_not_priced", "No rate plan version in force prices this metric"

    # The tenant's own index is (tenant, id) below: the admin's list, newest first.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    raw_event = models.OneToOneField(RawEvent, on_delete=models.PROTECT, related_name="unmatched")
    reason = models.CharField(max_length=32, choices=Reason.choices)
    detail = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "unmatched usage"
        indexes = [
            models.Index(fields=["tenant", "resolved_at"]),
            models.Index(fields=["tenant", "id"], name="unmatched_usage_tenant_id"),
        ]

    def __str__(self) -> str:
        return f"{self.raw_event.event_id}: {self.reason}"


# --- reconciliation: what each side counted (metering.reconciliation) -------------------------
# The join key of every count is (tenant, subject, minute): `subject` is UsageEvent.subject (the
# customer reference the event carries: key:<sha256>, customer:<id>, subscription:<id>), and the
# minute is the arrival minute — the ingest API's `now`, which is also the Kafka record's
# timestamp and so RawEvent.received_at. Both sides name the same thing: no second copy of events.


class IngestCount(models.Model):
    """Events the ingest API accepted (answered 202 for), per tenant, subject and minute.
    Append-only: one row per flush of a Redis minute hash (metering.reconciliation.counts);
    (flush_id, tenant, subject) is unique, so a flush applied twice is counted once."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False)
    subject = models.CharField(max_length=80)
    minute = models.DateTimeField()
    accepted = models.BigIntegerField()
    flush_id = models.CharField(max_length=120, help_text="The Redis key this count was flushed from.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["flush_id", "tenant", "subject"], name="ingest_count_once_per_flush")]
        indexes = [models.Index(fields=["tenant", "minute"], name="ingest_count_tenant_minute")]


class ConsumedCount(models.Model):
    """What the usage consumer received per tenant, subject and arrival minute, counted in the
    transaction that wrote the rows (billing.usage): new (stored in the raw ledger: rated or
    unmatched), duplicates (already stored, not a replay of the same Kafka record), and later
    the unmatched events re-rated by replay_unmatched. raw_id_min/max bound the raw ledger ids of
    the new ones (the report counts the ledger through the (tenant, id) index)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False)
    subject = models.CharField(max_length=80)
    minute = models.DateTimeField()
    new = models.BigIntegerField(default=0)
    duplicates = models.BigIntegerField(default=0)
    rated = models.BigIntegerField(default=0)
    unmatched = models.BigIntegerField(default=0)
    replayed = models.BigIntegerField(default=0)
    raw_id_min = models.BigIntegerField(null=True)
    raw_id_max = models.BigIntegerField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "minute", "subject"], name="consumed_count_unique")]


class DeadLetter(models.Model):
    """A usage record the consumer sent to the dead-letter topic, once per Kafka position
    (written after the DLQ acknowledged it, before the offsets are committed: a replay writes
    the same position again, a no-op). Tenant and subject as far as the record tells them."""

    tenant_id = models.BigIntegerField(null=True)
    subject = models.CharField(max_length=80, blank=True)
    minute = models.DateTimeField()
    event_id = models.CharField(max_length=128, blank=True)
    reason = models.CharField(max_length=500)
    topic = models.CharField(max_length=255)
    partition = models.IntegerField()
    offset = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["topic", "partition", "offset"], name="dead_letter_once_per_record")]
        indexes = [models.Index(fields=["tenant_id", "minute"], name="dead_letter_tenant_minute")]
