"""Queries of S3 multipart uploads: the uploads in progress and their staged parts, and completed uploads kept
for a retried completion.

A part row holds a reference on its blob, as a ref does: every statement that adds or removes part rows is
run by a caller that holds the tenant's row lock and, in the same transaction, adds the matching deltas to
the blobs' ``refcount`` (:func:`blobstore.db.batches.add_refcounts`) and the parts' sizes to the tenant's
``used_bytes``. :func:`release` is that for a whole upload (abort, expiry); a completion's binding does it
with what :func:`complete` returns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db import batches
from blobstore.db.catalog import blobs, tenants
from blobstore.db.models import tables

uploads = tables["multipart_uploads"]
parts = tables["multipart_parts"]


@dataclass(frozen=True)
class UploadRow:
    """A multipart upload in progress: the bucket, key, type, metadata and stored response headers of the object
    it will become."""

    id: str
    bucket: str
    key: str
    content_type: str | None
    metadata: dict[str, str]
    created_at: datetime
    headers: dict[str, str]
    #: The additional checksum its parts and object are recorded with (``crc32``, ``sha256``, ...), if any.
    checksum_algorithm: str | None


@dataclass(frozen=True)
class PartRow:
    """A staged part, with the blob that holds its bytes."""

    number: int
    blob_id: int
    size: int
    md5: str
    created_at: datetime
    digest: str
    object_key: str
    #: Its checksum of the upload's algorithm (base64), if the upload has one.
    checksum: str | None
    #: The blob's encoded frame index (blobstore.storage.frames); None for a blob stored raw, before frames.
    frames: bytes | None


_UPLOAD_COLUMNS = (
    uploads.c.id,
    uploads.c.bucket,
    uploads.c.key,
    uploads.c.content_type,
    uploads.c.metadata,
    uploads.c.created_at,
    uploads.c.headers,
    uploads.c.checksum_algorithm,
)


async def insert_upload(conn: AsyncConnection, tenant: int, upload: UploadRow) -> None:
    """Record a new upload of the tenant (touched now: at its creation)."""
    await conn.execute(
        insert(uploads).values(
            id=upload.id,
            tenant_id=tenant,
            bucket=upload.bucket,
            key=upload.key,
            content_type=upload.content_type,
            metadata=upload.metadata,
            headers=upload.headers,
            checksum_algorithm=upload.checksum_algorithm,
            created_at=upload.created_at,
            touched_at=upload.created_at,
        )
    )


async def find_upload(conn: AsyncConnection, tenant: int, upload_id: str, bucket: str, key: str) -> UploadRow | None:
    """The tenant's upload ``upload_id`` of ``key`` in ``bucket`` in progress; None if there is none (another
    tenant's is none, as is a completed one)."""
    query = select(*_UPLOAD_COLUMNS).where(
        uploads.c.id == upload_id,
        uploads.c.tenant_id == tenant,
        uploads.c.bucket == bucket,
        uploads.c.key == key,
        uploads.c.completed_at.is_(None),
    )
    row = (await conn.execute(query)).first()
    return None if row is None else UploadRow(*row)


async def find_upload_named(
    conn: AsyncConnection, tenant: str, upload_id: str, bucket: str, key: str
) -> UploadRow | None:
    """:func:`find_upload` by the tenant's name (a read, outside the tenant's lock)."""
    tenant_id = (await conn.execute(select(tenants.c.id).where(tenants.c.name == tenant))).scalar()
    return None if tenant_id is None else await find_upload(conn, tenant_id, upload_id, bucket, key)


async def touch(conn: AsyncConnection, upload_id: str, now: datetime) -> None:
    """Restart the upload's expiry clock."""
    await conn.execute(update(uploads).where(uploads.c.id == upload_id).values(touched_at=now))


_PART_COLUMNS = (
    parts.c.part_number,
    parts.c.blob_id,
    parts.c.size,
    parts.c.md5,
    parts.c.created_at,
    blobs.c.digest,
    blobs.c.object_key,
    parts.c.checksum,
    blobs.c.frames,
)


async def list_parts(
    conn: AsyncConnection, upload_id: str, *, after: int = 0, limit: int | None = None
) -> list[PartRow]:
    """The upload's parts numbered above ``after``, by number, at most ``limit``."""
    query = (
        select(*_PART_COLUMNS)
        .join(blobs, blobs.c.id == parts.c.blob_id)
        .where(parts.c.upload_id == upload_id, parts.c.part_number > after)
        .order_by(parts.c.part_number)
        .limit(limit)
    )
    return [PartRow(*row) for row in await conn.execute(query)]


async def find_part(conn: AsyncConnection, upload_id: str, number: int) -> PartRow | None:
    """The upload's part ``number``, if it was uploaded."""
    query = (
        select(*_PART_COLUMNS)
        .join(blobs, blobs.c.id == parts.c.blob_id)
        .where(parts.c.upload_id == upload_id, parts.c.part_number == number)
    )
    row = (await conn.execute(query)).first()
    return None if row is None else PartRow(*row)


async def put_part(
    conn: AsyncConnection,
    upload_id: str,
    number: int,
    blob_id: int,
    size: int,
    md5: str,
    checksum: str | None,
    now: datetime,
) -> None:
    """Record part ``number`` (replacing one of that number: the caller has read it and settles its counts)."""
    await conn.execute(delete(parts).where(parts.c.upload_id == upload_id, parts.c.part_number == number))
    values = {"blob_id": blob_id, "size": size, "md5": md5, "checksum": checksum, "created_at": now}
    await conn.execute(insert(parts).values(upload_id=upload_id, part_number=number, **values))


async def forget(conn: AsyncConnection, upload_id: str) -> list[tuple[int, int]]:
    """Delete the upload and its parts; (blob id, size) of each part, whose reference and bytes the caller
    releases in the same transaction (it holds the tenant's lock)."""
    released = await _delete_parts(conn, upload_id)
    await conn.execute(delete(uploads).where(uploads.c.id == upload_id))
    return released


async def complete(
    conn: AsyncConnection, upload_id: str, digest: str, etag: str, now: datetime
) -> list[tuple[int, int]]:
    """Delete the upload's parts and keep it as completed at ``now`` (its key bound then to the bytes of
    ``digest``, S3 ETag ``etag``), for :func:`find_completed`; (blob id, size) of each part, released by the
    caller as for :func:`forget`."""
    released = await _delete_parts(conn, upload_id)
    completion = {"completed_at": now, "touched_at": now, "digest": digest, "etag": etag}
    await conn.execute(update(uploads).where(uploads.c.id == upload_id).values(**completion))
    return released


async def _delete_parts(conn: AsyncConnection, upload_id: str) -> list[tuple[int, int]]:
    deleted = await conn.execute(
        delete(parts).where(parts.c.upload_id == upload_id).returning(parts.c.blob_id, parts.c.size)
    )
    return [(int(row[0]), int(row[1])) for row in deleted]


@dataclass(frozen=True)
class CompletedRow:
    """A completed upload: when its key was bound, to the bytes of ``digest``, the S3 ETag it answered and the
    algorithm of its COMPOSITE checksum, if any."""

    completed_at: datetime
    digest: str
    etag: str
    checksum_algorithm: str | None


async def find_completed(
    conn: AsyncConnection, tenant: str, upload_id: str, bucket: str, key: str
) -> CompletedRow | None:
    """The named tenant's completed upload ``upload_id`` of ``key`` in ``bucket``, if GC has not forgotten it."""
    query = (
        select(uploads.c.completed_at, uploads.c.digest, uploads.c.etag, uploads.c.checksum_algorithm)
        .join(tenants, tenants.c.id == uploads.c.tenant_id)
        .where(
            tenants.c.name == tenant,
            uploads.c.id == upload_id,
            uploads.c.bucket == bucket,
            uploads.c.key == key,
            uploads.c.completed_at.is_not(None),
        )
    )
    row = (await conn.execute(query)).first()
    return None if row is None else CompletedRow(*row)


async def any_completed_before(conn: AsyncConnection, cutoff: datetime) -> bool:
    """True if an upload was completed before ``cutoff`` (a read: GC takes no write lock for nothing)."""
    query = select(uploads.c.id).where(uploads.c.completed_at.is_not(None), uploads.c.touched_at < cutoff).limit(1)
    return (await conn.execute(query)).first() is not None


async def forget_completed(conn: AsyncConnection, cutoff: datetime) -> None:
    """Delete the completed uploads completed before ``cutoff`` (they hold no parts, so nothing to release)."""
    await conn.execute(delete(uploads).where(uploads.c.completed_at.is_not(None), uploads.c.touched_at < cutoff))


async def release(conn: AsyncConnection, tenant: int, upload_id: str, now: datetime) -> None:
    """:func:`forget` the upload, releasing its parts' references and freeing their bytes from the tenant's
    usage. The caller holds the tenant's lock; the part blobs are locked here, in id order, by the refcount
    update (as every writer locks them)."""
    deltas: Counter[int] = Counter()
    freed = 0
    for blob_id, size in await forget(conn, upload_id):
        deltas[blob_id] -= 1
        freed += size
    await batches.add_refcounts(conn, deltas, now)
    await batches.add_usage(conn, tenant, -freed, 0)


async def list_uploads(
    conn: AsyncConnection, tenant: str, bucket: str, prefix: str, after: tuple[str, str | None] | None, limit: int
) -> list[UploadRow]:
    """The tenant's uploads in ``bucket`` whose keys start with ``prefix``, by key then upload id, at most
    ``limit``: after ``(key, upload id)``, or with an upload id of None after every upload of that key."""
    query = (
        select(*_UPLOAD_COLUMNS)
        .join(tenants, tenants.c.id == uploads.c.tenant_id)
        .where(
            tenants.c.name == tenant,
            uploads.c.bucket == bucket,
            uploads.c.key.startswith(prefix, autoescape=True),
            uploads.c.completed_at.is_(None),
        )
        .order_by(uploads.c.key, uploads.c.id)
        .limit(limit)
    )
    if after is not None:
        key, upload_id = after
        later = uploads.c.key > key
        query = query.where(
            later if upload_id is None else or_(later, and_(uploads.c.key == key, uploads.c.id > upload_id))
        )
    return [UploadRow(*row) for row in await conn.execute(query)]


async def expired_uploads(conn: AsyncConnection, cutoff: datetime, after_id: str, limit: int) -> list[tuple[str, str]]:
    """(tenant name, upload id) of up to ``limit`` uploads in progress untouched since before ``cutoff`` with ids
    after ``after_id``, by id."""
    query = (
        select(tenants.c.name, uploads.c.id)
        .join(tenants, tenants.c.id == uploads.c.tenant_id)
        .where(uploads.c.touched_at < cutoff, uploads.c.id > after_id, uploads.c.completed_at.is_(None))
        .order_by(uploads.c.id)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in await conn.execute(query)]


async def expire(conn: AsyncConnection, tenant: int, upload_id: str, cutoff: datetime, now: datetime) -> bool:
    """:func:`release` the upload if, under the tenant's lock the caller holds, it is still untouched since
    before ``cutoff`` (a part that arrived meanwhile keeps it); True if it was released."""
    still = select(uploads.c.id).where(
        uploads.c.id == upload_id, uploads.c.touched_at < cutoff, uploads.c.completed_at.is_(None)
    )
    if (await conn.execute(still)).first() is None:
        return False
    await release(conn, tenant, upload_id, now)
    return True


def staged_bytes(rows: Sequence[PartRow]) -> int:
    """The bytes the parts charge to their tenant."""
    return sum(row.size for row in rows)
