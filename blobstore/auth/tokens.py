"""API tokens: who may call the HTTP service, for which tenant, and for what.

A token is ``bst~<tenant>~<id>~<secret>``: the tenant and id are public (the
client reads its tenant from the token, ``token ls`` shows ids), the secret is
32 random bytes shown once at creation. The database keeps only the SHA-256
of the secret, compared in constant time. Every request is checked against the
database, so a revocation or an expiry takes effect at once on every server.

Scopes: ``read`` (get, head, list, stat, usage, missing-digest probe),
``write`` (put, copy), ``delete``, ``sign`` (signed URLs).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from blobstore.errors import InvalidInput, NotFound, Unauthorized
from blobstore.model.keys import validate_tenant

if TYPE_CHECKING:  # the database layer loads when a token is used, not for `blobstore --help`
    from sqlalchemy.ext.asyncio import AsyncConnection

    from blobstore.core.context import Core
    from blobstore.db import tokens as db

SCOPES = ("read", "write", "delete", "sign")
DEFAULT_SCOPES = ("read", "write", "delete")
_PREFIX = "bst"
_TOKEN = re.compile(r"bst~([a-z0-9][a-z0-9._-]{0,62})~([0-9a-f]{16})~([A-Za-z0-9_-]{43})")
_ID = re.compile(r"[0-9a-f]{16}")
#: Compared against when a token id is unknown, so that case costs what a wrong secret costs.
_DUMMY_HASH = hashlib.sha256(b"no such token").hexdigest()


class CredentialRow(Protocol):
    """A stored credential's public fields: a row of ``tokens`` or of ``access_keys``."""

    @property
    def id(self) -> str: ...
    @property
    def tenant(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def scopes(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def revoked_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class TokenInfo:
    """A credential (an API token, or an S3 access key of blobstore.auth.access_keys) as ``ls`` shows it:
    everything but the secret."""

    id: str
    tenant: str
    name: str | None
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def active(self, now: datetime) -> bool:
        """Neither revoked nor expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def allows(self, tenant: str, scope: str) -> bool:
        """True if this token may do ``scope`` operations on ``tenant``."""
        return hmac.compare_digest(tenant.encode(), self.tenant.encode()) and scope in self.scopes

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times in ISO 8601)."""
        return {
            "id": self.id,
            "tenant": self.tenant,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": self.created_at.isoformat(),
            "expires_at": None if self.expires_at is None else self.expires_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
        }

    @classmethod
    def from_row(cls, row: CredentialRow) -> TokenInfo:
        return cls(
            row.id, row.tenant, row.name, tuple(row.scopes.split(",")), row.created_at, row.expires_at, row.revoked_at
        )


@dataclass(frozen=True)
class NewToken:
    """A freshly created token: ``token`` is the secret to hand to the caller, shown this once."""

    info: TokenInfo
    token: str


def tenant_of(token: str) -> str:
    """The tenant a token belongs to, read from the token itself; Unauthorized if it is malformed."""
    return _parse(token)[0]


def validate_scopes(scopes: Iterable[str], allowed: tuple[str, ...] = SCOPES) -> tuple[str, ...]:
    """The scopes in the canonical order of ``allowed``, without repeats; InvalidInput for an unknown or empty set."""
    wanted = set(scopes)
    unknown = wanted - set(allowed)
    if unknown or not wanted:
        raise InvalidInput(f"scopes must be some of {', '.join(allowed)}; got {', '.join(sorted(wanted)) or 'none'}")
    return tuple(scope for scope in allowed if scope in wanted)


def validate_new(
    tenant: str,
    scopes: Iterable[str],
    expires_in: timedelta | None,
    name: str | None,
    *,
    allowed: tuple[str, ...] = SCOPES,
) -> tuple[str, ...]:
    """Check what a new credential is made of; its scopes in canonical order (InvalidInput, InvalidTenant otherwise)."""
    validate_tenant(tenant)
    granted = validate_scopes(scopes, allowed)
    if expires_in is not None and expires_in <= timedelta(0):
        raise InvalidInput("a credential's lifetime must be positive")
    if name is not None and (not 0 < len(name) <= 255 or not name.isprintable()):
        raise InvalidInput("a credential's name must be 1-255 printable characters")
    return granted


async def create(
    core: Core,
    tenant: str,
    *,
    scopes: Iterable[str] = DEFAULT_SCOPES,
    expires_in: timedelta | None = None,
    name: str | None = None,
) -> NewToken:
    """Create a token for ``tenant``; the returned secret is not stored and cannot be shown again."""
    from blobstore.db import tokens as db

    granted = validate_new(tenant, scopes, expires_in, name)
    now = core.clock()
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    row = db.TokenRow(
        id=token_id,
        tenant=tenant,
        name=name,
        scopes=",".join(granted),
        secret_hash=_hash(secret),
        created_at=now,
        expires_at=None if expires_in is None else now + expires_in,
        revoked_at=None,
    )

    async def work(conn: AsyncConnection) -> None:
        await db.insert_token(conn, row)

    await core.database.transaction(work)
    return NewToken(TokenInfo.from_row(row), f"{_PREFIX}~{tenant}~{token_id}~{secret}")


async def list_tokens(core: Core, tenant: str | None = None) -> list[TokenInfo]:
    """Every token (or every token of ``tenant``), revoked and expired ones included, by tenant and age."""
    from blobstore.db import tokens as db

    if tenant is not None:
        validate_tenant(tenant)
    rows = await core.database.read(lambda conn: db.list_tokens(conn, tenant))
    return [TokenInfo.from_row(row) for row in rows]


async def revoke(core: Core, token_id: str) -> TokenInfo:
    """Revoke a token by id, effective on every server at once; NotFound if there is no such token.

    Revoking a revoked token changes nothing.
    """
    from blobstore.db import tokens as db

    if not isinstance(token_id, str) or not _ID.fullmatch(token_id):
        raise InvalidInput(f"invalid token id {token_id!r}: expected 16 hex digits, as `token ls` shows")
    now = core.clock()

    async def work(conn: AsyncConnection) -> db.TokenRow | None:
        await db.revoke_token(conn, token_id, now)
        return await db.find_token(conn, token_id)

    row = await core.database.transaction(work)
    if row is None:
        raise NotFound(f"no such token: {token_id}")
    return TokenInfo.from_row(row)


@dataclass(frozen=True)
class Authenticated:
    """An active token, and whether its tenant had a quota when the token was read."""

    token: TokenInfo
    #: False: a put need not read its quota room before its body (blobstore.accounting.quotas.allowance).
    quota_set: bool


async def authenticate(core: Core, token: str | None) -> TokenInfo:
    """The active token ``token`` names; Unauthorized if it is missing, malformed, unknown, expired or revoked.

    One read, no write transaction (it never waits for a writer); it sees every revocation committed before it.
    """
    return (await authenticated(core, token)).token


async def authenticated(core: Core, token: str | None) -> Authenticated:
    """:func:`authenticate`, with what the same read says of the token's tenant's quota."""
    from blobstore.db import tokens as db

    if token is None:
        raise Unauthorized("no token: send Authorization: Bearer <token>")
    tenant, token_id, secret = _parse(token)
    found = await db.lookup_token(core.database, token_id)
    matches = hmac.compare_digest(_hash(secret), _DUMMY_HASH if found is None else found.row.secret_hash)
    if found is None or not matches or found.row.tenant != tenant:
        raise Unauthorized("the token is not valid")
    info = TokenInfo.from_row(found.row)
    if not info.active(core.clock()):
        raise Unauthorized("the token has expired or was revoked")
    return Authenticated(info, found.quota_set)


def _parse(token: str) -> tuple[str, str, str]:
    match = _TOKEN.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        raise Unauthorized("malformed token: expected bst~<tenant>~<id>~<secret>, as `blobstore token create` prints")
    return match.group(1), match.group(2), match.group(3)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
