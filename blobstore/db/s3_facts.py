"""Queries of what S3 knows a tenant's bytes by (blobstore.model.s3_facts): their MD5 ETag and checksums."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db import buckets, checksums, driver_reads
from blobstore.db.engine import Database
from blobstore.model.s3_facts import S3Facts


async def record(conn: AsyncConnection, tenant: str, digest: str, facts: S3Facts) -> None:
    """Remember ``facts`` of the tenant's bytes of ``digest``, in the caller's transaction (what is already known
    stays)."""
    if facts.md5 is not None:
        await buckets.record_md5(conn, tenant, digest, facts.md5)
    for algorithm, value in facts.checksums.items():
        await checksums.record(conn, tenant, digest, algorithm, value)


async def lookup(database: Database, tenant: str, digest: str) -> S3Facts:
    """The facts the tenant has recorded for the bytes of ``digest`` (empty if none): one statement on a driver
    connection (blobstore.db.driver_reads), as every GetObject and HeadObject asks it."""
    rows = await driver_reads.fetch_rows(database, _LOOKUP, (digest, digest, tenant))
    md5 = rows[0][0] if rows else None
    return S3Facts(md5, {row[1]: row[2] for row in rows if row[1] is not None})


#: One row per checksum (or one without): the MD5 repeated beside each.
_LOOKUP = """
SELECT e.md5, c.algorithm, c.value FROM tenants t
LEFT JOIN etags e ON e.tenant_id = t.id AND e.digest = ?
LEFT JOIN checksums c ON c.tenant_id = t.id AND c.digest = ?
WHERE t.name = ?
"""
