"""A tiny local HTTP server playing POST /api/v1/events with scripted answers — for the
retry-policy unit tests only (the end-to-end tests use the real platform)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, dict[str, str], Any]  # status, headers, JSON body (None: per-event "accepted")


class FakeAforo:
    def __init__(self, answers: list[Answer]) -> None:
        self.answers = list(answers)  # consumed in order; then every request is accepted
        self.requests: list[tuple[float, dict[str, Any]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append((time.monotonic(), body))
                status, headers, payload = fake.answers.pop(0) if fake.answers else (202, {}, None)
                if payload is None:
                    payload = {"results": [{"index": i, "event_id": e["event_id"], "status": "accepted"}
                                           for i, e in enumerate(body["events"])]}
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
