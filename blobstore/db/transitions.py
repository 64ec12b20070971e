"""Queries of storage-class transitions: live blobs with their classes and last reads, the keys holding them,
and the switch of a blob's recorded class (blobstore.maintenance.transitions decides and moves)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db.catalog import blobs, refs, tenants
from blobstore.db.models import tables
from blobstore.model.transitions import Reference

rules_table = tables["lifecycle_rules"]


@dataclass(frozen=True)
class LiveBlob:
    """A referenced blob: its object, stored length, class (None: STANDARD), latest read day, and the class a
    move that never finished was copying it to."""

    id: int
    object_key: str
    stored_size: int
    storage_class: str | None
    last_read_at: datetime | None
    moving_to: str | None


async def has_work(conn: AsyncConnection) -> bool:
    """Whether any rule sets a transition or any live blob is in (or moving to) a class other than STANDARD."""
    with_rule = exists().where(rules_table.c.transition_after.is_not(None))
    cooled = exists().where(
        blobs.c.state == "live", or_(blobs.c.storage_class.is_not(None), blobs.c.moving_to.is_not(None))
    )
    return bool((await conn.execute(select(or_(with_rule, cooled)))).scalar())


async def live_blobs(conn: AsyncConnection, *, after: int, limit: int) -> list[LiveBlob]:
    """Up to ``limit`` live, referenced blobs with ids after ``after``, by id."""
    query = (
        select(
            blobs.c.id,
            blobs.c.object_key,
            blobs.c.stored_size,
            blobs.c.size,
            blobs.c.storage_class,
            blobs.c.last_read_at,
            blobs.c.moving_to,
        )
        .where(blobs.c.state == "live", blobs.c.refcount > 0, blobs.c.id > after)
        .order_by(blobs.c.id)
        .limit(limit)
    )
    rows = await conn.execute(query)
    return [LiveBlob(row[0], row[1], row[3] if row[2] is None else row[2], *row[4:]) for row in rows]


async def references(conn: AsyncConnection, blob_ids: Sequence[int]) -> dict[int, list[Reference]]:
    """Every key holding each of ``blob_ids``, in every tenant."""
    query = (
        select(refs.c.blob_id, tenants.c.name, refs.c.key, refs.c.created_at)
        .join(tenants, tenants.c.id == refs.c.tenant_id)
        .where(refs.c.blob_id.in_(sorted(blob_ids)))
    )
    found: dict[int, list[Reference]] = {}
    for blob_id, tenant, key, written_at in await conn.execute(query):
        found.setdefault(blob_id, []).append(Reference(tenant, key, written_at))
    return found


async def begin_move(conn: AsyncConnection, blob: LiveBlob, storage_class: str) -> bool:
    """Mark ``blob`` as being copied to ``storage_class`` (before the copy), if it is still live in its object
    (compact may have moved it meanwhile); True if it was."""
    return await _update_live(conn, blob, moving_to=storage_class)


async def record_class(conn: AsyncConnection, blob: LiveBlob, storage_class: str | None) -> bool:
    """Record that ``blob``'s object is now in ``storage_class`` (None: STANDARD) and no move is under way, if
    the blob is still live in that object; True if it was."""
    return await _update_live(conn, blob, storage_class=storage_class, moving_to=None)


async def _update_live(conn: AsyncConnection, blob: LiveBlob, **values: str | None) -> bool:
    live = and_(blobs.c.id == blob.id, blobs.c.object_key == blob.object_key, blobs.c.state == "live")
    return bool((await conn.execute(update(blobs).where(live).values(**values))).rowcount)
