"""Queries on the ``egress`` table: bytes read per tenant and UTC day."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from sqlalchemy import BigInteger, Date, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db.catalog import dialect_insert, tenants
from blobstore.db.models import tables

egress = tables["egress"]


async def record(conn: AsyncConnection, tenant: str, day: date, nbytes: int) -> None:
    """Add ``nbytes`` to the tenant's egress on ``day`` in one statement,
    ``INSERT ... SELECT ... ON CONFLICT (tenant_id, day) DO UPDATE SET bytes = bytes + excluded.bytes``,
    which concurrent readers in any number of processes cannot lose updates of.
    A tenant that has no row records nothing.
    """
    source = select(tenants.c.id, literal(day, Date), literal(nbytes, BigInteger)).where(tenants.c.name == tenant)
    statement = dialect_insert(conn, egress).from_select(["tenant_id", "day", "bytes"], source)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[egress.c.tenant_id, egress.c.day],
            set_={"bytes": egress.c.bytes + statement.excluded.bytes},
        )
    )


async def record_many(conn: AsyncConnection, counts: Mapping[tuple[str, date], int]) -> None:
    """:func:`record` of each ``(tenant, day) -> bytes``, in the caller's transaction."""
    for (tenant, day), nbytes in sorted(counts.items()):
        await record(conn, tenant, day, nbytes)


async def by_tenant(conn: AsyncConnection, since: date, until: date) -> dict[str, int]:
    """Bytes each tenant read from ``since`` to ``until`` (UTC days, both included); absent: read nothing."""
    query = (
        select(tenants.c.name, func.sum(egress.c.bytes))
        .join(tenants, tenants.c.id == egress.c.tenant_id)
        .where(egress.c.day >= since, egress.c.day <= until)
        .group_by(tenants.c.name)
    )
    return {row[0]: int(row[1]) for row in await conn.execute(query)}
