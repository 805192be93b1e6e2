"""nginx + lua-nginx-module in front of a demo upstream, metering into a real Aforo.

One testplatform (web, broker, consumers) for the session; one nginx (our own process, a config
generated in a temp dir, free ports) whose server :proxy meters every request in log_by_lua and
enforces in access_by_lua, in front of a `return 200` upstream server. Results are read back
through Aforo's API (GET /api/v1/customers/{id}/usage), polled with a deadline.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
GATEWAYS = HERE.parents[1]
ROOT = GATEWAYS.parent
PYTHON = os.environ.get("AFORO_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
MODULES = [d for d in ("/usr/lib/nginx/modules", "/usr/share/nginx/modules") if Path(d, "ngx_http_lua_module.so").exists()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll(condition, *, timeout: float = 30, what: str = "condition"):
    """Wait for condition() to be truthy (returned), polling; fail with what after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


class Platform:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "aforo.devserver.testplatform", "--name", "gateways", "--redis-db", "14"],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        self.info = json.loads(self._line(timeout=180))
        self.url = self.info["url"]
        self.customers = {c["name"]: c for c in self.info["customers"]}

    def _line(self, *, timeout: float) -> str:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError("testplatform did not answer")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"testplatform exited ({self.proc.poll()})")
        return line

    def web(self, action: str) -> None:
        self.proc.stdin.write(f"web {action}\n")
        self.proc.stdin.flush()
        assert self._line(timeout=60).strip() == "ok"

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def api(self, method: str, path: str, *, token: str, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def usage(self, customer: str, metric: str, dimension_key: str = "") -> tuple[Decimal, int]:
        """(units, event_count) of one metric row of the customer's current period."""
        _, body = self.api("GET", f"/api/v1/customers/{self.customers[customer]['id']}/usage", token=self.info["admin_token"])
        for sub in body["subscriptions"]:
            for row in sub["metrics"]:
                if row["metric"] == metric and row["dimension_key"] == dimension_key:
                    return Decimal(row["units"]), row["event_count"]
        return Decimal(0), 0

    def events_total(self, customer: str, metric: str) -> int:
        """Events rated for a metric over all its rows (dimension overrides have rows of their own)."""
        _, body = self.api("GET", f"/api/v1/customers/{self.customers[customer]['id']}/usage", token=self.info["admin_token"])
        return sum(row["event_count"] for sub in body["subscriptions"] for row in sub["metrics"] if row["metric"] == metric)


NGINX_CONF = """
{load_modules}
worker_processes 1;
error_log {dir}/error.log info;
pid {dir}/nginx.pid;
env AFORO_URL;
env AFORO_INGEST_TOKEN;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {dir}/tmp;
  proxy_temp_path {dir}/tmp;
  lua_package_path "{gateways}/lua/?.lua;{gateways}/nginx-lua/lua/?.lua;;";
  init_worker_by_lua_block {{
    require("aforo.nginx").configure{{
      endpoint = os.getenv("AFORO_URL"), token = os.getenv("AFORO_INGEST_TOKEN"),
      api_key_header = "x-api-key", dimension_headers = {{ tool_name = "x-tool-name" }},
      batch_size = 20, flush_interval = {flush_interval}, spool_dir = {spool_dir}, backoff_base = 0.2, backoff_max = 1,
    }}
  }}
  server {{ listen 127.0.0.1:{upstream}; location / {{ return 200 "upstream ok\\n"; }} }}
  server {{
    listen 127.0.0.1:{proxy};
    location = /_aforo {{ content_by_lua_block {{ require("aforo.nginx").status() }} }}
    location /tools/ {{
      access_by_lua_block {{ require("aforo.nginx").access{{ metric = "tool_calls", enforce = true }} }}
      log_by_lua_block {{ require("aforo.nginx").log{{ metric = "tool_calls" }} }}
      proxy_pass http://127.0.0.1:{upstream};
    }}
    location /misconfigured/ {{
      log_by_lua_block {{ require("aforo.nginx").log{{ metric = "not a metric" }} }}
      proxy_pass http://127.0.0.1:{upstream};
    }}
    location / {{
      access_by_lua_block {{ require("aforo.nginx").access() }}
      log_by_lua_block {{ require("aforo.nginx").log() }}
      proxy_pass http://127.0.0.1:{upstream};
    }}
  }}
}}
"""


class Nginx:
    def __init__(self, platform: Platform, directory: Path, *, flush_interval: float = 0.2,
                 spool_dir: Path | None = None) -> None:
        assert MODULES, "libnginx-mod-http-lua is not installed"
        self.dir = directory
        (directory / "tmp").mkdir()
        modules = MODULES[0]
        load = "\n".join(f"load_module {modules}/{m};" for m in ("ndk_http_module.so", "ngx_http_lua_module.so")
                         if Path(modules, m).exists())
        self.port, upstream = free_port(), free_port()
        conf = directory / "nginx.conf"
        conf.write_text(NGINX_CONF.format(load_modules=load, dir=directory, gateways=GATEWAYS, upstream=upstream, proxy=self.port,
                                    flush_interval=flush_interval,
                                    spool_dir=json.dumps(str(spool_dir)) if spool_dir else "nil"))
        env = dict(os.environ, AFORO_URL=platform.url, AFORO_INGEST_TOKEN=platform.info["ingest_token"])
        self.proc = subprocess.Popen(["nginx", "-p", str(directory), "-c", str(conf), "-g", "daemon off;"], env=env)
        poll(self._answers, timeout=10, what="nginx to listen")

    def _answers(self) -> bool:
        try:
            self.get("/_aforo")
            return True
        except OSError:
            return False

    def get(self, path: str, headers: dict | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def metrics(self) -> dict:
        return json.loads(self.get("/_aforo")[1])

    def error_log(self) -> str:
        return (self.dir / "error.log").read_text(errors="replace")

    def close(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)  # graceful: the worker flushes what it holds
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def platform():
    p = Platform()
    yield p
    p.close()


@pytest.fixture(scope="session")
def nginx(platform, tmp_path_factory):
    n = Nginx(platform, tmp_path_factory.mktemp("nginx"))
    yield n
    n.close()


def drained(nginx: Nginx) -> dict | None:
    m = nginx.metrics()
    return m if m["buffered"] == 0 else None


def test_n_requests_through_nginx_are_rated_exactly_once(platform, nginx):
    key = {"x-api-key": platform.customers["Acme Corp"]["api_key"]}
    units0, events0 = platform.usage("Acme Corp", "api_calls")
    n = 57  # two full batches of 20 and a partial one sent by time
    for i in range(n):
        status, body = nginx.get(f"/v1/search?q={i}", key)
        assert (status, body) == (200, b"upstream ok\n")
    poll(lambda: platform.usage("Acme Corp", "api_calls")[0] >= units0 + n, what=f"{n} events rated")
    poll(lambda: drained(nginx), what="the nginx queue to drain")
    assert platform.usage("Acme Corp", "api_calls") == (units0 + n, events0 + n)


def test_an_aforo_outage_loses_nothing_and_doubles_nothing(platform, nginx):
    acme = {"x-api-key": platform.customers["Acme Corp"]["api_key"]}
    units0, events0 = platform.usage("Acme Corp", "api_calls")
    before = nginx.metrics()
    for i in range(15):
        assert nginx.get(f"/v1/search?before={i}", acme)[0] == 200
    poll(lambda: platform.usage("Acme Corp", "api_calls")[0] == units0 + 15, what="the first 15 rated")
    tools0 = platform.events_total("Globex", "tool_calls")
    platform.web("stop")
    try:
        for i in range(30):
            assert nginx.get(f"/v1/search?during={i}", acme)[0] == 200  # the gateway keeps serving
        # enforcement cannot ask Aforo: fail_open (the default) lets the calls through, metered
        tool = {"x-api-key": platform.customers["Globex"]["api_key"], "x-tool-name": "search"}
        for i in range(5):
            assert nginx.get(f"/tools/search?during={i}", tool)[0] == 200
        # the queue hits the outage and holds the events, retrying with backoff
        poll(lambda: nginx.metrics()["retried"] > before["retried"], what="a failed batch to be retried")
        assert nginx.metrics()["buffered"] > 0
    finally:
        platform.web("start")
    poll(lambda: platform.usage("Acme Corp", "api_calls")[0] >= units0 + 45, timeout=60, what="all 45 rated")
    after = poll(lambda: drained(nginx), what="the nginx queue to drain")
    assert platform.usage("Acme Corp", "api_calls") == (units0 + 45, events0 + 45)
    assert platform.events_total("Globex", "tool_calls") == tools0 + 5
    assert after["dropped"] == before["dropped"] and after["rejected"] == before["rejected"]


def test_enforcement_denies_with_429_past_a_block_limit(platform, nginx):
    """Globex's tool_calls price for tool_name=generate has a block limit of 100 a month
    (aforo/demo/seed.py). Usage is brought to the limit with one direct event of 100 units;
    once the check API says allow=false, nginx answers 429 and meters nothing; another tool
    (no limit) still passes and is metered."""
    globex = platform.customers["Globex"]
    generate = {"x-api-key": globex["api_key"], "x-tool-name": "generate"}
    units, _ = platform.usage("Globex", "tool_calls", "tool_name=generate")
    if units < 100:
        status, answer = platform.api("POST", "/api/v1/events", token=platform.info["ingest_token"], body={"events": [{
            "event_id": f"fill-{uuid.uuid4()}", "api_key": globex["api_key"], "metric": "tool_calls",
            "quantity": str(100 - units), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "dimensions": {"tool_name": "generate"}}]})
        assert status == 202, answer
    check = {"api_key": globex["api_key"], "metric": "tool_calls", "units": "1", "dimensions": {"tool_name": "generate"}}
    poll(lambda: platform.api("POST", "/api/v1/entitlements/check", token=platform.info["ingest_token"], body=check)[1]["allow"] is False,
         what="the check to say limit_reached")
    total0 = platform.events_total("Globex", "tool_calls")
    _, generate_events0 = platform.usage("Globex", "tool_calls", "tool_name=generate")

    status, body = nginx.get("/tools/generate", generate)
    assert status == 429
    assert json.loads(body)["error"]["code"] == "limit_reached"
    status, _ = nginx.get("/tools/search", {"x-api-key": globex["api_key"], "x-tool-name": "search"})
    assert status == 200
    poll(lambda: platform.events_total("Globex", "tool_calls") >= total0 + 1, what="the search call rated")
    poll(lambda: drained(nginx), what="the nginx queue to drain")
    assert platform.events_total("Globex", "tool_calls") == total0 + 1
    assert platform.usage("Globex", "tool_calls", "tool_name=generate")[1] == generate_events0  # the 429 is not metered


def test_rejected_events_are_reported_not_silently_dropped(platform, nginx):
    """A location configured with a metric Aforo refuses: the event comes back rejected
    (invalid_metric) and is counted and logged, never retried."""
    before = nginx.metrics()
    assert nginx.get("/misconfigured/x", {"x-api-key": platform.customers["Acme Corp"]["api_key"]})[0] == 200
    after = poll(lambda: (m := nginx.metrics())["rejected"] == before["rejected"] + 1 and m, what="the rejection to be counted")
    assert "rejected: invalid_metric" in nginx.error_log()
    assert after["retried"] == before["retried"] and after["buffered"] == 0


def test_a_graceful_shutdown_sends_what_the_queue_holds(platform, tmp_path):
    """nginx -s quit (SIGQUIT): the worker's pending timers run early and the queue is flushed.
    This nginx waits 60 s to fill a batch, so only the shutdown can send the events."""
    acme = {"x-api-key": platform.customers["Acme Corp"]["api_key"]}
    units0, events0 = platform.usage("Acme Corp", "api_calls")
    held = Nginx(platform, tmp_path, flush_interval=60)
    try:
        for i in range(7):
            assert held.get(f"/v1/search?held={i}", acme)[0] == 200
        assert held.metrics()["buffered"] == 7
    finally:
        held.close()
    assert held.proc.returncode == 0
    poll(lambda: platform.usage("Acme Corp", "api_calls")[0] >= units0 + 7, what="the 7 held events rated")
    assert platform.usage("Acme Corp", "api_calls") == (units0 + 7, events0 + 7)


def test_a_killed_nginx_loses_nothing_with_the_spool(platform, tmp_path):
    """Aforo down, requests queued, nginx killed (SIGKILL: no flush), a new nginx on the same
    spool directory, Aforo back: every event rated exactly once."""
    acme = {"x-api-key": platform.customers["Acme Corp"]["api_key"]}
    # nginx started as root runs its workers as nobody: the spool must be reachable by them
    # (pytest's tmp_path is not: its parents are 0700)
    spool = Path(tempfile.mkdtemp(prefix="aforo-spool-"))
    spool.chmod(0o777)
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    units0, events0 = platform.usage("Acme Corp", "api_calls")
    first = Nginx(platform, tmp_path / "first", spool_dir=spool)
    second = None
    try:
        platform.web("stop")
        try:
            for i in range(12):
                assert first.get(f"/v1/search?spooled={i}", acme)[0] == 200
            poll(lambda: first.metrics()["retried"] > 0, what="the batch to hit the outage")
            worker = first.metrics()["worker_pid"]
            first.proc.kill()
            first.proc.wait()
            os.kill(worker, signal.SIGKILL)
            second = Nginx(platform, tmp_path / "second", spool_dir=spool)
            assert second.metrics().get("replayed") == 12
        finally:
            platform.web("start")
        poll(lambda: platform.usage("Acme Corp", "api_calls")[0] >= units0 + 12, timeout=60, what="the 12 spooled events rated")
        poll(lambda: drained(second), what="the second nginx's queue to drain")
        assert platform.usage("Acme Corp", "api_calls") == (units0 + 12, events0 + 12)
    finally:
        if first.proc.poll() is None:
            first.close()
        if second is not None:
            second.close()
        shutil.rmtree(spool, ignore_errors=True)
