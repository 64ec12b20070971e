"""aws-chunked bodies with an unsigned trailer: decoded as they stream, cut or malformed ones refused."""

from __future__ import annotations

import base64
import zlib
from collections.abc import AsyncIterator

import pytest

from blobstore.s3 import chunked
from blobstore.s3.errors import S3Error

TRAILER = "x-amz-checksum-crc32"


def _body(payload: bytes, *, chunk: int = 3, checksum: bytes | None = None) -> bytes:
    crc = checksum if checksum is not None else base64.b64encode(zlib.crc32(payload).to_bytes(4, "big"))
    parts = [
        b"%x\r\n%s\r\n" % (len(payload[i : i + chunk]), payload[i : i + chunk]) for i in range(0, len(payload), chunk)
    ]
    return b"".join(parts) + b"0\r\n" + TRAILER.encode() + b":" + crc + b"\r\n\r\n"


async def _pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def _decode(body: bytes, size: int = 5) -> bytes:
    return b"".join([piece async for piece in chunked.decoded(_pieces(body, size), TRAILER)])


@pytest.mark.parametrize("size", [1, 2, 7, 1000])
async def test_the_payload_comes_out_whatever_the_network_pieces(size: int) -> None:
    """Chunk headers, data and trailer split anywhere across reads decode to the payload."""
    assert await _decode(_body(b"hello, aws-chunked world"), size) == b"hello, aws-chunked world"


async def test_an_empty_payload() -> None:
    """A body of the final chunk and the trailer alone is the empty payload."""
    assert await _decode(_body(b"")) == b""


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (_body(b"hello world")[:-10], "IncompleteBody"),
        (b"zz\r\nhello\r\n", "IncompleteBody"),
        (b"5\r\nhelloXX0\r\n\r\n", "IncompleteBody"),
        (_body(b"hello", checksum=b"AAAAAA=="), "BadDigest"),
    ],
)
async def test_cut_malformed_or_mismatched_bodies_are_refused(body: bytes, code: str) -> None:
    """A body cut short, a size that is not hex, a chunk longer than it says, or a wrong CRC32: one S3 error."""
    with pytest.raises(S3Error) as raised:
        await _decode(body)
    assert raised.value.code == code


def test_unsupported_trailing_checksums_answer_501() -> None:
    """A checksum this server cannot verify is NotImplemented, not silently accepted."""
    with pytest.raises(S3Error) as raised:
        chunked.checksum("x-amz-checksum-crc64nvme")
    assert raised.value.code == "NotImplemented"
