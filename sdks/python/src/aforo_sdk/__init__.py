"""Aforo's Python SDK: meter billable usage with guaranteed, idempotent delivery.

    client = aforo_sdk.Client(url="https://aforo.example", token=INGEST_TOKEN)
    app = aforo_sdk.AforoWSGIMiddleware(app, client=client)     # or AforoASGIMiddleware
"""

from .asgi import AforoASGIMiddleware
from .client import Client, log_result
from .decorators import metered
from .entitlements import Entitlement, EntitlementUnavailable
from .events import EventResult, event_build, uuid7
from .metering import RequestMeter, configure, default_client
from .metrics import Metrics
from .sessions import HoldError, MeteredSession
from .spool import SpoolLocked
from .transport import RetryPolicy
from .wsgi import AforoWSGIMiddleware

__all__ = [
    "AforoASGIMiddleware", "AforoWSGIMiddleware", "Client", "Entitlement", "EntitlementUnavailable", "EventResult",
    "HoldError", "MeteredSession", "Metrics", "RequestMeter", "RetryPolicy", "SpoolLocked", "configure",
    "default_client", "event_build", "log_result", "metered", "uuid7",
]
__version__ = "0.1.0"
