"""One ASGI middleware around every request: ``X-Request-Id``, metrics and one access-log line.

A request's ``X-Request-Id`` (up to 128 printable ASCII characters) is echoed;
otherwise one is generated. When the answer ends, the request is counted in
blobstore.server.metrics and logged on ``blobstore.access`` as one JSON object:
method, route template (or the label the app gave, blobstore.asgi.labels), status, bytes in and out,
duration, tenant, request id. Keys never appear (they may be private), only route templates and labels.
"""

from __future__ import annotations

import copy
import json
import logging
import time
import uuid
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from blobstore.asgi import labels
from blobstore.server import metrics

log = logging.getLogger("blobstore.access")

REQUEST_ID = "x-request-id"
#: The route label of a request no route matched (so unknown paths cannot grow the label set).
UNMATCHED = "unmatched"


class AccessMiddleware:
    """Wraps an ASGI app; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(Headers(scope=scope).get(REQUEST_ID))
        counts = {"status": 500, "received": 0, "sent": 0}

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                counts["received"] += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                counts["status"] = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID] = request_id
            elif message["type"] == "http.response.body":
                counts["sent"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            seconds = time.perf_counter() - started
            route = _route_of(scope)
            metrics.record_request(
                scope["method"], route, counts["status"], seconds, counts["received"], counts["sent"]
            )
            log.info(
                json.dumps(
                    {
                        "method": scope["method"],
                        "route": route,
                        "status": counts["status"],
                        "bytes_in": counts["received"],
                        "bytes_out": counts["sent"],
                        "duration_ms": round(seconds * 1000, 3),
                        "tenant": scope.get(labels.TENANT) or scope.get("path_params", {}).get("tenant"),
                        "request_id": request_id,
                    }
                )
            )


def _request_id(sent: str | None) -> str:
    if sent is not None and 0 < len(sent) <= 128 and sent.isascii() and sent.isprintable():
        return sent
    return uuid.uuid4().hex


def _route_of(scope: Scope) -> str:
    if labels.ROUTE in scope:
        return str(scope[labels.ROUTE])
    route = scope.get("route")
    path_format = getattr(route, "path_format", None)
    return UNMATCHED if path_format is None else str(path_format)


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration, with the access log as the lines above on stdout (uvicorn's own off),
    and blobstore's other messages (GC runs, warnings, failures) on stderr like uvicorn's."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["line"] = {"format": "%(message)s"}
    config["handlers"]["access_lines"] = {
        "class": "logging.StreamHandler",
        "formatter": "line",
        "stream": "ext://sys.stdout",
    }
    config["loggers"][log.name] = {"handlers": ["access_lines"], "level": "INFO", "propagate": False}
    config["loggers"]["blobstore"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config
