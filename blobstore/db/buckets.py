"""Queries of the S3 API: buckets (a tenant's named namespaces, whose objects are its refs under ``<name>/``) and the
MD5 ETags of what a tenant wrote through S3."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db import driver_reads
from blobstore.db.catalog import dialect_insert, list_refs
from blobstore.db.engine import Database
from blobstore.db.models import tables

buckets = tables["buckets"]
tenants = tables["tenants"]


async def insert_bucket(conn: AsyncConnection, tenant: int, name: str, now: datetime) -> bool:
    """Record the bucket; False (and nothing changed) if the tenant already has one of that name."""
    statement = dialect_insert(conn, buckets).values(tenant_id=tenant, name=name, created_at=now)
    inserted = await conn.execute(statement.on_conflict_do_nothing().returning(buckets.c.name))
    return inserted.first() is not None


async def list_buckets(conn: AsyncConnection, tenant: str) -> list[tuple[str, datetime]]:
    """The tenant's buckets as (name, created_at), by name."""
    query = (
        select(buckets.c.name, buckets.c.created_at)
        .join(tenants, tenants.c.id == buckets.c.tenant_id)
        .where(tenants.c.name == tenant)
        .order_by(buckets.c.name)
    )
    return [(row[0], row[1]) for row in await conn.execute(query)]


async def find_bucket(conn: AsyncConnection, tenant: str, name: str) -> datetime | None:
    """When the tenant's bucket ``name`` was created; None if the tenant has no such bucket."""
    query = (
        select(buckets.c.created_at)
        .join(tenants, tenants.c.id == buckets.c.tenant_id)
        .where(tenants.c.name == tenant, buckets.c.name == name)
    )
    created: datetime | None = (await conn.execute(query)).scalar()
    return created


async def lookup_bucket(database: Database, tenant: str, name: str) -> datetime | None:
    """:func:`find_bucket` as one statement on a driver connection (blobstore.db.driver_reads), as every S3
    request on a bucket asks it."""
    row = await driver_reads.fetch_row(database, _DRIVER_FIND_BUCKET, (tenant, name))
    return None if row is None else driver_reads.utc(row[0])


_DRIVER_FIND_BUCKET = (
    "SELECT b.created_at FROM buckets b JOIN tenants t ON t.id = b.tenant_id WHERE t.name = ? AND b.name = ?"
)


async def bucket_holds_keys(conn: AsyncConnection, tenant: int, name: str) -> bool:
    """True if the tenant has any key under ``<name>/``."""
    return bool(await list_refs(conn, tenant, f"{name}/", None, 1))


async def delete_bucket(conn: AsyncConnection, tenant: int, name: str) -> None:
    """Forget the tenant's bucket ``name`` (its keys are the caller's concern)."""
    await conn.execute(delete(buckets).where(buckets.c.tenant_id == tenant, buckets.c.name == name))


etags = tables["etags"]


async def record_md5(
    conn: AsyncConnection, tenant: str, digest: str, md5: str, part_sizes: list[int] | None = None
) -> None:
    """Remember the MD5 of the bytes of ``digest`` for the tenant, and for a multipart upload's bytes the sizes of
    its parts (nothing if it is known or the tenant is not)."""
    sizes = bindparam("part_sizes", type_=etags.c.part_sizes.type)
    tenant_row = select(tenants.c.id, bindparam("digest"), bindparam("md5"), sizes).where(tenants.c.name == tenant)
    columns = ["tenant_id", "digest", "md5", "part_sizes"]
    statement = dialect_insert(conn, etags).from_select(columns, tenant_row)
    await conn.execute(statement.on_conflict_do_nothing(), {"digest": digest, "md5": md5, "part_sizes": part_sizes})


async def lookup_md5s(database: Database, tenant: str, digests: list[str]) -> dict[str, str]:
    """The MD5s the tenant has recorded for these digests, by digest: one statement on a driver connection
    (blobstore.db.driver_reads), as S3 reads and listings ask it."""
    sql = (
        "SELECT e.digest, e.md5 FROM etags e JOIN tenants t ON t.id = e.tenant_id "
        f"WHERE t.name = ? AND e.digest IN ({driver_reads.placeholders(len(digests))})"
    )
    return {row[0]: row[1] for row in await driver_reads.fetch_rows(database, sql, (tenant, *digests))}


async def lookup_part_sizes(database: Database, tenant: str, digest: str) -> list[int] | None:
    """The sizes of the parts of the tenant's multipart upload whose bytes are ``digest``, if those bytes got their
    ETag from one: one statement on a driver connection (blobstore.db.driver_reads)."""
    row = await driver_reads.fetch_row(database, _PART_SIZES, (tenant, digest))
    if row is None or row[0] is None:
        return None
    sizes: list[int] = json.loads(row[0]) if isinstance(row[0], str) else row[0]
    return sizes


_PART_SIZES = "SELECT e.part_sizes FROM etags e JOIN tenants t ON t.id = e.tenant_id WHERE t.name = ? AND e.digest = ?"
