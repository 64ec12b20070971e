"""Queries of what S3 knows a tenant's bytes by (blobstore.model.s3_facts): their MD5 ETag and checksums."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db import buckets, checksums
from blobstore.model.s3_facts import S3Facts


async def record(conn: AsyncConnection, tenant: str, digest: str, facts: S3Facts) -> None:
    """Remember ``facts`` of the tenant's bytes of ``digest``, in the caller's transaction (what is already known
    stays)."""
    if facts.md5 is not None:
        await buckets.record_md5(conn, tenant, digest, facts.md5)
    for algorithm, value in facts.checksums.items():
        await checksums.record(conn, tenant, digest, algorithm, value)
