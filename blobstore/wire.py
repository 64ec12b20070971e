"""The HTTP conventions that the server (blobstore.server) and the client (blobstore.client) share.

Object paths carry the key percent-encoded, ``/`` literal. Metadata travels in
``X-Blobstore-Meta-<name>: <value>`` headers: header names are case-insensitive
ASCII, so a name is sent with everything but ``a-z 0-9 - _ . ~`` percent-encoded
as UTF-8 (``User`` becomes ``%55ser``), and a value with ``%``, spaces, controls
and non-ASCII percent-encoded. Plain lowercase names and ASCII values, as a
person types them with curl, pass unchanged.

An object goes out with headers that keep a browser from running it as a page of
the server's origin (the host app's, under a FastAPI mount): ``nosniff`` and a
sandboxing Content-Security-Policy always, and ``Content-Disposition: attachment``
for the types a browser runs (:func:`is_active_content`), unless the operator
serves objects from an origin of their own and asks for them inline.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from blobstore.errors import InvalidInput
from blobstore.model.keys import is_media_type
from blobstore.model.results import BlobInfo

API_PREFIX = "/v1"
PROBLEM_TYPE = "application/problem+json"
META_PREFIX = "x-blobstore-meta-"
DIGEST = "x-blobstore-digest"
COPY_DIGEST = "x-blobstore-copy-digest"
#: A put's own expiry: seconds, or a number with a unit of s, m, h, d or w (blobstore.model.durations).
EXPIRES_IN = "x-blobstore-expires-in"
CREATED_AT = "x-blobstore-created-at"
#: The content type stored with an object, exactly (absent: none was; Content-Type then says octet-stream).
CONTENT_TYPE = "x-blobstore-content-type"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
#: The ``code`` of a problem document, repeated as a header (a HEAD answer has no body).
ERROR_CODE = "x-blobstore-error"
#: Sent with every object, 304s included: a browser takes the type as sent (never sniffing HTML out of an
#: image or text), and whatever the type, a document opened from the object gets a unique origin, no scripts,
#: forms, plugins or popups, and loads nothing (images and text still display).
OBJECT_SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "sandbox; default-src 'none'",
}
#: Types a browser runs when it opens or loads them (essences; see also :func:`is_active_content`).
_ACTIVE_TYPES = frozenset(
    {
        "text/html",  # a page: its scripts would run with the origin's cookies and APIs
        # XML documents: elements in the XHTML namespace (<script> too) run as in HTML, and an
        # <?xml-stylesheet?> turns the document into HTML; every */*+xml type (SVG, RSS, MathML, ...) as well
        "application/xhtml+xml",
        "application/xml",
        "text/xml",
        "text/xsl",
        # JavaScript (WHATWG MIME Sniffing's JavaScript MIME types): a page of the origin loads it as the
        # origin's own code (past a CSP of script-src 'self'), and a service worker registered from it
        # would control the origin's pages
        "application/ecmascript",
        "application/javascript",
        "application/x-ecmascript",
        "application/x-javascript",
        "text/ecmascript",
        "text/javascript",
        "text/javascript1.0",
        "text/javascript1.1",
        "text/javascript1.2",
        "text/javascript1.3",
        "text/javascript1.4",
        "text/javascript1.5",
        "text/jscript",
        "text/livescript",
        "text/x-ecmascript",
        "text/x-javascript",
    }
)

#: The media type of a batch put's body (``POST .../batch/put``), a byte stream framed as it is written and read:
#:
#:     <manifest: one line of JSON, {"items": [{"key": ..., ...}, ...]}> LF
#:     then for each item, in the manifest's order: chunks of <length: 1-8 lowercase hex digits> LF <bytes>,
#:     ending with 0 LF
#:
#: Each item's bytes come as chunks, so a writer needs no length in advance (a stream of unknown size
#: goes as it is read) and a reader never scans the bytes for a boundary (as multipart/form-data would).
BATCH_TYPE = "application/octet-stream"
#: The chunk length that ends an item's bytes in a batch body.
BATCH_ITEM_END = b"0\n"
#: The most bytes a batch put's body may hold, manifest and framing included (the server keeps a whole batch
#: on disk until it is stored); larger objects go one PUT each.
MAX_BATCH_BODY = 256 * 2**20
#: The longest manifest line (1,000 items with 1 KiB keys and 8 KiB of metadata each fit).
MAX_BATCH_MANIFEST = 16 * 2**20

_NAME_SAFE = frozenset(string.ascii_lowercase + string.digits + "-_.~")
_VALUE_SAFE = "".join(ch for ch in string.printable if ch not in "% \t\n\r\x0b\x0c")


def tenant_path(tenant: str) -> str:
    """The path of a tenant's resources."""
    return f"{API_PREFIX}/tenants/{tenant}"


def object_path(tenant: str, key: str) -> str:
    """The path of one object: the key percent-encoded as UTF-8, ``/`` kept literal, and each ``.`` of a ``.``
    or ``..`` segment as ``%2E``, since HTTP clients resolve such segments (``a/../b`` would arrive as ``b``)."""
    segments = ("%2E" * len(part) if part in (".", "..") else quote(part, safe="") for part in key.split("/"))
    return f"{tenant_path(tenant)}/objects/{'/'.join(segments)}"


def batch_chunk_head(size: int) -> bytes:
    """The line that comes before a chunk of ``size`` (> 0) bytes of an item in a batch body (:data:`BATCH_TYPE`)."""
    return b"%x\n" % size


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


def object_headers(info: BlobInfo, *, inline_active_content: bool = False) -> dict[str, str]:
    """What GET and HEAD say about an object besides its bytes (:func:`content_headers` on its type)."""
    return {
        **not_modified_headers(info),
        "accept-ranges": "bytes",
        CREATED_AT: info.created_at.isoformat(),
        **metadata_headers(info.metadata),
        **content_headers(info.content_type, inline_active_content=inline_active_content),
    }


def not_modified_headers(info: BlobInfo) -> dict[str, str]:
    """What a 304 says: the validators, and :data:`OBJECT_SECURITY_HEADERS` for the copy a browser holds."""
    return {
        "etag": etag(info.digest),
        "last-modified": info.created_at.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        **OBJECT_SECURITY_HEADERS,
    }


def content_headers(content_type: str | None, *, inline_active_content: bool = False) -> dict[str, str]:
    """Content-Type (and :data:`CONTENT_TYPE`, the type exactly as stored) with :data:`OBJECT_SECURITY_HEADERS`.

    An active type (:func:`is_active_content`) is an attachment unless ``inline_active_content`` (objects
    served from an origin of their own). A type that is not a media type (stored before types were checked)
    goes in no header: the object is an ``application/octet-stream`` attachment.
    """
    headers = dict(OBJECT_SECURITY_HEADERS)
    if content_type is None:
        headers["content-type"] = DEFAULT_CONTENT_TYPE
    elif not is_media_type(content_type):
        headers["content-type"] = DEFAULT_CONTENT_TYPE
        headers["content-disposition"] = "attachment"
    else:
        headers["content-type"] = headers[CONTENT_TYPE] = content_type
        if is_active_content(content_type) and not inline_active_content:
            headers["content-disposition"] = "attachment"
    return headers


def is_active_content(media_type: str) -> bool:
    """True if a browser runs an object of ``media_type`` (a valid media type, any case and parameters):
    HTML, XML (XHTML, SVG and every ``+xml``), JavaScript, and ``multipart/*`` (a multipart/x-mixed-replace
    response is shown part by part, each as its own type: HTML too)."""
    essence = media_type.split(";", 1)[0].strip().lower()
    kind, _, subtype = essence.partition("/")
    return essence in _ACTIVE_TYPES or subtype.endswith("+xml") or kind == "multipart"


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
