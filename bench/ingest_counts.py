"""What the reconciliation's counts cost on the hot paths (metering.reconciliation.counts).

    .venv/bin/python bench/ingest_counts.py

Ingest: the marker pipeline one request sends after the broker's acknowledgement (one SET per
event), with and without the accepted counts on it (one HINCRBY per distinct subject + one
SADD), for requests of 1, 100 and 1,000 events over 1 and 50 API keys; loopback Redis.
Consumer: consumed_counts_write of one batch's tallies (one upsert statement) inside a
transaction, and the flush of a minute hash to IngestCount. Own database (bench_reconcile).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import django_configure, recreate_database  # noqa: E402

DATABASE = "bench_reconcile"


def _per_request(function, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats * 1e6


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main() -> None:
    recreate_database(DATABASE)
    django_configure(DATABASE, redis_db=5)
    from django.core.management import call_command
    from django.db import transaction
    from django_redis import get_redis_connection

    from catalog.models import Tenant
    from metering.reconciliation import counts
    from metering.validation import api_key_subject

    call_command("migrate", verbosity=0)
    tenant = Tenant.objects.create(name="bench", slug="bench")
    redis = get_redis_connection("default")
    now = datetime.now(timezone.utc)
    print("Reconciliation counts: cost on the ingest and consumer paths")
    print(f"  machine: {platform.machine()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}; Redis and PostgreSQL on loopback")
    for events, keys in ((1, 1), (100, 1), (100, 50), (1000, 50)):
        subjects = [api_key_subject(f"sk_live_bench_{i % keys}") for i in range(events)]
        event_ids = [f"bench-{i}" for i in range(events)]

        def markers(with_counts: bool) -> None:
            pipe = redis.pipeline(transaction=False)
            for event_id in event_ids:
                pipe.set(f"bench:ingested:{event_id}", 1, ex=60)
            if with_counts:
                counts.ingest_counts_add(pipe, tenant_id=tenant.id, subjects=subjects, now=now)
            pipe.execute()

        repeats = 2000 if events == 1 else 200 if events == 100 else 40
        without = min(_per_request(lambda: markers(False), repeats) for _ in range(3))
        with_counts = min(_per_request(lambda: markers(True), repeats) for _ in range(3))
        print(f"  request of {events:>4} events, {keys:>2} keys: marker pipeline {without:8.1f} µs, with counts {with_counts:8.1f} µs"
              f" (+{with_counts - without:.1f} µs, +{(with_counts - without) / events:.2f} µs/event)")
    flushed_at = time.perf_counter()
    tallies = counts.ingest_counts_flush(now=now, grace_s=0)
    print(f"  flush of the minute hash ({tallies} tallies) to IngestCount: {(time.perf_counter() - flushed_at) * 1000:.1f} ms")

    received = [
        counts.Received(tenant.id, api_key_subject(f"sk_live_bench_{i % 10}"), now, counts.RATED, 10_000 + i) for i in range(1000)
    ]
    for label, outer in (("own transaction, commit included", False), ("inside the batch's transaction, no commit", True)):
        samples = []
        with transaction.atomic() if outer else _nothing():
            for _ in range(50):
                start = time.perf_counter()
                with transaction.atomic():
                    counts.consumed_counts_write(tallies=counts.consumed_counts_plan(received=received))
                samples.append(time.perf_counter() - start)
        samples.sort()
        print(f"  consumer: a batch of 1,000 events over 10 subjects, plan + upsert ({label}): median {samples[25] * 1000:.2f} ms"
              f" ({samples[25] / 1000 * 1e6:.2f} µs/event)")
    for key in redis.scan_iter("bench:ingested:*"):
        redis.delete(key)


if __name__ == "__main__":
    main()
