"""S3 access keys: who may call the S3 API (blobstore.s3), for which tenant, and for what.

An access key has a public id (``AKBS`` and 16 upper-case hex digits, the
shape S3 clients expect) and a 40-character secret shown once at creation.
SigV4 signs with the secret itself, so the server must be able to read it: it
is kept sealed (blobstore.auth.sealing, bound to the key's id), and a copy of
the database alone holds no usable secret. Every request reads the key again,
so a revocation or an expiry takes effect at once on every server.

Scopes, as for API tokens: ``read``, ``write``, ``delete``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from blobstore.auth import sealing
from blobstore.auth.tokens import TokenInfo, validate_new
from blobstore.errors import InvalidInput, NotFound
from blobstore.model.keys import validate_tenant

if TYPE_CHECKING:  # the database layer loads when a key is used, not for `blobstore --help`
    from sqlalchemy.ext.asyncio import AsyncConnection

    from blobstore.core.context import Core
    from blobstore.db import access_keys as db
    from blobstore.db.access_keys import KeyVersion

SCOPES = ("read", "write", "delete")
_ID = re.compile(r"AKBS[0-9A-F]{16}")


@dataclass(frozen=True)
class NewAccessKey:
    """A freshly created access key: ``secret`` is shown this once."""

    info: TokenInfo
    secret: str


@dataclass(frozen=True)
class ActiveKey:
    """An access key that may sign requests now, with its secret opened."""

    info: TokenInfo
    secret: str
    #: When the key's tenant created the bucket :func:`active` was asked about; None if it has no bucket of
    #: that name, or none was asked about.
    bucket_created_at: datetime | None = None
    #: False if the key's tenant had no quota when the key was read (blobstore.accounting.quotas).
    quota_set: bool = True
    #: What the key's tenant held under the key :func:`active` was asked about, with its S3 facts; None if nothing.
    version: KeyVersion | None = None


async def create(
    core: Core,
    tenant: str,
    *,
    scopes: Iterable[str] = SCOPES,
    expires_in: timedelta | None = None,
    name: str | None = None,
) -> NewAccessKey:
    """Create an access key for ``tenant``; its secret is stored only sealed."""
    from blobstore.db import access_keys as db

    granted = validate_new(tenant, scopes, expires_in, name, allowed=SCOPES)
    now = core.clock()
    key_id, secret = "AKBS" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
    row = db.AccessKeyRow(
        id=key_id,
        tenant=tenant,
        name=name,
        scopes=",".join(granted),
        sealed_secret=sealing.seal(core.settings, secret.encode(), _purpose(key_id)),
        created_at=now,
        expires_at=None if expires_in is None else now + expires_in,
        revoked_at=None,
    )

    async def work(conn: AsyncConnection) -> None:
        await db.insert_access_key(conn, row)

    await core.database.transaction(work)
    return NewAccessKey(TokenInfo.from_row(row), secret)


async def list_keys(core: Core, tenant: str | None = None) -> list[TokenInfo]:
    """Every access key (or every one of ``tenant``), revoked and expired ones included, by tenant and age."""
    from blobstore.db import access_keys as db

    if tenant is not None:
        validate_tenant(tenant)
    rows = await core.database.read(lambda conn: db.list_access_keys(conn, tenant))
    return [TokenInfo.from_row(row) for row in rows]


async def revoke(core: Core, key_id: str) -> TokenInfo:
    """Revoke an access key by id, effective on every server at the next request; NotFound if there is none.

    Revoking a revoked key changes nothing.
    """
    from blobstore.db import access_keys as db

    if not isinstance(key_id, str) or not _ID.fullmatch(key_id):
        raise InvalidInput(
            f"invalid access key id {key_id!r}: expected AKBS and 16 hex digits, as `access-key ls` shows"
        )
    now = core.clock()

    async def work(conn: AsyncConnection) -> db.AccessKeyRow | None:
        await db.revoke_access_key(conn, key_id, now)
        return await db.find_access_key(conn, key_id)

    row = await core.database.transaction(work)
    if row is None:
        raise NotFound(f"no such access key: {key_id}")
    return TokenInfo.from_row(row)


async def active(core: Core, key_id: str, *, bucket: str | None = None, key: str | None = None) -> ActiveKey | None:
    """The access key ``key_id`` with its secret, if it exists and is neither revoked nor expired; else None.
    With a ``bucket`` name, also when the key's tenant created its bucket of that name (None if it has none);
    whether the tenant has a quota; and with a ``key`` (the tenant's), the version it holds there and that
    version's S3 facts (its ETag and checksums):
    an S3 request on an object learns them all at once.

    One read, no write transaction; it sees every revocation committed before it.
    """
    from blobstore.db import access_keys as db

    if not _ID.fullmatch(key_id):
        return None
    found = await db.lookup_access_key(core.database, key_id, bucket or "", key or "")
    if found is None:
        return None
    info = TokenInfo.from_row(found.row)
    if not info.active(core.clock()):
        return None
    secret = sealing.unseal(core.settings, found.row.sealed_secret, _purpose(key_id)).decode()
    return ActiveKey(info, secret, found.bucket_created_at, found.quota_set, found.version)


def _purpose(key_id: str) -> str:
    return f"access-key:{key_id}"
