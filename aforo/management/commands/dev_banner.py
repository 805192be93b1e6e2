import os
import time
import urllib.request

from django.core.management.base import BaseCommand

from aforo.demo.seed import demo_seed


class Command(BaseCommand):
    help = (
        "Wait for the web process, then print where to look (URLs, demo logins, an ingest example) and finish: "
        "a one-shot in the Procfile, which the dev supervisor does not restart."
    )
    requires_system_checks = []

    def handle(self, *args, **options):
        base = f"http://127.0.0.1:{os.environ.get('WEB_PORT', '8000')}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.5)  # pacing a human-facing wait, not a test
        demo = demo_seed()
        customer = demo["customers"][0]
        lines = [
            "",
            "=" * 78,
            "Aforo is running.",
            f"  Admin:      {base}/admin/            login {demo['admin_login']['username']} / {demo['admin_login']['password']}",
            f"  Dashboard:  {base}/dashboard/        login "
            + ", ".join(f"{c['login']['username']} / {c['login']['password']}" for c in demo["customers"]),
            f"  API docs:   {base}/api/docs/         (admin token: {demo['admin_token']})",
            "  Ingest one event:",
            f"    curl -s -X POST {base}/api/v1/events \\",
            f"      -H 'Authorization: Bearer {demo['ingest_token']}' -H 'Content-Type: application/json' \\",
            f"      -d '{{\"event_id\": \"demo-'$(date +%s%N)'\", \"api_key\": \"{customer['api_key']}\", "
            f"\"metric\": \"api_calls\", \"quantity\": \"1\", \"timestamp\": \"'$(date -u +%Y-%m-%dT%H:%M:%SZ)'\"}}'",
            "  Live traffic: .venv/bin/python manage.py simulate_traffic --rate 50 --seconds 60",
            "=" * 78,
            "",
        ]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()
