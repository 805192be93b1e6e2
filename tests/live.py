"""A running Aforo for tests that must go through real sockets: gunicorn (the Procfile's worker
class and WSGI guard) on the test database, and a raw HTTP client that can send what no
well-behaved client library would (lying Content-Length, bad UTF-8, half-closed bodies)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tests.conftest import _free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    rest: bytes = b""  # what followed the first response on the connection

    def json(self):
        return orjson.loads(self.body)

    @property
    def error_code(self) -> str | None:
        return self.json().get("error", {}).get("code")


@dataclass
class LiveWeb:
    """gunicorn serving aforo.wsgi with the given environment; `stop()` ends it."""

    env: dict[str, str]
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveWeb:
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "aforo.wsgi", "--worker-class", "aforo.webserver.JsonErrorWorker",
                "--bind", f"127.0.0.1:{self.port}", "--workers", "1", "--threads", "4", "--timeout", "30",
                "--graceful-timeout", "5", "--log-level", "warning",
            ],
            cwd=ROOT, env={**os.environ, **self.env}, start_new_session=True,
        )
        wait_for(self._answers, timeout=30, message=f"gunicorn on port {self.port}")
        return self

    def _answers(self) -> bool:
        assert self.process is not None and self.process.poll() is None, "gunicorn exited"
        try:
            return raw_request(self.port, b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", timeout=2).status > 0
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def fresh_kafka_settings(bootstrap: str, *, name: str) -> dict[str, str]:
    """Settings (and environment variables) for topics and a group of one test module's own."""
    suffix = uuid.uuid4().hex[:10]
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_USAGE": f"usage.events.v1.{suffix}",
        "KAFKA_TOPIC_USAGE_DLQ": f"usage.events.dlq.v1.{suffix}",
        "KAFKA_TOPIC_RATED": f"usage.rated.v1.{suffix}",
        "KAFKA_CONSUMER_GROUP_USAGE": f"aforo-usage-{name}-{suffix}",
    }


def live_web_env(kafka_settings: dict[str, str], **extra: str) -> dict[str, str]:
    """The environment of a LiveWeb on this test session's database and the given topics."""
    from django.db import connection

    return {
        **kafka_settings,
        "DJANGO_SETTINGS_MODULE": "aforo.settings.test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        **extra,
    }


def flush_committed_data() -> None:
    """After a module that committed data for a live server: empty every table, keeping the id
    sequences (a reused tenant id would meet the Redis caches and catalog generations of the
    tenant that had it), and empty the test Redis database."""
    from django.core.management import call_command
    from django_redis import get_redis_connection

    call_command("flush", interactive=False, verbosity=0, reset_sequences=False)
    get_redis_connection("default").flushdb()


def _read_response(sock: socket.socket) -> RawResponse:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a full response head: {data[:200]!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        body = b""
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            body, rest = body + rest[:size], rest[size + 2:]
        return RawResponse(status=status, headers=headers, body=body)
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return RawResponse(status=status, headers=headers, body=rest[:length], rest=rest[length:])


def raw_request(port: int, data: bytes, *, half_close: bool = False, timeout: float = 30.0) -> RawResponse:
    """Send `data` as is on a new connection and read one response. `half_close` shuts the
    write side after sending (a client that stops short of its declared Content-Length)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return _read_response(sock)


def http_request(
    port: int, method: str, path: str, *, body: bytes = b"", token: str | None = None,
    content_type: str | None = "application/json", headers: dict[str, str] | None = None,
) -> RawResponse:
    """A well-formed HTTP/1.1 request (Connection: close) with a correct Content-Length."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", f"Content-Length: {len(body)}"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    return raw_request(port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
