"""Binding many keys of one tenant in one transaction, deciding item by item as single puts would.

Under the tenant's row lock, a batch reads what it needs in a few set-based
queries (the live blobs of its digests, the keys it replaces, the blobs it
acquires, locked in id order), decides every item in order in Python
(AlreadyExists, QuotaExceeded, deduplicated: exactly as the same puts one
after another), then writes the references, reference counts and usage in a
few statements. Items whose bytes have no live blob are returned unbound, for
the caller to upload.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db import batches, catalog
from blobstore.db.batches import NewRef
from blobstore.errors import AlreadyExists, BlobStoreError
from blobstore.results import BlobInfo


@dataclass(frozen=True)
class Item:
    """One key to bind: ``index`` is its place in the caller's batch."""

    index: int
    key: str
    digest: str
    size: int
    content_type: str | None
    metadata: dict[str, str]
    if_absent: bool


@dataclass
class Outcome:
    """What one binding transaction decided, by item index."""

    bound: dict[int, BlobInfo] = field(default_factory=dict)
    failed: dict[int, BlobStoreError] = field(default_factory=dict)
    #: Items that passed every check but whose bytes have no live blob (to upload), in order.
    unbound: list[Item] = field(default_factory=list)
    #: Blobs that gained references.
    acquired: set[int] = field(default_factory=set)


@dataclass
class _Writes:
    new: list[NewRef] = field(default_factory=list)
    replaced: list[NewRef] = field(default_factory=list)
    refcounts: Counter[int] = field(default_factory=Counter)
    add_bytes: int = 0
    add_objects: int = 0


async def lock_tenant(conn: AsyncConnection, name: str, now: datetime) -> tuple[int, catalog.Usage]:
    """Lock (creating it if new) the tenant's row; its id and usage."""
    tenant = await catalog.lock_tenant_named(conn, name, now, create=True)
    assert tenant is not None
    return tenant, await catalog.usage(conn, tenant)


async def bind(
    conn: AsyncConnection,
    name: str,
    scope: str,
    items: Sequence[Item],
    now: datetime,
    *,
    ours: Mapping[str, int] | None = None,
) -> Outcome:
    """Bind each item (keys distinct) to the live blob of its digest in ``scope``, in one transaction.

    ``ours`` names this batch's own uploads by digest: where no other live blob has
    the digest, the upload (if still ``uploading``) is made live and bound instead.
    """
    ours = ours or {}
    tenant, usage = await lock_tenant(conn, name, now)
    live = await batches.live_blobs(conn, scope, {item.digest for item in items})
    olds = await batches.refs_by_key(conn, tenant, [item.key for item in items], lock=True)
    states = await batches.lock_blob_states(
        conn, {*live.values(), *ours.values(), *(old.blob_id for old in olds.values())}
    )
    blob_of = {digest: blob for digest, blob in ours.items() if states.get(blob) == catalog.UPLOADING}
    blob_of |= {digest: blob for digest, blob in live.items() if states.get(blob) == catalog.LIVE}
    held = await batches.held_blobs(conn, tenant, set(live.values()))
    outcome, writes = _decide(name, items, olds, blob_of, held, usage, now)
    promoted = outcome.acquired & set(ours.values())
    if await batches.promote_uploads(conn, promoted, now) != len(promoted):
        raise AssertionError("a locked upload left 'uploading'")
    await batches.write_refs(conn, tenant, writes.new, writes.replaced, now)
    await batches.add_refcounts(conn, {blob: n for blob, n in writes.refcounts.items() if n}, now)
    await batches.add_usage(conn, tenant, writes.add_bytes, writes.add_objects)
    return outcome


def _decide(
    name: str,
    items: Sequence[Item],
    olds: Mapping[str, catalog.RefRow],
    blob_of: Mapping[str, int],
    held: set[int],
    usage: catalog.Usage,
    now: datetime,
) -> tuple[Outcome, _Writes]:
    """Every item's fate, in order, with the writes they add up to. An unbound item reserves its
    quota, so later items are checked as if it had been stored first."""
    outcome, writes = Outcome(), _Writes()
    used_bytes, used_objects = usage.used_bytes, usage.used_objects
    for item in items:
        old = olds.get(item.key)
        if old is not None and item.if_absent:
            outcome.failed[item.index] = AlreadyExists(f"key {item.key!r} already exists")
            continue
        add_bytes, add_objects = item.size - (old.size if old else 0), 0 if old else 1
        now_usage = catalog.Usage(used_bytes, used_objects, usage.max_bytes, usage.max_objects)
        violation = catalog.quota_violation(now_usage, name, add_bytes, add_objects)
        if violation is not None:
            outcome.failed[item.index] = violation
            continue
        used_bytes, used_objects = used_bytes + add_bytes, used_objects + add_objects
        blob = blob_of.get(item.digest)
        if blob is None:
            outcome.unbound.append(item)
            continue
        deduplicated = blob in held or (old is not None and old.blob_id == blob)
        held.add(blob)
        outcome.acquired.add(blob)
        writes.refcounts[blob] += 1
        ref = NewRef(item.key, blob, item.size, item.content_type, item.metadata)
        if old is None:
            writes.new.append(ref)
        else:
            writes.replaced.append(ref)
            writes.refcounts[old.blob_id] -= 1
        writes.add_bytes += add_bytes
        writes.add_objects += add_objects
        outcome.bound[item.index] = BlobInfo(
            name, item.key, item.digest, item.size, item.content_type, item.metadata, now, deduplicated
        )
    return outcome, writes


async def unbind(conn: AsyncConnection, name: str, keys: Collection[str], now: datetime) -> set[str]:
    """Delete the tenant's references under ``keys``, releasing their blobs and freeing quota, in one
    transaction; the keys that existed."""
    tenant = await catalog.lock_tenant_named(conn, name, now, create=False)
    if tenant is None:
        return set()
    olds = await batches.refs_by_key(conn, tenant, keys, lock=True)
    await batches.lock_blob_states(conn, {old.blob_id for old in olds.values()})
    await batches.delete_refs(conn, tenant, olds.keys())
    await batches.add_refcounts(conn, _releases(olds.values()), now)
    await batches.add_usage(conn, tenant, -sum(old.size for old in olds.values()), -len(olds))
    return set(olds)


def _releases(olds: Collection[catalog.RefRow]) -> dict[int, int]:
    released: Counter[int] = Counter()
    for old in olds:
        released[old.blob_id] -= 1
    return dict(released)
