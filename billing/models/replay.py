"""Replay runs (billing.replay): `manage.py replay`, POST /api/v1/replays and the admin start one.

ReplayRun: one run — its source and parameters, its status, a progress counter while it reads
and its report once done (counts per outcome, reasons of what is still invalid). A run's row is
bookkeeping, not money: its status and progress are updated in place.
ReplayItem: append-only, one row per Kafka record a run re-produced to the usage topic. The
unique (topic, partition, offset) is the "replayed at most once" rule: a later run reads the
record again and skips it as already replayed."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from catalog.models import Tenant


class ReplayRun(models.Model):
    class Source(models.TextChoices):
        DLQ = "dlq", "Dead-letter topic"
        UNMATCHED = "unmatched", "Unmatched usage"
        OFFSETS = "offsets", "Usage topic offset range"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    tenant = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, related_name="+", null=True, blank=True,
        help_text="Only this tenant's records; empty: every tenant's (operators only).",
    )
    source = models.CharField(max_length=16, choices=Source.choices)
    partition = models.IntegerField(null=True, blank=True, help_text="offsets: the usage topic's partition.")
    from_offset = models.BigIntegerField(null=True, blank=True, help_text="offsets: the first offset replayed.")
    to_offset = models.BigIntegerField(null=True, blank=True, help_text="offsets: the last offset replayed (inclusive).")
    limit = models.IntegerField(null=True, blank=True, help_text="At most this many records (or unmatched rows) read.")
    dry_run = models.BooleanField(default=False, help_text="Report what would happen; replay nothing.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    progress = models.BigIntegerField(default=0, help_text="Records (or unmatched rows) read so far.")
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "id"], name="replay_run_tenant_id")]

    def __str__(self) -> str:
        return f"Replay #{self.pk} ({self.source}{', dry run' if self.dry_run else ''}): {self.status}"


class ReplayItem(models.Model):
    run = models.ForeignKey(ReplayRun, on_delete=models.PROTECT, related_name="items")
    topic = models.CharField(max_length=249)
    partition = models.IntegerField()
    offset = models.BigIntegerField()
    tenant_id = models.BigIntegerField(null=True, blank=True)
    event_id = models.CharField(max_length=128, blank=True)
    replayed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["topic", "partition", "offset"], name="replay_item_once_per_record")
        ]
        indexes = [models.Index(fields=["run", "id"], name="replay_item_run_id")]

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset} (run {self.run_id})"
