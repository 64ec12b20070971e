"""How long and how many connections a client can hold of a server process: timeouts, a bound, open files.

- **Header timeout** (:class:`HeaderTimeoutProtocol`, uvicorn's h11 protocol plus one timer): a new
  connection must deliver a request's complete headers within ``BLOBSTORE_HEADER_TIMEOUT`` seconds
  of opening; on a kept-alive connection the idle time between requests is the keep-alive timeout's,
  and the header timeout runs from the next request's first byte. A connection that sent nothing is
  then closed silently, one that sent part of a header gets ``408`` and is closed. However steadily
  the bytes trickle in, the timer is not reset. (A pipelined request that arrives half-sent right
  behind an answer is bounded by the keep-alive timeout first.)
- **Body timeout** (:class:`BodyTimeoutMiddleware`): while the app waits for request body bytes,
  ``seconds`` without any end the request with a ``408`` problem (``Connection: close``); the app
  sees an error from its body stream, so a put stores nothing. A slow but steady body is not cut,
  and time the app spends elsewhere (writing to storage) does not count.
- **Connection bound**: uvicorn's ``limit_concurrency`` (:data:`MAX_CONNECTIONS` per process). It
  counts open connections, idle ones included, and requests running; a request that arrives beyond
  it is answered at once with uvicorn's plain ``503 Service Unavailable`` and ``Connection: close``.
- **Open files**: :func:`raise_open_files_limit` lifts the soft ``RLIMIT_NOFILE`` to the hard one
  before the server starts, so the bound, not the descriptor table, is what runs out first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
from typing import Any

import h11
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

#: Default seconds for a request's headers to arrive (nginx's client_header_timeout is 60 s; 20 s is ample for headers).
HEADER_TIMEOUT_SECONDS = 20.0
#: Default seconds without request body bytes before the request ends (nginx's client_body_timeout).
BODY_TIMEOUT_SECONDS = 60.0
#: Default bound on connections per server process (uvicorn's limit_concurrency).
MAX_CONNECTIONS = 1000
#: The environment variable ``blobstore serve --header-timeout`` passes its seconds in to every worker.
HEADER_TIMEOUT = "BLOBSTORE_HEADER_TIMEOUT"
#: What uvicorn's ``http=`` setting takes to run :class:`HeaderTimeoutProtocol` (an import string, for workers).
PROTOCOL = f"{__name__}:HeaderTimeoutProtocol"

_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with the header timeout of the module docstring (seconds from
    :data:`HEADER_TIMEOUT`, default :data:`HEADER_TIMEOUT_SECONDS`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = float(os.environ.get(HEADER_TIMEOUT) or HEADER_TIMEOUT_SECONDS)
        self.header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:  # a request has begun, its headers are not all in
            if self.header_timer is None:
                self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self.header_timer = self.loop.call_later(self.header_timeout, self._headers_timed_out)

    def _disarm(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_timed_out(self) -> None:
        self.header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        received, _closed = self.conn.trailing_data
        if received:
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()


class BodyTimeoutMiddleware:
    """Wraps an ASGI app with the body timeout of the module docstring."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:  # afterwards receive() only waits for a disconnect, for as long as the answer takes
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.seconds)
            except TimeoutError:
                raise HTTPException(
                    408,
                    f"no request body bytes arrived for {self.seconds:g} s; nothing was stored",
                    headers={"connection": "close"},
                ) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)


def raise_open_files_limit() -> int:
    """Raise this process's soft open-files limit to its hard limit (children inherit it); return the soft limit
    now in force. A system that refuses keeps the old limit, with a warning in the log."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        log.warning("could not raise the open-files limit from %d to %d: %s", soft, hard, exc)
        return soft
    return hard
