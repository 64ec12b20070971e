"""The baseline of H1: the least an ASGI server can do per GET, a bare Starlette app answering 4 KiB from memory."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = bytes(range(256)) * 16  # 4 KiB


async def body(_request: Request) -> Response:
    return Response(BODY, media_type="application/octet-stream")


app = Starlette(routes=[Route("/", body), Route("/{path:path}", body)])
