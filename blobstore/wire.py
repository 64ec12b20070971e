"""The HTTP conventions that the server (blobstore.server) and the client (blobstore.client) share.

Object paths carry the key percent-encoded, ``/`` literal. Metadata travels in
``X-Blobstore-Meta-<name>: <value>`` headers: header names are case-insensitive
ASCII, so a name is sent with everything but ``a-z 0-9 - _ . ~`` percent-encoded
as UTF-8 (``User`` becomes ``%55ser``), and a value with ``%``, spaces, controls
and non-ASCII percent-encoded. Plain lowercase names and ASCII values, as a
person types them with curl, pass unchanged.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from blobstore.errors import InvalidInput
from blobstore.results import BlobInfo

API_PREFIX = "/v1"
PROBLEM_TYPE = "application/problem+json"
META_PREFIX = "x-blobstore-meta-"
DIGEST = "x-blobstore-digest"
COPY_DIGEST = "x-blobstore-copy-digest"
CREATED_AT = "x-blobstore-created-at"
#: The content type stored with an object, exactly (absent: none was; Content-Type then says octet-stream).
CONTENT_TYPE = "x-blobstore-content-type"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
#: The ``code`` of a problem document, repeated as a header (a HEAD answer has no body).
ERROR_CODE = "x-blobstore-error"

_NAME_SAFE = frozenset(string.ascii_lowercase + string.digits + "-_.~")
_VALUE_SAFE = "".join(ch for ch in string.printable if ch not in "% \t\n\r\x0b\x0c")


def tenant_path(tenant: str) -> str:
    """The path of a tenant's resources."""
    return f"{API_PREFIX}/tenants/{tenant}"


def object_path(tenant: str, key: str) -> str:
    """The path of one object: the key percent-encoded as UTF-8, ``/`` kept literal."""
    return f"{tenant_path(tenant)}/objects/{quote(key, safe='/')}"


def etag(digest: str) -> str:
    """The strong entity tag of a digest."""
    return f'"{digest}"'


def metadata_headers(metadata: Mapping[str, str]) -> dict[str, str]:
    """``X-Blobstore-Meta-*`` headers carrying ``metadata``."""
    return {META_PREFIX + _encode_name(name): quote(value, safe=_VALUE_SAFE) for name, value in metadata.items()}


def metadata_from_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The metadata in ``X-Blobstore-Meta-*`` headers (names as received, any case); InvalidInput if undecodable.

    Header values are taken as the latin-1 text HTTP libraries decode them to, so raw UTF-8 also arrives intact.
    """
    metadata: dict[str, str] = {}
    for name, value in headers:
        if not name.lower().startswith(META_PREFIX):
            continue
        encoded = name[len(META_PREFIX) :].lower()
        if not encoded:
            raise InvalidInput("a metadata header needs a name after X-Blobstore-Meta-")
        metadata[_decode(encoded, what="metadata name")] = _decode(value, what="metadata value")
    return metadata


def object_headers(info: BlobInfo) -> dict[str, str]:
    """What GET and HEAD say about an object besides its bytes."""
    headers = {
        "etag": etag(info.digest),
        "accept-ranges": "bytes",
        CREATED_AT: info.created_at.isoformat(),
        "last-modified": info.created_at.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        **metadata_headers(info.metadata),
    }
    headers["content-type"] = info.content_type or DEFAULT_CONTENT_TYPE
    if info.content_type is not None:
        headers[CONTENT_TYPE] = info.content_type
    return headers


def info_from_headers(tenant: str, key: str, size: int, headers: Any) -> BlobInfo:
    """The BlobInfo that ``object_headers`` (and a length) describe."""
    return BlobInfo(
        tenant=tenant,
        key=key,
        digest=str(headers["etag"]).strip('"'),
        size=size,
        content_type=headers.get(CONTENT_TYPE),
        metadata=metadata_from_headers(headers.items()),
        created_at=datetime.fromisoformat(headers[CREATED_AT]),
    )


def info_from_json(data: Mapping[str, Any]) -> BlobInfo:
    """The BlobInfo of a ``BlobInfo.to_dict()`` document."""
    return BlobInfo(
        tenant=data["tenant"],
        key=data["key"],
        digest=data["digest"],
        size=data["size"],
        content_type=data["content_type"],
        metadata=dict(data["metadata"]),
        created_at=datetime.fromisoformat(data["created_at"]),
        deduplicated=data["deduplicated"],
    )


def _encode_name(name: str) -> str:
    return "".join(ch if ch in _NAME_SAFE else "".join(f"%{byte:02X}" for byte in ch.encode()) for ch in name)


def _decode(text: str, *, what: str) -> str:
    try:
        return unquote_to_bytes(text.encode("latin-1").decode("utf-8")).decode("utf-8")
    except UnicodeError:
        raise InvalidInput(f"the {what} {text!r} is not percent-encoded UTF-8") from None
