"""A request cut by the graceful-shutdown timeout answers 503, not uvicorn's bare 500.

On SIGTERM uvicorn stops accepting, lets requests in flight run for
``--shutdown-timeout`` seconds, then cancels those still running. This ASGI
middleware catches that cancellation: a request whose answer had not begun
gets a ``503`` problem document (``code`` ``StorageUnavailable``, ``Retry-After``,
``Connection: close``), so a client knows to retry, on another server or once
this one is back. The cancellation then goes on. A request whose answer had
begun (a download under way) can only have its connection closed.

Whatever the request was doing stops where the cancellation reached it; a put
cut this way stores nothing (the store's own guarantee).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from blobstore.errors import StorageUnavailable
from blobstore.server import problems

#: How a cut request is answered: from the error and the request's scope (the S3 API answers in its XML).
Answer = Callable[[StorageUnavailable, Scope], Response]


def _problem(error: StorageUnavailable, scope: Scope) -> Response:
    return problems.problem_response(error)


class ShutdownMiddleware:
    """Wraps an ASGI app; see the module docstring. ``answer`` renders the 503 (default: a problem document)."""

    def __init__(self, app: ASGIApp, answer: Answer = _problem) -> None:
        self.app = app
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answering = False

        async def watching_send(message: Message) -> None:
            nonlocal answering
            answering = answering or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        except asyncio.CancelledError:
            if not answering:
                response = self.answer(
                    StorageUnavailable("the server shut down before this request finished; retry it"), scope
                )
                response.headers["connection"] = "close"
                await response(scope, receive, send)
            raise
