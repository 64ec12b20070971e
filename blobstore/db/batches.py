"""Set-based queries for batches of keys: a handful of statements however many keys a batch holds.

Every function runs inside a transaction that already holds the tenant's row
lock (:func:`blobstore.db.catalog.lock_tenant`), so the tenant's references
and usage cannot change under it. Blob rows are locked in id order, the order
every writer uses (:func:`lookup`, then :func:`add_refcounts`), so writers
wait instead of deadlocking. A single put is a batch of one: the same
statements, and as few of them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    LargeBinary,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db.catalog import LIVE, REF_COLUMNS, UPLOADING, RefRow, blobs, refs, tenants
from blobstore.model.preconditions import Version

#: Most keys one batch may name (well under every database's bound-parameter limit).
MAX_BATCH = 1000


@dataclass(frozen=True)
class Written:
    """What an upload's object turned out to be once written (blobstore.storage.frames): its encoded frame index
    and stored length, recorded on its row by the statement that makes it live."""

    frames: bytes
    stored_size: int


@dataclass(frozen=True)
class NewRef:
    """A reference to write: ``key`` of the locked tenant now points at ``blob_id``."""

    key: str
    blob_id: int
    size: int
    content_type: str | None
    metadata: dict[str, str]
    headers: dict[str, str]
    #: When the key expires by its own put's ``expires_in`` (None: by lifecycle rules only).
    expires_at: datetime | None = None


@dataclass(frozen=True)
class OldRef:
    """A reference a write replaces or deletes: the blob it points at, the size it charged, when it was written."""

    blob_id: int
    size: int
    created_at: datetime


@dataclass(frozen=True)
class LockedBlob:
    """A blob row as of its lock."""

    scope: str
    digest: str
    state: str
    #: The locked tenant references it under at least one key.
    held: bool


@dataclass
class Found:
    """What :func:`lookup` found: the keys' current references, and every blob a write may touch, locked."""

    olds: dict[str, OldRef] = field(default_factory=dict)
    blobs: dict[int, LockedBlob] = field(default_factory=dict)

    def version_of(self, key: str) -> Version | None:
        """The version ``key`` is at (for a conditional write), or None if it has no reference."""
        old = self.olds.get(key)
        return None if old is None else Version(self.blobs[old.blob_id].digest, old.created_at)

    def live_of(self, scope: str) -> dict[str, int]:
        """The live blob of each digest in dedup ``scope`` among those found: digest -> id."""
        return {b.digest: id_ for id_, b in self.blobs.items() if b.state == LIVE and b.scope == scope}


_old = refs.alias("old")
_holding = refs.alias("holding")
_candidate = blobs.alias("candidate")
#: The ids of every blob a write of ``keys`` to ``digests`` may touch: the blobs the keys point at now,
#: the live blobs of the digests, and the blobs named by id (the caller's own uploads, a copy's source).
_CANDIDATES = union_all(
    select(refs.c.blob_id).where(refs.c.tenant_id == bindparam("tenant"), refs.c.key.in_(bindparam("keys"))),
    select(_candidate.c.id).where(
        _candidate.c.scope == bindparam("scope"),
        _candidate.c.state == LIVE,
        _candidate.c.digest.in_(bindparam("digests")),
    ),
    select(_candidate.c.id).where(_candidate.c.id.in_(bindparam("ids"))),
)
_LOOKUP = (
    select(
        blobs.c.id,
        blobs.c.scope,
        blobs.c.digest,
        blobs.c.state,
        exists().where(_holding.c.tenant_id == bindparam("tenant"), _holding.c.blob_id == blobs.c.id).label("held"),
        _old.c.key,
        _old.c.size,
        _old.c.created_at,
    )
    .select_from(
        blobs.outerjoin(
            _old,
            and_(
                _old.c.blob_id == blobs.c.id, _old.c.tenant_id == bindparam("tenant"), _old.c.key.in_(bindparam("keys"))
            ),
        )
    )
    .where(blobs.c.id.in_(_CANDIDATES))
)
#: Locking is a statement of its own, by id alone. Locking inside :data:`_LOOKUP` (FOR UPDATE OF blobs over
#: the semi-join on the union) was unreliable on PostgreSQL: a row that changed while the statement waited
#: for it is re-checked against the whole WHERE clause, and a live blob could vanish from the result, or
#: come back without its lock having been waited for (tests/db/test_row_lock_waits.py).
_LOCK_BLOBS = (
    select(blobs.c.id, blobs.c.state).where(blobs.c.id.in_(bindparam("ids"))).order_by(blobs.c.id).with_for_update()
)


async def lookup(
    conn: AsyncConnection,
    tenant: int,
    scope: str,
    keys: Collection[str],
    digests: Collection[str],
    ids: Collection[int],
) -> Found:
    """The tenant's references under ``keys``, and the blob rows they point at, the live blobs of
    ``digests`` in dedup ``scope`` and the blobs ``ids``, locked, with their states as of the lock
    (rows gone are absent).

    The caller holds the tenant's row lock, taken by an earlier statement, so the references it reads are
    the newest and stay so. On SQLite the write transaction holds the whole database, so one statement
    reads everything as of the lock; on PostgreSQL a second one locks the blob rows in id order (the order
    every writer uses, so writers wait instead of deadlocking) and reads their states again. A blob row
    locked here cannot leave the state it is returned in.
    """
    params = {"tenant": tenant, "scope": scope, "keys": sorted(keys), "digests": sorted(digests), "ids": sorted(ids)}
    found = Found()
    for row in await conn.execute(_LOOKUP, params):
        found.blobs[row.id] = LockedBlob(row.scope, row.digest, row.state, bool(row.held))
        if row.key is not None:
            found.olds[row.key] = OldRef(row.id, row.size, row.created_at)
    if found.blobs and conn.dialect.name != "sqlite":
        locked = await conn.execute(_LOCK_BLOBS, {"ids": sorted(found.blobs)})
        states: dict[int, str] = {row[0]: row[1] for row in locked}
        found.blobs = {id_: replace(b, state=states[id_]) for id_, b in found.blobs.items() if id_ in states}
    return found


async def refs_by_key(conn: AsyncConnection, tenant: int, keys: Collection[str]) -> dict[str, RefRow]:
    """The tenant's references under ``keys`` (with their blobs)."""
    if not keys:
        return {}
    query = (
        select(*REF_COLUMNS)
        .join(blobs, blobs.c.id == refs.c.blob_id)
        .where(refs.c.tenant_id == tenant, refs.c.key.in_(sorted(keys)))
    )
    return {row[0]: RefRow(*tuple(row)) for row in await conn.execute(query)}


_INSERT_REFS = insert(refs)
_REPOINT_REFS = (
    update(refs)
    .where(refs.c.tenant_id == bindparam("t"), refs.c.key == bindparam("k"))
    .values(
        blob_id=bindparam("b"),
        size=bindparam("s"),
        content_type=bindparam("ct"),
        metadata=bindparam("md", type_=refs.c.metadata.type),
        headers=bindparam("hd", type_=refs.c.headers.type),
        created_at=bindparam("at", type_=refs.c.created_at.type),
        expires_at=bindparam("ex", type_=refs.c.expires_at.type),
    )
)


async def write_refs(
    conn: AsyncConnection, tenant: int, new: list[NewRef], replaced: list[NewRef], now: datetime
) -> None:
    """Insert ``new`` references and repoint ``replaced`` ones (keys that exist), each kind in one statement."""
    if new:
        await conn.execute(_INSERT_REFS, [_ref_values(tenant, ref, now) for ref in new])
    if replaced:
        params = [
            {"t": tenant, "k": r.key, "b": r.blob_id, "s": r.size, "ct": r.content_type, "md": r.metadata}
            | {"hd": r.headers, "at": now, "ex": r.expires_at}
            for r in replaced
        ]
        await conn.execute(_REPOINT_REFS, params)


def _ref_values(tenant: int, ref: NewRef, now: datetime) -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "key": ref.key,
        "blob_id": ref.blob_id,
        "size": ref.size,
        "content_type": ref.content_type,
        "metadata": ref.metadata,
        "headers": ref.headers,
        "created_at": now,
        "expires_at": ref.expires_at,
    }


async def delete_refs(conn: AsyncConnection, tenant: int, keys: Collection[str]) -> dict[str, OldRef]:
    """Delete the tenant's references under ``keys``; what they pointed at (the caller adjusts counts and usage)."""
    if not keys:
        return {}
    result = await conn.execute(
        delete(refs)
        .where(refs.c.tenant_id == tenant, refs.c.key.in_(sorted(keys)))
        .returning(refs.c.key, refs.c.blob_id, refs.c.size, refs.c.created_at)
    )
    return {row[0]: OldRef(row[1], row[2], row[3]) for row in result}


_SETTLE = (
    update(blobs)
    .where(blobs.c.id == bindparam("i"))
    .values(
        refcount=blobs.c.refcount + bindparam("d"),
        unreferenced_since=case(
            (blobs.c.refcount + bindparam("d") == 0, bindparam("now", type_=blobs.c.unreferenced_since.type)),
            else_=None,
        ),
        state=case((blobs.c.state == UPLOADING, LIVE), else_=blobs.c.state),
        lease_expires_at=None,
        frames=func.coalesce(bindparam("f", type_=LargeBinary), blobs.c.frames),
        stored_size=func.coalesce(bindparam("s", type_=BigInteger), blobs.c.stored_size),
    )
)


async def add_refcounts(
    conn: AsyncConnection, deltas: Mapping[int, int], now: datetime, written: Mapping[int, Written] | None = None
) -> None:
    """Add each delta to its blob's refcount, in id order, in one statement; a blob left with no reference
    starts its unreferenced clock at ``now``, any other has none.

    The caller has locked every one of these blobs and checked its state: each is ``live``, or an upload
    of its own still ``uploading`` that gains references here, which makes it ``live`` (its lease ends) with
    what ``written`` says of it (by blob id) recorded.
    """
    written = written or {}
    changed = sorted(deltas.items())
    if changed:
        params = [_settled(blob_id, delta, now, written.get(blob_id)) for blob_id, delta in changed]
        await conn.execute(_SETTLE, params)


def _settled(blob_id: int, delta: int, now: datetime, written: Written | None) -> dict[str, Any]:
    frames, stored_size = (None, None) if written is None else (written.frames, written.stored_size)
    return {"i": blob_id, "d": delta, "now": now, "f": frames, "s": stored_size}


_ADD_USAGE = (
    update(tenants)
    .where(tenants.c.id == bindparam("tenant"))
    .values(used_bytes=tenants.c.used_bytes + bindparam("b"), used_objects=tenants.c.used_objects + bindparam("n"))
)


async def add_usage(conn: AsyncConnection, tenant: int, add_bytes: int, add_objects: int) -> None:
    """Add to the tenant's usage counters (quotas were checked by the caller under the tenant lock)."""
    if add_bytes or add_objects:
        await conn.execute(_ADD_USAGE, {"tenant": tenant, "b": add_bytes, "n": add_objects})


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


async def renew_leases(conn: AsyncConnection, blob_ids: Collection[int], lease_until: datetime) -> int:
    """Extend the leases of uploads still ``uploading``; how many were."""
    result = await conn.execute(
        update(blobs)
        .where(blobs.c.id.in_(sorted(blob_ids)), blobs.c.state == UPLOADING)
        .values(lease_expires_at=lease_until)
    )
    return int(result.rowcount)
