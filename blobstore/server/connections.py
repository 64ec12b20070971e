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
- **Lingering close** (:class:`HeaderTimeoutProtocol` too, as nginx's ``lingering_close``): an answer that closes
  the connection while the request's body is still unread (a ``413`` from the headers alone, a ``408``, a ``503``)
  does not close it at once, which would make the kernel answer the bytes still coming with a reset that can
  destroy the answer before the client reads it. The server shuts down its write side after the answer and
  reads and discards what the client still sends, for at most :data:`LINGER_SECONDS` and
  :data:`LINGER_BYTES`, then closes; the client closing its side ends it sooner. The discarded bytes reach
  neither the app nor a spool file.
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

#: Longest a connection lingers after an answer that closes it with the request body unread (nginx's lingering_time
#: is 30 s, its lingering_timeout 5 s): long enough for a client on a fast link to finish sending a body the server
#: refused and read the answer, short enough that a refused client holds its connection slot only briefly.
LINGER_SECONDS = 2.0
#: Most bytes of an unread request body a lingering connection discards before it closes (a body larger than this
#: past the answer, sent by a client that reads only when its body is out, can still lose the answer to a reset).
#: Discarding costs no memory and no disk; the bound caps the bandwidth a refused client can make the server sink.
LINGER_BYTES = 64 * 1024 * 1024

_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with the header timeout (seconds from :data:`HEADER_TIMEOUT`, default
    :data:`HEADER_TIMEOUT_SECONDS`) and the lingering close of the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = float(os.environ.get(HEADER_TIMEOUT) or HEADER_TIMEOUT_SECONDS)
        self.header_timer: asyncio.TimerHandle | None = None
        self.linger_timer: asyncio.TimerHandle | None = None
        #: Bytes discarded while lingering; None while the connection is not lingering.
        self.discarded: int | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # uvicorn closes the connection through the transport it is given, wherever it decides to (the request
        # cycle, its 400, shutdown); this one makes each such close linger when the request body is unread.
        super().connection_made(_LingeringTransport(transport, self))
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.discarded is not None:  # lingering: the bytes go nowhere
            self.discarded += len(data)
            if self.discarded > LINGER_BYTES:
                self._end_linger()
            return
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:  # a request has begun, its headers are not all in
            if self.header_timer is None:
                self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self.linger_timer is not None:
            self.linger_timer.cancel()
            self.linger_timer = None
        super().connection_lost(exc)

    def close(self, transport: asyncio.Transport) -> None:
        """Close ``transport`` (this connection's), lingering first if the request body is unread."""
        if (
            self.discarded is not None
            or transport.is_closing()
            or self.conn.their_state is not h11.SEND_BODY
            or transport.get_protocol() is not self  # upgraded away from HTTP
            or not transport.can_write_eof()
        ):
            transport.close()
            return
        self.discarded = 0
        self._disarm()
        self._unset_keepalive_if_required()
        transport.write_eof()  # the answer already written goes out first, then the FIN
        transport.resume_reading()  # uvicorn may have paused reading while the app was not consuming the body
        self.linger_timer = self.loop.call_later(LINGER_SECONDS, self._end_linger)

    def _end_linger(self) -> None:
        if self.linger_timer is not None:
            self.linger_timer.cancel()
            self.linger_timer = None
        self.transport.close()  # the wrapper's close: the connection is lingering, so it closes for real

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


class _LingeringTransport(asyncio.Transport):
    """The transport uvicorn's protocol and request cycle see: the real one, whose ``close`` asks the protocol
    (which may linger first)."""

    def __init__(self, transport: asyncio.Transport, protocol: HeaderTimeoutProtocol) -> None:
        super().__init__()
        self._transport = transport
        self._protocol = protocol

    def close(self) -> None:
        self._protocol.close(self._transport)

    def is_closing(self) -> bool:
        return self._transport.is_closing() or self._protocol.discarded is not None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self._transport.writelines(list_of_data)

    def write_eof(self) -> None:
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def abort(self) -> None:
        self._transport.abort()

    def pause_reading(self) -> None:
        if self._protocol.discarded is None:  # a lingering connection keeps reading
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)


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
                async with asyncio.timeout(self.seconds):  # no task per message, unlike wait_for
                    message = await receive()
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
