from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from aforo.exceptions import ApiError
from billing.models import RatingCorrection
from billing.rerating.report import report_table
from billing.rerating.services import rerating_job_create, rerating_job_execute
from catalog.models import Customer, RatePlan, Subscription


class Command(BaseCommand):
    help = (
        "Re-rate a month of usage at today's prices (after a price correction: a version fixed, or a new one with an "
        "earlier effective date). Reports the difference per event, invoice line, customer and in total; without "
        "--dry-run writes a reversal and a new rating per changed event, moves running totals and prepaid wallets "
        "by exactly the difference, and a settled period's difference lands on the next invoice. A second run with "
        "nothing to change writes nothing."
    )

    def add_arguments(self, parser):
        scope = parser.add_mutually_exclusive_group(required=True)
        scope.add_argument("--subscription", type=int, help="A subscription id.")
        scope.add_argument("--customer", type=int, help="A customer id: each of its subscriptions.")
        scope.add_argument("--plan", type=int, help="A rate plan id: each subscription of the plan.")
        parser.add_argument("--period", required=True, help="YYYY-MM: the billing periods that start in this month.")
        parser.add_argument("--reason", default="manage.py rerate", help="Recorded with the job (at most 300 characters).")
        parser.add_argument("--settled", default=RatingCorrection.Settled.ADJUST, choices=RatingCorrection.Settled.values)
        parser.add_argument("--dry-run", action="store_true", help="Report the difference; write nothing.")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, subscription, customer, plan, period, reason, settled, dry_run, json: bool, **options):
        model, value = (
            (Subscription, subscription) if subscription is not None else
            (Customer, customer) if customer is not None else (RatePlan, plan)
        )
        tenant_id = model.objects.filter(pk=value).values_list("tenant_id", flat=True).first()
        if tenant_id is None:
            raise CommandError(f"no {model._meta.verbose_name} {value}")
        try:
            job = rerating_job_create(
                tenant_id=tenant_id, period=period, reason=reason, subscription_id=subscription, customer_id=customer,
                rate_plan_id=plan, dry_run=dry_run, settled=settled, requested_by="manage.py rerate",
            )
            job = rerating_job_execute(job_id=job.pk)
        except ApiError as error:
            raise CommandError(f"{error.error_code}: {error.message}") from None
        if json:
            self.stdout.write(json_dumps({"job": job.pk, "status": job.status, **job.report}))
            return
        prefix = "dry run, nothing written. " if dry_run else ""
        self.stdout.write(f"{prefix}re-rating job {job.pk}: {job.status}")
        self.stdout.write(report_table(job.report))


def json_dumps(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True)
