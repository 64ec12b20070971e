"""S3's additional checksums (``x-amz-checksum-crc32|crc32c|crc64nvme|sha1|sha256``) in requests: their check.

A checksum is sent as a request header or as an aws-chunked trailer, its value the base64 of the big-endian
digest (the algorithms: blobstore.model.checksums).
A header whose value is not the base64 of a digest of the algorithm's size is ``InvalidRequest`` before the
body is read; a value that does not match the body ``BadDigest``, found when the body ends (so the put that
reads it stores nothing).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from blobstore.model import checksums as algorithms
from blobstore.model.checksums import ALGORITHMS, Hasher
from blobstore.s3.errors import S3Error

PREFIX = "x-amz-checksum-"
#: The header (or trailer) names of the checksums this API verifies.
NAMES = frozenset(PREFIX + algorithm for algorithm in ALGORITHMS)


def hasher(name: str) -> Hasher:
    """A fresh hasher for the checksum ``name`` (one of :data:`NAMES`)."""
    return algorithms.hasher(name.removeprefix(PREFIX))


def check(name: str, computed: Hasher, value: str) -> None:
    """BadDigest unless ``value`` (the base64 sent as ``name``) is the checksum of what ``computed`` was fed."""
    if algorithms.encoded(computed) != value.strip():
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
