"""Post realistic demo usage at a steady rate through the Python SDK (sdks/python: its client
batches, retries and reports per-event results) to the real ingest API, so the dashboard and the
admin come alive — and the demo exercises the SDK: API calls, MCP tool calls per tool, agent
sessions and LLM tokens, spread over the demo customers."""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from aforo.demo.events import demo_event
from aforo.demo.seed import demo_seed

SDK = Path(__file__).resolve().parents[3] / "sdks" / "python" / "src"


def _sdk():
    """aforo_sdk: installed (pip install ./sdks/python), else from this repository's sources."""
    try:
        import aforo_sdk
    except ImportError:
        sys.path.insert(0, str(SDK))
        import aforo_sdk
    return aforo_sdk


class Command(BaseCommand):
    help = "Post demo usage events through the Python SDK to the ingest API at --rate events/s for --seconds."

    def add_arguments(self, parser):
        parser.add_argument("--rate", type=float, default=20, help="Events per second (default 20).")
        parser.add_argument("--seconds", type=float, default=60, help="How long (default 60).")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="Where the web process listens.")
        parser.add_argument("--ticks", type=int, default=10, help="Times a second events are recorded.")
        parser.add_argument("--seed", type=int, default=None, help="Random seed, for a repeatable run.")

    def handle(self, *args, rate: float, seconds: float, url: str, ticks: int, seed: int | None, **options):
        if rate <= 0 or seconds <= 0:
            raise CommandError("--rate and --seconds must be positive")
        sdk = _sdk()
        demo = demo_seed()
        rng = random.Random(seed)
        problems: list[str] = []

        def on_result(result) -> None:
            if result.status in ("rejected", "dropped"):
                problems.append(f"{result.status} {result.code}: {result.message}")

        client = sdk.Client(url=url, token=demo["ingest_token"], on_result=on_result, register_atexit=False,
                            retry=sdk.RetryPolicy(max_attempts=5))
        started = time.monotonic()
        recorded = 0
        owed = 0.0
        next_report = started + 5
        tick = 0
        try:
            # A fixed number of ticks, paced in time: the run offers rate × seconds events even when a
            # slow machine makes it take longer than --seconds.
            while tick < round(seconds * ticks):
                now = time.monotonic()
                owed += rate / ticks
                for _ in range(int(owed)):
                    event = demo_event(rng.choice(demo["customers"]), rng=rng)
                    del event["event_id"], event["timestamp"]  # the SDK's: a UUIDv7 and now, fixed at record time
                    client.record(**event)
                    recorded += 1
                owed -= int(owed)
                if now >= next_report:
                    m = client.metrics
                    self.stdout.write(f"{now - started:5.0f}s  recorded {recorded}  accepted {m.sent}  retried {m.retried}  "
                                      f"rejected {m.rejected}  dropped {m.dropped}")
                    next_report += 5
                tick += 1
                pause = started + tick / ticks - time.monotonic()
                if pause > 0:
                    time.sleep(pause)  # pacing the offered load
        finally:
            delivered = client.close(timeout=30)
        m = client.metrics
        elapsed = time.monotonic() - started
        for problem in problems[:10]:
            self.stderr.write(problem)
        failed = m.rejected + m.dropped
        self.stdout.write(
            f"done: {recorded} events in {elapsed:.1f}s ({recorded / elapsed:.0f}/s), {m.sent + m.duplicate} accepted, "
            f"{failed} failed ({m.retried} retried sends){'' if delivered else '; some were still unsent at the end'}"
        )
        if m.requests and not m.sent and failed == 0 and not delivered:
            raise CommandError(f"cannot reach the ingest API at {url}")
