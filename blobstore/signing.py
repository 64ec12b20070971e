"""Signed URLs: one method (GET or PUT) on one key of one tenant, without a token, until an expiry.

A URL carries its expiry (Unix seconds), the id of the key that signed it and
an HMAC-SHA256 over the method, tenant, key, expiry and key id, plus, for a
PUT, the content length, content type and digest the signer chose to bind.
Changing any of them, or using the URL at or after its expiry, is Forbidden;
signatures are compared in constant time.

Signing keys live in the database, so every server of a store accepts every
other's URLs. The newest unretired key signs; ``rotate`` makes a new one
current, and a retired key still verifies until every URL it could have
signed has expired (:data:`MAX_EXPIRY` after its retirement), then is deleted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from blobstore import wire
from blobstore.errors import InvalidInput
from blobstore.keys import validate_digest, validate_key, validate_tenant
from blobstore.tokens import Forbidden

if TYPE_CHECKING:  # the database layer loads when a URL is signed or checked
    from sqlalchemy.ext.asyncio import AsyncConnection

    from blobstore.db.signing_keys import SigningKeyRow
    from blobstore.store import BlobStore

METHODS = ("GET", "PUT")
DEFAULT_EXPIRY = timedelta(minutes=15)
MAX_EXPIRY = timedelta(days=7)

#: Query parameters of a signed URL.
EXPIRES, KEY_ID, SIGNATURE = "expires", "key_id", "signature"
CONTENT_LENGTH, CONTENT_TYPE, DIGEST = "content_length", "content_type", "digest"

_KEY_ID = re.compile(r"[0-9a-f]{16}")
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{43}")
_VERSION = b"blobstore-signed-url-v1"


@dataclass(frozen=True)
class Grant:
    """What one signed URL allows: everything its signature covers."""

    method: str
    tenant: str
    key: str
    expires: int
    key_id: str
    content_length: int | None = None
    content_type: str | None = None
    digest: str | None = None

    def message(self) -> bytes:
        """The signed bytes: one field a line (no field may hold a line break), absent fields empty."""
        fields = (
            self.method,
            self.tenant,
            self.key,
            str(self.expires),
            self.key_id,
            "" if self.content_length is None else str(self.content_length),
            self.content_type or "",
            self.digest or "",
        )
        return b"\n".join([_VERSION, *(field.encode() for field in fields)])

    def query(self, signature: str) -> dict[str, str]:
        """The URL's query parameters."""
        bound = {CONTENT_LENGTH: self.content_length, CONTENT_TYPE: self.content_type, DIGEST: self.digest}
        extra = {name: str(value) for name, value in bound.items() if value is not None}
        return {EXPIRES: str(self.expires), KEY_ID: self.key_id, **extra, SIGNATURE: signature}

    def headers(self) -> dict[str, str]:
        """The headers a request must send with the URL (Content-Length aside, which HTTP clients set)."""
        headers = {} if self.content_type is None else {"content-type": self.content_type}
        if self.digest is not None:
            headers[wire.DIGEST] = self.digest
        return headers


@dataclass(frozen=True)
class SignedUrl:
    """A signed URL, the method to use it with, the headers to send and when it stops working."""

    url: str
    method: str
    headers: dict[str, str]
    expires_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "method": self.method,
            "headers": self.headers,
            "expires_at": self.expires_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignedUrl:
        expires_at = datetime.fromisoformat(data["expires_at"])
        return cls(data["url"], data["method"], dict(data["headers"]), expires_at)


@dataclass(frozen=True)
class SigningKeyInfo:
    """A signing key as ``signing-key rotate`` reports it: never its secret."""

    id: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "created_at": self.created_at.isoformat()}


def required_scope(method: str) -> str:
    """The token scope (besides ``sign``) needed to sign a URL for ``method``."""
    return {"GET": "read", "PUT": "write"}[_validate_method(method)]


async def sign(
    store: BlobStore,
    base_url: str,
    tenant: str,
    method: str,
    key: str,
    *,
    expires_in: int = int(DEFAULT_EXPIRY.total_seconds()),
    content_length: int | None = None,
    content_type: str | None = None,
    digest: str | None = None,
) -> SignedUrl:
    """A URL under ``base_url`` for ``method`` on ``key`` of ``tenant``, valid ``expires_in`` seconds.

    The caller has checked that the signer may do ``method`` on ``tenant``. InvalidInput for an
    unknown method, a bad key, a lifetime outside 1 s .. :data:`MAX_EXPIRY`, or PUT-only bounds on a GET.
    """
    validate_tenant(tenant)
    method = _validate_method(method)
    validate_key(key)
    if (
        isinstance(expires_in, bool)
        or not isinstance(expires_in, int)
        or not 0 < expires_in <= MAX_EXPIRY.total_seconds()
    ):
        raise InvalidInput(f"expires_in must be 1 to {int(MAX_EXPIRY.total_seconds())} seconds, not {expires_in!r}")
    _validate_bounds(method, content_length, content_type, digest)
    signer = await _current_key(store)
    now = store.clock()
    grant = Grant(
        method, tenant, key, int(now.timestamp()) + expires_in, signer.id, content_length, content_type, digest
    )
    url = f"{base_url.rstrip('/')}{wire.object_path(tenant, key)}?{urlencode(grant.query(_mac(signer, grant)))}"
    return SignedUrl(url, method, grant.headers(), datetime.fromtimestamp(grant.expires, UTC))


def is_signed(query: Mapping[str, str]) -> bool:
    """True if a request's query makes it a signed-URL request (it then needs no token)."""
    return SIGNATURE in query


async def verify(
    store: BlobStore, method: str, tenant: str, key: str, query: Mapping[str, str], headers: Mapping[str, str]
) -> None:
    """Accept a signed-URL request or raise Forbidden: the signature must cover exactly this method, tenant,
    key and the query's fields, be unexpired, and the request must carry the bound length, type and digest."""
    grant, signature = _grant_of(method, tenant, key, query)
    row = await store.database.transaction(lambda conn: _find(conn, grant.key_id))
    if row is None or not hmac.compare_digest(_mac(row, grant), signature):
        raise Forbidden("the URL's signature does not match it")
    if store.clock().timestamp() >= grant.expires:
        raise Forbidden("the signed URL has expired")
    for header, bound in (
        ("content-length", grant.content_length),
        ("content-type", grant.content_type),
        (wire.DIGEST, grant.digest),
    ):
        if bound is not None and headers.get(header) != str(bound):
            raise Forbidden(f"the request's {header} is not the one the URL was signed for")


async def rotate(store: BlobStore) -> SigningKeyInfo:
    """Make a new key current; the previous ones keep verifying the URLs they signed until those expire."""
    from blobstore.db import signing_keys as db

    now = store.clock()
    row = db.SigningKeyRow(secrets.token_hex(8), secrets.token_hex(32), now, None)

    async def work(conn: AsyncConnection) -> None:
        await db.retire_keys(conn, now, now - MAX_EXPIRY)
        await db.insert_key(conn, row)

    await store.database.transaction(work)
    return SigningKeyInfo(row.id, row.created_at)


async def _current_key(store: BlobStore) -> SigningKeyRow:
    """The key that signs now; the first signature of a store creates one."""
    from blobstore.db import signing_keys as db

    row = await store.database.transaction(db.current_key)
    if row is None:
        await rotate(store)
        row = await store.database.transaction(db.current_key)
    assert row is not None
    return row


async def _find(conn: AsyncConnection, key_id: str) -> SigningKeyRow | None:
    from blobstore.db import signing_keys as db

    return await db.find_key(conn, key_id)


def _grant_of(method: str, tenant: str, key: str, query: Mapping[str, str]) -> tuple[Grant, str]:
    """The grant a request claims and its signature; Forbidden if the query is malformed."""
    try:
        expires, key_id, signature = query[EXPIRES], query[KEY_ID], query[SIGNATURE]
        length, content_type, digest = query.get(CONTENT_LENGTH), query.get(CONTENT_TYPE), query.get(DIGEST)
    except KeyError as exc:
        raise Forbidden(f"the signed URL lacks its {exc.args[0]}") from None
    if not (
        expires.isdigit()
        and _KEY_ID.fullmatch(key_id)
        and _SIGNATURE.fullmatch(signature)
        and (length is None or length.isdigit())
    ):
        raise Forbidden("the signed URL is malformed")
    bound_length = None if length is None else int(length)
    return Grant(method, tenant, key, int(expires), key_id, bound_length, content_type, digest), signature


def _mac(row: SigningKeyRow, grant: Grant) -> str:
    digest = hmac.new(bytes.fromhex(row.secret), grant.message(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _validate_method(method: object) -> str:
    if method not in METHODS:
        raise InvalidInput(f"a signed URL is for GET or PUT, not {method!r}")
    assert isinstance(method, str)
    return method


def _validate_bounds(method: str, content_length: object, content_type: object, digest: object) -> None:
    if method != "PUT" and (content_length, content_type, digest) != (None, None, None):
        raise InvalidInput("content_length, content_type and digest can be bound only to a PUT")
    if content_length is not None and (
        isinstance(content_length, bool) or not isinstance(content_length, int) or content_length < 0
    ):
        raise InvalidInput(f"content_length must be a non-negative integer, not {content_length!r}")
    if content_type is not None and not (
        isinstance(content_type, str)
        and 0 < len(content_type) <= 255
        and content_type.isascii()
        and content_type.isprintable()
    ):
        raise InvalidInput("content_type must be 1-255 printable ASCII characters")
    if digest is not None:
        validate_digest(digest)
