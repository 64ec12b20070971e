"""Signed URLs: one method (GET or PUT) on one key of one tenant, without a token, until an expiry.

A URL carries its expiry (Unix seconds), the id of the key that signed it, the
id of the token that asked for it (if one did) and an HMAC-SHA256 over the
method, tenant, key, expiry, key id and token id, plus, for a PUT, the content
length, content type and digest the signer chose to bind. Changing any of
them, or using the URL at or after its expiry, is Forbidden; signatures are
compared in constant time.

Signing keys live in the database, sealed with the store's secret
(blobstore.auth.sealing), so every server of a store accepts every other's URLs and
a copy of the database cannot sign. The newest key not superseded signs;
``rotate`` makes a new one current, and a superseded key still verifies until
every URL it could have signed has expired (:data:`MAX_EXPIRY` later), then is
deleted. A leaked URL is killed by revoking the token that signed it (its URLs
never outlive it) or by ``retire``, which deletes its signing key: each takes
effect on every server at once, as verification reads both in one statement.
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

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore import wire
from blobstore.auth import sealing
from blobstore.auth.tokens import TokenInfo
from blobstore.db.models import tables
from blobstore.db.tokens import TOKEN_COLUMNS, TokenRow, tokens
from blobstore.errors import Forbidden, InvalidInput, NotFound
from blobstore.model.keys import validate_content_type, validate_digest, validate_key, validate_tenant

if TYPE_CHECKING:  # the database layer loads when a URL is signed or checked
    from sqlalchemy.ext.asyncio import AsyncConnection

    from blobstore.core.config import Settings
    from blobstore.core.context import Core

METHODS = ("GET", "PUT")
DEFAULT_EXPIRY = timedelta(minutes=15)
MAX_EXPIRY = timedelta(days=7)

#: Query parameters of a signed URL.
EXPIRES, KEY_ID, TOKEN_ID, SIGNATURE = "expires", "key_id", "token_id", "signature"
CONTENT_LENGTH, CONTENT_TYPE, DIGEST = "content_length", "content_type", "digest"

_ID = re.compile(r"[0-9a-f]{16}")  # key and token ids
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{43}")
#: A number in a URL: ASCII digits only (str.isdigit also takes "²"), few enough for int() and a 64-bit column.
_NUMBER = re.compile(r"[0-9]{1,18}")
_VERSION = b"blobstore-signed-url-v2"


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
    #: The token that asked for the URL; None for a URL the library signed for a backend.
    token_id: str | None = None

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
            self.token_id or "",
        )
        return b"\n".join([_VERSION, *(field.encode() for field in fields)])

    def query(self, signature: str) -> dict[str, str]:
        """The URL's query parameters."""
        optional = {
            TOKEN_ID: self.token_id,
            CONTENT_LENGTH: self.content_length,
            CONTENT_TYPE: self.content_type,
            DIGEST: self.digest,
        }
        extra = {name: str(value) for name, value in optional.items() if value is not None}
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
    """A signing key as ``signing-key ls`` shows it: never its secret. ``current`` signs new URLs; a
    superseded key only verifies (until :data:`MAX_EXPIRY` after ``superseded_at``)."""

    id: str
    created_at: datetime
    superseded_at: datetime | None = None

    @property
    def current(self) -> bool:
        return self.superseded_at is None

    def to_dict(self) -> dict[str, Any]:
        superseded = None if self.superseded_at is None else self.superseded_at.isoformat()
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "superseded_at": superseded,
            "current": self.current,
        }

    @classmethod
    def from_row(cls, row: SigningKeyRow) -> SigningKeyInfo:
        return cls(row.id, row.created_at, row.superseded_at)


def required_scope(method: str) -> str:
    """The token scope (besides ``sign``) needed to sign a URL for ``method``."""
    return {"GET": "read", "PUT": "write"}[_validate_method(method)]


async def sign(
    core: Core,
    base_url: str,
    tenant: str,
    method: str,
    key: str,
    *,
    expires_in: int = int(DEFAULT_EXPIRY.total_seconds()),
    content_length: int | None = None,
    content_type: str | None = None,
    digest: str | None = None,
    token: TokenInfo | None = None,
) -> SignedUrl:
    """A URL under ``base_url`` for ``method`` on ``key`` of ``tenant``, valid ``expires_in`` seconds.

    The caller has checked that the signer (``token``, if a token asks) may do ``method`` on ``tenant``.
    A token's URL works only while the token does: it expires with the token if that comes first, and
    dies when the token is revoked. A URL without a token dies when its signing key is retired.
    InvalidInput for an unknown method, a bad key, a lifetime outside 1 s .. :data:`MAX_EXPIRY`, or
    PUT-only bounds on a GET; ConfigurationError if the store has no secret to seal keys with.
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
    signer = await _current_key(core)
    expires = int(core.clock().timestamp()) + expires_in
    if token is not None and token.expires_at is not None:
        expires = min(expires, int(token.expires_at.timestamp()))
    token_id = None if token is None else token.id
    grant = Grant(method, tenant, key, expires, signer.id, content_length, content_type, digest, token_id)
    signature = _mac(_secret_of(core.settings, signer), grant)
    url = f"{base_url.rstrip('/')}{wire.object_path(tenant, key)}?{urlencode(grant.query(signature))}"
    return SignedUrl(url, method, grant.headers(), datetime.fromtimestamp(grant.expires, UTC))


def is_signed(query: Mapping[str, str]) -> bool:
    """True if a request's query makes it a signed-URL request (it then needs no token)."""
    return SIGNATURE in query


async def verify(
    core: Core, method: str, tenant: str, key: str, query: Mapping[str, str], headers: Mapping[str, str]
) -> None:
    """Accept a signed-URL request or raise Forbidden: the signature must cover exactly this method, tenant,
    key and the query's fields by a key not retired, be unexpired, its token (if it names one) still
    active, and the request must carry the bound length, type and digest. One read of the database."""
    grant, signature = _grant_of(method, tenant, key, query)
    found = await core.database.read(lambda conn: find_verifier(conn, grant.key_id, grant.token_id))
    if found is None or not hmac.compare_digest(_mac(_secret_of(core.settings, found.key), grant), signature):
        raise Forbidden("the URL's signature does not match it")
    now = core.clock()
    if now.timestamp() >= grant.expires:
        raise Forbidden("the signed URL has expired")
    if grant.token_id is not None and (
        found.token is None
        or not (token := TokenInfo.from_row(found.token)).active(now)
        or not token.allows(grant.tenant, required_scope(grant.method))
    ):
        raise Forbidden("the token that signed the URL was revoked or has expired")
    for header, bound in (
        ("content-length", grant.content_length),
        ("content-type", grant.content_type),
        (wire.DIGEST, grant.digest),
    ):
        if bound is not None and headers.get(header) != str(bound):
            raise Forbidden(f"the request's {header} is not the one the URL was signed for")


async def rotate(core: Core) -> SigningKeyInfo:
    """Make a new key current; the previous ones keep verifying the URLs they signed until those expire.
    ConfigurationError, and nothing changed, if the store has no secret to seal the key with."""
    now = core.clock()
    key_id = secrets.token_hex(8)
    sealed = sealing.seal(core.settings, secrets.token_bytes(32), _purpose(key_id))
    row = SigningKeyRow(key_id, sealed, now, None)

    async def work(conn: AsyncConnection) -> None:
        await supersede_keys(conn, now, now - MAX_EXPIRY)
        await insert_key(conn, row)

    await core.database.transaction(work)
    return SigningKeyInfo.from_row(row)


async def retire(core: Core, key_id: str) -> SigningKeyInfo:
    """Delete a signing key: every URL it signed stops working, on every server at once. If it was the
    current key, the next signature creates a new one. NotFound if there is no such key."""
    if not isinstance(key_id, str) or not _ID.fullmatch(key_id):
        raise InvalidInput(f"invalid signing key id {key_id!r}: expected 16 hex digits, as `signing-key ls` shows")
    row = await core.database.transaction(lambda conn: retire_key(conn, key_id))
    if row is None:
        raise NotFound(f"no such signing key: {key_id}")
    return SigningKeyInfo.from_row(row)


async def list_keys(core: Core) -> list[SigningKeyInfo]:
    """The keys that verify URLs, newest (the current one) first."""
    return [SigningKeyInfo.from_row(row) for row in await core.database.read(verifying_key_rows)]


async def _current_key(core: Core) -> SigningKeyRow:
    """The key that signs now; the first signature of a store creates one."""
    row = await core.database.read(current_key)
    if row is None:
        await rotate(core)
        row = await core.database.read(current_key)
    assert row is not None
    return row


def _purpose(key_id: str) -> str:
    """What a signing key's secret is sealed for: that row alone."""
    return f"signing-key:{key_id}"


def _secret_of(settings: Settings, row: SigningKeyRow) -> bytes:
    return sealing.unseal(settings, row.sealed_secret, _purpose(row.id))


def _grant_of(method: str, tenant: str, key: str, query: Mapping[str, str]) -> tuple[Grant, str]:
    """The grant a request claims and its signature; Forbidden if the query is malformed."""
    try:
        expires, key_id, signature = query[EXPIRES], query[KEY_ID], query[SIGNATURE]
    except KeyError as exc:
        raise Forbidden(f"the signed URL lacks its {exc.args[0]}") from None
    length, token_id = query.get(CONTENT_LENGTH), query.get(TOKEN_ID)
    if not (
        _NUMBER.fullmatch(expires)
        and _ID.fullmatch(key_id)
        and _SIGNATURE.fullmatch(signature)
        and (length is None or _NUMBER.fullmatch(length))
        and (token_id is None or _ID.fullmatch(token_id))
    ):
        raise Forbidden("the signed URL is malformed")
    bound_length = None if length is None else int(length)
    content_type, digest = query.get(CONTENT_TYPE), query.get(DIGEST)
    grant = Grant(method, tenant, key, int(expires), key_id, bound_length, content_type, digest, token_id)
    return grant, signature


def _mac(secret: bytes, grant: Grant) -> str:
    digest = hmac.new(secret, grant.message(), hashlib.sha256).digest()
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
    validate_content_type(content_type)
    if digest is not None:
        validate_digest(digest)


signing_keys = tables["signing_keys"]


@dataclass(frozen=True)
class SigningKeyRow:
    """One row of ``signing_keys``; ``superseded_at`` is None for the key that signs."""

    id: str
    sealed_secret: str
    created_at: datetime
    superseded_at: datetime | None


@dataclass(frozen=True)
class Verifier:
    """What checking one signed URL needs: its signing key, and the token that signed it if it names one
    (None when it names none, or a token that does not exist)."""

    key: SigningKeyRow
    token: TokenRow | None


_COLUMNS = (
    signing_keys.c.id,
    signing_keys.c.sealed_secret,
    signing_keys.c.created_at,
    signing_keys.c.superseded_at,
)
_NEWEST_FIRST = (signing_keys.c.created_at.desc(), signing_keys.c.id.desc())


async def current_key(conn: AsyncConnection) -> SigningKeyRow | None:
    """The newest key not superseded, or None if there is none."""
    query = select(*_COLUMNS).where(signing_keys.c.superseded_at.is_(None)).order_by(*_NEWEST_FIRST).limit(1)
    row = (await conn.execute(query)).first()
    return None if row is None else SigningKeyRow(*row)


async def verifying_key_rows(conn: AsyncConnection) -> list[SigningKeyRow]:
    """Every key that still verifies, newest first."""
    return [SigningKeyRow(*row) for row in await conn.execute(select(*_COLUMNS).order_by(*_NEWEST_FIRST))]


async def find_verifier(conn: AsyncConnection, key_id: str, token_id: str | None) -> Verifier | None:
    """The key ``key_id`` and the token ``token_id`` (if given) in one statement; None if there is no such key."""
    if token_id is None:
        key = (await conn.execute(select(*_COLUMNS).where(signing_keys.c.id == key_id))).first()
        return None if key is None else Verifier(SigningKeyRow(*key), None)
    joined = signing_keys.outerjoin(tokens, tokens.c.id == token_id)
    query = select(*_COLUMNS, *TOKEN_COLUMNS).select_from(joined).where(signing_keys.c.id == key_id)
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    token = row[len(_COLUMNS) :]
    return Verifier(SigningKeyRow(*row[: len(_COLUMNS)]), None if token[0] is None else TokenRow(*token))


async def insert_key(conn: AsyncConnection, row: SigningKeyRow) -> None:
    """Record a new key."""
    await conn.execute(
        insert(signing_keys).values(
            id=row.id, sealed_secret=row.sealed_secret, created_at=row.created_at, superseded_at=row.superseded_at
        )
    )


async def supersede_keys(conn: AsyncConnection, now: datetime, forget_before: datetime) -> int:
    """Supersede every current key at ``now`` and delete those superseded before ``forget_before``;
    the number deleted."""
    await conn.execute(update(signing_keys).where(signing_keys.c.superseded_at.is_(None)).values(superseded_at=now))
    result = await conn.execute(delete(signing_keys).where(signing_keys.c.superseded_at < forget_before))
    return int(result.rowcount)


async def retire_key(conn: AsyncConnection, key_id: str) -> SigningKeyRow | None:
    """Delete the key ``key_id``: nothing it signed verifies any more. The row it was, or None if none."""
    row = (await conn.execute(delete(signing_keys).where(signing_keys.c.id == key_id).returning(*_COLUMNS))).first()
    return None if row is None else SigningKeyRow(*row)
