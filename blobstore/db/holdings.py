"""Queries on what one tenant holds: which digests it references, and the bytes it read."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db.catalog import blobs, refs, tenants
from blobstore.db.egress import egress


async def held_digests(conn: AsyncConnection, tenant: str, digests: Collection[str]) -> set[str]:
    """Those of ``digests`` that ``tenant`` references under at least one key (other tenants' do not count)."""
    if not digests:
        return set()
    query = (
        select(blobs.c.digest)
        .distinct()
        .join(refs, refs.c.blob_id == blobs.c.id)
        .join(tenants, tenants.c.id == refs.c.tenant_id)
        .where(tenants.c.name == tenant, blobs.c.digest.in_(list(digests)))
    )
    return {row[0] for row in await conn.execute(query)}


async def egress_bytes(conn: AsyncConnection, tenant: str, since: date, until: date) -> int:
    """Bytes ``tenant`` read from ``since`` to ``until`` (UTC days, both included)."""
    query = (
        select(func.coalesce(func.sum(egress.c.bytes), 0))
        .join(tenants, tenants.c.id == egress.c.tenant_id)
        .where(tenants.c.name == tenant, egress.c.day >= since, egress.c.day <= until)
    )
    return int((await conn.execute(query)).scalar_one())
