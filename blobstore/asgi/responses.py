"""Responses both HTTP doors send."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class ClosingStreamingResponse(StreamingResponse):
    """A streamed object whose read ``stack`` is closed (recording egress) however the response ends."""

    def __init__(self, content: AsyncIterable[bytes], stack: AsyncExitStack, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._stack = stack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._stack.aclose()


async def verified_body(stream: AsyncIterable[bytes], stack: AsyncExitStack) -> bytes | AsyncIterator[bytes]:
    """The whole body, if the stream ends within its first chunk; otherwise the stream's chunks, read two
    ahead before the reply starts and one ahead after.

    An object that fails before or within its first two chunks (a ranged read checks the frames it touches
    before their first byte) becomes an error response (a whole read verifies the digest at its end, so a
    body returned whole is verified); one that fails later never delivers its last chunk, so no client
    takes a damaged object as complete.
    """
    chunks = aiter(stream)
    held = await anext(chunks, None)
    following = None if held is None else await anext(chunks, None)
    if following is None:
        return held or b""

    async def body() -> AsyncIterator[bytes]:
        nonlocal held, following
        while held is not None:
            yield held
            held, following = following, None if following is None else await anext(chunks, None)

    generator = body()
    stack.push_async_callback(generator.aclose)  # type: ignore[attr-defined]
    return generator
