"""POST /api/v1/entitlements/check with a short local cache: a hot key asks Aforo at most once per
`ttl` seconds per (subject, metric, units, dimensions). When Aforo cannot be reached the
`fallback` decides: "allow" (fail open, the default: metering still counts the call), "deny"
(fail closed) or "raise" (EntitlementUnavailable)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .events import Quantity, quantity_text
from .transport import HttpTransport, TransportError

CHECK_PATH = "/api/v1/entitlements/check"
MAX_CACHED = 10_000


class EntitlementUnavailable(RuntimeError):
    """Aforo did not answer the check (fallback="raise")."""


@dataclass(frozen=True)
class Entitlement:
    allow: bool
    reason: str
    remaining: str | None = None
    limit: str | None = None
    used: str | None = None
    degraded: bool = False  # Aforo answered from its limit's fail setting, or the SDK's fallback did
    cached: bool = False
    raw: dict[str, Any] = field(default_factory=dict)


class EntitlementCache:
    def __init__(self, transport: HttpTransport, *, ttl: float = 1.0,
                 fallback: Literal["allow", "deny", "raise"] = "allow", timeout: float = 2.0) -> None:
        self._transport = transport
        self.ttl = ttl
        self.fallback = fallback
        self._timeout = timeout
        self._lock = threading.Lock()
        self._cache: dict[tuple[Any, ...], tuple[float, Entitlement]] = {}
        self.requests = 0  # checks that went to Aforo (the rest came from the cache)

    def check(self, *, metric: str, units: Quantity = 1, api_key: str | None = None, customer_id: int | None = None,
              dimensions: dict[str, str] | None = None) -> Entitlement:
        if (api_key is None) == (customer_id is None):
            raise ValueError("exactly one of api_key, customer_id is required")
        units_text = quantity_text(units)
        key = (api_key, customer_id, metric, units_text, tuple(sorted((dimensions or {}).items())))
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return replace(hit[1], cached=True)
        payload: dict[str, Any] = {"metric": metric, "units": units_text}
        payload.update({"api_key": api_key} if api_key is not None else {"customer_id": customer_id})
        if dimensions:
            payload["dimensions"] = dimensions
        with self._lock:
            self.requests += 1
        try:
            answer = self._transport.request_json("POST", CHECK_PATH, payload, attempts=2, timeout=self._timeout)
        except TransportError as error:
            return self._fall_back(str(error))
        body = answer.json()
        if answer.status >= 500 or answer.status == 429:
            return self._fall_back(f"HTTP {answer.status}")
        if answer.status != 200 or not isinstance(body, dict) or "allow" not in body:
            raise ValueError(f"entitlement check refused: HTTP {answer.status} {answer.body[:300]!r}")
        result = Entitlement(allow=bool(body["allow"]), reason=str(body.get("reason")), remaining=body.get("remaining"),
                             limit=body.get("limit"), used=body.get("used"), degraded=bool(body.get("degraded")), raw=body)
        with self._lock:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[key] = (now + self.ttl, result)
        return result

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def _fall_back(self, why: str) -> Entitlement:
        if self.fallback == "raise":
            raise EntitlementUnavailable(why)
        return Entitlement(allow=self.fallback == "allow", reason="aforo_unavailable", degraded=True, raw={"error": why})
