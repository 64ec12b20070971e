"""Statements of ``compact`` (blobstore.protocol.compact): finding blobs stored before frames, and switching
one to its framed object in one transaction (docs/gc-protocol.md, **compact**; docs/frames.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import ColumnElement, and_, delete, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db.batches import Written
from blobstore.db.catalog import LIVE, UPLOADING, blobs, refs, tenants

#: What a switch found: done; the blob is no longer the live one with the old object (deleted and reclaimed,
#: or compacted by another run); or GC reclaimed our upload (its lease lapsed) before the switch.
Switch = Literal["switched", "blob-changed", "upload-reclaimed"]


@dataclass(frozen=True)
class RawBlob:
    """A live blob whose object is still its raw bytes (no frame index)."""

    blob_id: int
    scope: str
    digest: str
    size: int
    object_key: str


async def raw_blobs(conn: AsyncConnection, *, tenant: str | None, after_id: int, limit: int) -> list[RawBlob]:
    """Up to ``limit`` live blobs without frames with ids above ``after_id``, by id; with ``tenant``, only
    the blobs that tenant references."""
    query = select(blobs.c.id, blobs.c.scope, blobs.c.digest, blobs.c.size, blobs.c.object_key).where(
        _raw(tenant), blobs.c.id > after_id
    )
    result = await conn.execute(query.order_by(blobs.c.id).limit(limit))
    return [RawBlob(*row) for row in result]


async def count_raw_blobs(conn: AsyncConnection, *, tenant: str | None) -> int:
    """How many blobs :func:`raw_blobs` would list in all."""
    return int(await conn.scalar(select(func.count()).select_from(blobs).where(_raw(tenant))) or 0)


def _raw(tenant: str | None) -> ColumnElement[bool]:
    """Live blobs without frames; with ``tenant``, only those it references."""
    condition = and_(blobs.c.state == LIVE, blobs.c.frames.is_(None))
    if tenant is None:
        return condition
    referenced = (
        exists()
        .where(refs.c.blob_id == blobs.c.id, refs.c.tenant_id == tenants.c.id, tenants.c.name == tenant)
        .correlate(blobs)
    )
    return and_(condition, referenced)


async def still_raw(conn: AsyncConnection, blob: RawBlob) -> bool:
    """True if ``blob`` is still live and unframed under its old object key."""
    query = select(blobs.c.id).where(blobs.c.id == blob.blob_id, _raw(None), blobs.c.object_key == blob.object_key)
    return (await conn.execute(query)).first() is not None


async def switch_to_framed(
    conn: AsyncConnection,
    blob: RawBlob,
    *,
    upload_id: int,
    new_key: str,
    written: Written,
    now: datetime,
    retire_until: datetime,
) -> Switch:
    """Point ``blob`` at its framed object ``new_key`` (written under our ``uploading`` row ``upload_id``),
    only if it is still live, unframed and under its old object key, and our row is still ours: the row is
    dropped, and the old object key is recorded as an ``uploading`` row leased until ``retire_until`` (now
    plus the GC grace), which GC reclaims, object and all, once that lease lapses. Nothing changes otherwise.
    """
    still_raw = await conn.execute(  # a no-op write that locks the row as it re-checks it (PostgreSQL)
        update(blobs)
        .where(
            blobs.c.id == blob.blob_id,
            blobs.c.state == LIVE,
            blobs.c.object_key == blob.object_key,
            blobs.c.frames.is_(None),
        )
        .values(state=blobs.c.state)
    )
    if still_raw.rowcount != 1:
        return "blob-changed"
    ours = await conn.execute(
        delete(blobs).where(blobs.c.id == upload_id, blobs.c.state == UPLOADING).returning(blobs.c.id)
    )
    if ours.first() is None:
        return "upload-reclaimed"
    await conn.execute(
        update(blobs)
        .where(blobs.c.id == blob.blob_id)
        .values(
            object_key=new_key,
            frames=written.frames,
            stored_size=written.stored_size,
            storage_class=None,
            moving_to=None,
        )
    )
    await conn.execute(
        insert(blobs).values(
            scope=blob.scope,
            digest=blob.digest,
            size=blob.size,
            object_key=blob.object_key,
            state=UPLOADING,
            created_at=now,
            lease_expires_at=retire_until,
        )
    )
    return "switched"
