"""WSGI middleware: `app = AforoWSGIMiddleware(app, client=client)`. One event per billable
response, buffered when the server closes the response (after the body was sent)."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Iterator

from .metering import RequestMeter

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class AforoWSGIMiddleware:
    def __init__(self, app: WSGIApp, **options: Any) -> None:
        self.app = app
        self.meter = RequestMeter(**options)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        status: list[int] = []

        def metered_start_response(status_line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[:] = [int(status_line[:3])]
            return start_response(status_line, headers, exc_info) if exc_info else start_response(status_line, headers)

        body = self.app(environ, metered_start_response)

        def on_close() -> None:
            if status:
                self.meter.meter(environ, default_api_key=environ.get(self.meter.wsgi_header), status=status[0],
                                 method=environ.get("REQUEST_METHOD", ""), path=environ.get("PATH_INFO", ""),
                                 duration_s=time.perf_counter() - started)

        return _ClosingBody(body, on_close)


class _ClosingBody:
    """The app's body, passed through; its close() (which the server must call) meters."""

    def __init__(self, body: Iterable[bytes], on_close: Callable[[], None]) -> None:
        self._body = body
        self._on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close()
