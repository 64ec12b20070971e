"""What S3 clients know a tenant's bytes by beside their BLAKE3 digest: an MD5 ETag and additional checksums."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class S3Facts:
    """The S3 facts of one tenant's bytes, recorded by digest when they are bound under a key through S3.

    ``md5`` is the hex ETag without quotes (a single PUT's MD5; a multipart upload's MD5 of its parts' MD5s and
    ``-N``); None when the tenant never wrote the bytes through S3. ``checksums`` are the ``x-amz-checksum-*``
    values the uploads were verified against, base64 by algorithm (``crc32``, ``sha256``, ...).
    """

    md5: str | None = None
    checksums: Mapping[str, str] = field(default_factory=dict)
