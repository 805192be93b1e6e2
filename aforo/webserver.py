"""What stands between a client's bytes and Django: the request-body guard (WSGI) and the
gunicorn worker that answers HTTP-level errors in the API's JSON error shape.

Contracts:
- A body larger than `max_bytes` is a 413 `payload_too_large` the client can read: the guard
  reads and discards up to `drain_bytes` of it first. Answering without reading would make the
  server close a socket that still holds unread data, and the kernel then resets the connection:
  the client sees "connection reset" instead of the 413.
- A body is read whole here and handed to Django in memory: one that ends before its declared
  Content-Length is a 400 `incomplete_body` (Django would take the truncated part as the body);
  a chunked one (no Content-Length), bounded by the same limit, gets its length (Django reads
  no more than Content-Length, so it would see nothing).
- gunicorn refuses malformed requests (negative or non-numeric Content-Length, a bad request
  line, oversized headers) before any application code runs; `JsonErrorWorker` makes those
  answers JSON too.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import orjson
from gunicorn import util as gunicorn_util
from gunicorn.workers.gthread import ThreadWorker

from .exceptions import error_body, http_error_body

CHUNK = 64 * 1024


def _error_response(start_response: Callable, status: int, code: str, message: str) -> Iterable[bytes]:
    body = orjson.dumps(error_body(code, message))
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


class RequestBodyGuard:
    """WSGI middleware bounding request bodies (see the module docstring)."""

    def __init__(self, app: Callable, *, max_bytes: int, drain_bytes: int):
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = drain_bytes

    def _too_large(self, start_response: Callable) -> Iterable[bytes]:
        return _error_response(
            start_response, 413, "payload_too_large",
            f"The body is larger than {self.max_bytes} bytes; send smaller batches.",
        )

    def _read(self, stream: Any, limit: int) -> bytes:
        """Up to `limit` bytes of the body: fewer only if the client ended it sooner."""
        parts: list[bytes] = []
        left = limit
        while left > 0:
            chunk = stream.read(min(CHUNK, left))
            if not chunk:
                break
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    def _drain(self, stream: Any, limit: int) -> None:
        left = limit
        while left > 0:
            chunk = stream.read(min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        declared = environ.get("CONTENT_LENGTH") or ""
        stream = environ["wsgi.input"]
        if declared:
            if not (declared.isascii() and declared.isdigit()):
                return _error_response(
                    start_response, 400, "invalid_content_length", "Content-Length must be a non-negative integer."
                )
            length = int(declared)
            if length > self.max_bytes:
                if length <= self.drain_bytes:
                    self._drain(stream, length)
                return self._too_large(start_response)
            if length:
                body = self._read(stream, length)
                if len(body) < length:  # the client stopped short of what it declared
                    return _error_response(
                        start_response, 400, "incomplete_body",
                        f"The body ended after {len(body)} of the {length} bytes its Content-Length declares.",
                    )
                environ["wsgi.input"] = io.BytesIO(body)
        elif "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            body = self._read(stream, self.max_bytes + 1)
            if len(body) > self.max_bytes:
                self._drain(stream, self.drain_bytes - len(body))
                return self._too_large(start_response)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)


def _write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn.util.write_error's contract (status, reason, message → bytes on the socket), in JSON."""
    body = orjson.dumps(http_error_body(status_int, mesg or reason))
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    gunicorn_util.write_nonblock(sock, head.encode("latin-1") + body)


class JsonErrorWorker(ThreadWorker):
    """gunicorn's threaded worker (`--threads`); its HTTP-level error pages are the API's JSON
    errors. `gunicorn --worker-class aforo.webserver.JsonErrorWorker`."""

    def init_process(self) -> None:
        # gunicorn's Worker.handle_error ends with util.write_error(...), looked up at call
        # time: this worker process answers in JSON instead.
        gunicorn_util.write_error = _write_json_error
        super().init_process()
