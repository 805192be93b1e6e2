"""Alert latency benchmark: from an event accepted by the ingest API to its alert's webhook
received by the tenant's endpoint.

    .venv/bin/python bench/alert_latency.py [--probes 100] [--probe-rate 5] [--background 2000]

The whole path, each part its real process: the embedded broker, the web server (the Procfile's
gunicorn), `run_consumer usage`, `run_consumer alerts` and a Celery worker (which sends the
webhooks), on their own database (aforo_bench_alerts, recreated) and Redis databases 7 (cache)
and 6 (Celery). A tenant rule fires at 100 % of the included quota (100 units). Each probe is one
event of 100 units for a customer of its own — it crosses the threshold by itself — POSTed to
/api/v1/events; its latency runs from just before the POST to the moment this process's
receiver (a real HTTP server on a local port) has read the signed webhook naming the probe's
event. Meanwhile `--background` events a second (1 unit each, other customers, batches of 100
through the same API) keep the consumers busy. Reports p50/p99/max, how many arrived, and the
load average.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import recreate_database  # noqa: E402
from consumer_throughput import free_port, start_broker  # noqa: E402

BENCH_DB = "aforo_bench_alerts"


def environment(bootstrap: str, web_port: int) -> dict[str, str]:
    env = {
        "DJANGO_SETTINGS_MODULE": "aforo.settings.dev",
        "DEBUG": "0",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}",
        "REDIS_URL": "redis://127.0.0.1:6379/7",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/6",
        "CACHE_KEY_PREFIX": "aforo-bench-alerts",
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "LOG_LEVEL": "WARNING",
        "WEB_PORT": str(web_port),
    }
    os.environ.update(env)
    return env


def build(customers: int, receiver_url: str) -> tuple[str, list[str]]:
    from catalog import services
    from catalog.models import App, Customer, Metric, Offering, Product, RatePlan, Subscription, Team, Tenant, TenantToken
    from notify.alerts import alert_rule_save
    from notify.services import webhook_endpoint_create

    tenant = Tenant.objects.create(name="Bench", slug="bench-alerts")
    product = Product.objects.create(tenant=tenant, code="api", name="API", product_type=Product.Type.API)
    metric = Metric.objects.create(tenant=tenant, product=product, code="calls", name="Calls")
    offering = Offering.objects.create(tenant=tenant, code="plan", name="Plan")
    offering.products.add(product)
    plan = RatePlan.objects.create(tenant=tenant, offering=offering, code="plan-usd", name="Plan", currency="USD")
    start = datetime.now(timezone.utc) - timedelta(days=1)
    version = services.rate_plan_version_create(rate_plan=plan, effective_from=start)
    services.metric_config_set(version=version, metric=metric, config={"model": "per_unit", "rate": "0.01", "included_free": "100"})
    services.rate_plan_version_publish(version=version)
    keys = []
    for n in range(customers):
        customer = Customer.objects.create(tenant=tenant, name=f"Customer {n}", external_id=f"c{n}")
        app = App.objects.create(tenant=tenant, team=Team.objects.create(tenant=tenant, customer=customer, name="t"), name="a")
        keys.append(services.api_key_create(app=app)[1])
        Subscription.objects.create(tenant=tenant, customer=customer, offering=offering, rate_plan=plan,
                                    billing_anchor=start, started_at=start, currency="USD")
    alert_rule_save(tenant_id=tenant.pk, data={"kind": "quota_percent", "thresholds": ["100"]})
    webhook_endpoint_create(tenant_id=tenant.pk, url=receiver_url, event_types=["alert.triggered"])
    token = services.tenant_token_create(tenant=tenant, kind=TenantToken.Kind.INGEST, name="bench")[1]
    return token, keys


class Receiver:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        arrived = self.arrived

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                arrived.setdefault(orjson.loads(body)["data"]["event_id"], time.monotonic())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"


def post(session, url: str, token: str, body: object) -> None:
    response = session.post(url, data=orjson.dumps(body), timeout=10,
                            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    if response.status_code not in (200, 201, 202, 207):
        raise SystemExit(f"ingest answered {response.status_code}: {response.text[:300]}")


def background(url: str, token: str, keys: list[str], rate: float, stop: threading.Event, sent: list[int]) -> None:
    import requests

    session = requests.Session()
    n, started = 0, time.monotonic()
    while not stop.is_set():
        due = started + n / rate
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        now = datetime.now(timezone.utc).isoformat()
        batch = [{"event_id": f"bg-{n + i}", "api_key": keys[(n + i) % len(keys)], "metric": "calls", "quantity": "1",
                  "timestamp": now} for i in range(100)]
        post(session, url, token, {"events": batch})
        n += 100
        sent[0] = n


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--probe-rate", type=float, default=5, help="probes a second")
    parser.add_argument("--background", type=float, default=2000, help="background events a second (0: none)")
    parser.add_argument("--log-dir", help="keep each process's output in this directory")
    args = parser.parse_args()
    import requests

    bootstrap, broker = start_broker()
    web_port = free_port()
    env = environment(bootstrap, web_port)
    recreate_database(BENCH_DB)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django_redis import get_redis_connection

    from aforo.kafka import topics_ensure, usage_topics

    get_redis_connection("default").flushdb()
    call_command("migrate", verbosity=0)
    receiver = Receiver()
    token, keys = build(args.probes + 50, receiver.url)
    probe_keys, background_keys = keys[: args.probes], keys[args.probes:]
    topics_ensure(names=usage_topics(), wait_s=30)
    connection.close()

    full_env = {**os.environ, **env}
    commands = {
        "web": ["gunicorn", "aforo.wsgi", "--worker-class", "aforo.webserver.JsonErrorWorker", "--bind", f"127.0.0.1:{web_port}",
                "--workers", "2", "--threads", "4", "--log-level", "warning"],
        "usage": ["manage.py", "run_consumer", "usage"],
        "alerts": ["manage.py", "run_consumer", "alerts"],
        "worker": ["-m", "celery", "-A", "aforo", "worker", "--loglevel=WARNING", "--concurrency=2"],
    }
    processes = []
    for name, command in commands.items():
        argv = [sys.executable, "-m", "gunicorn", *command[1:]] if name == "web" else [sys.executable, *command]
        out = open(Path(args.log_dir) / f"{name}.log", "wb") if args.log_dir else subprocess.DEVNULL  # noqa: SIM115
        processes.append(subprocess.Popen(argv, cwd=ROOT, env=full_env, start_new_session=True, stdout=out, stderr=out))
    url = f"http://127.0.0.1:{web_port}/api/v1/events"
    stop = threading.Event()
    try:
        session = requests.Session()
        deadline = time.monotonic() + 60
        while True:  # warm: the web server answers and an event goes all the way to a webhook
            try:
                post(session, url, token, {"event_id": "warm", "api_key": background_keys[0], "metric": "calls",
                                           "quantity": "100", "timestamp": datetime.now(timezone.utc).isoformat()})
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise SystemExit("the web server did not start") from None
                time.sleep(0.2)
        while "warm" not in receiver.arrived:
            if time.monotonic() > deadline:
                raise SystemExit("no webhook for the warm-up event within 60 s (are the consumers and worker up?)")
            time.sleep(0.05)
        sent = [0]
        if args.background:
            threading.Thread(target=background, args=(url, token, background_keys[1:], args.background, stop, sent),
                             daemon=True).start()
        time.sleep(2)  # the background load reaches its pace before the first probe
        posted: dict[str, float] = {}
        began = time.monotonic()
        for n, key in enumerate(probe_keys):
            due = began + n / args.probe_rate
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            event_id = f"probe-{n}"
            posted[event_id] = time.monotonic()
            post(session, url, token, {"event_id": event_id, "api_key": key, "metric": "calls", "quantity": "100",
                                       "timestamp": datetime.now(timezone.utc).isoformat()})
        deadline = time.monotonic() + 30
        while not all(e in receiver.arrived for e in posted) and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        elapsed = time.monotonic() - began
        latencies = sorted((receiver.arrived[e] - t) * 1000 for e, t in posted.items() if e in receiver.arrived)
        print("Aforo alert latency benchmark (event POSTed → its alert's webhook received)")
        print(f"  machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; PostgreSQL, Redis, "
              "embedded broker on loopback; web (2x4), usage consumer, alerts consumer, Celery worker (2) as processes")
        print(f"  setup: {args.probes} probes at {args.probe_rate:g}/s, each crossing 100% of a 100-unit quota; "
              f"background {sent[0] / elapsed:,.0f} events/s achieved ({args.background:,.0f} offered)")
        if latencies:
            print(f"  latency: p50 {percentile(latencies, 0.5):.0f} ms, p99 {percentile(latencies, 0.99):.0f} ms, "
                  f"max {latencies[-1]:.0f} ms; {len(latencies)}/{len(posted)} webhooks received")
        else:
            print(f"  no webhook received for any of {len(posted)} probes")
        print(f"  load average (1, 5, 15 min) at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    finally:
        stop.set()
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        if broker is not None:
            broker.terminate()


if __name__ == "__main__":
    main()
