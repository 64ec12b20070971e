"""Binding keys of one tenant in one transaction, deciding item by item as puts one after another would.

Every write of references goes through here, a single put as a batch of one. With the tenant's row
locked (:func:`blobstore.db.catalog.lock_tenant`, which also reads its usage), one statement reads
all a batch needs (:func:`blobstore.db.batches.lookup`: the keys' current references and the blobs
they point at, the live blobs of the digests, the caller's own uploads; on PostgreSQL one more locks
those blobs in id order); every item is decided in Python (its precondition against the key's version
as of the lock: PreconditionFailed, AlreadyExists; QuotaExceeded; deduplicated); then the references,
reference counts and usage are written in at most four statements. A dedup put of a new key is five
statements in all on SQLite (lock, lookup, insert the reference, count it, charge it), six on PostgreSQL.
Items whose bytes have no live blob are returned unbound, for the caller to upload; the caller binds them
after the upload in a transaction of its own, which decides them again (so a precondition holds at the
moment the key is bound, not only before).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db import batches, catalog, s3_facts
from blobstore.db.batches import NewRef, OldRef
from blobstore.errors import BlobStoreError
from blobstore.model.preconditions import UNCONDITIONAL, Precondition, Version
from blobstore.model.results import BlobInfo
from blobstore.model.s3_facts import S3Facts


@dataclass(frozen=True)
class Item:
    """One key to bind: ``index`` is its place in the caller's batch."""

    index: int
    key: str
    digest: str
    size: int
    content_type: str | None
    metadata: dict[str, str]
    #: What the write expects of the key's current version (if_absent, if_match, if_unmodified_since).
    condition: Precondition
    #: The blob to bind when the caller names it (a copy's source, bytes put by digest); None: the
    #: live blob of ``digest`` in the dedup scope, if there is one.
    blob_id: int | None = None
    #: What S3 knows the bytes by (a PutObject's MD5 and checksums): recorded for the tenant's digest in the
    #: transaction that binds the item (by :func:`bind` and blobstore.db.hot_path), so never a key without them.
    facts: S3Facts | None = None
    #: The response headers the reference stores (blobstore.db.models.Ref.headers).
    headers: dict[str, str] = field(default_factory=dict)
    #: The key expires this long after it is bound (a put's ``expires_in``); None: by lifecycle rules only.
    expires_in: timedelta | None = None

    def bound(self, tenant: str, now: datetime, *, deduplicated: bool, replaced: bool) -> BlobInfo:
        """What a put reports of this item once ``tenant`` bound it at ``now``."""
        return BlobInfo(
            tenant,
            self.key,
            self.digest,
            self.size,
            self.content_type,
            self.metadata,
            now,
            deduplicated,
            replaced=replaced,
            headers=self.headers,
        )

    def expires_at(self, now: datetime) -> datetime | None:
        """When the key expires if bound at ``now`` (None: by lifecycle rules only)."""
        return None if self.expires_in is None else now + self.expires_in


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
class Writes:
    """The references, reference counts and usage a binding writes."""

    new: list[NewRef] = field(default_factory=list)
    replaced: list[NewRef] = field(default_factory=list)
    refcounts: Counter[int] = field(default_factory=Counter)
    add_bytes: int = 0
    add_objects: int = 0
    #: The S3 facts of the bound items' bytes, by digest.
    facts: dict[str, S3Facts] = field(default_factory=dict)


async def bind(
    conn: AsyncConnection,
    tenant: catalog.LockedTenant,
    scope: str,
    items: Sequence[Item],
    now: datetime,
    *,
    ours: Mapping[str, int] | None = None,
    written: Mapping[int, batches.Written] | None = None,
) -> Outcome:
    """Bind each item (keys distinct) of the locked ``tenant`` to its blob, in the caller's transaction.

    An item's blob is the one it names, or the live blob of its digest in ``scope``; ``ours`` names
    the caller's own uploads by digest: where no live blob has the digest, the upload (if still
    ``uploading``) is made live and bound instead, with what ``written`` says of it (by blob id) recorded.
    """
    ours = ours or {}
    named = {item.blob_id for item in items if item.blob_id is not None}
    found = await batches.lookup(
        conn,
        tenant.id,
        scope,
        keys=[item.key for item in items],
        digests={item.digest for item in items if item.blob_id is None},
        ids={*ours.values(), *named},
    )
    outcome, writes = decide(tenant, scope, items, found, now, ours=ours)
    await write(conn, tenant.id, writes, now, written=written)
    for digest, facts in writes.facts.items():
        await s3_facts.record(conn, tenant.name, digest, facts)
    return outcome


async def write(
    conn: AsyncConnection,
    tenant: int,
    writes: Writes,
    now: datetime,
    *,
    written: Mapping[int, batches.Written] | None = None,
) -> None:
    """Send ``writes`` of the locked tenant: references, then reference counts (in id order; each blob locked
    by the lookup that decided them; an upload made live gets what ``written`` says of it) and usage."""
    await batches.write_refs(conn, tenant, writes.new, writes.replaced, now)
    if deltas := {blob: n for blob, n in writes.refcounts.items() if n}:  # promotes our uploads too
        await batches.add_refcounts(conn, deltas, now, written)
    await batches.add_usage(conn, tenant, writes.add_bytes, writes.add_objects)


def decide(
    tenant: catalog.LockedTenant,
    scope: str,
    items: Sequence[Item],
    found: batches.Found,
    now: datetime,
    *,
    ours: Mapping[str, int] | None = None,
) -> tuple[Outcome, Writes]:
    """Every item's fate given what :func:`batches.lookup` ``found`` under the tenant's lock, with the writes
    they add up to (for the caller to send): the decision half of :func:`bind`, shared with the driver-level
    put (blobstore.db.hot_path)."""
    ours = ours or {}
    blob_of = {digest: blob for digest, blob in ours.items() if _state(found, blob) == catalog.UPLOADING}
    blob_of |= found.live_of(scope)
    held = {blob for blob, row in found.blobs.items() if row.held}
    return _decide(tenant, items, found, blob_of, held, now)


def _state(found: batches.Found, blob: int) -> str | None:
    row = found.blobs.get(blob)
    return None if row is None else row.state


def _decide(
    tenant: catalog.LockedTenant,
    items: Sequence[Item],
    found: batches.Found,
    blob_of: Mapping[str, int],
    held: set[int],
    now: datetime,
) -> tuple[Outcome, Writes]:
    """Every item's fate, in order, with the writes they add up to. An unbound item reserves its
    quota, so later items are checked as if it had been stored first."""
    outcome, writes = Outcome(), Writes()
    usage = tenant.usage
    used_bytes, used_objects = usage.used_bytes, usage.used_objects
    for item in items:
        old = found.olds.get(item.key)
        if failure := item.condition.failure(item.key, found.version_of(item.key)):
            outcome.failed[item.index] = failure
            continue
        add_bytes, add_objects = item.size - (old.size if old else 0), 0 if old else 1
        now_usage = catalog.Usage(used_bytes, used_objects, usage.max_bytes, usage.max_objects)
        violation = catalog.quota_violation(now_usage, tenant.name, add_bytes, add_objects)
        if violation is not None:
            outcome.failed[item.index] = violation
            continue
        used_bytes, used_objects = used_bytes + add_bytes, used_objects + add_objects
        if item.blob_id is None:
            blob = blob_of.get(item.digest)
        else:
            blob = item.blob_id if _state(found, item.blob_id) == catalog.LIVE else None
        if blob is None:
            outcome.unbound.append(item)
            continue
        deduplicated = blob in held or (old is not None and old.blob_id == blob)
        held.add(blob)
        outcome.acquired.add(blob)
        writes.refcounts[blob] += 1
        ref = NewRef(item.key, blob, item.size, item.content_type, item.metadata, item.headers, item.expires_at(now))
        if old is None:
            writes.new.append(ref)
        else:
            writes.replaced.append(ref)
            writes.refcounts[old.blob_id] -= 1
        writes.add_bytes += add_bytes
        writes.add_objects += add_objects
        if item.facts is not None:
            writes.facts[item.digest] = item.facts
        outcome.bound[item.index] = item.bound(tenant.name, now, deduplicated=deduplicated, replaced=old is not None)
    return outcome, writes


async def unbind(
    conn: AsyncConnection,
    name: str,
    keys: Collection[str],
    now: datetime,
    *,
    condition: Precondition = UNCONDITIONAL,
) -> set[str]:
    """Delete the tenant's references under ``keys``, releasing their blobs and freeing quota, in one
    transaction; the keys that existed. Four statements however many keys: lock, delete, count, free.

    With a ``condition``, the keys' references are read under the lock first (a fifth statement), and
    unless every key is in a version the condition accepts, its PreconditionFailed is raised: nothing is
    deleted.
    """
    tenant = await catalog.lock_tenant(conn, name, now, create=False)
    if condition != UNCONDITIONAL:
        current = {} if tenant is None else await batches.refs_by_key(conn, tenant.id, keys)
        for key in keys:
            ref = current.get(key)
            if failure := condition.failure(key, None if ref is None else Version(ref.digest, ref.created_at)):
                raise failure
    if tenant is None:
        return set()
    olds = await batches.delete_refs(conn, tenant.id, keys)
    await batches.add_refcounts(conn, _releases(olds.values()), now)
    await batches.add_usage(conn, tenant.id, -sum(old.size for old in olds.values()), -len(olds))
    return set(olds)


def _releases(olds: Collection[OldRef]) -> dict[int, int]:
    released: Counter[int] = Counter()
    for old in olds:
        released[old.blob_id] -= 1
    return dict(released)
