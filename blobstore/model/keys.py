"""Validation of tenant names, keys, prefixes, metadata, content types, digests and byte ranges: pure functions,
no I/O."""

from __future__ import annotations

import re
from typing import TypeGuard

from blobstore.errors import InvalidInput, InvalidKey, InvalidTenant

#: S3 allows keys of 1,024 bytes, and object KEY of bucket B (at most 63 bytes) is the native key ``B/KEY``.
MAX_KEY_BYTES = 63 + 1 + 1024
_TENANT = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
#: S3's bucket naming rules: 3-63 of a-z 0-9 . -, a letter or digit at each end, no "..", not an IPv4 address.
_BUCKET = re.compile(r"(?!\d+\.\d+\.\d+\.\d+$)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
#: Characters no key, prefix or metadata may hold: C0/C1 controls, DEL, the bidirectional controls
#: (which make ``ls`` print one name as another), line/paragraph separators and lone surrogates.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]")
MAX_METADATA_BYTES = 8192
MAX_CONTENT_TYPE = 255
#: RFC 9110 section 8.3.1: ``type "/" subtype *( OWS ";" OWS [ parameter ] )``, a parameter being
#: ``token "=" ( token / quoted-string )``. ASCII only: obs-text (bytes 0x80-0xFF) is what senders must not make.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED_STRING = r'"(?:[\t !#-\[\]-~]|\\[\t -~])*"'
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*(?:{_TOKEN}=(?:{_TOKEN}|{_QUOTED_STRING}))?)*")


def _forbidden_character(text: str) -> str | None:
    """A description of the first character ``text`` must not hold, or None."""
    found = _FORBIDDEN.search(text)
    if found is None:
        return None
    code = ord(found.group())
    if 0xD800 <= code <= 0xDFFF:
        return f"a lone surrogate (U+{code:04X}, not valid UTF-8)"
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return f"a NUL or control character (U+{code:04X})"
    return f"a bidirectional control or line separator (U+{code:04X})"


def validate_tenant(name: object) -> str:
    """Return ``name`` if it is 1-63 chars of ``a-z 0-9 - _ .`` starting with a letter or digit."""
    if not isinstance(name, str) or not _TENANT.fullmatch(name):
        raise InvalidTenant(
            f"invalid tenant {name!r}: use 1-63 characters of a-z 0-9 - _ . starting with a letter or digit"
        )
    return name


def validate_bucket(name: object) -> str:
    """Return ``name`` if it follows S3's bucket naming rules (see :data:`_BUCKET`), else raise InvalidInput."""
    if not isinstance(name, str) or not _BUCKET.fullmatch(name):
        raise InvalidInput(
            f"invalid bucket name {name!r}: use 3-63 characters of a-z 0-9 . - starting and ending with a letter "
            "or digit, without '..', not an IP address"
        )
    return name


def validate_key(key: object) -> str:
    """Return ``key`` unchanged if it satisfies the key rules (docs/python-api.md, "Keys"), else raise InvalidKey.

    Keys are S3's: any 1-:data:`MAX_KEY_BYTES` bytes of UTF-8 without control characters. They are literal,
    never normalised or resolved: ``photos/``, ``/x``, ``a//b`` and ``a/../b`` are ordinary keys."""
    if not isinstance(key, str):
        raise InvalidKey(f"invalid key {key!r}: keys are strings")
    problem = _forbidden_character(key)
    if problem is not None:
        raise InvalidKey(f"invalid key {key!r}: it contains {problem}")
    size = len(key.encode("utf-8"))
    if not 1 <= size <= MAX_KEY_BYTES:
        raise InvalidKey(f"invalid key: must be 1-{MAX_KEY_BYTES} bytes of UTF-8, got {size}")
    return key


def validate_prefix(prefix: object) -> str:
    """Return a listing prefix (or cursor): any string a key could start with (it need not be a full key)."""
    if not isinstance(prefix, str):
        raise InvalidKey(f"invalid prefix {prefix!r}: prefixes are strings")
    problem = _forbidden_character(prefix)
    if problem is not None:
        raise InvalidKey(f"invalid prefix {prefix!r}: it contains {problem}")
    if len(prefix.encode("utf-8")) > MAX_KEY_BYTES:
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


def validate_content_type(value: object) -> str | None:
    """Return ``value`` unchanged if it is None or a media type :func:`validate_media_type` accepts."""
    return None if value is None else validate_media_type(value)


def validate_media_type(value: object) -> str:
    """Return ``value`` unchanged if it is an RFC 9110 media type of at most 255 characters, such as
    ``text/plain; charset=utf-8``; else raise InvalidInput. Such a type is printable ASCII (tabs aside), so it
    travels in any HTTP header and parses the same in every browser."""
    if is_media_type(value):
        return value
    raise InvalidInput(
        f"invalid content_type {value!r}: expected an RFC 9110 media type such as 'text/plain; charset=utf-8'"
        f" (type/subtype, then ;name=value parameters, in ASCII, at most {MAX_CONTENT_TYPE} characters)"
    )


def is_media_type(value: object) -> TypeGuard[str]:
    """True if ``value`` is a content type :func:`validate_media_type` accepts."""
    return isinstance(value, str) and len(value) <= MAX_CONTENT_TYPE and _MEDIA_TYPE.fullmatch(value) is not None


def validate_metadata(value: object) -> dict[str, str]:
    """Return a copy of user metadata: non-empty str names to str values, printable, at most 8 KiB in all."""
    return _text_map(value, "metadata")


#: The response headers an object may store (set through the S3 API; blobstore.model.results.BlobInfo.headers).
STORED_HEADERS = frozenset({"cache-control", "content-disposition", "content-encoding", "content-language", "expires"})


def validate_stored_headers(value: object) -> dict[str, str]:
    """Return a copy of the response headers to store: lowercase names of :data:`STORED_HEADERS` to printable
    str values, at most 8 KiB in all."""
    headers = _text_map(value, "stored headers")
    if unknown := sorted(set(headers) - STORED_HEADERS):
        raise InvalidInput(f"headers {unknown} cannot be stored; only {sorted(STORED_HEADERS)}")
    return headers


def _text_map(value: object, what: str) -> dict[str, str]:
    """A copy of ``value``: non-empty str names to str values, printable, at most 8 KiB in all (``what`` it is
    names it in errors)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidInput(f"{what} must be a dict of str to str")
    for name, text in value.items():
        if not name:
            raise InvalidInput(f"{what} names must not be empty")
        problem = _forbidden_character(name) or _forbidden_character(text)
        if problem is not None:
            raise InvalidInput(f"{what} {name!r} contains {problem}")
    if sum(len(k.encode("utf-8")) + len(v.encode("utf-8")) for k, v in value.items()) > MAX_METADATA_BYTES:
        raise InvalidInput(f"{what} must total at most {MAX_METADATA_BYTES} bytes")
    return dict(value)
