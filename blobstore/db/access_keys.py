"""Queries on S3 access keys: insert, find by id, list, revoke. Secrets reach this layer sealed only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db import driver_reads
from blobstore.db.engine import Database
from blobstore.db.models import tables

access_keys = tables["access_keys"]


@dataclass(frozen=True)
class AccessKeyRow:
    """One row of ``access_keys``; ``scopes`` is a comma-separated list, ``sealed_secret`` opens with
    blobstore.auth.sealing."""

    id: str
    tenant: str
    name: str | None
    scopes: str
    sealed_secret: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


_COLUMNS = tuple(access_keys.c[name] for name in AccessKeyRow.__dataclass_fields__)
#: The lookup every S3 request makes, built once.
_FIND = select(*_COLUMNS).where(access_keys.c.id == bindparam("key_id"))
#: :data:`_FIND` for blobstore.db.driver_reads, with the creation time of the key's tenant's bucket of a name and
#: whether the tenant has a quota (NULL: the tenant has no row yet).
_DRIVER_FIND = (
    f"SELECT {', '.join('k.' + column.name for column in _COLUMNS)}, "
    "(SELECT b.created_at FROM buckets b JOIN tenants t ON t.id = b.tenant_id WHERE t.name = k.tenant AND b.name = ?), "
    "(SELECT t.max_bytes IS NOT NULL OR t.max_objects IS NOT NULL FROM tenants t WHERE t.name = k.tenant) "
    "FROM access_keys k WHERE k.id = ?"
)


@dataclass(frozen=True)
class KeyLookup:
    """An access key's row, and what an S3 request on a bucket needs to know of the key's tenant beside it."""

    row: AccessKeyRow
    #: When the tenant created the bucket looked up; None if it has no bucket of that name.
    bucket_created_at: datetime | None
    #: True if the tenant has a limit of bytes or objects (blobstore.accounting.quotas).
    quota_set: bool


async def insert_access_key(conn: AsyncConnection, row: AccessKeyRow) -> None:
    """Record a new access key."""
    await conn.execute(insert(access_keys).values({column.name: getattr(row, column.name) for column in _COLUMNS}))


async def find_access_key(conn: AsyncConnection, key_id: str) -> AccessKeyRow | None:
    """The access key with this id, revoked or not; None if there is none."""
    row = (await conn.execute(_FIND, {"key_id": key_id})).first()
    return None if row is None else AccessKeyRow(*row)


async def lookup_access_key(database: Database, key_id: str, bucket: str = "") -> KeyLookup | None:
    """:func:`find_access_key` as one statement on a driver connection (blobstore.db.driver_reads): the lookup
    every S3 request makes. With it, in the same statement, when the key's tenant created its bucket named
    ``bucket`` (None if it has none of that name, as for the default ``""``) and whether the tenant has a quota:
    a request on a bucket needs all three. A read, no lock; it sees every revocation (and every bucket or quota
    change) committed before it."""
    row = await driver_reads.fetch_row(database, _DRIVER_FIND, (bucket, key_id))
    if row is None:
        return None
    *key, bucket_created_at = driver_reads.times_as_utc(row[:-1], first=5)
    return KeyLookup(AccessKeyRow(*key), bucket_created_at, bool(row[-1]))


async def list_access_keys(conn: AsyncConnection, tenant: str | None) -> list[AccessKeyRow]:
    """Every access key (or every one of ``tenant``), by tenant and creation time."""
    query = select(*_COLUMNS).order_by(access_keys.c.tenant, access_keys.c.created_at, access_keys.c.id)
    if tenant is not None:
        query = query.where(access_keys.c.tenant == tenant)
    return [AccessKeyRow(*row) for row in await conn.execute(query)]


async def revoke_access_key(conn: AsyncConnection, key_id: str, now: datetime) -> None:
    """Mark the access key revoked at ``now`` unless it already is."""
    await conn.execute(
        update(access_keys).where(access_keys.c.id == key_id, access_keys.c.revoked_at.is_(None)).values(revoked_at=now)
    )
