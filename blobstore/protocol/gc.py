"""Garbage collection, planned and executed one batch at a time, so memory stays bounded at any size.

A run first aborts the S3 multipart uploads untouched for longer than BLOBSTORE_MULTIPART_EXPIRY (each in
one transaction that releases its parts' references and quota, so their blobs become unreferenced), then makes
three sweeps at ``cutoff = now - grace``:

1. **blobs**: rows that are unreferenced since before the cutoff, uploads whose
   uploader stopped renewing its lease, and tombstoned rows, by id, in batches:
   each batch is tombstoned under its row locks (re-checking the condition, so a
   put that acquired a blob meanwhile wins), its objects deleted, its rows forgotten;
2. **orphans**: objects of the store's exact key shape, older than the cutoff,
   that no row accounts for (leftovers of crashed puts and GC runs);
3. **incomplete uploads**: the backend's leftovers of the store's own keys,
   begun before the cutoff, that no live upload lease holds.

Anything else in storage (another application's files, another store's objects,
names that are not valid text) is *foreign*: counted and reported, never touched.
A dry run walks the same batches and changes nothing. docs/gc-protocol.md argues
why this never deletes an object a reference needs and never leaks one forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from blobstore.core.identity import MARKER_KEY
from blobstore.db import maintenance, multipart
from blobstore.db.catalog import forget_blobs, lock_tenant
from blobstore.model.progress import Progress, no_progress
from blobstore.storage.base import IncompleteUpload, ObjectInfo
from blobstore.storage.layout import OBJECT_PREFIX, is_object_key

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from blobstore.core.context import Core

log = logging.getLogger(__name__)

#: Objects deleted per storage request, blobs tombstoned per transaction, keys looked up per query.
BATCH = 1000

T = TypeVar("T")

PlanKind = Literal["multipart-upload", "blob", "orphan", "upload", "foreign-object", "foreign-upload"]


@dataclass(frozen=True)
class Planned:
    """One thing a GC run deletes (or, dry, would delete) or leaves alone as foreign.

    ``key`` is printable: a name that is not valid text is shown with backslash escapes.
    """

    kind: PlanKind
    key: str
    size: int | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Called with each planned deletion and each foreign key, as the run finds them.
OnPlanned = Callable[[Planned], None]


@dataclass
class GcStats:
    """What a GC run did (or, for a dry run, would do)."""

    dry_run: bool
    multipart_uploads_expired: int = 0
    blobs_reclaimed: int = 0
    bytes_reclaimed: int = 0
    orphans_deleted: int = 0
    orphan_bytes: int = 0
    incomplete_uploads_aborted: int = 0
    foreign_objects: int = 0
    foreign_uploads: int = 0
    #: Unreferenced blobs (and their bytes) inside the grace period, left for a later run.
    blobs_waiting: int = 0
    bytes_waiting: int = 0
    #: When the first of them becomes reclaimable; None when none waits.
    next_reclaimable_at: datetime | None = None
    duration_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["next_reclaimable_at"] = self.next_reclaimable_at and self.next_reclaimable_at.isoformat()
        return values


@dataclass(frozen=True)
class _Run:
    core: Core
    cutoff: datetime
    now: datetime
    dry_run: bool
    stats: GcStats
    on_planned: OnPlanned
    progress: Progress


async def gc(
    core: Core,
    *,
    dry_run: bool = False,
    progress: Progress = no_progress,
    on_planned: OnPlanned | None = None,
) -> GcStats:
    """Reclaim what is reclaimable now (or, with ``dry_run``, only count it); see the module docstring.

    ``on_planned`` hears of each deletion (and each foreign key) as the run finds it.
    """
    started = time.monotonic()
    now = core.clock()
    run = _Run(
        core,
        now - timedelta(seconds=core.settings.gc_grace_seconds),
        now,
        dry_run,
        GcStats(dry_run),
        on_planned or (lambda _: None),
        progress,
    )
    await _expire_multipart_uploads(run)
    await _sweep_blobs(run)
    await _count_waiting(run)
    await _sweep_orphans(run)
    await _sweep_uploads(run)
    run.stats.duration_seconds = time.monotonic() - started
    return run.stats


async def _expire_multipart_uploads(run: _Run) -> None:
    """Abort the multipart uploads untouched since before ``now - BLOBSTORE_MULTIPART_EXPIRY``, each in one
    transaction under its tenant's lock that re-checks the expiry (a part that arrived meanwhile keeps the upload)
    and releases its parts' references and quota; their blobs are then unreferenced, and reclaimed past grace.
    Completed uploads kept as long (for a retried completion) are forgotten: they hold nothing."""
    database, after = run.core.database, ""
    cutoff = run.now - timedelta(seconds=run.core.settings.multipart_expiry_seconds)
    if not run.dry_run and await database.read(partial(multipart.any_completed_before, cutoff=cutoff)):
        await database.transaction(partial(multipart.forget_completed, cutoff=cutoff))
    while batch := await database.read(partial(multipart.expired_uploads, cutoff=cutoff, after_id=after, limit=BATCH)):
        after = batch[-1][1]
        for tenant, upload_id in batch:
            if not run.dry_run and not await database.transaction(
                partial(_expire_upload, tenant=tenant, upload_id=upload_id, cutoff=cutoff, now=run.now)
            ):
                continue
            run.on_planned(Planned("multipart-upload", f"{tenant}/{upload_id}", None, "multipart upload expired"))
            run.stats.multipart_uploads_expired += 1


async def _expire_upload(conn: AsyncConnection, tenant: str, upload_id: str, cutoff: datetime, now: datetime) -> bool:
    locked = await lock_tenant(conn, tenant, now, create=False)
    return locked is not None and await multipart.expire(conn, locked.id, upload_id, cutoff, now)


async def _sweep_blobs(run: _Run) -> None:
    database, after = run.core.database, 0
    while batch := await database.read(  # a plan: the tombstone re-checks every condition under the row locks
        partial(
            maintenance.find_reclaimable,
            cutoff=run.cutoff,
            now=run.now,
            node_id=run.core.settings.node_id,
            after_id=after,
            limit=BATCH,
        )
    ):
        after = batch[-1].blob_id
        reasons = {blob.blob_id: blob.reason for blob in batch}
        done = batch if run.dry_run else await _reclaim(run, list(reasons))
        for blob in done:
            run.on_planned(Planned("blob", blob.object_key, blob.size, reasons[blob.blob_id]))
        run.stats.blobs_reclaimed += len(done)
        run.stats.bytes_reclaimed += sum(blob.size for blob in done)
        run.progress("reclaiming blobs", len(batch), None)


async def _count_waiting(run: _Run) -> None:
    """Count what the grace period still protects, and when the first of it becomes reclaimable."""
    waiting = await run.core.database.read(partial(maintenance.waiting_for_grace, cutoff=run.cutoff))
    run.stats.blobs_waiting, run.stats.bytes_waiting = waiting.blobs, waiting.size
    if waiting.first_unreferenced is not None:
        run.stats.next_reclaimable_at = waiting.first_unreferenced + (run.now - run.cutoff)


async def _reclaim(run: _Run, blob_ids: list[int]) -> list[maintenance.Reclaimable]:
    """Tombstone the still-reclaimable blobs among ``blob_ids``, delete their objects, forget their rows; the
    blobs whose rows this run forgot. A tombstoned row is re-driven by every run that finds it, so two runs at
    once may both delete its object; only the one whose delete of the row took effect counts it."""
    database = run.core.database
    tombstoned = await database.transaction(
        partial(
            maintenance.tombstone, blob_ids=blob_ids, cutoff=run.cutoff, now=run.now, node_id=run.core.settings.node_id
        )
    )
    if not tombstoned:
        return []
    stored = [blob.object_key for blob in tombstoned if blob.spooled_on is None]
    if stored:
        await run.core.storage.delete_many(stored)
    await _delete_spooled(run, [blob.object_key for blob in tombstoned if blob.spooled_on is not None])
    forgotten = await database.transaction(partial(forget_blobs, blob_ids=[blob.blob_id for blob in tombstoned]))
    return [blob for blob in tombstoned if blob.blob_id in forgotten]


async def _delete_spooled(run: _Run, object_keys: list[str]) -> None:
    """Delete the spool files of tombstoned blobs spooled on this node (docs/spool.md). Object storage is not
    asked: an object a drain or a write wrote there before the row is forgotten is an orphan, swept past
    grace, so GC reclaims spooled blobs while object storage is still unreachable."""
    if not object_keys:
        return
    if run.core.spool is None:
        log.warning("blobs %s were spooled on this node, which has no spool (BLOBSTORE_SPOOL_DIR) now", object_keys)
        return
    await run.core.spool.storage.delete_many(object_keys)


async def _sweep_orphans(run: _Run) -> None:
    async for batch in _batches(_old_own_objects(run)):
        await _delete_orphans(run, batch)


async def _old_own_objects(run: _Run) -> AsyncIterator[ObjectInfo]:
    """The store's own objects older than the cutoff; foreign ones are counted and reported instead."""
    async for info in run.core.storage.list(OBJECT_PREFIX):
        run.progress("scanning storage", 1, None)
        if not is_object_key(info.key):
            run.stats.foreign_objects += 1
            run.on_planned(Planned("foreign-object", printable(info.key), info.size, "not written by this store"))
        elif info.modified < run.cutoff:
            yield info


async def _delete_orphans(run: _Run, objects: Sequence[ObjectInfo]) -> None:
    """Delete the objects among ``objects`` that no blob row accounts for.

    No row can appear for such an object later: rows are written before their objects, each under a fresh key.
    """
    keys = [info.key for info in objects]
    known = await run.core.database.read(partial(maintenance.known_object_keys, object_keys=keys))
    orphans = [info for info in objects if info.key not in known]
    if orphans and not run.dry_run:
        await run.core.storage.delete_many([orphan.key for orphan in orphans])
        run.progress("deleting orphans", len(orphans), None)
    for orphan in orphans:
        run.on_planned(Planned("orphan", orphan.key, orphan.size, "no blob row accounts for it"))
    run.stats.orphans_deleted += len(orphans)
    run.stats.orphan_bytes += sum(orphan.size for orphan in orphans)


async def _sweep_uploads(run: _Run) -> None:
    async for batch in _batches(_old_own_uploads(run)):
        await _abort_uploads(run, batch)


async def _old_own_uploads(run: _Run) -> AsyncIterator[IncompleteUpload]:
    """The store's own incomplete uploads begun before the cutoff; foreign ones are counted and reported."""
    async for upload in run.core.storage.incomplete_uploads():
        if upload.key is not None and not (is_object_key(upload.key) or upload.key == MARKER_KEY):
            run.stats.foreign_uploads += 1
            run.on_planned(Planned("foreign-upload", printable(upload.key), None, "not started by this store"))
        elif upload.started < run.cutoff:
            yield upload


async def _batches(items: AsyncIterator[T]) -> AsyncIterator[list[T]]:
    """``items`` in lists of at most :data:`BATCH`."""
    batch: list[T] = []
    async for item in items:
        batch.append(item)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def _abort_uploads(run: _Run, uploads: Sequence[IncompleteUpload]) -> None:
    """Abort the uploads among ``uploads`` that no live lease holds (their uploader died or gave up)."""
    keys = [upload.key for upload in uploads if upload.key is not None]
    leased = (
        await run.core.database.read(partial(maintenance.leased_object_keys, object_keys=keys, now=run.now))
        if keys
        else set()
    )
    for upload in uploads:
        if upload.key in leased:
            continue
        if not run.dry_run:
            await run.core.storage.abort_upload(upload)
        run.on_planned(Planned("upload", upload.key or upload.handle, None, "incomplete upload, lease expired"))
        run.stats.incomplete_uploads_aborted += 1


def printable(key: str) -> str:
    """``key`` as text that can always be printed: bytes that were not UTF-8 (file names the operating
    system handed over undecoded) become ``\\xff`` escapes, other lone surrogates ``\\udcff`` ones."""
    try:
        return key.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return key.encode("utf-8", "backslashreplace").decode("utf-8")
