"""ASGI middleware: `app = AforoASGIMiddleware(app, client=client)`. One event per billable HTTP
response (websocket and lifespan scopes pass through), buffered once the app has finished."""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable, MutableMapping

from .metering import RequestMeter

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class AforoASGIMiddleware:
    def __init__(self, app: ASGIApp, **options: Any) -> None:
        self.app = app
        self.meter = RequestMeter(**options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: list[int] = []

        async def metered_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[:] = [int(message["status"])]
            await send(message)

        await self.app(scope, receive, metered_send)
        if status:
            api_key = None
            for name, value in scope.get("headers") or ():
                if name.lower() == self.meter.asgi_header:
                    api_key = value.decode("latin-1")
                    break
            self.meter.meter(scope, default_api_key=api_key, status=status[0], method=scope.get("method", ""),
                             path=scope.get("path", ""), duration_s=time.perf_counter() - started)
