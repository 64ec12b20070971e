"""Request bodies: streamed while hashed (in worker threads, blobstore.core.hashing), so the ETag (MD5) and the
signed SHA-256 cost no second pass.

A mismatch is found when the body ends, before the put that reads it binds anything: the put fails with
``XAmzContentSHA256Mismatch`` (or ``BadDigest`` for ``Content-MD5`` or an ``x-amz-checksum-*``) and nothing is
stored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import AsyncIterator

from blobstore.core.hashing import hashed_in_threads
from blobstore.model.checksums import Hasher
from blobstore.model.s3_facts import S3Facts
from blobstore.s3 import checksums, chunked
from blobstore.s3.errors import S3Error, not_implemented
from blobstore.s3.sigv4 import UNSIGNED_PAYLOAD, ChunkSigner

_SHA256 = re.compile(r"[0-9a-f]{64}")
#: The most a request whose body is an XML document (CreateBucket, DeleteObjects) may send.
MAX_SMALL_BODY = 2 * 1024 * 1024


class CheckedBody:
    """An async iterable over a body that hashes it as it streams and checks it at its end.

    ``payload`` is what the client signed (64 hex digits, UNSIGNED-PAYLOAD, or one of the aws-chunked
    encodings, decoded by blobstore.s3.chunked with the checksum ``trailer`` names and, for signed chunks, the
    request's ``signer``); ``content_md5`` the base64 Content-MD5 header, if sent; ``checksum`` the (name,
    value) of an ``x-amz-checksum-*`` header (blobstore.s3.checksums.from_headers), if sent. :attr:`etag` and
    :attr:`checksum` are valid once the body has been read whole.
    """

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        payload: str,
        content_md5: str | None = None,
        trailer: str | None = None,
        *,
        signer: ChunkSigner | None = None,
        checksum: tuple[str, str] | None = None,
    ) -> None:
        #: The (name, base64 value) of the ``x-amz-checksum-*`` the body was verified against, if any.
        self.checksum: tuple[str, str] | None = None
        if payload in chunked.ENCODINGS:
            chunks, payload = chunked.decoded(chunks, payload, trailer, signer, self._verified), UNSIGNED_PAYLOAD
        elif payload.startswith("STREAMING-"):
            raise not_implemented(f"the aws-chunked body encoding {payload}")
        if payload != UNSIGNED_PAYLOAD and not _SHA256.fullmatch(payload):
            raise S3Error("InvalidArgument", "x-amz-content-sha256 must be a SHA-256 in hex or UNSIGNED-PAYLOAD")
        self._chunks = chunks
        self._sha256 = None if payload == UNSIGNED_PAYLOAD else payload
        self._content_md5 = None if content_md5 is None else _md5_of_header(content_md5)
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._checksum = None if checksum is None else (checksum[0], checksums.hasher(checksum[0]), checksum[1])

    @property
    def etag(self) -> str:
        """The S3 ETag of the bytes read: their MD5 in hex, quoted."""
        return f'"{self._md5.hexdigest()}"'

    @property
    def checksum_algorithm(self) -> str | None:
        """The algorithm (``crc32``, ...) of the ``x-amz-checksum-*`` header the body is verified against, if any
        (known before the body is read; a trailer's is not)."""
        return None if self._checksum is None else self._checksum[0].removeprefix(checksums.PREFIX)

    def facts(self) -> S3Facts:
        """What S3 knows the bytes read by: their MD5 and the checksum they were verified against, if any."""
        verified = {} if self.checksum is None else {self.checksum[0].removeprefix(checksums.PREFIX): self.checksum[1]}
        return S3Facts(self._md5.hexdigest(), verified)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sha256 = hashlib.sha256() if self._sha256 is not None else None
        hashers: list[Hasher] = [self._md5, *([] if sha256 is None else [sha256])]
        if self._checksum is not None:
            hashers.append(self._checksum[1])
        async for block in hashed_in_threads(self._chunks, hashers):
            yield block
        if sha256 is not None and sha256.hexdigest() != self._sha256:
            raise S3Error("XAmzContentSHA256Mismatch", "the provided x-amz-content-sha256 does not match the body")
        if self._content_md5 is not None and self._md5.digest() != self._content_md5:
            raise S3Error("BadDigest", "the Content-MD5 you specified did not match what we received")
        if self._checksum is not None:
            checksums.check(*self._checksum)
            self._verified(self._checksum[0], self._checksum[2])

    def _verified(self, name: str, value: str) -> None:
        self.checksum = (name, value.strip())

    async def whole(self, limit: int = MAX_SMALL_BODY) -> bytes:
        """The whole body, checked, for requests whose body is a small document; EntityTooLarge past ``limit``."""
        body = bytearray()
        async for chunk in self:
            body += chunk
            if len(body) > limit:
                raise S3Error("EntityTooLarge", f"this request's body may be at most {limit} bytes")
        return bytes(body)


def _md5_of_header(value: str) -> bytes:
    try:
        digest = base64.b64decode(value, validate=True)
    except binascii.Error:
        digest = b""
    if len(digest) != 16:
        raise S3Error("InvalidDigest", "the Content-MD5 you specified is not the base64 of an MD5")
    return digest
