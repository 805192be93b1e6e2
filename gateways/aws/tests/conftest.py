"""A whole running Aforo for these tests (aforo.devserver.testplatform), started once."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


class Platform:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [str(ROOT / ".venv/bin/python"), "-m", "aforo.devserver.testplatform", "--name", "gwaws", "--redis-db", "12"],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the test platform did not start")
        self.info = json.loads(line)
        self.url = self.info["url"]

    def web(self, action: str) -> None:
        self.process.stdin.write(f"web {action}\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "ok"

    def usage_units(self, customer_id: int, metric: str) -> str:
        request = urllib.request.Request(f"{self.url}/api/v1/customers/{customer_id}/usage",
                                         headers={"Authorization": f"Bearer {self.info['admin_token']}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            usage = json.loads(response.read())
        return next(m["units"] for s in usage["subscriptions"] for m in s["metrics"] if m["metric"] == metric)

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


@pytest.fixture(scope="session")
def platform():
    platform = Platform()
    yield platform
    platform.stop()


def wait_for(condition, *, timeout: float = 20.0, message: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        time.sleep(0.1)
