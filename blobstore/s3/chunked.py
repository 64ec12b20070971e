"""``aws-chunked`` request bodies with an unsigned trailer (``STREAMING-UNSIGNED-PAYLOAD-TRAILER``).

What boto3 and the aws CLI v2 send for uploads over HTTPS: ``<hex size>\\r\\n<bytes>\\r\\n`` chunks, a
``0\\r\\n`` chunk, then trailer lines ``x-amz-checksum-<algorithm>:<base64>\\r\\n`` and an empty line.
:func:`decoded` yields the bytes as they arrive (memory bounded by the client's chunk size) and checks the
trailing checksum at the end; ``crc32``, ``sha1`` and ``sha256`` are verified, other algorithms answer 501.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from blobstore.s3.errors import S3Error, not_implemented

PAYLOAD = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
_MAX_LINE = 4096


class _Checksum(Protocol):
    def update(self, data: bytes) -> None: ...
    def digest(self) -> bytes: ...


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


def checksum(trailer: str | None) -> tuple[str, _Checksum] | None:
    """The trailer header the body announces (``x-amz-trailer``) and a hasher for it; None for no trailer."""
    if trailer is None:
        return None
    name = trailer.strip().lower()
    hashers: dict[str, Callable[[], _Checksum]] = {
        "x-amz-checksum-crc32": _Crc32,
        "x-amz-checksum-sha1": hashlib.sha1,
        "x-amz-checksum-sha256": hashlib.sha256,
    }
    if name not in hashers:
        raise not_implemented(f"the trailing checksum {name}")
    return name, hashers[name]()


async def decoded(chunks: AsyncIterator[bytes], trailer: str | None) -> AsyncIterator[bytes]:
    """The payload of an aws-chunked body; IncompleteBody if it is cut short or malformed, BadDigest if the
    trailing checksum does not match."""
    expected = checksum(trailer)
    buffer = bytearray()
    source = aiter(chunks)

    async def fill() -> bool:
        piece = await anext(source, None)
        if piece is None:
            return False
        buffer.extend(piece)
        return True

    async def line() -> bytes:
        while (end := buffer.find(b"\r\n")) < 0:
            if len(buffer) > _MAX_LINE or not await fill():
                raise _incomplete()
        text = bytes(buffer[:end])
        del buffer[: end + 2]
        return text

    while True:
        size_text = (await line()).split(b";", 1)[0]
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _incomplete() from None
        if size == 0:
            break
        while size:
            if not buffer and not await fill():
                raise _incomplete()
            piece = bytes(buffer[:size])
            del buffer[: len(piece)]
            size -= len(piece)
            if expected is not None:
                expected[1].update(piece)
            yield piece
        if await line() != b"":
            raise _incomplete()
    trailers = {}
    while header := await line():
        name, _, value = header.decode("latin-1").partition(":")
        trailers[name.strip().lower()] = value.strip()
    if expected is not None:
        name, hasher = expected
        if trailers.get(name) != base64.b64encode(hasher.digest()).decode():
            raise S3Error("BadDigest", f"the {name} you specified did not match the calculated checksum")


def _incomplete() -> S3Error:
    return S3Error("IncompleteBody", "the aws-chunked body is malformed or ended early")
