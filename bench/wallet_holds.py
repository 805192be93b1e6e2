"""Escrow hold benchmark: hold create + commit latency with concurrent clients.

    .venv/bin/python bench/wallet_holds.py [--clients 32] [--rate 400] [--seconds 10]

Each of --clients processes places a hold (wallets.holds.hold_place: wallet row lock,
available check, hold row, ledger entry) and commits it (hold_commit: wallet lock, hold
re-read, ledger entry) — two transactions, timed together as one operation — paced so that
all clients together offer --rate operations per second (open loop: a slow operation does not
slow the offered load down). Two scenarios: every client against ONE wallet (all operations
serialise on its row lock) and each operation against a random one of MANY wallets. Reports
p50/p99/max latency and the throughput achieved, then checks every wallet against its ledger.

Real PostgreSQL on its own database (aforo_bench_wallets, recreated).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import django_configure, recreate_database  # noqa: E402

BENCH_DB = "aforo_bench_wallets"


def configure() -> None:
    django_configure(BENCH_DB)


def build_wallets(count: int) -> tuple[int, list[int]]:
    from decimal import Decimal

    from catalog.models import Customer, Tenant
    from wallets.services import wallet_create, wallet_top_up

    tenant = Tenant.objects.create(name="Bench", slug="bench-wallets")
    ids = []
    for n in range(count):
        wallet = wallet_create(customer=Customer.objects.create(tenant=tenant, name=f"C{n}", external_id=f"c{n}"), currency="USD")
        wallet_top_up(tenant_id=tenant.id, wallet_id=wallet.pk, amount=Decimal("1e9"), idempotency_key="bench")
        ids.append(wallet.pk)
    return tenant.id, ids


def client(args: tuple) -> list[float]:
    """One client process: paced hold+commit operations; returns latencies in ms."""
    number, tenant_id, wallet_ids, per_client_rate, seconds, start_at = args
    configure()
    from decimal import Decimal

    from django.db import connection

    from wallets.holds import hold_commit, hold_place, hold_release

    rng = random.Random(number)
    connection.ensure_connection()
    latencies = []
    # One unrecorded operation first: a fresh PostgreSQL backend loads its catalog caches on its
    # first queries (tens of ms), which is start-up, not the latency of a hold.
    warm, _ = hold_place(
        tenant_id=tenant_id, wallet_id=wallet_ids[0], amount=Decimal("0.01"), ttl_seconds=60,
        reference=f"warm-up-{number}", idempotency_key=f"warm-up-{number}-{start_at}",
    )
    hold_release(tenant_id=tenant_id, hold_id=warm.pk)
    time.sleep(max(0.0, start_at - time.time()))  # every client ready before the clock starts
    started = time.monotonic() + rng.random() / per_client_rate  # clients spread over one interval
    n = 0
    while (now := time.monotonic()) - started < seconds:
        due = started + n / per_client_rate
        if due > now:
            time.sleep(due - now)  # pacing the offered load
        begin = time.perf_counter()
        hold, _ = hold_place(
            tenant_id=tenant_id, wallet_id=rng.choice(wallet_ids), amount=Decimal("0.50"), ttl_seconds=60,
            reference=f"session-{number}-{n}", idempotency_key=f"{number}-{n}",
        )
        hold_commit(tenant_id=tenant_id, hold_id=hold.pk, amount=Decimal("0.37"))
        latencies.append((time.perf_counter() - begin) * 1000)
        n += 1
    connection.close()
    return latencies


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def scenario(name: str, tenant_id: int, wallet_ids: list[int], args) -> None:
    per_client = args.rate / args.clients
    started = time.monotonic()
    with multiprocessing.get_context("fork").Pool(args.clients) as pool:
        start_at = time.time() + 5
        results = pool.map(client, [(n, tenant_id, wallet_ids, per_client, args.seconds, start_at) for n in range(args.clients)])
    wall = time.monotonic() - started - 5
    latencies = sorted(v for r in results for v in r)
    print(
        f"  {name}: {len(latencies)} hold+commit operations in {wall:.1f}s ({len(latencies) / args.seconds:,.0f}/s achieved "
        f"of {args.rate:,.0f}/s offered): p50 {percentile(latencies, 0.5):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms, "
        f"max {latencies[-1]:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rate", type=float, default=400, help="hold+commit operations per second, all clients together")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--wallets", type=int, default=1000, help="wallets in the many-wallets scenario")
    args = parser.parse_args()

    recreate_database(BENCH_DB)
    configure()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    tenant_id, wallet_ids = build_wallets(args.wallets)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # fresh tables: plan with statistics, not whatever autovacuum finds mid-run
    connection.close()  # the client processes are forked: each opens its own

    print("Aforo escrow hold benchmark")
    print(f"  machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, PostgreSQL on loopback")
    print(f"  setup: {args.clients} client processes, {args.rate:,.0f} hold+commit/s offered for {args.seconds:.0f}s per scenario")
    scenario("one wallet", tenant_id, wallet_ids[:1], args)
    scenario(f"{args.wallets} wallets", tenant_id, wallet_ids, args)

    from wallets.services import wallets_check

    problems = wallets_check()
    print(f"  ledger check: {'every wallet agrees with its ledger' if not problems else problems[:5]}")


if __name__ == "__main__":
    main()
