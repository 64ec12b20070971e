"""Aggregate queries behind cost reports, computed in the database with GROUP BY.

No query here returns a row per reference: per-tenant figures come back as one
row per tenant, store-wide figures as one row. The per-tenant query reads only
the ``refs (blob_id, tenant_id, size)`` index, once, in its order, so on
PostgreSQL it needs neither the table nor a sort::

    pairs   (blob, tenant) -> k references, blob size         GROUP BY blob_id, tenant_id
    shares  + n = references to the blob, holders = tenants   window functions per blob
              holding it, first = the smallest holder id
    result  per tenant: sums over its pairs                   GROUP BY tenant_id

Attribution (see blobstore.accounting.report for the rule in words): each of a blob's ``n``
references is attributed ``size // n`` bytes and the blob's first holder (the
smallest tenant id) also gets the remainder ``size % n``, so the attributed
bytes of all tenants add up exactly to the bytes of the referenced blobs. A reference's size is its blob's
size (the binding copies it, :mod:`blobstore.db.binding`), so the blob table is not read at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Integer, and_, case, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db.catalog import DELETING, LIVE, UPLOADING, blobs, refs, tenants


@dataclass(frozen=True)
class TenantFigures:
    """Storage figures of one tenant; see blobstore.accounting.report for what each one means."""

    tenant: str
    objects: int
    logical_bytes: int
    unique_bytes: int
    shared_bytes: int
    attributed_bytes: int
    #: Blobs of which this tenant is the first holder; over all tenants, every referenced blob once.
    first_held_blobs: int


@dataclass(frozen=True)
class PendingGc:
    """Blobs storage still holds that GC has yet to reclaim."""

    blobs: int
    bytes: int


async def without_jit(conn: AsyncConnection) -> None:
    """Turn PostgreSQL's JIT compilation off for the rest of this transaction: for the report's
    queries it costs more (100+ ms) than it saves. Nothing to do on SQLite."""
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql("SET LOCAL jit = off")


async def tenant_figures(conn: AsyncConnection) -> list[TenantFigures]:
    """Every tenant's figures (zeros for a tenant without references), by tenant name."""
    pairs = (
        select(
            refs.c.blob_id,
            refs.c.tenant_id,
            cast(func.count(), Integer).label("k"),
            func.max(refs.c.size).label("size"),
        )
        .group_by(refs.c.blob_id, refs.c.tenant_id)
        .subquery("pairs")
    )
    per_blob = pairs.c.blob_id
    shares = select(
        pairs.c.tenant_id,
        pairs.c.k,
        pairs.c.size,
        cast(func.sum(pairs.c.k).over(partition_by=per_blob), BigInteger).label("n"),
        func.count().over(partition_by=per_blob).label("holders"),
        func.min(pairs.c.tenant_id).over(partition_by=per_blob).label("first"),
    ).subquery("shares")
    k, size, n, first = shares.c.k, shares.c.size, shares.c.n, shares.c.tenant_id == shares.c.first
    sums = (
        select(
            shares.c.tenant_id,
            func.sum(k).label("objects"),
            func.sum(k * size).label("logical"),
            func.sum(case((shares.c.holders == 1, size), else_=0)).label("unique"),
            func.sum(case((shares.c.holders > 1, size), else_=0)).label("shared"),
            func.sum((size // n) * k + case((first, size % n), else_=0)).label("attributed"),
            func.sum(case((first, 1), else_=0)).label("first_held"),
        )
        .group_by(shares.c.tenant_id)
        .subquery("sums")
    )
    query = (
        select(tenants.c.name, *(func.coalesce(column, 0) for column in list(sums.c)[1:]))
        .outerjoin(sums, sums.c.tenant_id == tenants.c.id)
        .order_by(tenants.c.name)
    )
    return [TenantFigures(row[0], *(int(value) for value in row[1:])) for row in await conn.execute(query)]


async def pending_gc(conn: AsyncConnection, cutoff: datetime) -> PendingGc:
    """Blobs GC will reclaim, now or once past the grace period: unreferenced live blobs, tombstoned
    blobs, and uploads begun before ``cutoff`` that never committed (younger ones are in flight).

    The conditions are GC's own (blobstore.db.maintenance) without the age of unreferenced blobs,
    and they select through the ``(state, unreferenced_since)`` index: the cost follows what is
    pending, not the number of blobs.
    """
    condition = or_(
        and_(blobs.c.state == LIVE, blobs.c.unreferenced_since.is_not(None), blobs.c.refcount <= 0),
        blobs.c.state == DELETING,
        and_(blobs.c.state == UPLOADING, blobs.c.created_at < cutoff),
    )
    query = select(func.count(), func.coalesce(func.sum(blobs.c.size), 0)).where(condition)
    count, total = (await conn.execute(query)).one()
    return PendingGc(int(count), int(total))
