"""Queries of the S3 API's additional checksums: what a tenant's uploads carried, by digest and algorithm."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db import driver_reads
from blobstore.db.catalog import dialect_insert
from blobstore.db.engine import Database
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


async def lookup(database: Database, tenant: str, digest: str) -> dict[str, str]:
    """The checksums the tenant has recorded for the bytes of ``digest``, by algorithm: one statement on a driver
    connection (blobstore.db.driver_reads), as every GET with ``x-amz-checksum-mode`` (boto3's default) asks."""
    return {row[0]: row[1] for row in await driver_reads.fetch_rows(database, _LOOKUP, (tenant, digest))}


_LOOKUP = (
    "SELECT c.algorithm, c.value FROM checksums c JOIN tenants t ON t.id = c.tenant_id "
    "WHERE t.name = ? AND c.digest = ?"
)
