"""HTTP ingest → rated latency on the running platform (start it first with ./scripts/dev).

    .venv/bin/python bench/ingest_to_rated.py [--rate 200] [--seconds 20]

Posts demo traffic through POST /api/v1/events with `manage.py simulate_traffic` (batches of
rate/10 events, ten requests a second), then reads from PostgreSQL, for exactly the events of
this run, the time from the API receiving the event (raw_event.received_at, stamped before the
produce) to its rated row being committed (rated_event.rated_at). Same machine, same clock.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aforo.settings.dev")
    import django

    django.setup()
    from django.db import connection

    started = datetime.now(timezone.utc)
    subprocess.run(
        [sys.executable, "manage.py", "simulate_traffic", "--rate", str(args.rate), "--seconds", str(args.seconds), "--url", args.url],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )
    sql_run = "FROM metering_rawevent e LEFT JOIN billing_ratedevent r ON r.raw_event_id = e.id WHERE e.received_at >= %s AND e.metadata->>'gateway' = 'simulate_traffic'"
    deadline = time.monotonic() + 30
    while True:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*), count(r.id) {sql_run}", [started])
            posted, rated = cursor.fetchone()
        if posted and posted == rated or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # waiting for the platform under test to finish rating
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms)
                FROM (SELECT extract(epoch FROM r.rated_at - e.received_at) * 1000 AS ms {sql_run} AND r.id IS NOT NULL) x""",
            [started],
        )
        p50, p99, worst = cursor.fetchone()
    print("Aforo HTTP ingest -> rated latency (platform started by ./scripts/dev)")
    print(f"  machine: {platform.machine()}, {os.cpu_count()} cores; web: gunicorn 2 workers x 8 threads; 1 consumer")
    print(f"  offered: {args.rate:.0f} events/s for {args.seconds:.0f}s through POST /api/v1/events ({posted} posted, {rated} rated)")
    print(f"  received by the API -> rated row committed: p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {worst:.0f} ms")


if __name__ == "__main__":
    main()
