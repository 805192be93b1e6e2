"""Settlement benchmark: settle one past period of N subscriptions holding M rated events.

    .venv/bin/python bench/settlement.py [--subscriptions 10000] [--events 5000000] [--workers 2] [--database NAME]

Setup (its own PostgreSQL database, --database, default aforo_bench_settlement, recreated and migrated):
- one tenant, one rate plan version pricing two metrics:
  api_calls  per_unit 0.002 / unit, with an override region=eu at 0.003 (its own dimension key);
  tokens     graduated, first tier 0..1,000,000 at 0.00001 with a 5.00 flat fee (a base line
             on every invoice), then 0.000005;
- N customers and subscriptions (bulk_create), monthly, in USD: 80% postpaid, 10% prepaid
  (wallet topped up, every rated event already debited from it in real time, as the consumer
  does), 10% hybrid (a small wallet that runs out: the rest is invoiced); every 2nd customer
  one tax rate, every 10th two; every 5th subscription a 10% discount, every 20th a fixed 1.00
  discount; every 7th a minimum commitment, every 11th a spend cap;
- M raw events and their rated events generated in SQL (generate_series), spread evenly over
  the subscriptions, the two metrics and one past period (a quarter of api_calls in eu), with
  rated amounts exactly what the config charges (the tokens never leave the first tier), and
  the running totals and pricing snapshots that match them; then VACUUM (ANALYZE) of every table
  holding rows, CHECKPOINT and sync: the ledger at rest, as a month of autovacuum and writes leave it
  (the invoice tables, still empty, are never analysed, as on a server before its first settlement).
Then --workers forked processes each settle a slice of the subscriptions, one
billing.settlement.settlement_run per subscription (watermark lag 0: nothing is rating). The
clock covers the settling only; data generation is timed and reported separately.
billing.verification.ledger_verify() runs at the end over everything, timed per check.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import re
import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import django_configure, recreate_database  # noqa: E402

BENCH_DB = "aforo_bench_settlement"
PERIOD_START = datetime(2025, 5, 1, tzinfo=timezone.utc)
PERIOD_END = datetime(2025, 6, 1, tzinfo=timezone.utc)
ANCHOR = datetime(2025, 1, 1, tzinfo=timezone.utc)
SETTLE_AT = PERIOD_START + timedelta(days=3)  # any instant inside the period names it

API_CALLS = {
    "model": "per_unit", "rate": "0.002",
    "overrides": [{"match": {"region": ["eu"]}, "price": {"model": "per_unit", "rate": "0.003"}}],
}
TOKENS = {
    "model": "graduated",
    "tiers": [{"up_to": "1000000", "unit_amount": "0.00001", "flat_amount": "5"}, {"up_to": None, "unit_amount": "0.000005"}],
}
TOKENS_PER_EVENT = 100  # x 0.00001 = 0.001 per event while in the first tier


def configure(database: str = BENCH_DB) -> None:
    django_configure(database)


def database_name(name: str) -> str:
    """--database goes into DROP/CREATE DATABASE unquoted: a plain identifier only."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise argparse.ArgumentTypeError(f"{name!r}: use lowercase letters, digits and _")
    return name


# --- the catalog ----------------------------------------------------------------------------------


def build_catalog(count: int) -> dict:
    """One tenant, the two metrics in one published version, `count` customers and subscriptions
    with their taxes, discounts and wallets. bulk_create throughout (no per-row save)."""
    from billing.models import Discount, TaxRate
    from billing.rating import validate_config
    from catalog.models import Customer, Metric, MetricConfig, Offering, Product, RatePlan, RatePlanVersion, Subscription, Tenant
    from wallets.models import Wallet

    tenant = Tenant.objects.create(name="Bench", slug="bench-settle")
    product = Product.objects.create(tenant=tenant, code="api", name="API", product_type="api")
    api_calls = Metric.objects.create(tenant=tenant, product=product, code="api_calls", name="API calls")
    tokens = Metric.objects.create(tenant=tenant, product=product, code="tokens", name="Tokens")
    offering = Offering.objects.create(tenant=tenant, code="std", name="Standard")
    plan = RatePlan.objects.create(tenant=tenant, offering=offering, code="std", name="Standard", currency="USD")
    version = RatePlanVersion.objects.create(tenant=tenant, rate_plan=plan, version=1, effective_from=ANCHOR)
    configs = {api_calls.id: validate_config(API_CALLS), tokens.id: validate_config(TOKENS)}
    metric_configs = MetricConfig.objects.bulk_create(
        MetricConfig(tenant=tenant, version=version, metric_id=metric_id, config=config) for metric_id, config in configs.items()
    )
    RatePlanVersion.objects.filter(pk=version.pk).update(status="published", published_at=ANCHOR)

    customers = Customer.objects.bulk_create(
        (Customer(tenant=tenant, name=f"Customer {n}", external_id=f"c{n}") for n in range(count)), batch_size=2000
    )
    modes = ["postpaid"] * 8 + ["prepaid", "hybrid"]
    subscriptions = Subscription.objects.bulk_create(
        (
            Subscription(
                tenant=tenant, customer=customer, offering=offering, rate_plan=plan, billing_mode=modes[n % 10],
                billing_anchor=ANCHOR, started_at=ANCHOR, currency="USD",
                min_commitment=Decimal("3.00") if n % 7 == 3 else None, spend_cap=Decimal("2.00") if n % 11 == 5 else None,
            )
            for n, customer in enumerate(customers)
        ),
        batch_size=2000,
    )
    TaxRate.objects.bulk_create(
        [TaxRate(tenant=tenant, customer=c, name="VAT", percent=Decimal("21")) for n, c in enumerate(customers) if n % 2 == 0]
        + [TaxRate(tenant=tenant, customer=c, name="City", percent=Decimal("1.5")) for n, c in enumerate(customers) if n % 10 == 0],
        batch_size=2000,
    )
    Discount.objects.bulk_create(
        [Discount(tenant=tenant, subscription=s, kind="percent", value=Decimal("10"), position=0) for n, s in enumerate(subscriptions) if n % 5 == 0]
        + [Discount(tenant=tenant, subscription=s, kind="fixed", value=Decimal("1"), position=1) for n, s in enumerate(subscriptions) if n % 20 == 0],
        batch_size=2000,
    )
    Wallet.objects.bulk_create(
        (
            Wallet(tenant=tenant, customer_id=s.customer_id, currency="USD")
            for s in subscriptions if s.billing_mode != "postpaid"
        ),
        batch_size=2000,
    )
    return {
        "tenant": tenant.id, "api_calls": api_calls.id, "tokens": tokens.id, "version": version.id,
        "metric_configs": {mc.metric_id: mc.id for mc in metric_configs}, "configs": configs,
        "subscriptions": [s.id for s in subscriptions], "customers": [s.customer_id for s in subscriptions],
    }


# --- the usage --------------------------------------------------------------------------------------


def generate_usage(catalog: dict, events: int) -> None:
    """Raw and rated events, running totals and wallet entries, all in SQL.

    Event i (0-based) belongs to subscription i % N, metric (i / N) % 2 (0 api_calls, 1 tokens),
    and is the k-th event of its (subscription, metric), k = i / 2N; api_calls events with
    k % 4 = 3 carry region=eu (the override's key). Quantities are constant per metric, so each
    event's units_before follows from k, and amounts are the config's: api_calls 1 x 0.002 (eu
    0.003), tokens 100 x 0.00001 (never past the first tier's 1,000,000)."""
    from django.db import connection

    from billing.models import PricingSnapshot, RatedEvent, RunningTotal
    from billing.rating import config_hash
    from metering.models import RawEvent
    from wallets.models import Wallet, WalletEntry

    n = len(catalog["subscriptions"])
    per_group = -(-events // (2 * n))
    if per_group * TOKENS_PER_EVENT > 1_000_000:
        raise SystemExit(f"{per_group} events per subscription and metric would leave the first token tier: use more subscriptions")
    snapshots = {
        metric_id: PricingSnapshot.objects.create(config_hash=config_hash(config), config=config).id
        for metric_id, config in catalog["configs"].items()
    }
    api, tok = catalog["api_calls"], catalog["tokens"]
    params = {
        "n": n, "events": events, "tenant": catalog["tenant"], "subs": catalog["subscriptions"], "customers": catalog["customers"],
        "api": api, "tok": tok, "version": catalog["version"],
        "mc_api": catalog["metric_configs"][api], "mc_tok": catalog["metric_configs"][tok],
        "snap_api": snapshots[api], "snap_tok": snapshots[tok],
        "start": PERIOD_START, "end": PERIOD_END, "span": (PERIOD_END - PERIOD_START).total_seconds(), "tpe": TOKENS_PER_EVENT,
    }
    # e: one row per event with everything derived from i.
    events_sql = """
        WITH e AS (
            SELECT i, i %% %(n)s AS s, (i / %(n)s) %% 2 AS m, i / (2 * %(n)s) AS k,
                   %(start)s::timestamptz + make_interval(secs => (i::float8 / %(events)s) * %(span)s * 0.999) AS ts
            FROM generate_series(0, %(events)s - 1) AS i
        )
    """
    with connection.cursor() as cursor:
        cursor.execute(
            events_sql + f"""
            INSERT INTO {RawEvent._meta.db_table}
                (id, tenant_id, event_id, api_key_prefix, subject, metric, quantity, timestamp, received_at, dimensions,
                 metadata, is_late, created_at)
            SELECT i + 1, %(tenant)s, 'ev-' || i, '', 'subscription:' || (%(subs)s::bigint[])[s + 1],
                   CASE WHEN m = 0 THEN 'api_calls' ELSE 'tokens' END, CASE WHEN m = 0 THEN 1 ELSE %(tpe)s END,
                   ts, ts, CASE WHEN m = 0 AND k %% 4 = 3 THEN '{{"region": "eu"}}'::jsonb ELSE '{{}}'::jsonb END,
                   '{{}}'::jsonb, false, ts
            FROM e
            """,
            params,
        )
        cursor.execute(f"SELECT setval(pg_get_serial_sequence('{RawEvent._meta.db_table}', 'id'), %s)", [events])
        cursor.execute(
            events_sql + f"""
            , priced AS (
                SELECT e.*, (m = 0 AND k %% 4 = 3) AS eu,
                       CASE WHEN m = 0 THEN 1 ELSE %(tpe)s END AS quantity,
                       CASE WHEN m = 1 THEN k
                            WHEN k %% 4 = 3 THEN k / 4 ELSE k - k / 4 END AS before_count
                FROM e
            )
            INSERT INTO {RatedEvent._meta.db_table}
                (id, tenant_id, raw_event_id, subscription_id, customer_id, metric_id, dimension_key, rate_plan_version_id,
                 metric_config_id, pricing_snapshot_id, period_start, period_end, event_timestamp, quantity, units_before,
                 units_after, amount, tiers, currency, rated_at)
            SELECT i + 1, %(tenant)s, i + 1, (%(subs)s::bigint[])[s + 1], (%(customers)s::bigint[])[s + 1],
                   CASE WHEN m = 0 THEN %(api)s ELSE %(tok)s END, CASE WHEN eu THEN 'region=eu' ELSE '' END, %(version)s,
                   CASE WHEN m = 0 THEN %(mc_api)s ELSE %(mc_tok)s END, CASE WHEN m = 0 THEN %(snap_api)s ELSE %(snap_tok)s END,
                   %(start)s, %(end)s, ts, quantity, before_count * quantity, (before_count + 1) * quantity,
                   CASE WHEN m = 1 THEN 0.001 WHEN eu THEN 0.003 ELSE 0.002 END,
                   CASE WHEN m = 1 THEN jsonb_build_array(jsonb_build_object('tier', 1, 'units', '100', 'amount', '0.001')) END,
                   'USD', ts + interval '1 second'
            FROM priced
            """,
            params,
        )
        cursor.execute(f"SELECT setval(pg_get_serial_sequence('{RatedEvent._meta.db_table}', 'id'), %s)", [events])
        cursor.execute(
            f"""
            INSERT INTO {RunningTotal._meta.db_table}
                (tenant_id, subscription_id, customer_id, metric_id, dimension_key, period_start, period_end, currency,
                 units, amount, event_count, transaction_fees, updated_at, last_rated_id, pricing_snapshot_id)
            SELECT tenant_id, subscription_id, customer_id, metric_id, dimension_key, period_start, period_end, currency,
                   SUM(quantity), SUM(amount), COUNT(*), 0, MAX(rated_at), MAX(id),
                   (ARRAY_AGG(pricing_snapshot_id ORDER BY id DESC))[1]
            FROM {RatedEvent._meta.db_table}
            GROUP BY tenant_id, subscription_id, customer_id, metric_id, dimension_key, period_start, period_end, currency
            """
        )
        wallets_sql(cursor, Wallet._meta.db_table, WalletEntry._meta.db_table, RatedEvent._meta.db_table, catalog)
    # The period's ledger at rest, as a month of autovacuum leaves it (this server runs with
    # autovacuum off): the tables the month wrote vacuumed and analysed — statistics fresh, and
    # hint bits set, otherwise the first reader of each freshly loaded page pays for checking
    # and marking its rows, which belongs to the load. A table nothing wrote yet (invoices,
    # lines, runs: this is the first settlement) is left as autovacuum leaves it, never
    # analysed: "empty" statistics would make PostgreSQL plan it as empty for good (its foreign
    # key checks' cached plans scan it sequentially while settlement fills it), which no server
    # does after a month. Then written out (CHECKPOINT, sync): the settling is not to compete
    # with flushing the gigabytes the generation just wrote.
    with connection.cursor() as cursor:
        for table in written_tables(cursor):
            cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(table)}")
        cursor.execute("CHECKPOINT")
    os.sync()


def written_tables(cursor) -> list[str]:
    """The tables of the public schema holding at least one row."""
    cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
    tables = [name for (name,) in cursor.fetchall()]
    written = []
    for table in tables:
        cursor.execute(f'SELECT EXISTS (SELECT 1 FROM "{table}")')
        if cursor.fetchone()[0]:
            written.append(table)
    return written


def wallets_sql(cursor, wallet_table: str, entry_table: str, rated_table: str, catalog: dict) -> None:
    """Prepaid: topped up with 1,000.00, then one real-time debit per rated event (as the
    consumer makes them). Hybrid: topped up with 1.00 only, so settlement empties it and
    invoices the rest. Wallet balances equal their ledgers (wallets_check)."""
    from catalog.models import Subscription

    sub_table = Subscription._meta.db_table
    cursor.execute(
        f"""
        INSERT INTO {entry_table} (tenant_id, wallet_id, kind, amount, held_change, balance_after, held_after, reference,
                                   idempotency_key, created_at)
        SELECT w.tenant_id, w.id, 'top_up', t.amount, 0, t.amount, 0, 'bench', 'bench-top-up', %s
        FROM {wallet_table} w JOIN {sub_table} s ON s.customer_id = w.customer_id
        CROSS JOIN LATERAL (SELECT CASE WHEN s.billing_mode = 'prepaid' THEN 1000.00 ELSE 1.00 END AS amount) t
        ORDER BY w.id
        """,
        [PERIOD_START - timedelta(days=1)],
    )
    cursor.execute(
        f"""
        INSERT INTO {entry_table} (tenant_id, wallet_id, kind, amount, held_change, balance_after, held_after, rated_event_id,
                                   reference, idempotency_key, created_at)
        SELECT r.tenant_id, w.id, 'debit', -r.amount, 0,
               1000.00 - SUM(r.amount) OVER (PARTITION BY w.id ORDER BY r.id), 0, r.id, '', 'rated:' || r.id, r.rated_at
        FROM {rated_table} r JOIN {sub_table} s ON s.id = r.subscription_id AND s.billing_mode = 'prepaid'
        JOIN {wallet_table} w ON w.customer_id = s.customer_id
        ORDER BY w.id, r.id
        """
    )
    cursor.execute(
        f"""
        UPDATE {wallet_table} w SET balance = x.balance
        FROM (SELECT wallet_id, SUM(amount) AS balance FROM {entry_table} GROUP BY wallet_id) x WHERE x.wallet_id = w.id
        """
    )


# --- settling ---------------------------------------------------------------------------------------


PROFILE_TO: str | None = None  # --profile: the first worker writes cProfile stats here


def settle_slice(subscription_ids: list[int]) -> tuple[int, int, float]:
    """One worker process: settle each subscription's period. Returns (invoices, events, seconds)."""
    if PROFILE_TO and subscription_ids and subscription_ids[0] == settle_slice.first:
        import cProfile

        profile = cProfile.Profile()
        answer = profile.runcall(_settle, subscription_ids)
        profile.dump_stats(PROFILE_TO)
        return answer
    return _settle(subscription_ids)


def _settle(subscription_ids: list[int]) -> tuple[int, int, float]:
    from django.db import connection

    from billing.settlement import settlement_run

    connection.close()  # never share the parent's socket
    started = time.perf_counter()
    invoices = events = 0
    for subscription_id in subscription_ids:
        result = settlement_run(subscription_id=subscription_id, at=SETTLE_AT, watermark_lag_s=0)
        invoices += result.created
        events += sum(a.event_count for a in result.context.aggregates) if result.context else 0
    seconds = time.perf_counter() - started
    connection.close()
    return invoices, events, seconds


def settle_all(subscription_ids: list[int], workers: int) -> tuple[int, int, float, list[float]]:
    slices = [subscription_ids[w::workers] for w in range(workers)]
    settle_slice.first = slices[0][0] if slices[0] else None
    started = time.perf_counter()
    if workers == 1:
        results = [settle_slice(slices[0])]
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(settle_slice, slices)
    wall = time.perf_counter() - started
    return sum(r[0] for r in results), sum(r[1] for r in results), wall, [r[2] for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--database", type=database_name, default=BENCH_DB, help=f"the database to recreate and use (default {BENCH_DB})"
    )
    parser.add_argument("--no-verify", action="store_true", help="skip ledger_verify")
    parser.add_argument("--profile", metavar="PATH", help="cProfile the first worker into PATH")
    args = parser.parse_args()
    global PROFILE_TO
    PROFILE_TO = args.profile

    recreate_database(args.database)
    configure(args.database)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    began = time.perf_counter()
    catalog = build_catalog(args.subscriptions)
    catalog_s = time.perf_counter() - began
    began = time.perf_counter()
    generate_usage(catalog, args.events)
    usage_s = time.perf_counter() - began
    connection.close()  # the workers are forked: each opens its own

    print("Aforo settlement benchmark")
    print(f"  machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, PostgreSQL on loopback")
    print(
        f"  setup: {args.subscriptions:,} subscriptions (80% postpaid, 10% prepaid, 10% hybrid), {args.events:,} rated events "
        f"in one monthly period, 2 metrics (per_unit + eu override, graduated with a flat fee), taxes, discounts, "
        f"commitments, caps; {args.workers} worker process(es)"
    )
    print(f"  data generation: catalog {catalog_s:.1f}s, raw + rated events, running totals, wallet entries {usage_s:.1f}s")
    invoices, events, wall, per_worker = settle_all(catalog["subscriptions"], args.workers)
    print(
        f"  settle: {invoices:,} invoices from {events:,} rated events in {wall:.1f}s "
        f"({invoices / wall:,.0f} subscriptions/s, {events / wall:,.0f} events/s; workers {', '.join(f'{s:.1f}s' for s in per_worker)})"
    )

    from django.db.models import Count

    from billing.models import InvoiceLine

    by_kind = dict(InvoiceLine.objects.values_list("kind").annotate(n=Count("id")).order_by("kind"))
    print(f"  invoice lines: {', '.join(f'{k} {v:,}' for k, v in by_kind.items())}")
    if args.no_verify:
        print("  ledger_verify: skipped (--no-verify)")
        return
    from billing.verification import ledger_verify

    began = time.perf_counter()
    timings: dict[str, float] = {}
    problems = ledger_verify(timings=timings)
    verdict = "OK" if not problems else f"{len(problems)} problem(s): " + " | ".join(problems[:5])
    print(f"  ledger_verify: {verdict} ({time.perf_counter() - began:.1f}s)")
    print(f"    per check: {', '.join(f'{name} {seconds:.1f}s' for name, seconds in timings.items())}")
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
