"""Queries for garbage collection and fsck: finding, tombstoning and forgetting reclaimable blobs.

Every state change here is a conditional UPDATE that re-checks, under the row
lock, the condition that made a blob reclaimable, so a plan that went stale
(a put acquired the blob meanwhile) changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db.catalog import DELETING, LIVE, UPLOADING, blobs, refs, tenants
from blobstore.db.models import tables

#: Staged parts of multipart uploads: each holds a reference on its blob, counted in ``refcount`` as refs are,
#: and charges its size to its tenant's ``used_bytes`` (not ``used_objects``).
parts = tables["multipart_parts"]
uploads = tables["multipart_uploads"]


@dataclass(frozen=True)
class Waiting:
    """Unreferenced blobs still inside the grace period: how many, their bytes, and the earliest moment one
    became unreferenced (None when there are none)."""

    blobs: int
    size: int
    first_unreferenced: datetime | None


@dataclass(frozen=True)
class Reclaimable:
    """A blob GC may reclaim, and why: ``unreferenced``, ``abandoned-upload`` or ``tombstoned``."""

    blob_id: int
    object_key: str
    size: int
    reason: str
    #: The node whose spool holds (or may hold) the object too (docs/spool.md); None for most blobs.
    spooled_on: str | None = None


def reclaimable_condition(cutoff: datetime, now: datetime) -> ColumnElement[bool]:
    """Blobs whose objects may be deleted: unreferenced since before ``cutoff``, uploads whose
    uploader stopped renewing its lease before ``now`` (rows from before leases: begun before
    ``cutoff``), or already tombstoned. Never a blob any reference or staged part names.
    """
    unreferenced = and_(blobs.c.state == LIVE, blobs.c.refcount == 0, blobs.c.unreferenced_since < cutoff)
    lease_expired = or_(
        blobs.c.lease_expires_at < now, and_(blobs.c.lease_expires_at.is_(None), blobs.c.created_at < cutoff)
    )
    abandoned = and_(blobs.c.state == UPLOADING, lease_expired)
    no_reference = ~exists().where(refs.c.blob_id == blobs.c.id) & ~exists().where(parts.c.blob_id == blobs.c.id)
    return and_(or_(unreferenced, abandoned, blobs.c.state == DELETING), no_reference)


def reclaimable_on(node_id: str) -> ColumnElement[bool]:
    """Blobs a GC run on ``node_id`` may reclaim: any but those another node's spool holds (only that node can
    delete its spool file)."""
    return or_(blobs.c.spooled_on.is_(None), blobs.c.spooled_on == node_id)


async def find_reclaimable(
    conn: AsyncConnection,
    cutoff: datetime,
    now: datetime,
    node_id: str,
    *,
    after_id: int = 0,
    limit: int = 1000,
) -> list[Reclaimable]:
    """Up to ``limit`` blobs reclaimable at ``cutoff``/``now`` by a GC run on ``node_id``, with ids above
    ``after_id``, by id."""
    reason = (
        select(blobs.c.id, blobs.c.object_key, blobs.c.size, blobs.c.state)
        .where(blobs.c.id > after_id, reclaimable_condition(cutoff, now), reclaimable_on(node_id))
        .order_by(blobs.c.id)
        .limit(limit)
    )
    labels = {LIVE: "unreferenced", UPLOADING: "abandoned-upload", DELETING: "tombstoned"}
    return [Reclaimable(row[0], row[1], row[2], labels[row[3]]) for row in await conn.execute(reason)]


async def waiting_for_grace(conn: AsyncConnection, cutoff: datetime) -> Waiting:
    """The live blobs unreferenced since ``cutoff`` or later: GC reclaims them once the grace period has passed."""
    query = select(func.count(), func.coalesce(func.sum(blobs.c.size), 0), func.min(blobs.c.unreferenced_since)).where(
        blobs.c.state == LIVE, blobs.c.refcount == 0, blobs.c.unreferenced_since >= cutoff
    )
    count, size, first = (await conn.execute(query)).one()
    return Waiting(count, int(size), first)  # PostgreSQL sums bigints as numeric


async def tombstone(
    conn: AsyncConnection, blob_ids: Sequence[int], cutoff: datetime, now: datetime, node_id: str
) -> list[Reclaimable]:
    """Move the blobs among ``blob_ids`` still reclaimable by a GC run on ``node_id`` to ``deleting``; return
    them.

    After this commits no put can acquire them, so their objects may be deleted.
    """
    result = await conn.execute(
        update(blobs)
        .where(blobs.c.id.in_(blob_ids), reclaimable_condition(cutoff, now), reclaimable_on(node_id))
        .values(state=DELETING)
        .returning(blobs.c.id, blobs.c.object_key, blobs.c.size, blobs.c.spooled_on)
    )
    return [Reclaimable(row[0], row[1], row[2], "tombstoned", row[3]) for row in result]


async def leased_object_keys(conn: AsyncConnection, object_keys: Sequence[str], now: datetime) -> set[str]:
    """Which of ``object_keys`` an upload in progress (``uploading``, lease not expired at ``now``) is writing."""
    query = select(blobs.c.object_key).where(
        blobs.c.object_key.in_(object_keys), blobs.c.state == UPLOADING, blobs.c.lease_expires_at >= now
    )
    return {row[0] for row in await conn.execute(query)}


async def known_object_keys(conn: AsyncConnection, object_keys: Sequence[str]) -> set[str]:
    """Which of ``object_keys`` a blob row (in any state) accounts for."""
    query = select(blobs.c.object_key).where(blobs.c.object_key.in_(object_keys))
    return {row[0] for row in await conn.execute(query)}


@dataclass(frozen=True)
class BlobRecord:
    """A blob row as fsck sees it, with the number of references that really point at it."""

    blob_id: int
    digest: str
    object_key: str
    size: int
    state: str
    refcount: int
    actual_refs: int
    #: The encoded frame index (blobstore.storage.frames); None for a blob stored raw, before frames.
    frames: bytes | None
    #: The stored object's length: its frames', or ``size`` for a raw blob.
    stored_size: int
    #: The node whose spool holds the object until drained (docs/spool.md); None: in object storage.
    spooled_on: str | None = None


async def blob_records(conn: AsyncConnection, *, after_key: str = "", limit: int = 1000) -> list[BlobRecord]:
    """Up to ``limit`` blob rows with object keys after ``after_key``, in object-key (code point)
    order, each with its true reference count (references and staged parts)."""
    actual = _references_of(blobs.c.id)
    query = (
        select(
            blobs.c.id,
            blobs.c.digest,
            blobs.c.object_key,
            blobs.c.size,
            blobs.c.state,
            blobs.c.refcount,
            actual,
            blobs.c.frames,
            func.coalesce(blobs.c.stored_size, blobs.c.size),
            blobs.c.spooled_on,
        )
        .where(blobs.c.object_key > after_key)
        .order_by(blobs.c.object_key)
        .limit(limit)
    )
    return [BlobRecord(*row[:9], spooled_on=row[9]) for row in await conn.execute(query)]


async def refs_to_unusable_blobs(conn: AsyncConnection) -> list[tuple[str, str, int]]:
    """(tenant, key, blob id) of every reference whose blob is not ``live``; a staged part's key is named
    ``BUCKET/KEY (multipart upload ID, part N)``."""
    query = (
        select(tenants.c.name, refs.c.key, refs.c.blob_id)
        .join(tenants, tenants.c.id == refs.c.tenant_id)
        .join(blobs, blobs.c.id == refs.c.blob_id)
        .where(blobs.c.state != LIVE)
    )
    staged = (
        select(tenants.c.name, uploads.c.bucket, uploads.c.key, uploads.c.id, parts.c.part_number, parts.c.blob_id)
        .join(uploads, uploads.c.id == parts.c.upload_id)
        .join(tenants, tenants.c.id == uploads.c.tenant_id)
        .join(blobs, blobs.c.id == parts.c.blob_id)
        .where(blobs.c.state != LIVE)
    )
    found = [(row[0], row[1], row[2]) for row in await conn.execute(query)]
    for tenant, bucket, key, upload, number, blob_id in await conn.execute(staged):
        found.append((tenant, f"{bucket}/{key} (multipart upload {upload}, part {number})", blob_id))
    return found


async def recount_blob(conn: AsyncConnection, blob_id: int, now: datetime) -> None:
    """Set a blob's reference count to the true number of references and staged parts (fsck --repair).

    The blob row is locked first; every reference change also updates that row,
    so no reference can come or go between the count and the fix.
    """
    await conn.execute(select(blobs.c.id).where(blobs.c.id == blob_id).with_for_update())
    count = (await conn.execute(select(_references_of(blob_id)))).scalar_one()
    await conn.execute(
        update(blobs)
        .where(blobs.c.id == blob_id)
        .values(
            refcount=count,
            unreferenced_since=case((blobs.c.refcount == 0, blobs.c.unreferenced_since), else_=now)
            if count == 0
            else None,
        )
    )


def _references_of(blob_id: Any) -> Any:
    """The number of references and staged parts naming ``blob_id`` (a column or a value), as a scalar."""
    named_by_refs = select(func.count()).where(refs.c.blob_id == blob_id).scalar_subquery()
    named_by_parts = select(func.count()).where(parts.c.blob_id == blob_id).scalar_subquery()
    return (named_by_refs + named_by_parts).label("actual_refs")


@dataclass(frozen=True)
class UsageRecord:
    """A tenant's usage counters beside the sums over its references."""

    tenant: str
    used_bytes: int
    used_objects: int
    actual_bytes: int
    actual_objects: int


def _staged_bytes() -> Any:
    """Per tenant: the bytes of its staged parts (``tenant_id``, ``b``)."""
    return (
        select(uploads.c.tenant_id, func.sum(parts.c.size).label("b"))
        .join(parts, parts.c.upload_id == uploads.c.id)
        .group_by(uploads.c.tenant_id)
        .subquery()
    )


async def usage_records(conn: AsyncConnection) -> list[UsageRecord]:
    """Every tenant's counters and the true sums over its references (bytes: and its staged parts)."""
    sums = (
        select(refs.c.tenant_id, func.sum(refs.c.size).label("b"), func.count().label("n"))
        .group_by(refs.c.tenant_id)
        .subquery()
    )
    staged = _staged_bytes()
    query = (
        select(
            tenants.c.name,
            tenants.c.used_bytes,
            tenants.c.used_objects,
            func.coalesce(sums.c.b, 0) + func.coalesce(staged.c.b, 0),
            func.coalesce(sums.c.n, 0),
        )
        .outerjoin(sums, sums.c.tenant_id == tenants.c.id)
        .outerjoin(staged, staged.c.tenant_id == tenants.c.id)
        .order_by(tenants.c.name)
    )
    return [
        UsageRecord(row[0], int(row[1]), int(row[2]), int(row[3]), int(row[4])) for row in await conn.execute(query)
    ]


async def recount_usage(conn: AsyncConnection, tenant: str) -> None:
    """Set a tenant's usage counters to the true sums over its references and staged parts (fsck --repair).

    The tenant row is locked first; every reference or part change also updates it.
    """
    tenant_id = (
        await conn.execute(select(tenants.c.id).where(tenants.c.name == tenant).with_for_update())
    ).scalar_one()
    used_bytes, used_objects = (
        await conn.execute(
            select(func.coalesce(func.sum(refs.c.size), 0), func.count()).where(refs.c.tenant_id == tenant_id)
        )
    ).one()
    staged = (
        await conn.execute(
            select(func.coalesce(func.sum(parts.c.size), 0))
            .join(uploads, uploads.c.id == parts.c.upload_id)
            .where(uploads.c.tenant_id == tenant_id)
        )
    ).scalar_one()
    await conn.execute(
        update(tenants)
        .where(tenants.c.id == tenant_id)
        .values(used_bytes=int(used_bytes) + int(staged), used_objects=used_objects)
    )
