"""The entitlement check in front of Django: POST /api/v1/entitlements/check answered by a WSGI
layer (aforo.wsgi puts it inside the request-body guard, before Django's handler).

The check is on a gateway's request path, so its own cost is its latency: Django's middleware
stack and DRF spend ~0.5 ms a request, three times the check itself. This layer answers the same
requests with the same core (billing.entitlements.entitlements_answer, the same credentials
class, the same JSON error shape and codes) and passes every other request to Django untouched.
The DRF view at the same URL documents it and serves Django's test client; tests/billing/
test_entitlements_live.py asks both the same questions and compares the answers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import orjson
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.utils import timezone
from rest_framework import exceptions

from aforo.exceptions import ApiError, error_body, http_error_body, outage_body
from billing.entitlements import entitlements_answer
from catalog.auth import CachedTenantTokenAuthentication
from catalog.models import TenantToken

logger = logging.getLogger(__name__)

PATH = "/api/v1/entitlements/check"
_JSON = [("Content-Type", "application/json")]


class _Request:
    """What the credentials class reads of a request: its Authorization header (DRF's
    get_authorization_header) and META; it sets `tenant`."""

    __slots__ = ("META", "headers", "tenant")

    def __init__(self, environ: dict[str, Any]) -> None:
        self.META = environ
        self.headers = {"authorization": environ.get("HTTP_AUTHORIZATION", "")}


def _error(status: int, code: str, message: str, **context: Any) -> tuple[int, Any, list[tuple[str, str]]]:
    return status, error_body(code, message, **context), []


def _answer(environ: dict[str, Any], auth: CachedTenantTokenAuthentication) -> tuple[int, Any, list[tuple[str, str]]]:
    request = _Request(environ)
    try:
        found = auth.authenticate(request)
    except exceptions.AuthenticationFailed as error:
        status, body, headers = _error(401, getattr(error, "auth_code", "invalid_credentials"), str(error.detail))
        return status, body, [("WWW-Authenticate", auth.authenticate_header(request))]
    if found is None:
        return 401, error_body("missing_credentials", "Send 'Authorization: Bearer <token>' with a tenant token."), [
            ("WWW-Authenticate", auth.authenticate_header(request))
        ]
    _, token = found
    if token.kind != TenantToken.Kind.INGEST:
        return _error(
            403, "wrong_credential_kind",
            f"This endpoint needs a tenant {TenantToken.Kind.INGEST} token; this one is a {token.kind} token.",
        )
    content_type = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        return _error(415, "unsupported_media_type", f"Send checks as application/json (got {content_type or 'no content type'}).")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    limit = settings.INGEST_MAX_BODY_BYTES
    if length < 0 or length > limit:
        return _error(413, "payload_too_large", f"The body is larger than {limit} bytes; send smaller batches.")
    raw = environ["wsgi.input"].read(length) if length else b""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        return _error(400, "malformed_json", f"The body is not valid JSON: {error}")
    try:
        return 200, entitlements_answer(tenant_id=token.tenant_id, body=body, now=timezone.now()), []
    except ApiError as error:
        return _error(error.status_code, error.error_code, error.message, **error.context)


class EntitlementCheckFastPath:
    """WSGI middleware: answers POST /api/v1/entitlements/check, passes everything else on."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self.auth = CachedTenantTokenAuthentication()

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        request_started.send(sender=self.__class__, environ=environ)  # as Django's handler: CONN_MAX_AGE, …
        try:
            status, payload, headers = _answer(environ, self.auth)
        except Exception as error:  # as the API answers it: a service down is a 503, anything else a 500
            outage = outage_body(error)
            logger.exception("entitlement check failed")
            if outage is not None:
                status, payload, headers = 503, outage, [("Retry-After", "5")]
            else:
                status, payload, headers = 500, http_error_body(500), []
        finally:
            request_finished.send(sender=self.__class__)
        body = orjson.dumps(payload)
        start_response(
            f"{status} {HTTPStatus(status).phrase}", [*_JSON, ("Content-Length", str(len(body))), *headers]
        )
        return [body]
