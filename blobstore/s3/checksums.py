"""S3's additional checksums (``x-amz-checksum-crc32|crc32c|crc64nvme|sha1|sha256``): hashers and their check.

A checksum is sent as a request header or as an aws-chunked trailer, its value the base64 of the big-endian
digest. CRC32C and CRC64/NVME come from ``awscrt`` (what botocore computes them with); CRC32 from zlib.
A header whose value is not the base64 of a digest of the algorithm's size is ``InvalidRequest`` before the
body is read; a value that does not match the body ``BadDigest``, found when the body ends (so the put that
reads it stores nothing).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Callable, Mapping
from typing import Protocol

from awscrt import checksums as crt

from blobstore.s3.errors import S3Error

PREFIX = "x-amz-checksum-"


class Hasher(Protocol):
    """What a checksum is computed with: hashlib's interface, as far as it is needed here."""

    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


class _Crc:
    """A CRC of ``width`` bytes, updated by ``step(data, previous)``."""

    def __init__(self, step: Callable[[bytes, int], int], width: int) -> None:
        self._step, self._width, self._value = step, width, 0

    def update(self, data: bytes, /) -> None:
        self._value = self._step(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._width, "big")


_ALGORITHMS: dict[str, Callable[[], Hasher]] = {
    "crc32": lambda: _Crc(zlib.crc32, 4),
    "crc32c": lambda: _Crc(crt.crc32c, 4),
    "crc64nvme": lambda: _Crc(crt.crc64nvme, 8),
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
}
#: The header (or trailer) names of the checksums this API verifies.
NAMES = frozenset(PREFIX + algorithm for algorithm in _ALGORITHMS)


def hasher(name: str) -> Hasher:
    """A fresh hasher for the checksum ``name`` (one of :data:`NAMES`)."""
    return _ALGORITHMS[name.removeprefix(PREFIX)]()


def check(name: str, computed: Hasher, value: str) -> None:
    """BadDigest unless ``value`` (the base64 sent as ``name``) is the checksum of what ``computed`` was fed."""
    if base64.b64encode(computed.digest()).decode() != value.strip():
        algorithm = name.removeprefix(PREFIX).upper()
        raise S3Error("BadDigest", f"the {algorithm} you specified did not match the calculated checksum")


def from_headers(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """The (name, value) of the checksum a request's headers carry, if any, checked for form; InvalidRequest
    for more than one, or a value that is not the base64 of a digest of its algorithm's size."""
    sent = [name for name in sorted(NAMES) if name in headers]
    if len(sent) > 1:
        raise S3Error("InvalidRequest", "expecting a single x-amz-checksum- header; multiple checksum types")
    if not sent:
        return None
    name, value = sent[0], headers[sent[0]]
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        digest = b""
    if len(digest) != len(hasher(name).digest()):
        raise S3Error("InvalidRequest", f"value for {name} header is invalid")
    return name, value
