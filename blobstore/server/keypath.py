"""The ``{key}`` of an object path: its OpenAPI description and the key exactly as the client sent it."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import unquote_to_bytes

from fastapi import Depends, Path, Request
from starlette.convertors import PathConvertor, register_url_convertor

from blobstore.errors import InvalidKey
from blobstore.model.keys import MAX_KEY_BYTES


class _AnyKeyConvertor(PathConvertor):
    """Like ``path``, but also across newlines, so a key with a control character reaches validation (400)."""

    regex = r"[\s\S]*"


register_url_convertor("anykey", _AnyKeyConvertor())

_RAW_KEY = re.compile(rb"/v1/tenants/[^/]*/objects/(.*)\Z", re.DOTALL)

#: What JSON Schema can say of the key rules (the byte length is checked by the server alone).
KEY_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"
KeyPath = Annotated[
    str,
    Path(
        description="The key, percent-encoded; / may stay literal.",
        json_schema_extra={"pattern": KEY_PATTERN, "minLength": 1, "maxLength": MAX_KEY_BYTES},
    ),
]


async def object_key(request: Request, key: KeyPath) -> str:
    """The key exactly as sent: the raw path after ``/objects/``, percent-decoded once, as strict UTF-8.

    A coroutine only so that FastAPI calls it on the event loop (a plain function would cost a
    thread-pool hop per request); it never awaits.

    Decoding once means ``%252e`` is the literal key ``%2e``; ``%2e%2e`` and ``%2f`` decode to ``..``
    and ``/``, so ``a/%2e%2e/b`` is the literal key ``a/../b``. A ``.`` or ``..`` segment sent unencoded is
    InvalidKey: HTTP clients and proxies resolve such segments, so its meaning would depend on the way there.
    """
    raw_path = request.scope.get("raw_path")
    match = _RAW_KEY.search(raw_path) if isinstance(raw_path, bytes) else None
    if match is None:
        return key
    if any(segment in (b".", b"..") for segment in match.group(1).split(b"/")):
        raise InvalidKey(
            "invalid key: send each '.' of a '.' or '..' segment percent-encoded (%2E), since HTTP clients and "
            "proxies resolve unencoded ones"
        )
    try:
        return unquote_to_bytes(match.group(1)).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidKey("invalid key: its percent-encoding is not UTF-8") from None


ObjectKey = Annotated[str, Depends(object_key)]
