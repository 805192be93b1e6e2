"""Entitlement check benchmark: POST /api/v1/entitlements/check latency with concurrent clients.

    .venv/bin/python bench/entitlement_check.py [--clients 32] [--rate 1000] [--seconds 10] [--customers 200]

The real web server (the Procfile's gunicorn command: 2 workers x 4 threads) on its own
database (aforo_bench_entitlements, recreated) and Redis database 10 (flushed). Each of
`--customers` customers has an API key and a subscription whose price has a block limit; their
usage is rated through the real rating batch first, so the counters exist in Redis. Then
`--clients` concurrent clients (asyncio, one keep-alive connection each, in one process) each
ask about a random customer, paced so that together they offer `--rate` checks per second (open
loop: a slow answer does not slow the offered load down); latency is measured from the moment a
check was due to the end of its answer (so queueing behind a slow one counts). Reports
p50/p99/max, the rate achieved, every answer's status, and the machine's load average; then the
same with unpaced clients (the most the server answers). Counts the SQL statements the web server
ran while it answered (PostgreSQL logs every statement of the bench database): none, once warm.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import django_configure, recreate_database  # noqa: E402

BENCH_DB = "aforo_bench_entitlements"
REDIS_DB = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(customers: int) -> tuple[str, list[tuple[str, str]]]:
    """A tenant, its ingest token, and `customers` customers with a key each, with some usage
    rated (customer n: 10 n units; those from the 100th on are at or past the limit); returns
    the token's secret and the (api_key, metric) pairs to ask about."""
    from billing.usage import IncomingEvent, usage_batch_record
    from catalog import services
    from catalog.models import App, Customer, Metric, Offering, Product, RatePlan, Subscription, Team, Tenant, TenantToken
    from metering.enrichment import EnrichmentCache
    from metering.validation import validate_event

    tenant = Tenant.objects.create(name="Bench", slug="bench-entitlements")
    product = Product.objects.create(tenant=tenant, code="api", name="API", product_type=Product.Type.API)
    metric = Metric.objects.create(tenant=tenant, product=product, code="tool_calls", name="Tool calls")
    offering = Offering.objects.create(tenant=tenant, code="plan", name="Plan")
    offering.products.add(product)
    plan = RatePlan.objects.create(tenant=tenant, offering=offering, code="plan-usd", name="Plan", currency="USD")
    start = datetime.now(timezone.utc) - timedelta(days=60)
    version = services.rate_plan_version_create(rate_plan=plan, effective_from=start)
    services.metric_config_set(
        version=version, metric=metric,
        config={
            "model": "per_unit", "rate": "0.01",
            "overrides": [{"match": {"tool_name": "generate"},
                           "price": {"model": "per_unit", "rate": "0.05", "limit": {"units": "1000", "overage": "block"}}}],
        },
    )
    services.rate_plan_version_publish(version=version)
    keys = []
    for n in range(customers):
        customer = Customer.objects.create(tenant=tenant, name=f"Customer {n}", external_id=f"c{n}")
        app = App.objects.create(tenant=tenant, team=Team.objects.create(tenant=tenant, customer=customer, name="t"), name="a")
        keys.append(services.api_key_create(app=app)[1])
        Subscription.objects.create(
            tenant=tenant, customer=customer, offering=offering, rate_plan=plan, billing_anchor=start, started_at=start,
            currency="USD",
        )
    secret = services.tenant_token_create(tenant=tenant, kind=TenantToken.Kind.INGEST, name="bench")[1]
    now = datetime.now(timezone.utc)
    events = []
    for n, key in enumerate(keys):  # some usage for each: counters to read, some customers past the limit
        raw = {"event_id": f"seed-{n}", "api_key": key, "metric": "tool_calls", "quantity": str(n * 10),
               "timestamp": (now - timedelta(seconds=5)).isoformat(), "dimensions": {"tool_name": "generate"}}
        event = validate_event(raw, now=now)
        events.append(IncomingEvent(tenant.id, event.subject, event, now))
    usage_batch_record(events=events, cache=EnrichmentCache())
    return secret, [(key, "tool_calls") for key in keys]


def request_bytes(port: int, token: str, key: str, metric: str) -> bytes:
    body = orjson.dumps({"api_key": key, "metric": metric, "units": "1", "dimensions": {"tool_name": "generate"}})
    return (
        f"POST /api/v1/entitlements/check HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return status, await reader.readexactly(length)


async def client(
    number: int, port: int, requests: list[bytes], per_client_rate: float | None, seconds: float, started: float, out: list
):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    rng = random.Random(number)  # each client its own sequence of customers
    loop = asyncio.get_running_loop()
    offset = rng.random() / per_client_rate if per_client_rate else 0.0
    n = 0
    while True:
        due = started + offset + (n / per_client_rate if per_client_rate else 0.0)
        now = loop.time()
        if now - started >= seconds:
            break
        if due > now:
            await asyncio.sleep(due - now)
        sent = loop.time()
        begin = due if per_client_rate else sent
        writer.write(rng.choice(requests))
        status, body = await read_response(reader)
        done = loop.time()
        out.append((done - begin, status, body, done - sent))
        n += 1
    writer.close()


async def warm(port: int, requests: list[bytes], clients: int) -> None:
    """Every request once, spread over `clients` connections (so over every worker)."""

    async def one(part: list[bytes]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for request in part:
            writer.write(request)
            await read_response(reader)
        writer.close()

    await asyncio.gather(*(one(requests[n::clients]) for n in range(clients)))


async def run(port: int, requests: list[bytes], clients: int, rate: float | None, seconds: float) -> list:
    results: list = []
    loop = asyncio.get_running_loop()
    started = loop.time() + 0.2
    per_client = rate / clients if rate else None
    outs = [[] for _ in range(clients)]
    await asyncio.gather(*(client(i, port, requests, per_client, seconds, started, outs[i]) for i in range(clients)))
    for out in outs:
        results.extend(out)
    return results


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def report(name: str, results: list, seconds: float) -> None:
    latencies = sorted(r[0] * 1000 for r in results)
    round_trips = sorted(r[3] * 1000 for r in results)
    statuses: dict[int, int] = {}
    reasons: dict[str, int] = {}
    for _, status, body, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
        if status == 200:
            reason = orjson.loads(body)["reason"]
            reasons[reason] = reasons.get(reason, 0) + 1
    print(
        f"  {name}: {len(results):,} checks ({len(results) / seconds:,.0f}/s achieved), p50 {percentile(latencies, 0.5):.2f} ms, "
        f"p99 {percentile(latencies, 0.99):.2f} ms, max {latencies[-1]:.2f} ms (from sending: p50 {percentile(round_trips, 0.5):.2f}, p99 "
        f"{percentile(round_trips, 0.99):.2f} ms); statuses {statuses}, reasons {reasons}"
    )


SERVER_LOG = Path("/var/log/postgresql/postgresql-15-main.log")


def statements_logged(since: int) -> int | None:
    """Statements PostgreSQL logged for the bench database since byte `since` of its log (the
    database is set to log_statement = all before the web server connects), or None when the
    log cannot be read here."""
    try:
        with SERVER_LOG.open("rb") as log:
            log.seek(since)
            return sum(1 for line in log if f"@{BENCH_DB} LOG:  statement:".encode() in line)
    except OSError:
        return None


def log_size() -> int:
    try:
        return SERVER_LOG.stat().st_size
    except OSError:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rate", type=float, default=1000, help="checks per second, all clients together")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (the Procfile's: 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (the Procfile's: 4)")
    args = parser.parse_args()

    recreate_database(BENCH_DB)
    django_configure(BENCH_DB, redis_db=REDIS_DB)
    from django.core.management import call_command
    from django.db import connection
    from django_redis import get_redis_connection

    get_redis_connection("default").flushdb()
    call_command("migrate", verbosity=0)
    token, pairs = build(args.customers)
    with connection.cursor() as cursor:  # every statement the web server's connections run is logged
        cursor.execute(f"ALTER DATABASE {BENCH_DB} SET log_statement = 'all'")
    connection.close()

    port = free_port()
    env = {**os.environ, "ENTITLEMENT_GENERATION_TTL_S": "60"}
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "aforo.wsgi", "--worker-class", "aforo.webserver.JsonErrorWorker",
         "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers), "--threads", str(args.threads),
         "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True, stderr=subprocess.DEVNULL,  # librdkafka: no broker in this bench
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("gunicorn did not start") from None
                time.sleep(0.1)
        requests = [request_bytes(port, token, key, metric) for key, metric in pairs]
        for _ in range(2):  # warm-up: every customer's counters and hierarchy once, every worker and thread
            asyncio.run(warm(port, requests, args.clients))
        asyncio.run(run(port, requests, args.clients, 200, 3))
        print("Aforo entitlement check benchmark")
        print(f"  machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
              "PostgreSQL + Redis on loopback")
        print(f"  setup: gunicorn {args.workers} workers x {args.threads} threads, {args.customers} customers (block limit of 1,000 units on the "
              f"generate override), {args.clients} concurrent clients, one keep-alive connection each")
        since = log_size()
        paced = asyncio.run(run(port, requests, args.clients, args.rate, args.seconds))
        report(f"{args.rate:,.0f} checks/s offered for {args.seconds:.0f}s", paced, args.seconds)
        flat_out = asyncio.run(run(port, requests, args.clients, None, args.seconds / 2))
        report("unpaced (as fast as answered)", flat_out, args.seconds / 2)
        queries = statements_logged(since)
        print(f"  SQL statements the web server ran during the checks: {'unknown (no server log here)' if queries is None else queries}")
        print(f"  load average (1, 5, 15 min) at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=15)


if __name__ == "__main__":
    main()
