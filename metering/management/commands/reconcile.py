"""manage.py reconcile [--tenant ID] [--period P] [--customer ID] [--json] [--no-scan]: the
reconciliation report (metering.reconciliation.report) as a table or JSON. Exits 1 when a
difference is not zero (the last line says so), 2 on bad arguments."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from aforo.kafka import BrokerUnavailable
from catalog.models import Tenant
from metering.models import ConsumedCount, IngestCount
from metering.reconciliation.counts import ingest_counts_flush
from metering.reconciliation.report import PeriodInvalid, Report, period_parse, reconciliation_report

COLUMNS = ("accepted", "persisted", "duplicates", "dead_lettered", "in_flight", "rated", "unmatched", "replayed")


def _table(report: Report) -> list[str]:
    lines = [f"tenant {report.tenant_id}, period {report.period.label}" + ("" if report.settled else " (still open)")]
    header = f"{'customer':<40} " + " ".join(f"{name:>13}" for name in (*COLUMNS, "difference"))
    lines.append(header)
    for row in [*report.rows, None]:
        counts = row.counts if row else report.totals
        label = (row.customer if row else "TOTAL")[:40]
        lines.append(f"{label:<40} " + " ".join(f"{getattr(counts, name):>13}" for name in COLUMNS) + f" {counts.difference:>13}")
        if row is None:
            continue
        if row.dead_letter_reasons:
            lines.append("    dead letters: " + ", ".join(f"{k} {v}" for k, v in row.dead_letter_reasons.items()))
        for title, ids in (("missing", row.missing), ("not accepted by the API", row.not_accepted), ("in flight", row.in_flight_ids)):
            if ids:
                lines.append(f"    {title}: {', '.join(ids)}")
    return lines


class Command(BaseCommand):
    help = "Reconcile accepted usage events with the ledgers: accepted − (persisted + duplicates + dead-lettered + in flight) = 0."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", type=int, help="Only this tenant id (default: every tenant with counts in the period).")
        parser.add_argument("--period", default="", help="YYYY-MM, YYYY-MM-DD or <start>/<end> (ISO 8601); default today (UTC).")
        parser.add_argument("--customer", type=int, help="Only this customer id (with --tenant).")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
        parser.add_argument("--no-scan", action="store_true", help="Do not read the usage topic to name event ids.")

    def handle(self, *args, tenant=None, period="", customer=None, json=False, no_scan=False, **options):
        now = timezone.now()
        try:
            window = period_parse(period, now=now)
        except PeriodInvalid as error:
            raise CommandError(f"--period: {error}", returncode=2) from None
        if customer is not None and tenant is None:
            raise CommandError("--customer needs --tenant", returncode=2)
        if tenant is not None and not Tenant.objects.filter(pk=tenant).exists():
            raise CommandError(f"--tenant: no tenant {tenant}", returncode=2)
        tenants = [tenant] if tenant is not None else _tenants_with_counts(window)
        try:
            reports = [
                reconciliation_report(tenant_id=t, period=window, customer_id=customer, scan=not no_scan, now=now) for t in tenants
            ]
        except BrokerUnavailable as error:
            raise CommandError(f"the usage topic could not be read ({error}); retry, or pass --no-scan") from None
        if json:
            self.stdout.write(_json_dumps([r.as_dict() for r in reports]))
        else:
            for report in reports:
                self.stdout.write("\n".join(_table(report)) + "\n")
        unbalanced = [r for r in reports if not r.balanced]
        if unbalanced:
            raise CommandError(
                "not balanced: " + ", ".join(f"tenant {r.tenant_id} difference {r.totals.difference}" for r in unbalanced),
                returncode=1,
            )


def _json_dumps(value) -> str:
    return json.dumps(value, indent=2)


def _tenants_with_counts(window) -> list[int]:
    ingest_counts_flush(grace_s=0)  # counts still in Redis name their tenants too
    ids = set(IngestCount.objects.filter(minute__gte=window.start, minute__lt=window.end).values_list("tenant_id", flat=True))
    ids |= set(ConsumedCount.objects.filter(minute__gte=window.start, minute__lt=window.end).values_list("tenant_id", flat=True))
    return sorted(ids)
