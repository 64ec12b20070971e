"""The metadata queries: tenants, blobs, references and their counters.

Every function runs inside a transaction opened by
:meth:`blobstore.db.engine.Database.transaction` and knows nothing of bytes.
Reference counts, tenant usage and references change together in the same
transaction (:mod:`blobstore.db.binding`, for one key or a batch), so they
never drift apart.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db.models import tables
from blobstore.errors import QuotaExceeded
from blobstore.model.results import BlobInfo

tenants = tables["tenants"]
blobs = tables["blobs"]
refs = tables["refs"]
store_meta = tables["store_meta"]

UPLOADING, LIVE, DELETING = "uploading", "live", "deleting"


@dataclass(frozen=True)
class RefRow:
    """A reference joined with its blob."""

    key: str
    blob_id: int
    digest: str
    object_key: str
    size: int
    content_type: str | None
    metadata: dict[str, str]
    created_at: datetime
    #: The response headers stored with the reference (blobstore.db.models.Ref.headers).
    headers: dict[str, str]
    #: The blob's encoded frame index (blobstore.storage.frames); None for a blob stored raw, before frames.
    frames: bytes | None

    def info(self, tenant: str, *, deduplicated: bool = False) -> BlobInfo:
        """The reference as its tenant sees it."""
        return BlobInfo(
            tenant=tenant,
            key=self.key,
            digest=self.digest,
            size=self.size,
            content_type=self.content_type,
            metadata=dict(self.metadata),
            created_at=self.created_at,
            deduplicated=deduplicated,
            headers=dict(self.headers),
        )


@dataclass(frozen=True)
class Usage:
    """A tenant's counters and limits."""

    used_bytes: int
    used_objects: int
    max_bytes: int | None
    max_objects: int | None


REF_COLUMNS = (
    refs.c.key,
    refs.c.blob_id,
    blobs.c.digest,
    blobs.c.object_key,
    refs.c.size,
    refs.c.content_type,
    refs.c.metadata,
    refs.c.created_at,
    refs.c.headers,
    blobs.c.frames,
)


def _ref_row(row: Any) -> RefRow:
    return RefRow(*row)


def dialect_insert(conn: AsyncConnection, table: Any) -> Any:
    """An INSERT into ``table`` in the connection's dialect, which takes ``on_conflict_do_*`` clauses.

    The dialect's module loads on first use, so a SQLite process never imports PostgreSQL's.
    """
    return importlib.import_module(f"sqlalchemy.dialects.{conn.dialect.name}").insert(table)


async def insert_ignoring_conflict(conn: AsyncConnection, table: Any, values: dict[str, Any]) -> None:
    """INSERT a row unless one with the same unique key exists (both dialects)."""
    await conn.execute(dialect_insert(conn, table).values(**values).on_conflict_do_nothing())


# --- tenants ---------------------------------------------------------------------------------------


async def tenant_id(conn: AsyncConnection, name: str) -> int | None:
    """The tenant's id, or None if it has never stored anything."""
    return (await conn.execute(select(tenants.c.id).where(tenants.c.name == name))).scalar()


@dataclass(frozen=True)
class LockedTenant:
    """A tenant whose row the current transaction holds locked (:func:`lock_tenant`), with its usage then."""

    id: int
    name: str
    usage: Usage


_TENANT_COLUMNS = (
    tenants.c.id,
    tenants.c.used_bytes,
    tenants.c.used_objects,
    tenants.c.max_bytes,
    tenants.c.max_objects,
)
_LOCK_TENANT = select(*_TENANT_COLUMNS).where(tenants.c.name == bindparam("name")).with_for_update()


async def lock_tenant(conn: AsyncConnection, name: str, now: datetime, *, create: bool) -> LockedTenant | None:
    """Lock the named tenant's row (the first lock of every write) and read its usage, in one statement.

    A tenant that has never stored anything is created (and so locked) when ``create``, else None is returned.
    """
    row = (await conn.execute(_LOCK_TENANT, {"name": name})).first()
    if row is None and create:
        created = dialect_insert(conn, tenants).values(name=name, created_at=now).on_conflict_do_nothing()
        row = (await conn.execute(created.returning(*_TENANT_COLUMNS))).first()
        if row is None:  # another transaction created it first; it has committed (the insert waited for it)
            row = (await conn.execute(_LOCK_TENANT, {"name": name})).first()
    return None if row is None else LockedTenant(row[0], name, Usage(*row[1:]))


def quota_violation(now: Usage, name: str, add_bytes: int, add_objects: int) -> QuotaExceeded | None:
    """The error that adding ``add_bytes``/``add_objects`` to ``now`` would cause, or None if within limits."""
    over_bytes = now.max_bytes is not None and add_bytes > 0 and now.used_bytes + add_bytes > now.max_bytes
    over_objects = now.max_objects is not None and add_objects > 0 and now.used_objects + add_objects > now.max_objects
    if not (over_bytes or over_objects):
        return None
    return QuotaExceeded(
        f"tenant {name!r} quota exceeded: this put needs {add_bytes} more bytes and {add_objects} more "
        f"objects; usage is {now.used_bytes} bytes (limit {_limit(now.max_bytes)}) and "
        f"{now.used_objects} objects (limit {_limit(now.max_objects)})"
    )


def _limit(value: int | None) -> str:
    return "none" if value is None else str(value)


# --- blobs -----------------------------------------------------------------------------------------


async def tenant_blob_with_digest(conn: AsyncConnection, tenant: int, digest: str) -> tuple[int, int] | None:
    """The id and size of a blob with ``digest`` that ``tenant`` already references, if any."""
    query = (
        select(blobs.c.id, blobs.c.size)
        .join(refs, refs.c.blob_id == blobs.c.id)
        .where(refs.c.tenant_id == tenant, blobs.c.digest == digest)
        .limit(1)
    )
    row = (await conn.execute(query)).first()
    return None if row is None else (row[0], row[1])


async def blob_state(conn: AsyncConnection, blob_id: int) -> str | None:
    """The blob's lifecycle state, or None if its row is gone."""
    return (await conn.execute(select(blobs.c.state).where(blobs.c.id == blob_id))).scalar()


async def abandon(conn: AsyncConnection, blob_id: int) -> bool:
    """Tombstone an upload nobody will reference; True if this call moved it to ``deleting``."""
    result = await conn.execute(
        update(blobs).where(blobs.c.id == blob_id, blobs.c.state == UPLOADING).values(state=DELETING)
    )
    return result.rowcount == 1


async def forget_blobs(conn: AsyncConnection, blob_ids: Sequence[int]) -> set[int]:
    """Delete tombstoned blob rows whose objects are already gone from storage; the ids this deleted (a row
    another transaction deleted first is not among them)."""
    result = await conn.execute(
        delete(blobs).where(blobs.c.id.in_(blob_ids), blobs.c.state == DELETING).returning(blobs.c.id)
    )
    return {row[0] for row in result}


# --- references ------------------------------------------------------------------------------------


async def find_ref(conn: AsyncConnection, tenant: int, key: str) -> RefRow | None:
    """The tenant's reference under ``key`` with its blob (stable while the caller holds the tenant's row lock:
    every write of references takes it first)."""
    query = (
        select(*REF_COLUMNS)
        .join(blobs, blobs.c.id == refs.c.blob_id)
        .where(refs.c.tenant_id == tenant, refs.c.key == key)
    )
    row = (await conn.execute(query)).first()
    return None if row is None else _ref_row(row)


_REF_BY_NAME = (
    select(*REF_COLUMNS)
    .select_from(refs.join(blobs, blobs.c.id == refs.c.blob_id).join(tenants, tenants.c.id == refs.c.tenant_id))
    .where(tenants.c.name == bindparam("tenant"), refs.c.key == bindparam("key"))
)


async def find_ref_named(conn: AsyncConnection, tenant: str, key: str) -> RefRow | None:
    """The named tenant's reference under ``key`` with its blob, in one statement (no lock)."""
    row = (await conn.execute(_REF_BY_NAME, {"tenant": tenant, "key": key})).first()
    return None if row is None else _ref_row(row)


async def list_refs(conn: AsyncConnection, tenant: int, prefix: str, after: str | None, limit: int) -> list[RefRow]:
    """Up to ``limit`` references whose key starts with ``prefix`` (literally), in key order after ``after``.

    The prefix becomes a key range, so the query walks the primary-key index
    from the first match: its cost depends on the page, not on the offset.
    """
    conditions = [refs.c.tenant_id == tenant]
    if prefix:
        conditions.append(refs.c.key >= prefix)
        upper = prefix_upper_bound(prefix)
        if upper is not None:
            conditions.append(refs.c.key < upper)
    if after is not None:
        conditions.append(refs.c.key > after)
    query = (
        select(*REF_COLUMNS)
        .join(blobs, blobs.c.id == refs.c.blob_id)
        .where(and_(*conditions))
        .order_by(refs.c.key)
        .limit(limit)
    )
    return [_ref_row(row) for row in await conn.execute(query)]


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (None if unbounded)."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if 0xD800 <= code <= 0xDFFF:
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None


# --- store identity --------------------------------------------------------------------------------


async def store_id(conn: AsyncConnection) -> str | None:
    """The id pairing this database with its object storage, if set."""
    return (await conn.execute(select(store_meta.c.value).where(store_meta.c.name == "store_id"))).scalar()


async def set_store_id(conn: AsyncConnection, value: str) -> None:
    """Record the store id unless one is already set."""
    await insert_ignoring_conflict(conn, store_meta, {"name": "store_id", "value": value})


async def blob_count(conn: AsyncConnection) -> int:
    """How many blob rows exist, in any state."""
    return int((await conn.execute(select(func.count()).select_from(blobs))).scalar_one())
