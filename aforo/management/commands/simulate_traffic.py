"""Post realistic demo usage through the real ingest API at a steady rate, so the dashboard
and the admin come alive: API calls, MCP tool calls per tool, agent sessions and LLM tokens,
spread over the demo customers."""

from __future__ import annotations

import http.client
import random
import time
from urllib.parse import urlsplit

import orjson
from django.core.management.base import BaseCommand, CommandError

from aforo.demo.seed import demo_seed
from aforo.demo.events import demo_event

class Command(BaseCommand):
    help = "Post demo usage events through the ingest API at --rate events/s for --seconds."

    def add_arguments(self, parser):
        parser.add_argument("--rate", type=float, default=20, help="Events per second (default 20).")
        parser.add_argument("--seconds", type=float, default=60, help="How long (default 60).")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="Where the web process listens.")
        parser.add_argument("--ticks", type=int, default=10, help="Requests per second the rate is split into.")
        parser.add_argument("--seed", type=int, default=None, help="Random seed, for a repeatable run.")

    def handle(self, *args, rate: float, seconds: float, url: str, ticks: int, seed: int | None, **options):
        if rate <= 0 or seconds <= 0:
            raise CommandError("--rate and --seconds must be positive")
        demo = demo_seed()
        rng = random.Random(seed)
        target = urlsplit(url)
        connection = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=30)
        headers = {"Authorization": f"Bearer {demo['ingest_token']}", "Content-Type": "application/json"}
        started = time.monotonic()
        sent = accepted = failed = 0
        owed = 0.0
        next_report = started + 5
        tick = 0
        # A fixed number of ticks, paced in time: the run offers rate × seconds events even when a
        # slow machine makes it take longer than --seconds.
        while tick < round(seconds * ticks):
            now = time.monotonic()
            owed += rate / ticks
            batch = [demo_event(rng.choice(demo["customers"]), rng=rng) for _ in range(int(owed))]
            owed -= len(batch)
            if batch:
                status, body = self._post(connection, target.path.rstrip("/") + "/api/v1/events", batch, headers)
                sent += len(batch)
                if status == 202:
                    accepted += body["accepted"]
                else:
                    failed += len(batch)
                    self.stderr.write(f"HTTP {status}: {body.get('error', body)}")
            if now >= next_report:
                self.stdout.write(f"{now - started:5.0f}s  sent {sent}  accepted {accepted}  failed {failed}")
                next_report += 5
            tick += 1
            pause = started + tick / ticks - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # pacing the offered load
        elapsed = time.monotonic() - started
        self.stdout.write(f"done: {sent} events in {elapsed:.1f}s ({sent / elapsed:.0f}/s), {accepted} accepted, {failed} failed")

    def _post(self, connection: http.client.HTTPConnection, path: str, batch: list, headers: dict) -> tuple[int, dict]:
        try:
            connection.request("POST", path, body=orjson.dumps(batch), headers=headers)
            response = connection.getresponse()
            return response.status, orjson.loads(response.read() or b"{}")
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise CommandError(f"cannot reach the ingest API at {connection.host}:{connection.port}: {error}") from None
