"""Set-based queries for batches of keys: a handful of statements however many keys a batch holds.

Every function runs inside a transaction that already holds the tenant's row
lock (:func:`blobstore.db.catalog.lock_tenant_named`), so the tenant's
references and usage cannot change under it. Blob rows are locked in id
order, the order every writer uses, so batches wait instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db.catalog import LIVE, REF_COLUMNS, UPLOADING, RefRow, blobs, refs, tenants

#: Most keys one batch may name (well under every database's bound-parameter limit).
MAX_BATCH = 1000


@dataclass(frozen=True)
class NewRef:
    """A reference to write: ``key`` of the locked tenant now points at ``blob_id``."""

    key: str
    blob_id: int
    size: int
    content_type: str | None
    metadata: dict[str, str]


async def live_blobs(conn: AsyncConnection, scope: str, digests: Collection[str]) -> dict[str, int]:
    """The live blob of each digest that has one in dedup ``scope``: digest -> id (not locked)."""
    if not digests:
        return {}
    query = select(blobs.c.digest, blobs.c.id).where(
        blobs.c.scope == scope, blobs.c.state == LIVE, blobs.c.digest.in_(sorted(digests))
    )
    return {row[0]: row[1] for row in await conn.execute(query)}


async def refs_by_key(conn: AsyncConnection, tenant: int, keys: Collection[str], *, lock: bool) -> dict[str, RefRow]:
    """The tenant's references under ``keys`` (with their blobs), optionally locked for update."""
    if not keys:
        return {}
    query = (
        select(*REF_COLUMNS)
        .join(blobs, blobs.c.id == refs.c.blob_id)
        .where(refs.c.tenant_id == tenant, refs.c.key.in_(sorted(keys)))
    )
    if lock:
        query = query.with_for_update(of=refs)
    return {row[0]: RefRow(*row) for row in await conn.execute(query)}


async def lock_blob_states(conn: AsyncConnection, blob_ids: Collection[int]) -> dict[int, str]:
    """Lock blob rows in id order and return their states as of the lock (rows gone are absent)."""
    if not blob_ids:
        return {}
    query = (
        select(blobs.c.id, blobs.c.state).where(blobs.c.id.in_(sorted(blob_ids))).order_by(blobs.c.id).with_for_update()
    )
    return {row[0]: row[1] for row in await conn.execute(query)}


async def held_blobs(conn: AsyncConnection, tenant: int, blob_ids: Collection[int]) -> set[int]:
    """Those of ``blob_ids`` the tenant references under at least one key."""
    if not blob_ids:
        return set()
    query = select(refs.c.blob_id).distinct().where(refs.c.tenant_id == tenant, refs.c.blob_id.in_(sorted(blob_ids)))
    return set((await conn.execute(query)).scalars())


async def write_refs(
    conn: AsyncConnection, tenant: int, new: list[NewRef], replaced: list[NewRef], now: datetime
) -> None:
    """Insert ``new`` references and repoint ``replaced`` ones (keys that exist), each kind in one statement."""
    if new:
        await conn.execute(insert(refs), [_ref_values(tenant, ref, now) for ref in new])
    if replaced:
        statement = (
            update(refs)
            .where(refs.c.tenant_id == bindparam("t"), refs.c.key == bindparam("k"))
            .values(
                blob_id=bindparam("b"),
                size=bindparam("s"),
                content_type=bindparam("ct"),
                metadata=bindparam("md", type_=refs.c.metadata.type),
                created_at=bindparam("at", type_=refs.c.created_at.type),
            )
        )
        params = [
            {"t": tenant, "k": r.key, "b": r.blob_id, "s": r.size, "ct": r.content_type, "md": r.metadata, "at": now}
            for r in replaced
        ]
        await conn.execute(statement, params)


def _ref_values(tenant: int, ref: NewRef, now: datetime) -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "key": ref.key,
        "blob_id": ref.blob_id,
        "size": ref.size,
        "content_type": ref.content_type,
        "metadata": ref.metadata,
        "created_at": now,
    }


async def delete_refs(conn: AsyncConnection, tenant: int, keys: Collection[str]) -> None:
    """Delete the tenant's references under ``keys`` (the caller adjusts counts and usage)."""
    if keys:
        await conn.execute(delete(refs).where(refs.c.tenant_id == tenant, refs.c.key.in_(sorted(keys))))


async def add_refcounts(conn: AsyncConnection, deltas: Mapping[int, int], now: datetime) -> None:
    """Add each delta to its blob's refcount (blobs locked by the caller, in id order); a blob left
    with no reference starts its unreferenced clock at ``now``, any other has none."""
    changed = sorted((blob_id, delta) for blob_id, delta in deltas.items())
    if not changed:
        return
    statement = (
        update(blobs)
        .where(blobs.c.id == bindparam("i"))
        .values(
            refcount=blobs.c.refcount + bindparam("d"),
            unreferenced_since=case(
                (blobs.c.refcount + bindparam("d") == 0, bindparam("now", type_=blobs.c.unreferenced_since.type)),
                else_=None,
            ),
        )
    )
    await conn.execute(statement, [{"i": blob_id, "d": delta, "now": now} for blob_id, delta in changed])


async def add_usage(conn: AsyncConnection, tenant: int, add_bytes: int, add_objects: int) -> None:
    """Add to the tenant's usage counters (quotas were checked by the caller under the tenant lock)."""
    if add_bytes or add_objects:
        await conn.execute(
            update(tenants)
            .where(tenants.c.id == tenant)
            .values(used_bytes=tenants.c.used_bytes + add_bytes, used_objects=tenants.c.used_objects + add_objects)
        )


async def insert_uploads(
    conn: AsyncConnection, scope: str, uploads: list[tuple[str, int, str]], now: datetime, lease_until: datetime
) -> list[int]:
    """Record the intent to upload each ``(digest, size, object_key)``, leased until ``lease_until``; their ids."""
    if not uploads:
        return []
    rows = [
        {
            "scope": scope,
            "digest": digest,
            "size": size,
            "object_key": object_key,
            "state": UPLOADING,
            "created_at": now,
            "lease_expires_at": lease_until,
        }
        for digest, size, object_key in uploads
    ]
    result = await conn.execute(insert(blobs).returning(blobs.c.id, sort_by_parameter_order=True), rows)
    return [int(row[0]) for row in result]


async def promote_uploads(conn: AsyncConnection, blob_ids: Collection[int], now: datetime) -> int:
    """Make locked ``uploading`` blobs live with no references; how many were still ``uploading``."""
    if not blob_ids:
        return 0
    result = await conn.execute(
        update(blobs)
        .where(blobs.c.id.in_(sorted(blob_ids)), blobs.c.state == UPLOADING)
        .values(state=LIVE, refcount=0, unreferenced_since=now, lease_expires_at=None)
    )
    return int(result.rowcount)


async def renew_leases(conn: AsyncConnection, blob_ids: Collection[int], lease_until: datetime) -> int:
    """Extend the leases of uploads still ``uploading``; how many were."""
    result = await conn.execute(
        update(blobs)
        .where(blobs.c.id.in_(sorted(blob_ids)), blobs.c.state == UPLOADING)
        .values(lease_expires_at=lease_until)
    )
    return int(result.rowcount)
