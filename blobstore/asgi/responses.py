"""Responses both HTTP doors send."""

from __future__ import annotations

from collections.abc import AsyncIterable
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
