"""One running Aforo per test run (aforo.devserver.testplatform), started lazily by the first
end-to-end test and stopped (its stdin closed) at the end of the session."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[3]
PLATFORM_START_TIMEOUT = 150.0


class Platform:
    def __init__(self, process: subprocess.Popen[bytes], info: dict[str, Any]) -> None:
        self.process = process
        self.info = info
        self.url: str = info["url"]
        self.ingest_token: str = info["ingest_token"]
        self.admin_token: str = info["admin_token"]
        self.customers = {customer["name"]: customer for customer in info["customers"]}

    def _command(self, line: str) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()
        answer = _read_line(self.process, timeout=90)
        assert answer.strip() == "ok", f"testplatform answered {answer!r} to {line!r}"

    def web_stop(self) -> None:
        self._command("web stop")

    def web_start(self) -> None:
        self._command("web start")

    def api(self, method: str, path: str, payload: Any = None, *, token: str | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url + path, method=method, data=None if payload is None else json.dumps(payload).encode(),
            headers={"Authorization": f"Bearer {token or self.admin_token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def units(self, customer: str, metric: str) -> Decimal:
        """The customer's running total of `metric` this period (all dimension keys)."""
        status, usage = self.api("GET", f"/api/v1/customers/{self.customers[customer]['id']}/usage")
        assert status == 200, usage
        return sum((Decimal(row["units"]) for subscription in usage["subscriptions"] for row in subscription["metrics"]
                    if row["metric"] == metric), Decimal(0))

    def wait_units(self, customer: str, metric: str, expected: Decimal, *, timeout: float = 30.0) -> Decimal:
        """Poll until the running total reaches `expected` (or the deadline); then return it
        after one more read, so a count that overshoots is seen too."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.units(customer, metric) >= expected:
                break
            time.sleep(0.1)
        return self.units(customer, metric)


def _read_line(process: subprocess.Popen[bytes], *, timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buffered = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            chunk = os.read(process.stdout.fileno(), 1)
            if not chunk:
                raise RuntimeError(f"testplatform exited (code {process.poll()})")
            if chunk == b"\n":
                return buffered.decode()
            buffered += chunk
        elif process.poll() is not None:
            raise RuntimeError(f"testplatform exited (code {process.returncode})")
    raise TimeoutError(f"testplatform said nothing within {timeout:.0f} s")


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    python = os.environ.get("AFORO_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    process = subprocess.Popen(
        [python, "-m", "aforo.devserver.testplatform", "--name", "sdkpy", "--redis-db", "2"],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    try:
        info = json.loads(_read_line(process, timeout=PLATFORM_START_TIMEOUT))
        yield Platform(process, info)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_for(condition: Callable[[], bool], *, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.02)


sys.path.insert(0, str(Path(__file__).resolve().parent))
