"""Read-side benchmark: the admin's ledger lists and searches, and the usage API, at volume.

    .venv/bin/python bench/admin_read.py [--rated 10000000] [--database readside_bench] [--reuse] [--repeat 7]

Setup (its own PostgreSQL database, --database, recreated and migrated unless --reuse):
- five tenants sharing the ledgers 60% / 30% / 9.9% / 0.1% / none (an operator's list of a
  tenant with no events is the case an index by id alone cannot answer), their events
  interleaved in id order as a consumer writes them; 2,000 / 1,000 / 300 / 10 / 5 customers, one
  monthly subscription each (anchored on the 1st, UTC), three per-unit metrics per tenant;
- --rated rated events (and their raw events) generated in SQL over the last 100 days (four
  monthly periods), ids in write order; 1% of them late (their event time two days before
  they were written, flagged); plus 0.5% more raw events left unmatched (unknown API key); the
  running totals and hourly usage rollups that match; one wallet debit per rated event of every
  10th customer (prepaid);
- the ledgers' indexes (whatever the migrations in this tree define) dropped during the load and
  rebuilt after it, then VACUUM (ANALYZE) and CHECKPOINT: the ledger at rest.
Then each admin page is fetched with Django's test Client (in-process, DEBUG off) logged in as a
superuser, as the operator of the largest tenant and as the operator of the smallest: one
warm-up, then --repeat timed requests (p50 and max). The usage API (GET
/api/v1/customers/{id}/usage, a tenant admin token) is timed over --usage-requests requests, and
the usage series API (31 days by hour, 122 days by day) over as many, a different customer each.
A page the code under test does not offer (a filter of another version) shows its status code;
the date drill-down's URLs (date_hierarchy, before this change) are timed too: after it the page
no longer links them, and a hand-typed one is a plain field lookup, filtered along the id walk.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import django_configure, recreate_database  # noqa: E402
from settlement import database_name  # noqa: E402

BENCH_DB = "readside_bench"
SHARES = [("large", 600, 2000), ("medium", 300, 1000), ("small", 99, 300), ("tiny", 1, 10), ("empty", 0, 5)]
METRICS = ["api_calls", "tokens", "searches"]
ANCHOR = datetime(2025, 1, 1, tzinfo=timezone.utc)
SPAN = timedelta(days=100)
LEDGERS = ["metering_rawevent", "billing_ratedevent", "metering_unmatchedusage", "wallets_walletentry", "billing_runningtotal",
           "billing_usagerollup"]


# --- the catalog -----------------------------------------------------------------------------------


def build_catalog() -> list[dict]:
    """Per tenant: its customers and subscriptions, its metrics priced per unit in one published
    version, an operator login and an admin token. Written to bench_sub / bench_metric for the SQL."""
    from django.contrib.auth.models import Permission, User
    from django.db import connection

    from billing.models import PricingSnapshot
    from billing.rating import config_hash, validate_config
    from catalog.models import (
        Customer, Metric, MetricConfig, Offering, Product, RatePlan, RatePlanVersion, Subscription, Tenant, TenantMember,
    )
    from catalog.services import tenant_token_create

    User.objects.create_superuser("bench-admin", password="pw")
    permissions = list(Permission.objects.filter(content_type__app_label__in=["catalog", "metering", "billing", "wallets"]))
    tenants = []
    for index, (name, share, customers) in enumerate(SHARES):
        tenant = Tenant.objects.create(name=name.title(), slug=f"bench-{name}")
        product = Product.objects.create(tenant=tenant, code="api", name="API", product_type="api")
        offering = Offering.objects.create(tenant=tenant, code="std", name="Standard")
        plan = RatePlan.objects.create(tenant=tenant, offering=offering, code="std", name="Standard", currency="USD")
        version = RatePlanVersion.objects.create(tenant=tenant, rate_plan=plan, version=1, effective_from=ANCHOR)
        metrics = []
        for m, code in enumerate(METRICS):
            metric = Metric.objects.create(tenant=tenant, product=product, code=code, name=code)
            config = validate_config({"model": "per_unit", "rate": f"0.00{m + 1}"})
            mc = MetricConfig.objects.create(tenant=tenant, version=version, metric=metric, config=config)
            snapshot, _ = PricingSnapshot.objects.get_or_create(config_hash=config_hash(config), defaults={"config": config})
            metrics.append((m, metric.id, mc.id, snapshot.id, code))
        RatePlanVersion.objects.filter(pk=version.pk).update(status="published", published_at=ANCHOR)
        rows = Customer.objects.bulk_create(
            Customer(tenant=tenant, name=f"{name} customer {n}", external_id=f"{name}-{n}") for n in range(customers)
        )
        subs = Subscription.objects.bulk_create(
            Subscription(tenant=tenant, customer=c, offering=offering, rate_plan=plan, billing_anchor=ANCHOR,
                         started_at=ANCHOR, currency="USD")
            for c in rows
        )
        user = User.objects.create_user(f"op-{name}", password="pw", is_staff=True)
        user.user_permissions.set(permissions)
        TenantMember.objects.create(user=user, tenant=tenant)
        token = tenant_token_create(tenant=tenant, kind="admin", name="bench")[1]
        tenants.append({
            "index": index, "name": name, "id": tenant.id, "share": share, "user": user.username, "token": token,
            "version": version.id, "metrics": metrics, "subs": [(k, s.id, s.customer_id) for k, s in enumerate(subs)],
        })
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_sub (t int, k int, subscription_id bigint, customer_id bigint, PRIMARY KEY (t, k))")
        cursor.execute("CREATE TABLE bench_metric (t int, m int, metric_id bigint, config_id bigint, snapshot_id bigint, "
                       "code text, version_id bigint, PRIMARY KEY (t, m))")
        for t in tenants:
            cursor.executemany("INSERT INTO bench_sub VALUES (%s, %s, %s, %s)", [(t["index"], *s) for s in t["subs"]])
            cursor.executemany("INSERT INTO bench_metric VALUES (%s, %s, %s, %s, %s, %s, %s)",
                               [(t["index"], *m, t["version"]) for m in t["metrics"]])
    return tenants


# --- the ledgers -------------------------------------------------------------------------------------


def ledger_indexes(cursor) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """The ledgers' unique constraints (table, name, definition) and their other indexes but the
    primary keys (name, CREATE INDEX …): whatever the migrations of this tree made."""
    cursor.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE contype = 'u' AND conrelid::regclass::text = ANY(%s)", [LEDGERS],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i JOIN pg_class c ON c.relname = i.indexname "
        "JOIN pg_index x ON x.indexrelid = c.oid WHERE i.tablename = ANY(%s) AND NOT x.indisprimary "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)", [LEDGERS],
    )
    return constraints, cursor.fetchall()


def generate_ledgers(tenants: list[dict], rated: int, now: datetime) -> None:
    """Event i: tenant by i % 1000 within SHARES, customer and metric by hashes of i; written at
    a time growing with i over SPAN; every 100th late, every 200th (offset 13) unmatched."""
    from django.db import connection

    total = -(-rated * 200 // 199)  # raw events: the rated ones and the unmatched 0.5%
    bounds, low = [], 0
    for t in tenants:
        bounds.append((low, low + t["share"]))
        low += t["share"]
    tenant_case = " ".join(f"WHEN mod(i, 1000) < {high} THEN {t['index']}" for t, (_, high) in zip(tenants, bounds) if t["share"])
    sizes = " ".join(f"WHEN {t['index']} THEN {len(t['subs'])}" for t in tenants)
    ids = " ".join(f"WHEN {t['index']} THEN {t['id']}" for t in tenants)
    params = {"total": total, "start": now - SPAN, "span": SPAN.total_seconds() - 60}
    events = f"""
        CREATE UNLOGGED TABLE bench_event AS
        SELECT i, t, (CASE t {ids} END)::bigint AS tenant_id,
               mod(hashint8(i) & 2147483647, CASE t {sizes} END) AS k, mod(hashint8(i + 7) & 2147483647, 3) AS m,
               w, CASE WHEN mod(i, 100) = 7 THEN w - interval '2 days' ELSE w END AS ts, mod(i, 100) = 7 AS late,
               mod(i, 200) = 13 AS unmatched
        FROM (SELECT i, CASE {tenant_case} END AS t,
                     %(start)s::timestamptz + make_interval(secs => i::float8 / %(total)s * %(span)s) AS w
              FROM generate_series(0, %(total)s - 1) AS i) e
    """
    with connection.cursor() as cursor:
        constraints, indexes = ledger_indexes(cursor)
        for table, name, _ in constraints:
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute(events, params)
        for statement in LOAD:
            cursor.execute(statement, {"now": now})
        for _, definition in indexes:
            cursor.execute(definition)
        for table, name, definition in constraints:
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        cursor.execute("DROP TABLE bench_event")
        for table in LEDGERS + ["bench_sub", "bench_metric"]:
            cursor.execute(f"VACUUM (ANALYZE) {table}")
        cursor.execute("CHECKPOINT")
    os.sync()


LOAD = [
    """INSERT INTO metering_rawevent (id, tenant_id, event_id, api_key_prefix, subject, metric, quantity, timestamp,
           received_at, dimensions, metadata, is_late, created_at)
       SELECT e.i + 1, e.tenant_id, 'ev-' || e.i, CASE WHEN e.unmatched THEN 'sk_live_unknown0' ELSE '' END,
              CASE WHEN e.unmatched THEN 'key:' || md5(e.i::text) ELSE 'subscription:' || s.subscription_id END,
              bm.code, 1, e.ts, e.w, '{}'::jsonb, '{"gateway": "kong", "route": "/v1/search"}'::jsonb, e.late, e.w
       FROM bench_event e JOIN bench_sub s ON s.t = e.t AND s.k = e.k JOIN bench_metric bm ON bm.t = e.t AND bm.m = e.m
       ORDER BY e.i""",
    "SELECT setval(pg_get_serial_sequence('metering_rawevent', 'id'), (SELECT max(id) FROM metering_rawevent))",
    """INSERT INTO metering_unmatchedusage (tenant_id, raw_event_id, reason, detail, created_at)
       SELECT tenant_id, i + 1, 'unknown_api_key', 'no such key', w FROM bench_event WHERE unmatched ORDER BY i""",
    """INSERT INTO billing_ratedevent (id, tenant_id, raw_event_id, subscription_id, customer_id, metric_id, dimension_key,
           rate_plan_version_id, metric_config_id, pricing_snapshot_id, period_start, period_end, event_timestamp, quantity,
           units_before, units_after, amount, tiers, currency, rated_at)
       SELECT e.i + 1, e.tenant_id, e.i + 1, s.subscription_id, s.customer_id, bm.metric_id, '', bm.version_id, bm.config_id,
              bm.snapshot_id, date_trunc('month', e.ts, 'UTC'), date_trunc('month', e.ts, 'UTC') + interval '1 month',
              e.ts, 1, 0, 1, 0.001 * (bm.m + 1), NULL, 'USD', e.w
       FROM bench_event e JOIN bench_sub s ON s.t = e.t AND s.k = e.k JOIN bench_metric bm ON bm.t = e.t AND bm.m = e.m
       WHERE NOT e.unmatched ORDER BY e.i""",
    "SELECT setval(pg_get_serial_sequence('billing_ratedevent', 'id'), (SELECT max(id) FROM billing_ratedevent))",
    """INSERT INTO billing_runningtotal (tenant_id, subscription_id, customer_id, metric_id, dimension_key, period_start,
           period_end, currency, units, amount, event_count, transaction_fees, updated_at, last_rated_id, pricing_snapshot_id)
       SELECT tenant_id, subscription_id, customer_id, metric_id, '', period_start, period_end, 'USD', SUM(quantity),
              SUM(amount), COUNT(*), 0, MAX(rated_at), MAX(id), MIN(pricing_snapshot_id)
       FROM billing_ratedevent GROUP BY tenant_id, subscription_id, customer_id, metric_id, period_start, period_end""",
    # The hourly usage rollups the consumer keeps (billing.rollups), as the migration backfills them.
    """INSERT INTO billing_usagerollup (subscription_id, metric_id, dimension_key, hour, tenant_id, customer_id, units,
           amount, blocked_units, event_count, updated_at)
       SELECT subscription_id, metric_id, dimension_key, date_trunc('hour', event_timestamp, 'UTC'), MIN(tenant_id),
              MIN(customer_id), SUM(quantity), SUM(amount), SUM(blocked_units), COUNT(*), now()
       FROM billing_ratedevent GROUP BY 1, 2, 3, 4""",
    """INSERT INTO wallets_wallet (tenant_id, customer_id, currency, balance, held, low_balance_thresholds, created_at,
           updated_at)
       SELECT c.tenant_id, c.id, 'USD', 0, 0, '[]'::jsonb, %(now)s, %(now)s FROM catalog_customer c WHERE mod(c.id, 10) = 0""",
    """INSERT INTO wallets_walletentry (tenant_id, wallet_id, kind, amount, held_change, balance_after, held_after,
           rated_event_id, reference, idempotency_key, created_at)
       SELECT r.tenant_id, w.id, 'debit', -r.amount, 0, 0, 0, r.id, '', 'rated:' || r.id, r.rated_at
       FROM billing_ratedevent r JOIN wallets_wallet w ON w.customer_id = r.customer_id ORDER BY r.id""",
]


# --- timing ------------------------------------------------------------------------------------------


def probes(tenant: dict | None, tenants: list[dict], now: datetime) -> dict:
    """The identifiers a page searches for: a mid-ledger event of the tenant (of the small one
    for the superuser), one of its customers, its periods and an old day."""
    from billing.models import RatedEvent, RunningTotal
    from wallets.models import Wallet

    subject = tenant or tenants[2]
    wallet = Wallet.objects.filter(tenant_id=subject["id"]).order_by("id").values_list("customer__external_id", flat=True)
    rated = RatedEvent.objects.filter(tenant_id=subject["id"]).order_by("id").select_related("raw_event", "customer")
    count = RunningTotal.objects.filter(tenant_id=subject["id"]).count()
    middle = rated.filter(id__gte=RatedEvent.objects.order_by("-id").values_list("id", flat=True).first() // 2).first()
    periods = sorted(set(RunningTotal.objects.filter(tenant_id=subject["id"]).values_list("period_start", flat=True)))
    return {
        "event": middle.raw_event.event_id if middle else "none", "customer": middle.customer.external_id if middle else "none",
        "rated": middle.pk if middle else 1, "raw": middle.raw_event_id if middle else 1, "totals": count,
        "newest": periods[-1].isoformat().replace("+", "%2B") if periods else "none",
        "oldest": periods[0].isoformat().replace("+", "%2B") if periods else "none",
        "old_day": (now - timedelta(days=60)).date().isoformat(), "wallet_customer": wallet.first() or "none",
        "scope": "" if tenant else f"tenant__id__exact={subject['id']}&",  # a superuser picks a tenant first
    }


def pages(p: dict, now: datetime) -> list[tuple[str, str]]:
    raw, rated = "/admin/metering/rawevent/", "/admin/billing/ratedevent/"
    old = now - timedelta(days=60)
    return [
        ("raw: list", raw), ("raw: page 50", raw + "?p=49"), ("raw: search event id", raw + f"?q={p['event']}"),
        ("raw: search, no match", raw + "?q=no-such-event"), ("raw: late", raw + "?is_late__exact=1"),
        ("raw: metric", raw + "?metric=tokens"), ("raw: persisted, past 7 days", raw + "?created_at=7d"),
        ("raw: persisted, a day 60 days ago", raw + f"?created_at={p['old_day']}"),
        ("raw: date drill-down URL, day", raw + f"?timestamp__year={old.year}&timestamp__month={old.month}&timestamp__day={old.day}"),
        ("raw: detail", raw + f"{p['raw']}/change/"),
        ("rated: list", rated), ("rated: page 50", rated + "?p=49"), ("rated: search event id", rated + f"?q={p['event']}"),
        ("rated: search customer", rated + f"?q={p['customer']}"), ("rated: search, no match", rated + "?q=no-such-event"),
        ("rated: one tenant", rated + f"?{p['scope']}"),
        ("rated: period, newest", rated + f"?{p['scope']}period={p['newest']}"),
        ("rated: period, oldest", rated + f"?{p['scope']}period={p['oldest']}"),
        ("rated: metric", rated + "?metric=tokens"), ("rated: rated, a day 60 days ago", rated + f"?rated_at={p['old_day']}"),
        ("rated: date drill-down URL, day",
         rated + f"?event_timestamp__year={old.year}&event_timestamp__month={old.month}&event_timestamp__day={old.day}"),
        ("rated: detail", rated + f"{p['rated']}/change/"),
        ("unmatched: list", "/admin/metering/unmatchedusage/"), ("unmatched: unresolved", "/admin/metering/unmatchedusage/?resolved=no"),
        ("unmatched: search event id", "/admin/metering/unmatchedusage/?q=ev-13"),
        ("wallet entries: list", "/admin/wallets/walletentry/"),
        ("wallet entries: search customer", f"/admin/wallets/walletentry/?q={p['wallet_customer']}"),
        ("running totals: list", "/admin/billing/runningtotal/"),
        ("running totals: period, oldest", f"/admin/billing/runningtotal/?period={p['oldest']}"),
    ]


def time_page(client, url: str, repeat: int) -> tuple[int, float, float]:
    status = client.get(url).status_code  # warm-up (and the status the code under test answers)
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        client.get(url)
        samples.append((time.perf_counter() - began) * 1000)
    return status, statistics.median(samples), max(samples)


def time_usage_api(tenant: dict, requests: int) -> tuple[float, float]:
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {tenant['token']}")
    customer = tenant["subs"][len(tenant["subs"]) // 2][2]
    url = f"/api/v1/customers/{customer}/usage"
    assert client.get(url).status_code == 200, url
    samples = []
    for _ in range(requests):
        began = time.perf_counter()
        client.get(url)
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(round(0.95 * len(samples))) - 1)]


def time_series_api(tenant: dict, requests: int, now: datetime) -> list[tuple[str, float, float, int]]:
    """The usage series API for the large tenant's customers (a different one each request):
    31 days of hours, and the whole history by day; (label, p50, p95, points)."""
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {tenant['token']}")
    results = []
    for label, params in (
        ("31 days, hourly", {"granularity": "hour", "from": (now - timedelta(days=31)).isoformat()}),
        ("122 days, daily", {"granularity": "day", "from": (now - timedelta(days=122)).isoformat()}),
    ):
        samples, points = [], 0
        for n in range(requests + 1):
            customer = tenant["subs"][(n * 7919) % len(tenant["subs"])][2]
            began = time.perf_counter()
            response = client.get(f"/api/v1/customers/{customer}/usage/series", {"metric": METRICS[0], **params})
            elapsed = (time.perf_counter() - began) * 1000
            assert response.status_code == 200, response.content
            if n:  # the first one warms the connection
                samples.append(elapsed)
                points = len(response.json()["points"])
        samples.sort()
        results.append((label, statistics.median(samples), samples[max(0, int(round(0.95 * len(samples))) - 1)], points))
    return results


def run_pages(tenants: list[dict], repeat: int, now: datetime) -> list[tuple]:
    from django.contrib.auth.models import User
    from django.test import Client

    rows = []
    roles = [("superuser", "bench-admin", None), ("operator large", "op-large", tenants[0]),
             ("operator tiny", "op-tiny", tenants[3]), ("operator empty", "op-empty", tenants[4])]
    for role, username, tenant in roles:
        client = Client()
        client.force_login(User.objects.get(username=username))
        for label, url in pages(probes(tenant, tenants, now), now):
            if tenant is tenants[4] and not label.endswith("list"):
                continue  # a tenant with no events: its lists only
            rows.append((role, label, *time_page(client, url, repeat)))
    return rows


def catalog_of() -> list[dict]:
    """--reuse: the tenants as build_catalog described them, read back."""
    from catalog.models import Subscription, Tenant
    from catalog.services import tenant_token_create

    tenants = []
    for index, (name, share, _) in enumerate(SHARES):
        tenant = Tenant.objects.get(slug=f"bench-{name}")
        subs = list(Subscription.objects.filter(tenant=tenant).order_by("id").values_list("id", "customer_id"))
        tenants.append({"index": index, "name": name, "id": tenant.id, "share": share,
                        "token": tenant_token_create(tenant=tenant, kind="admin", name="bench")[1],
                        "subs": [(k, s, c) for k, (s, c) in enumerate(subs)]})
    return tenants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rated", type=int, default=10_000_000, help="rated events to generate (default 10,000,000)")
    parser.add_argument("--database", type=database_name, default=BENCH_DB, help=f"recreated unless --reuse (default {BENCH_DB})")
    parser.add_argument("--reuse", action="store_true", help="time an already generated --database")
    parser.add_argument("--repeat", type=int, default=7, help="timed requests per admin page (default 7)")
    parser.add_argument("--usage-requests", type=int, default=50)
    parser.add_argument("--redis-db", type=int, default=9, help="the Redis database for the cache (default 9)")
    args = parser.parse_args()
    # The other version's filters, typed as plain lookups, pass a day as a naive datetime, and a
    # refused lookup (400) logs its traceback: noise here, the status column says it.
    warnings.filterwarnings("ignore", message=".*received a naive datetime", category=RuntimeWarning)

    if not args.reuse:
        recreate_database(args.database)
    django_configure(args.database, redis_db=args.redis_db)
    for name in ("django.security", "django.request"):  # after Django's logging configuration
        logging.getLogger(name).setLevel(logging.CRITICAL)
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone as dj_timezone

    now = dj_timezone.now()
    generation = "reused"
    if not args.reuse:
        call_command("migrate", verbosity=0)
        began = time.perf_counter()
        tenants = build_catalog()
        generate_ledgers(tenants, args.rated, now)
        generation = f"{time.perf_counter() - began:.0f}s"
    else:
        tenants = catalog_of()
    with connection.cursor() as cursor:
        cursor.execute("SELECT (SELECT count(*) FROM billing_ratedevent), (SELECT count(*) FROM metering_rawevent), "
                       "(SELECT count(*) FROM wallets_walletentry), pg_size_pretty(pg_database_size(current_database()))")
        rated, raw, entries, size = cursor.fetchone()
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename IN ('billing_ratedevent', 'metering_rawevent') ORDER BY 1")
        index_names = [name for (name,) in cursor.fetchall()]

    print("Aforo read-side benchmark: admin ledger pages and the usage API")
    print(f"  machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, PostgreSQL on loopback")
    print(f"  setup: {rated:,} rated events, {raw:,} raw events, {entries:,} wallet entries, 5 tenants "
          f"(60/30/9.9/0.1/0%), 3,315 customers, 4 monthly periods; database {size}; generation {generation}")
    print(f"  ledger indexes: {', '.join(index_names)}")
    print(f"  load average before timing: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = run_pages(tenants, args.repeat, now)
    print(f"\n  {'who':<15} {'page':<40} {'status':>6} {'p50 ms':>8} {'max ms':>8}")
    for role, label, status, p50, worst in rows:
        print(f"  {role:<15} {label:<40} {status:>6} {p50:>8.1f} {worst:>8.1f}")
    p50, p95 = time_usage_api(tenants[0], args.usage_requests)
    print(f"\n  usage API, a customer of the large tenant, {args.usage_requests} requests: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    for label, p50, p95, points in time_series_api(tenants[0], args.usage_requests, now):
        print(f"  usage series API ({label}, {points} points), customers of the large tenant: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    answered = [r for r in rows if r[2] == 200]
    print(f"  admin pages at or over 300 ms: p50 {sum(r[3] >= 300 for r in answered)}, "
          f"max {sum(r[4] >= 300 for r in answered)}, of {len(answered)} answered 200")
    print(f"  load average after timing: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
