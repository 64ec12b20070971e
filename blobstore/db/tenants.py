"""Queries on tenants as a whole: their usage counters and quota limits."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db.catalog import tenants


@dataclass(frozen=True)
class TenantRow:
    """A tenant's name, usage counters and limits (None: unlimited)."""

    name: str
    used_bytes: int
    used_objects: int
    max_bytes: int | None
    max_objects: int | None


_COLUMNS = (tenants.c.name, tenants.c.used_bytes, tenants.c.used_objects, tenants.c.max_bytes, tenants.c.max_objects)


async def tenant_rows(conn: AsyncConnection, name: str | None = None) -> list[TenantRow]:
    """Every tenant (or only ``name``), by name."""
    query = select(*_COLUMNS).order_by(tenants.c.name)
    if name is not None:
        query = query.where(tenants.c.name == name)
    return [TenantRow(*row) for row in await conn.execute(query)]


async def set_limits(conn: AsyncConnection, tenant: int, limits: dict[str, int | None]) -> None:
    """Set some of ``max_bytes`` / ``max_objects`` (None: no limit). Usage is untouched, even if above a new limit."""
    if limits:
        await conn.execute(update(tenants).where(tenants.c.id == tenant).values(**limits))
