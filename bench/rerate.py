"""Re-rating benchmark: billing.rerating over 1M rated events, in process (the service
`manage.py rerate` and POST /api/v1/rerating-jobs run).

    .venv/bin/python bench/rerate.py [--events 1000000] [--customers 2000] [--database aforo_bench_rerate]

Setup (its own PostgreSQL database, recreated and migrated): bench/backtest.py's ledger — one
tenant, api_calls per unit at 0.001, --customers monthly subscriptions, --events raw and rated
events over three months (March–May 2025) generated in SQL — plus the running totals its events
sum to. Then the price is corrected: a new version (0.0012 per unit, tiered past 1,000 units at
0.0009) in force from the plan's start, and for each month the whole plan is re-rated
(`--plan`): a dry run (plan and report, nothing written), the run that writes (a reversal and a
new rating per changed event, totals, rollups), and a second run (nothing left to change).
Each phase's wall time, events per second and the process's peak memory so far (RSS) are
printed, with the load average.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from backtest import ANCHOR, build  # noqa: E402
from common import django_configure, recreate_database  # noqa: E402
from settlement import database_name  # noqa: E402

BENCH_DB = "aforo_bench_rerate"
MONTHS = ("2025-03", "2025-04", "2025-05")
CORRECTED = {"model": "graduated", "tiers": [{"up_to": "1000", "unit_amount": "0.0012"}, {"up_to": None, "unit_amount": "0.0009"}]}


def totals_sql() -> None:
    """The running totals the generated events sum to (the consumer keeps them as it rates)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("""
            INSERT INTO billing_runningtotal (tenant_id, subscription_id, customer_id, metric_id, dimension_key, period_start,
                period_end, currency, units, amount, event_count, transaction_fees, updated_at, last_rated_id,
                pricing_snapshot_id)
            SELECT tenant_id, subscription_id, customer_id, metric_id, dimension_key, period_start, MAX(period_end), 'USD',
                   SUM(quantity), SUM(amount), COUNT(*), 0, now(), MAX(id),
                   (ARRAY_AGG(pricing_snapshot_id ORDER BY id DESC))[1]
            FROM billing_ratedevent GROUP BY tenant_id, subscription_id, customer_id, metric_id, dimension_key, period_start""")
        cursor.execute("VACUUM (ANALYZE) billing_runningtotal")


def correct_price() -> int:
    from catalog.models import Metric, RatePlan
    from catalog.services import metric_config_set, rate_plan_version_create, rate_plan_version_publish

    plan = RatePlan.objects.get(code="std")
    version = rate_plan_version_create(rate_plan=plan, effective_from=ANCHOR + timedelta(seconds=1))
    metric_config_set(version=version, metric=Metric.objects.get(code="api_calls"), config=CORRECTED)
    rate_plan_version_publish(version=version)
    return plan.pk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--database", type=database_name, default=BENCH_DB)
    args = parser.parse_args()
    recreate_database(args.database)
    django_configure(args.database)
    from django.core.management import call_command
    from django.db import connection

    from billing.rerating.services import rerating_job_create, rerating_job_execute
    from catalog.models import Tenant

    call_command("migrate", verbosity=0)
    began = time.perf_counter()
    build(args.customers, args.events)
    totals_sql()
    generation = time.perf_counter() - began
    tenant_id = Tenant.objects.get(slug="bench").pk
    plan_id = correct_price()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), pg_size_pretty(pg_database_size(current_database())) FROM billing_ratedevent")
        rated, size = cursor.fetchone()
    print("Aforo re-rating benchmark: billing.rerating, in process (what manage.py rerate runs)")
    print(f"  machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, PostgreSQL on loopback")
    print(f"  setup: {rated:,} rated events, {args.customers:,} customers, 3 monthly periods, database {size}; "
          f"generation {generation:.0f}s; correction: per unit 0.001 -> graduated 0.0012 / 0.0009 past 1,000")
    print(f"  load average before timing: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"\n  {'phase':<10} {'events':>10} {'changed':>10} {'rows written':>13} {'seconds':>8} {'events/s':>10} {'peak RSS':>9}  difference")
    overall = {}
    for phase, dry_run in (("dry run", True), ("apply", False), ("again", False)):
        events = changed = written = 0
        seconds = 0.0
        difference = 0
        for month in MONTHS:
            job = rerating_job_create(tenant_id=tenant_id, period=month, reason="bench", rate_plan_id=plan_id, dry_run=dry_run)
            started = time.perf_counter()
            job = rerating_job_execute(job_id=job.pk)
            seconds += time.perf_counter() - started
            events += job.report["events"]
            changed += job.report["changed"]
            written += sum(job.report.get("written", {}).get(k, 0) for k in ("reversals", "ratings"))
            from decimal import Decimal
            difference += Decimal(job.report["total"]["difference"])
        overall[phase] = seconds
        print(f"  {phase:<10} {events:>10,} {changed:>10,} {written:>13,} {seconds:>8.1f} {events / seconds:>10,.0f} "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024:>6} MB  "
              f"{difference:.2f} USD")
    print(f"\n  load average after timing: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
