"""The catalog's side of the spool (docs/spool.md): which blobs a node's spool holds, and switching them to
object storage once drained."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db.catalog import LIVE, UPLOADING, blobs

#: The stored bytes of the rows selected (a row's plaintext size until its stored size is recorded).
_STORED_BYTES = func.coalesce(func.sum(func.coalesce(blobs.c.stored_size, blobs.c.size)), 0)


@dataclass(frozen=True)
class SpooledBlob:
    """A live blob whose object a node's spool holds."""

    blob_id: int
    object_key: str
    digest: str
    size: int
    #: The encoded frame index (blobstore.storage.frames); None for a blob stored raw.
    frames: bytes | None


@dataclass(frozen=True)
class NodeSpool:
    """The live blobs one node's spool holds until drained, their stored bytes, and when the oldest was stored
    (spool files of deleted blobs and failed puts are GC's, and not counted)."""

    node_id: str
    blobs: int
    bytes: int
    oldest: datetime | None


async def mark_spooled(conn: AsyncConnection, blob_id: int, node_id: str) -> bool:
    """Record that ``node_id``'s spool is about to hold the object of the upload ``blob_id``, before a byte is
    spooled (so GC, finding the row, deletes the spool file too); False if the upload is no longer ours
    (GC reclaimed it)."""
    result = await conn.execute(
        update(blobs).where(blobs.c.id == blob_id, blobs.c.state == UPLOADING).values(spooled_on=node_id)
    )
    return result.rowcount == 1


async def live_spooled(
    conn: AsyncConnection, node_id: str, *, after_id: int = 0, limit: int = 100
) -> list[SpooledBlob]:
    """Up to ``limit`` live blobs spooled on ``node_id`` with ids above ``after_id``, by id: what a drain uploads."""
    query = (
        select(blobs.c.id, blobs.c.object_key, blobs.c.digest, blobs.c.size, blobs.c.frames)
        .where(blobs.c.spooled_on == node_id, blobs.c.state == LIVE, blobs.c.id > after_id)
        .order_by(blobs.c.id)
        .limit(limit)
    )
    return [
        SpooledBlob(row[0], row[1], row[2], row[3], None if row[4] is None else bytes(row[4]))
        for row in await conn.execute(query)
    ]


async def unspool(conn: AsyncConnection, blob_id: int, node_id: str) -> bool:
    """Record that the object of ``blob_id`` is in object storage now; False if the row is no longer spooled
    on ``node_id`` (GC reclaimed it meanwhile)."""
    result = await conn.execute(
        update(blobs).where(blobs.c.id == blob_id, blobs.c.spooled_on == node_id).values(spooled_on=None)
    )
    return result.rowcount == 1


async def spooled_bytes(conn: AsyncConnection, node_id: str) -> int:
    """The bytes node ``node_id``'s spool holds by the catalog: every blob row marked spooled there, whatever
    its state (an upload being spooled counts its plaintext size until its stored size is recorded)."""
    return int((await conn.execute(select(_STORED_BYTES).where(blobs.c.spooled_on == node_id))).scalar_one())


async def spooled_keys(conn: AsyncConnection, object_keys: Sequence[str], node_id: str) -> set[str]:
    """Which of ``object_keys`` a row (in any state) records as spooled on ``node_id``."""
    query = select(blobs.c.object_key).where(blobs.c.object_key.in_(object_keys), blobs.c.spooled_on == node_id)
    return {row[0] for row in await conn.execute(query)}


async def spooled_node(conn: AsyncConnection, object_key: str) -> str | None:
    """The node whose spool holds the object ``object_key``; None if it is in object storage (or unknown)."""
    return (await conn.execute(select(blobs.c.spooled_on).where(blobs.c.object_key == object_key))).scalar()


async def nodes(conn: AsyncConnection) -> list[NodeSpool]:
    """Every node whose spool holds live blobs, by node id."""
    query = (
        select(
            blobs.c.spooled_on,
            func.count(),
            _STORED_BYTES,
            func.min(blobs.c.created_at),
        )
        .where(blobs.c.spooled_on.is_not(None), blobs.c.state == LIVE)
        .group_by(blobs.c.spooled_on)
        .order_by(blobs.c.spooled_on)
    )
    return [NodeSpool(row[0], row[1], int(row[2]), row[3]) for row in await conn.execute(query)]
