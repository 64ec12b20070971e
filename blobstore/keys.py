"""Validation of tenant names, keys, digests and byte ranges: pure functions, no I/O."""

from __future__ import annotations

import re

from blobstore.errors import InvalidInput, InvalidKey, InvalidTenant

MAX_KEY_BYTES = 1024
_TENANT = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_DIGEST = re.compile(r"[0-9a-f]{64}")


def validate_tenant(name: object) -> str:
    """Return ``name`` if it is 1-63 chars of ``a-z 0-9 - _ .`` starting with a letter or digit."""
    if not isinstance(name, str) or not _TENANT.fullmatch(name):
        raise InvalidTenant(
            f"invalid tenant {name!r}: use 1-63 characters of a-z 0-9 - _ . starting with a letter or digit"
        )
    return name


def validate_key(key: object) -> str:
    """Return ``key`` unchanged if it satisfies the key rules of PRODUCT.md, else raise InvalidKey."""
    if not isinstance(key, str):
        raise InvalidKey(f"invalid key {key!r}: keys are strings")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidKey(f"invalid key {key!r}: not valid UTF-8") from None
    if not 1 <= size <= MAX_KEY_BYTES:
        raise InvalidKey(f"invalid key: must be 1-{MAX_KEY_BYTES} bytes of UTF-8, got {size}")
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in key):
        raise InvalidKey(f"invalid key {key!r}: NUL and control characters are not allowed")
    if key.startswith("/"):
        raise InvalidKey(f"invalid key {key!r}: must not start with '/'")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidKey(f"invalid key {key!r}: empty, '.' and '..' path segments are not allowed")
    return key


def validate_prefix(prefix: object) -> str:
    """Return a listing prefix: any string without control characters (it need not be a full key)."""
    if not isinstance(prefix, str):
        raise InvalidKey(f"invalid prefix {prefix!r}: prefixes are strings")
    if prefix and any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in prefix):
        raise InvalidKey(f"invalid prefix {prefix!r}: NUL and control characters are not allowed")
    if len(prefix.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKey(f"invalid prefix: longer than {MAX_KEY_BYTES} bytes")
    return prefix


def validate_digest(digest: object) -> str:
    """Return ``digest`` if it is 64 lowercase hex characters (a BLAKE3-256 digest)."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise InvalidInput(f"invalid digest {digest!r}: expected 64 lowercase hex characters")
    return digest


def validate_byte_range(byte_range: object) -> tuple[int, int] | None:
    """Return an inclusive ``(first, last)`` byte range, or None for the whole object."""
    if byte_range is None:
        return None
    if (
        not isinstance(byte_range, tuple)
        or len(byte_range) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in byte_range)
        or byte_range[0] < 0
        or byte_range[1] < byte_range[0]
    ):
        raise InvalidInput(f"invalid byte range {byte_range!r}: expected (first, last) with 0 <= first <= last")
    return byte_range[0], byte_range[1]
