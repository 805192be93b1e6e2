"""The one error shape of the Aforo API:

    {"error": {"code": "<stable_code>", "message": "<human sentence>", ...context}}

`code` is stable and documented; `message` may change wording. Context keys name *where* the
problem is: `fields` (field -> messages) for body validation, `index` for a batch item."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response


class ApiError(exceptions.APIException):
    """A domain error with a stable code, raised by views and services' interfaces."""

    def __init__(self, *, code: str, message: str, status_code: int = 400, retry_after_s: int | None = None, **context: Any):
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.message = message
        self.retry_after_s = retry_after_s  # sent as Retry-After (a 503 the client should retry)
        self.context = context


_DRF_CODES = {
    exceptions.NotAuthenticated: "missing_credentials",
    exceptions.AuthenticationFailed: "invalid_credentials",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.ParseError: "malformed_json",
    exceptions.Throttled: "throttled",
    exceptions.ValidationError: "validation_error",
}


def error_body(code: str, message: str, **context: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **context}}


# Errors raised below any view (no URL matched, gunicorn's refusals, the body guard): their
# stable code and sentence by HTTP status. Used by aforo.middleware and aforo.webserver.
_HTTP_ERROR_CODES = {
    400: "bad_request", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
    414: "uri_too_long", 417: "expectation_failed", 431: "headers_too_large", 500: "internal_error",
    501: "not_implemented",
}
_HTTP_ERROR_MESSAGES = {404: "No such resource.", 500: "The server failed to handle this request; it was logged."}


def http_error_body(status: int, message: str = "") -> dict[str, Any]:
    """The error shape for an HTTP status no view chose a code for. A 5xx never echoes `message`."""
    code = _HTTP_ERROR_CODES.get(status, "bad_request" if status < 500 else "internal_error")
    if status >= 500 or not message:
        try:
            phrase = f"{HTTPStatus(status).phrase}."
        except ValueError:
            phrase = "Request failed."
        message = _HTTP_ERROR_MESSAGES.get(status, phrase)
    return error_body(code, message)


def outage_body(exc: Exception) -> dict[str, Any] | None:
    """The 503 body for an exception that says a backing service is down (sent with
    Retry-After: 5), or None: what the API answers instead of a 500 (also outside DRF)."""
    outage = _service_outage(exc)
    if outage is None:
        return None
    return error_body("service_unavailable", f"The {outage} is unavailable; nothing was written. Retry shortly.")


def _service_outage(exc: Exception) -> str | None:
    """Which backing service an exception says is down, if any (a 503, not a 500)."""
    from confluent_kafka import KafkaException
    from django.db import InterfaceError, OperationalError

    from .kafka import BrokerUnavailable

    if isinstance(exc, (OperationalError, InterfaceError)):
        return "database"
    if isinstance(exc, (BrokerUnavailable, KafkaException)):
        return "event log"
    try:
        import redis
    except ImportError:  # pragma: no cover - redis is a dependency
        return None
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return "cache"
    return None


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    outage = outage_body(exc)
    if outage is not None:
        import logging

        logging.getLogger(__name__).error("API request failed: %s", outage["error"]["message"], exc_info=exc)
        return Response(outage, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "5"})
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    from rest_framework.views import exception_handler  # here: DRF imports this module at startup

    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ApiError):
        response.data = error_body(exc.error_code, exc.message, **exc.context)
        if exc.retry_after_s is not None:
            response["Retry-After"] = str(exc.retry_after_s)
        return response
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        if isinstance(detail, dict):
            fields = {name: _messages(value) for name, value in detail.items()}
            first = next(iter(fields.items()), ("", [""]))
            message = f"{first[0]}: {first[1][0]}" if first[0] != "non_field_errors" else first[1][0]
            response.data = error_body(code, message, fields=fields)
        else:
            messages = _messages(detail)
            response.data = error_body(code, messages[0] if messages else "Invalid input.")
        return response
    if isinstance(exc, exceptions.AuthenticationFailed) and getattr(exc, "auth_code", None):
        code = exc.auth_code
    message = str(exc.detail) if not isinstance(exc.detail, (list, dict)) else str(exc.detail)
    response.data = error_body(code, message)
    return response


def _messages(value: Any) -> list[str]:
    if isinstance(value, list):
        out: list[str] = []
        for item in value:
            out.extend(_messages(item))
        return out
    if isinstance(value, dict):
        return [f"{k}: {m}" for k, v in value.items() for m in _messages(v)]
    return [str(value)]
