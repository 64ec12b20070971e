"""``aws-chunked`` request bodies, unsigned or with every chunk signed, decoded as they stream.

The encodings (the value of ``x-amz-content-sha256``):

* ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` (boto3 and the aws CLI v2 over HTTPS): ``<hex size>\\r\\n<bytes>\\r\\n``
  chunks, a ``0\\r\\n`` chunk, trailer lines ``x-amz-checksum-<algorithm>:<base64>\\r\\n`` and an empty line.
* ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` (the Java SDK v2): each chunk's size line is
  ``<hex size>;chunk-signature=<signature>``, the signatures chaining from the request's own (the seed) through
  every chunk, the final empty one included (:class:`blobstore.s3.sigv4.ChunkSigner`); no trailer.
* ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER``: the same, then the trailer lines and
  ``x-amz-trailer-signature:<signature>``, chained from the final chunk's signature over the SHA-256 of the
  trailer lines in canonical form (``name:value\\n`` each, by name), as the Java SDK v2 signs them.

:func:`decoded` yields the bytes as they arrive (memory bounded by the client's chunk size), checks each
chunk's signature at its end and the trailing checksum at the body's end. A wrong signature is
``SignatureDoesNotMatch``, a wrong checksum ``BadDigest``, a body cut short or malformed ``IncompleteBody``:
all raised before the body ends, so the put reading it stores nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Callable

from blobstore.s3 import checksums
from blobstore.s3.errors import S3Error, not_implemented
from blobstore.s3.sigv4 import ChunkSigner

UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
#: The aws-chunked encodings :func:`decoded` reads.
ENCODINGS = frozenset({UNSIGNED_TRAILER, SIGNED, SIGNED_TRAILER})
_SIGNATURE = b"chunk-signature="
_TRAILER_SIGNATURE = "x-amz-trailer-signature"
_MAX_LINE = 4096


def trailing_checksum(trailer: str | None) -> str | None:
    """The checksum a body announces in ``x-amz-trailer`` (lower-case), None for none; 501 for one this server
    cannot verify."""
    if trailer is None:
        return None
    name = trailer.strip().lower()
    if name not in checksums.NAMES:
        raise not_implemented(f"the trailing checksum {name}")
    return name


async def decoded(
    chunks: AsyncIterator[bytes],
    encoding: str,
    trailer: str | None,
    signer: ChunkSigner | None = None,
    verified: Callable[[str, str], None] = lambda name, value: None,
) -> AsyncIterator[bytes]:
    """The payload of an aws-chunked body in ``encoding`` (one of :data:`ENCODINGS`), whose ``x-amz-trailer``
    header is ``trailer``; the signed encodings are checked with the request's ``signer`` (ValueError without).
    ``verified(name, value)`` is told the trailing checksum once it has been checked."""
    if encoding != UNSIGNED_TRAILER and signer is None:
        raise ValueError(f"{encoding} needs the request's chunk signer")
    signing = None if encoding == UNSIGNED_TRAILER else signer
    name = None if encoding == SIGNED else trailing_checksum(trailer)
    checksum = None if name is None else checksums.hasher(name)
    reader = _Reader(aiter(chunks))
    previous = signing.seed if signing is not None else ""
    while True:
        size, signature = _size_line(await reader.line(), signed=signing is not None)
        sha256 = hashlib.sha256()
        remaining = size
        while remaining:
            piece = await reader.take(remaining)
            remaining -= len(piece)
            if checksum is not None:
                checksum.update(piece)
            if signing is not None:
                sha256.update(piece)
            yield piece
        if signing is not None:
            previous = _verified(signing.chunk(previous, sha256.hexdigest()), signature)
        if size == 0:
            break
        if await reader.line() != b"":
            raise _incomplete()
    trailers = await _trailers(reader)
    if signing is not None and encoding == SIGNED_TRAILER:
        signed = "".join(f"{key}:{value}\n" for key, value in sorted(trailers.items()) if key != _TRAILER_SIGNATURE)
        expected = signing.trailer(previous, hashlib.sha256(signed.encode("latin-1")).hexdigest())
        _verified(expected, trailers.get(_TRAILER_SIGNATURE, ""))
    if name is not None and checksum is not None:
        checksums.check(name, checksum, trailers.get(name, ""))
        verified(name, trailers[name])


class _Reader:
    """Lines and bytes off a stream of network pieces, holding at most one piece (or one line) at a time."""

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self._source = source
        self._buffer = bytearray()

    async def _fill(self) -> bool:
        piece = await anext(self._source, None)
        if piece is None:
            return False
        self._buffer.extend(piece)
        return True

    async def line(self) -> bytes:
        """The next line, without its CRLF; IncompleteBody if the stream ends first or the line is too long."""
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > _MAX_LINE or not await self._fill():
                raise _incomplete()
        text = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return text

    async def take(self, most: int) -> bytes:
        """At least one and at most ``most`` bytes; IncompleteBody if the stream ends first."""
        if not self._buffer and not await self._fill():
            raise _incomplete()
        piece = bytes(self._buffer[:most])
        del self._buffer[: len(piece)]
        return piece


def _size_line(line: bytes, *, signed: bool) -> tuple[int, str]:
    """(size, signature) of a chunk's size line: ``<hex>`` or ``<hex>;chunk-signature=<64 hex>`` if ``signed``."""
    size_text, _, extension = line.partition(b";")
    try:
        size = int(size_text, 16)
    except ValueError:
        raise _incomplete() from None
    if not signed:
        return size, ""
    if not extension.startswith(_SIGNATURE):
        raise S3Error("SignatureDoesNotMatch", "a chunk of this signed aws-chunked body carries no chunk-signature")
    return size, extension[len(_SIGNATURE) :].decode("latin-1")


async def _trailers(reader: _Reader) -> dict[str, str]:
    """The trailer lines up to the empty one, by lower-case name."""
    trailers = {}
    while line := await reader.line():
        name, _, value = line.decode("latin-1").partition(":")
        trailers[name.strip().lower()] = value.strip()
    return trailers


def _verified(expected: str, sent: str) -> str:
    """``expected`` if the client ``sent`` it, else SignatureDoesNotMatch."""
    if not hmac.compare_digest(expected.encode(), sent.encode("latin-1")):
        raise S3Error("SignatureDoesNotMatch", "a chunk signature of the aws-chunked body does not match")
    return expected


def _incomplete() -> S3Error:
    return S3Error("IncompleteBody", "the aws-chunked body is malformed or ended early")
