"""Price backtest benchmark: billing.backtest.pricing_backtest over 1M historical rated events.

    .venv/bin/python bench/backtest.py [--events 1000000] [--customers 2000] [--database aforo_bench_backtest] [--reuse] [--repeat 3]

Setup (its own PostgreSQL database, recreated and migrated unless --reuse): one tenant, one
metric api_calls priced per unit at 0.001 (one published version, its pricing snapshot),
--customers customers and monthly subscriptions anchored on the 1st (UTC); --events raw events
and their rated events generated in SQL (INSERT … SELECT generate_series), spread over the
customers and three monthly periods (March–May 2025), quantity 1 to 5, a quarter with
dimensions {"region": "eu"}, rated amounts exactly what the price charges; VACUUM (ANALYZE),
CHECKPOINT. Then each candidate is backtested over the three months --repeat times, in
process (the service the API and the command call), and the wall time reported against the
issue's target (10 s for 1M events):
  graduated      aggregated per (subscription, period, key) in SQL, one quote per key
  volume+eu      the same with a dimension override: the candidate key from the raw events' dimensions (a join)
  percentage     priced per transaction: every event's quantity read in rating order
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import django_configure, recreate_database  # noqa: E402
from settlement import database_name  # noqa: E402

BENCH_DB = "aforo_bench_backtest"
ANCHOR = datetime(2025, 1, 1, tzinfo=timezone.utc)
FIRST = datetime(2025, 3, 1, tzinfo=timezone.utc)
TARGET_S = 10.0
CURRENT = {"model": "per_unit", "rate": "0.001"}
CANDIDATES = {
    "graduated": {"model": "graduated", "tiers": [
        {"up_to": "100", "unit_amount": "0.0015", "flat_amount": "0.5"}, {"up_to": None, "unit_amount": "0.0008"}]},
    "volume+eu": {"model": "volume", "tiers": [{"up_to": "200", "unit_amount": "0.0012"}, {"up_to": None, "unit_amount": "0.0009"}],
                  "overrides": [{"match": {"region": "eu"}, "price": {"model": "per_unit", "rate": "0.002"}}]},
    "percentage": {"model": "percentage", "rate": "0.05", "fixed_fee": "0.0001", "min_fee": "0.1"},
}


def build(customers: int, events: int) -> dict:
    from django.db import connection

    from billing.models import PricingSnapshot
    from billing.rating import config_hash, validate_config
    from catalog.models import Customer, Metric, MetricConfig, Offering, Product, RatePlan, RatePlanVersion, Subscription, Tenant

    tenant = Tenant.objects.create(name="Bench", slug="bench")
    product = Product.objects.create(tenant=tenant, code="api", name="API", product_type="api")
    offering = Offering.objects.create(tenant=tenant, code="std", name="Standard")
    plan = RatePlan.objects.create(tenant=tenant, offering=offering, code="std", name="Standard", currency="USD")
    version = RatePlanVersion.objects.create(tenant=tenant, rate_plan=plan, version=1, effective_from=ANCHOR)
    metric = Metric.objects.create(tenant=tenant, product=product, code="api_calls", name="API calls")
    config = validate_config(CURRENT)
    metric_config = MetricConfig.objects.create(tenant=tenant, version=version, metric=metric, config=config)
    snapshot = PricingSnapshot.objects.create(config_hash=config_hash(config), config=config)
    RatePlanVersion.objects.filter(pk=version.pk).update(status="published", published_at=ANCHOR)
    rows = Customer.objects.bulk_create(Customer(tenant=tenant, name=f"customer {n}") for n in range(customers))
    subs = Subscription.objects.bulk_create(
        Subscription(tenant=tenant, customer=c, offering=offering, rate_plan=plan, billing_anchor=ANCHOR, started_at=ANCHOR,
                     currency="USD") for c in rows
    )
    params = {"n": events, "k": customers, "first": FIRST, "t": tenant.pk, "metric": metric.pk, "version": version.pk,
              "config": metric_config.pk, "snapshot": snapshot.pk, "sub0": subs[0].pk, "cust0": rows[0].pk}
    with connection.cursor() as cursor:
        # Event i: customer i % k, period (i / (n/3)), a time inside it growing with i; ids in write order.
        cursor.execute("""
            CREATE UNLOGGED TABLE bench_event AS
            SELECT i, mod(i, %(k)s) AS k, 1 + mod(hashint4(i) & 2147483647, 5) AS q, mod(i, 4) = 1 AS eu,
                   %(first)s::timestamptz + make_interval(months => (i * 3 / %(n)s)::int) AS period_start,
                   %(first)s::timestamptz + make_interval(months => (i * 3 / %(n)s)::int)
                     + make_interval(secs => mod(i * 3, %(n)s)::float8 / %(n)s * 27 * 86400) AS ts
            FROM generate_series(0, %(n)s - 1) AS i""", params)
        cursor.execute("""
            INSERT INTO metering_rawevent (id, tenant_id, event_id, api_key_prefix, subject, metric, quantity, timestamp,
                received_at, dimensions, metadata, is_late, created_at)
            SELECT i + 1, %(t)s, 'ev-' || i, '', 'subscription:' || (%(sub0)s + k), 'api_calls', q, ts, ts,
                   CASE WHEN eu THEN '{"region": "eu"}'::jsonb ELSE '{"region": "us"}'::jsonb END, '{}'::jsonb, false, ts
            FROM bench_event ORDER BY i""", params)
        # Per (subscription, period) the units before each event: the running state the rating had.
        cursor.execute("""
            INSERT INTO billing_ratedevent (id, tenant_id, raw_event_id, subscription_id, customer_id, metric_id, dimension_key,
                rate_plan_version_id, metric_config_id, pricing_snapshot_id, period_start, period_end, event_timestamp, quantity,
                units_before, units_after, amount, tiers, currency, rated_at, blocked_units, trial)
            SELECT i + 1, %(t)s, i + 1, %(sub0)s + k, %(cust0)s + k, %(metric)s, '', %(version)s, %(config)s, %(snapshot)s,
                   period_start, period_start + interval '1 month', ts, q,
                   SUM(q) OVER w - q, SUM(q) OVER w, q * 0.001, NULL, 'USD', ts, 0, false
            FROM bench_event
            WINDOW w AS (PARTITION BY k, period_start ORDER BY i)
            ORDER BY i""", params)
        for table in ("metering_rawevent", "billing_ratedevent"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        cursor.execute("DROP TABLE bench_event")
        for table in ("metering_rawevent", "billing_ratedevent", "catalog_customer", "catalog_subscription"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
        cursor.execute("CHECKPOINT")
    return {"tenant": tenant.pk}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--database", type=database_name, default=BENCH_DB)
    parser.add_argument("--reuse", action="store_true", help="time an already generated --database")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not args.reuse:
        recreate_database(args.database)
    django_configure(args.database)
    from django.core.management import call_command
    from django.db import connection

    from billing.backtest import pricing_backtest
    from catalog.models import Tenant

    generation = "reused"
    if not args.reuse:
        call_command("migrate", verbosity=0)
        began = time.perf_counter()
        build(args.customers, args.events)
        generation = f"{time.perf_counter() - began:.0f}s"
    tenant_id = Tenant.objects.get(slug="bench").pk
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), pg_size_pretty(pg_database_size(current_database())) FROM billing_ratedevent")
        rated, size = cursor.fetchone()
    print("Aforo price backtest benchmark: billing.backtest.pricing_backtest, in process")
    print(f"  machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, PostgreSQL on loopback")
    print(f"  setup: {rated:,} rated events (and raw events), {args.customers:,} customers, 3 monthly periods, "
          f"database {size}; generation {generation}")
    print(f"  load average before timing: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"\n  {'candidate':<12} {'events':>10} {'rows':>6} {'best s':>8} {'median s':>9} {'events/s':>10}  vs {TARGET_S:.0f} s")
    for name, config in CANDIDATES.items():
        times, answer = [], None
        for _ in range(args.repeat):
            began = time.perf_counter()
            answer = pricing_backtest(tenant_id=tenant_id, config=config, metric="api_calls", start="2025-03", end="2025-05")
            times.append(time.perf_counter() - began)
        best = min(times)
        verdict = "under" if max(times) < TARGET_S else "OVER"
        print(f"  {name:<12} {answer['events']:>10,} {len(answer['rows']):>6} {best:>8.2f} {statistics.median(times):>9.2f} "
              f"{answer['events'] / best:>10,.0f}  {verdict}")
        total = answer["totals"][0]
        print(f"  {'':<12} charged {total['charged']} USD, candidate {total['candidate']} USD ({total['change_percent']}%), "
              f"better off {answer['distribution']['better_off']}, worse off {answer['distribution']['worse_off']}")
    print(f"\n  load average after timing: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
