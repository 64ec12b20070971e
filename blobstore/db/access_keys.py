"""Queries on S3 access keys: insert, find by id, list, revoke. Secrets reach this layer sealed only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db import driver_reads
from blobstore.db.engine import Database
from blobstore.db.models import tables
from blobstore.model.s3_facts import S3Facts

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
#: :data:`_FIND` for blobstore.db.driver_reads, with what an S3 request on an object needs of the key's tenant:
#: when it created its bucket of a name, whether it has a quota (NULL: the tenant has no row yet), and the version
#: it holds under a key with its S3 facts (blobstore.db.s3_facts): MD5 and ``algorithm:value`` checksums joined
#: by spaces by ``{aggregate}`` (SQLite's group_concat, PostgreSQL's string_agg; base64 holds no ``:`` or space).
_DRIVER_FIND = (
    f"SELECT {', '.join('k.' + column.name for column in _COLUMNS)}, "
    "(SELECT b.created_at FROM buckets b WHERE b.tenant_id = t.id AND b.name = ?), "
    "t.max_bytes IS NOT NULL OR t.max_objects IS NOT NULL, r.created_at, o.digest, e.md5, "
    "(SELECT {aggregate}(c.algorithm || ':' || c.value, ' ') FROM checksums c "
    "WHERE c.tenant_id = t.id AND c.digest = o.digest) "
    "FROM access_keys k LEFT JOIN tenants t ON t.name = k.tenant "
    "LEFT JOIN refs r ON r.tenant_id = t.id AND r.key = ? LEFT JOIN blobs o ON o.id = r.blob_id "
    "LEFT JOIN etags e ON e.tenant_id = t.id AND e.digest = o.digest "
    "WHERE k.id = ?"
)


@dataclass(frozen=True)
class KeyVersion:
    """The version a tenant holds under a key: its digest, when it was written, and its S3 facts."""

    digest: str
    created_at: datetime
    facts: S3Facts


@dataclass(frozen=True)
class KeyLookup:
    """An access key's row, and what an S3 request on an object needs to know of the key's tenant beside it."""

    row: AccessKeyRow
    #: When the tenant created the bucket looked up; None if it has no bucket of that name.
    bucket_created_at: datetime | None
    #: True if the tenant has a limit of bytes or objects (blobstore.accounting.quotas).
    quota_set: bool
    #: What the tenant holds under the key looked up; None if nothing.
    version: KeyVersion | None = None


async def insert_access_key(conn: AsyncConnection, row: AccessKeyRow) -> None:
    """Record a new access key."""
    await conn.execute(insert(access_keys).values({column.name: getattr(row, column.name) for column in _COLUMNS}))


async def find_access_key(conn: AsyncConnection, key_id: str) -> AccessKeyRow | None:
    """The access key with this id, revoked or not; None if there is none."""
    row = (await conn.execute(_FIND, {"key_id": key_id})).first()
    return None if row is None else AccessKeyRow(*row)


async def lookup_access_key(database: Database, key_id: str, bucket: str = "", key: str = "") -> KeyLookup | None:
    """:func:`find_access_key` as one statement on a driver connection (blobstore.db.driver_reads): the lookup
    every S3 request makes. With it, in the same statement, when the key's tenant created its bucket named
    ``bucket`` (None if it has none of that name, as for the default ``""``), whether the tenant has a quota, and
    the version it holds under ``key`` with its S3 facts: a request on an object needs them all. A read, no
    lock; it sees every revocation (and every bucket, quota or key change) committed before it."""
    sql = _DRIVER_FIND.format(aggregate="group_concat" if database.is_sqlite else "string_agg")
    row = await driver_reads.fetch_row(database, sql, (bucket, key, key_id))
    if row is None:
        return None
    access_key = AccessKeyRow(*driver_reads.times_as_utc(row[:8], first=5))
    bucket_created_at, quota_set, created_at, digest, md5, checksums = row[8:]
    version = None
    if digest is not None:
        written = driver_reads.utc(created_at)
        assert written is not None, "a reference has a time"
        recorded = dict(pair.split(":", 1) for pair in checksums.split(" ")) if checksums else {}
        version = KeyVersion(digest, written, S3Facts(md5, recorded))
    return KeyLookup(access_key, driver_reads.utc(bucket_created_at), bool(quota_set), version)


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
