"""The API answers in its one JSON error shape, whoever produced the error.

DRF views already do (aforo.exceptions). What reaches a client from outside a DRF view — no URL
matched (`/api/v1/customers/abc/usage`), Django's 400 for a bad Host header, a CSRF 403, a 413
from the request-size guard — would otherwise be Django's HTML page (with DEBUG on, one that
lists every URL pattern). Responses DRF rendered (a browser may ask for the browsable API's
HTML) are left alone."""

from __future__ import annotations

from django.http import JsonResponse

from .exceptions import http_error_body

API_PREFIX = "/api/"


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
            replacement = JsonResponse(http_error_body(response.status_code), status=response.status_code)
            for header in ("Allow", "Retry-After", "WWW-Authenticate"):
                if response.has_header(header):
                    replacement[header] = response[header]
            return replacement
        return response
