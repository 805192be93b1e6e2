"""What the middleware share: which request is billable, to whom, and the event it makes. The
event is only built and buffered here (no I/O): the request never waits on Aforo."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from .client import Client
from .events import Quantity

Subject = dict[str, Any]  # {"api_key": ...} | {"customer_id": ...} | {"subscription_id": ...}

_default_client: Client | None = None
_default_lock = threading.Lock()


def configure(client: Client | None = None, **client_options: Any) -> Client:
    """Set the process-wide client the middleware and @metered use when given none: either
    `client`, or a new Client(**client_options)."""
    global _default_client
    with _default_lock:
        _default_client = client or Client(**client_options)
        return _default_client


def default_client() -> Client:
    """The configured client; else one from AFORO_URL and AFORO_INGEST_TOKEN (created once)."""
    global _default_client
    with _default_lock:
        if _default_client is None:
            url, token = os.environ.get("AFORO_URL"), os.environ.get("AFORO_INGEST_TOKEN")
            if not url or not token:
                raise RuntimeError("no Aforo client: call aforo_sdk.configure(...) or set AFORO_URL and AFORO_INGEST_TOKEN")
            _default_client = Client(url=url, token=token)
        return _default_client


def billable_status(status: int) -> bool:
    """The default: responses below 400 are billed; client and server errors are not."""
    return status < 400


@dataclass
class RequestMeter:
    """One billable request → one event: `metric` with `quantity`, billed to the subject that
    `subject(request)` names (default: the `api_key_header` header; no header, no event),
    when `billable(status)`. `dimensions(request)` may add dimensions; metadata carries the
    method, path, status and duration."""

    client: Client | None = None
    metric: str = "api_calls"
    quantity: Quantity = 1
    api_key_header: str = "X-API-Key"
    subject: Callable[[Any], Subject | None] | None = None
    dimensions: Callable[[Any], dict[str, str]] | None = None
    billable: Callable[[int], bool] = billable_status
    include_metadata: bool = True
    _client: Client | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.wsgi_header = "HTTP_" + self.api_key_header.upper().replace("-", "_")
        self.asgi_header = self.api_key_header.lower().encode("latin-1")

    def resolve_client(self) -> Client:
        if self._client is None:
            self._client = self.client or default_client()
        return self._client

    def meter(self, request: Any, *, default_api_key: str | None, status: int, method: str, path: str,
              duration_s: float) -> None:
        if not self.billable(status):
            return
        subject = self.subject(request) if self.subject is not None else (
            {"api_key": default_api_key} if default_api_key else None)
        if not subject:
            return
        metadata = {"method": method, "path": path[:200], "status": status,
                    "duration_ms": round(duration_s * 1000, 3)} if self.include_metadata else None
        self.resolve_client().record(metric=self.metric, quantity=self.quantity, metadata=metadata,
                                     dimensions=self.dimensions(request) if self.dimensions is not None else None,
                                     **subject)
