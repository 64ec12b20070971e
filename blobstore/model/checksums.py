"""S3's additional checksum algorithms (``crc32``, ``crc32c``, ``crc64nvme``, ``sha1``, ``sha256``): hashers,
and the composite checksum of a multipart object. Values travel as the base64 of the big-endian digest.

CRC32C and CRC64/NVME come from ``awscrt`` (what botocore computes them with); CRC32 from zlib.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable, Sequence
from typing import Protocol

from awscrt import checksums as crt


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
#: The algorithms, by their lower-case names.
ALGORITHMS = frozenset(_ALGORITHMS)


def hasher(algorithm: str) -> Hasher:
    """A fresh hasher of ``algorithm`` (one of :data:`ALGORITHMS`)."""
    return _ALGORITHMS[algorithm]()


def encoded(computed: Hasher) -> str:
    """The checksum ``computed`` holds, as S3 writes it: base64."""
    return base64.b64encode(computed.digest()).decode()


def composite(algorithm: str, parts: Sequence[str]) -> str:
    """S3's COMPOSITE checksum of a multipart object from its parts' checksums (base64, in order): the checksum
    of their concatenated binary values, ``-N``."""
    combined = hasher(algorithm)
    for value in parts:
        combined.update(base64.b64decode(value))
    return f"{encoded(combined)}-{len(parts)}"
