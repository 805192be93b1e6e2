"""The API answers in its one JSON error shape, whoever produced the error.

DRF views already do (aforo.exceptions). What reaches a client from outside a DRF view — no URL
matched (`/api/v1/customers/abc/usage`), Django's 400 for a bad Host header, a CSRF 403, a 413
from the request-size guard — would otherwise be Django's HTML page (with DEBUG on, one that
lists every URL pattern). Responses DRF rendered (a browser may ask for the browsable API's
HTML) are left alone."""

from __future__ import annotations

from http import HTTPStatus

from django.http import JsonResponse

from .exceptions import error_body

API_PREFIX = "/api/"
_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    500: "internal_error",
}


_MESSAGES = {
    404: "No such resource.",
    500: "The server failed to handle this request; it was logged.",
}


def _json_error(status: int) -> JsonResponse:
    try:
        phrase = f"{HTTPStatus(status).phrase}."
    except ValueError:
        phrase = "Request failed."
    return JsonResponse(error_body(_CODES.get(status, "error"), _MESSAGES.get(status, phrase)), status=status)


class ApiJsonErrorsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and request.path.startswith(API_PREFIX)
            and getattr(response, "accepted_renderer", None) is None
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            replacement = _json_error(response.status_code)
            for header in ("Allow", "Retry-After", "WWW-Authenticate"):
                if response.has_header(header):
                    replacement[header] = response[header]
            return replacement
        return response
