"""Django middleware: add "aforo_sdk.django.AforoMiddleware" to MIDDLEWARE. Options come from
`settings.AFORO` (a dict of RequestMeter's: metric, quantity, api_key_header, subject, dimensions,
billable) plus the client: `settings.AFORO["client"]`, else aforo_sdk.configure(...)'s, else one
from `settings.AFORO["url"]`/`["token"]` or AFORO_URL/AFORO_INGEST_TOKEN. Sync and async."""

from __future__ import annotations

import time
from typing import Any, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings

from .client import Client
from .metering import RequestMeter, configure


class AforoMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        options = dict(getattr(settings, "AFORO", {}) or {})
        url, token = options.pop("url", None), options.pop("token", None)
        if options.get("client") is None and url and token:
            options["client"] = configure(Client(url=url, token=token))
        self.meter = RequestMeter(**options)
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.async_mode:
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        self._meter(request, response, started)
        return response

    async def _acall(self, request: Any) -> Any:
        started = time.perf_counter()
        response = await self.get_response(request)
        self._meter(request, response, started)
        return response

    def _meter(self, request: Any, response: Any, started: float) -> None:
        self.meter.meter(request, default_api_key=request.headers.get(self.meter.api_key_header),
                         status=response.status_code, method=request.method, path=request.path,
                         duration_s=time.perf_counter() - started)
