"""The ASGI layer in front of the endpoints: the bearer key, the upload limit, request metrics.

CORS, when enabled, wraps this gate (its preflights carry no credentials, and its headers must
reach the gate's 401s too). The gate runs before FastAPI parses anything, so a request without
the key, or with a body over the limit, costs no parsing and no memory: a ``Content-Length``
over the limit is refused at once, and a body sent without one (chunked) is counted as it
streams and cut off at the limit. Health checks, the page's static files and the OpenAPI
document hold no data and need no key; everything else (searches, item images, info, metrics)
does when a key is set."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sketchsearch.data import strict_json
from sketchsearch.runtime.service.errors import UploadStalled, UploadTooLarge, error_body
from sketchsearch.runtime.service.metrics import ServiceMetrics, route_of

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/", "/docs", "/openapi.json", "/favicon.ico"})
METHODS = frozenset({"GET", "HEAD", "POST", "OPTIONS"})  # others are counted as "other"
UPLOAD_SLACK = 64 * 1024  # a multipart form's boundaries and headers around the image


def needs_key(path: str) -> bool:
    return path not in OPEN_PATHS and not path.startswith("/static/")


class Gate:
    def __init__(
        self,
        app: ASGIApp,
        metrics: ServiceMetrics,
        api_key: str | None,
        max_upload_bytes: int,
        report: Callable[[BaseException], None] = lambda _: None,
        upload_idle: float = 30.0,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self._key = f"Bearer {api_key}".encode() if api_key else None
        self._limit = max_upload_bytes + UPLOAD_SLACK
        self._shown_limit = max_upload_bytes
        self._report = report  # an unexpected error: one line, or a traceback with --debug
        self._idle = upload_idle  # the longest wait for the next chunk of a body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                await _send_json(sending, *refusal)
            else:
                await self.app(scope, self._counted(receive), sending)
        except Exception as err:  # answered already (500 JSON) by the app's error handler
            self._report(err)  # said here, once, instead of uvicorn's traceback
        finally:
            route = route_of(scope.get("path", ""))
            method = scope.get("method", "")
            method = method if method in METHODS else "other"  # a client cannot grow labels
            self.metrics.requests.labels(route, method, str(status[0])).inc()
            self.metrics.request_seconds.labels(route).observe(time.perf_counter() - started)

    def _refusal(self, scope: Scope) -> tuple[int, dict[str, object], dict[str, str]] | None:
        path = scope.get("path", "")
        if self._key is not None and needs_key(path):
            given = dict(scope.get("headers", ())).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._key):
                message = "missing or wrong API key: send the header `Authorization: Bearer KEY`"
                return 401, error_body(401, message), {"WWW-Authenticate": "Bearer"}
        length = dict(scope.get("headers", ())).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self._limit):
            if not length.isdigit():
                return 400, error_body(400, "Content-Length is not a number"), {}
            message = f"upload larger than the limit of {self._shown_limit} bytes (--max-upload-mb)"
            return 413, error_body(413, message), {"Connection": "close"}
        return None

    def _counted(self, receive: Receive) -> Receive:
        """``receive`` that raises UploadTooLarge once the body passes the limit, and
        UploadStalled when its next chunk does not come within the idle limit.

        An idle limit, not a deadline: a large photo on a slow uplink arrives, a client that
        stops sending does not hold its search slot. Once the body is complete, ``receive``
        is passed through untouched (a streamed answer listens on it for a disconnect)."""
        seen = 0
        complete = False

        async def counted() -> Message:
            nonlocal seen, complete
            if complete:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self._idle)
            except TimeoutError:
                raise UploadStalled(self._idle) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self._limit:
                    raise UploadTooLarge(self._shown_limit)
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        return counted


async def _send_json(
    send: Send, status: int, body: dict[str, object], headers: dict[str, str]
) -> None:
    data = strict_json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})
