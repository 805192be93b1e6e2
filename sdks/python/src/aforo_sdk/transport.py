"""HTTP to Aforo over http.client, one keep-alive connection per thread, and the retry policy:
exponential backoff with jitter on network errors, 429 and 5xx (honouring Retry-After), never on
another 4xx."""

from __future__ import annotations

import email.utils
import http.client
import json
import random
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

USER_AGENT = "aforo-sdk-python/0.1.0"


class TransportError(Exception):
    """The request did not get an HTTP answer (refused, reset, timed out): always retryable."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    @property
    def error_code(self) -> str | None:
        """The stable code of an `{"error": {"code", ...}}` answer, if any."""
        payload = self.json()
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            code = payload["error"].get("code")
            return code if isinstance(code, str) else None
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """Delays grow as `base_delay * 2**attempt` up to `max_delay`, each drawn from [d/2, d]
    ("equal jitter": never zero, never in lockstep with other clients); a Retry-After answer is a
    floor (capped at `max_retry_after`). `max_attempts=None` retries until delivered or the client
    closes — the default, because an event given up is an event lost."""

    base_delay: float = 0.2
    max_delay: float = 30.0
    max_attempts: int | None = None
    max_retry_after: float = 300.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        ceiling = min(self.max_delay, self.base_delay * float(1 << min(attempt, 32)))
        jittered = ceiling / 2 + random.uniform(0, ceiling / 2)
        if retry_after is not None:
            return max(jittered, min(retry_after, self.max_retry_after))
        return jittered


def is_retryable(status: int) -> bool:
    return status == 429 or status >= 500


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


class HttpTransport:
    def __init__(self, *, url: str, token: str, timeout: float = 10.0) -> None:
        self._url, self._token = url, token
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be http(s)://host[:port]: {url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        self._local = threading.local()

    def fresh(self) -> HttpTransport:
        """The same endpoint with no connections (after a fork: the parent's sockets are its own)."""
        return HttpTransport(url=self._url, token=self._token, timeout=self._timeout)

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            connection = cls(self._host, self._port, timeout=self._timeout)
            self._local.connection = connection
        return connection

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def request(self, method: str, path: str, body: bytes | None = None, *, timeout: float | None = None) -> Response:
        """One attempt. Raises TransportError when no HTTP answer came back."""
        connection = self._connection()
        try:
            if timeout is not None:
                connection.timeout = timeout
                if connection.sock is not None:
                    connection.sock.settimeout(timeout)
            connection.request(method, self._prefix + path, body=body, headers=self._headers)
            answer = connection.getresponse()
            payload = answer.read()
            headers = {name.lower(): value for name, value in answer.getheaders()}
            if answer.will_close:
                self.close()
            return Response(answer.status, headers, payload)
        except (OSError, http.client.HTTPException) as error:
            self.close()
            raise TransportError(f"{method} {path}: {error.__class__.__name__}: {error}") from error
        finally:
            if timeout is not None and getattr(self._local, "connection", None) is not None:
                self._local.connection.timeout = self._timeout
                if self._local.connection.sock is not None:
                    self._local.connection.sock.settimeout(self._timeout)

    def request_json(self, method: str, path: str, payload: Any, *, attempts: int = 3,
                     retry: RetryPolicy | None = None, timeout: float | None = None) -> Response:
        """A synchronous call (holds, entitlement checks) with a few retries on network errors,
        429 and 5xx. Safe only for idempotent requests (an idempotency key, or a state change
        that a repeat cannot double)."""
        policy = retry or RetryPolicy(base_delay=0.1, max_delay=2.0)
        body = json.dumps(payload, separators=(",", ":")).encode()
        for attempt in range(attempts):
            try:
                answer = self.request(method, path, body, timeout=timeout)
            except TransportError:
                if attempt == attempts - 1:
                    raise
                time.sleep(policy.delay(attempt))
                continue
            if not is_retryable(answer.status) or attempt == attempts - 1:
                return answer
            time.sleep(policy.delay(attempt, retry_after_seconds(answer.headers.get("retry-after"))))
        raise AssertionError("unreachable")
