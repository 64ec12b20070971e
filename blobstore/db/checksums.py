"""Queries of the S3 API's additional checksums: what a tenant's uploads carried, by digest and algorithm."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db.catalog import dialect_insert
from blobstore.db.models import tables

checksums = tables["checksums"]
tenants = tables["tenants"]


async def record(conn: AsyncConnection, tenant: str, digest: str, algorithm: str, value: str) -> None:
    """Remember the checksum of the bytes of ``digest`` for the tenant (nothing if known, or the tenant is not)."""
    tenant_row = select(tenants.c.id, bindparam("digest"), bindparam("algorithm"), bindparam("value")).where(
        tenants.c.name == tenant
    )
    columns = ["tenant_id", "digest", "algorithm", "value"]
    statement = dialect_insert(conn, checksums).from_select(columns, tenant_row)
    parameters = {"digest": digest, "algorithm": algorithm, "value": value}
    await conn.execute(statement.on_conflict_do_nothing(), parameters)
