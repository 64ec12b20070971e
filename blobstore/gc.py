"""Garbage collection: plan, then execute.

:func:`plan_gc` lists what may be reclaimed at ``now - grace``: blobs without
references, uploads that never committed, tombstoned blobs whose deletion was
interrupted, and objects in storage that no blob row accounts for (orphans).
:func:`execute_gc` reclaims them in batches, re-checking every blob under its
row lock first. docs/gc-protocol.md argues why this never deletes an object a
reference needs and never leaks one forever.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from blobstore.db import maintenance
from blobstore.db.catalog import forget_blobs
from blobstore.layout import OBJECT_PREFIX
from blobstore.progress import Progress, no_progress
from blobstore.storage.base import ObjectInfo

if TYPE_CHECKING:
    from blobstore.store import BlobStore

#: Objects deleted per storage request and blobs tombstoned per transaction.
BATCH = 1000


@dataclass(frozen=True)
class GcPlan:
    """What a GC run at ``cutoff`` would reclaim."""

    cutoff: datetime
    blobs: list[maintenance.Reclaimable] = field(default_factory=list)
    orphans: list[ObjectInfo] = field(default_factory=list)

    @property
    def blob_bytes(self) -> int:
        return sum(blob.size for blob in self.blobs)

    @property
    def orphan_bytes(self) -> int:
        return sum(orphan.size for orphan in self.orphans)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary with every planned deletion."""
        return {
            "cutoff": self.cutoff.isoformat(),
            "blobs": len(self.blobs),
            "blob_bytes": self.blob_bytes,
            "orphans": len(self.orphans),
            "orphan_bytes": self.orphan_bytes,
            "blob_objects": [asdict(blob) for blob in self.blobs],
            "orphan_objects": [
                {"key": o.key, "size": o.size, "modified": o.modified.isoformat()} for o in self.orphans
            ],
        }


@dataclass(frozen=True)
class GcStats:
    """What a GC run did (or, for a dry run, would do)."""

    dry_run: bool
    blobs_reclaimed: int
    bytes_reclaimed: int
    orphans_deleted: int
    orphan_bytes: int
    incomplete_uploads_aborted: int
    duration_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of_plan(cls, plan: GcPlan, duration_seconds: float) -> GcStats:
        """The stats of a dry run: what executing ``plan`` would reclaim."""
        return cls(
            dry_run=True,
            blobs_reclaimed=len(plan.blobs),
            bytes_reclaimed=plan.blob_bytes,
            orphans_deleted=len(plan.orphans),
            orphan_bytes=plan.orphan_bytes,
            incomplete_uploads_aborted=0,
            duration_seconds=duration_seconds,
        )


async def plan_gc(store: BlobStore, progress: Progress = no_progress) -> GcPlan:
    """List what GC may reclaim now; changes nothing."""
    cutoff = store.clock() - timedelta(seconds=store.settings.gc_grace_seconds)
    blobs = await store.database.transaction(lambda conn: maintenance.find_reclaimable(conn, cutoff))
    orphans: list[ObjectInfo] = []
    batch: list[ObjectInfo] = []
    async for info in store.storage.list(OBJECT_PREFIX):
        progress("scanning storage", 1, None)
        if info.modified < cutoff:
            batch.append(info)
        if len(batch) == BATCH:
            orphans += await _unaccounted(store, batch)
            batch = []
    orphans += await _unaccounted(store, batch)
    return GcPlan(cutoff, blobs, orphans)


async def _unaccounted(store: BlobStore, objects: Sequence[ObjectInfo]) -> list[ObjectInfo]:
    """The objects among ``objects`` that no blob row accounts for."""
    if not objects:
        return []
    keys = [info.key for info in objects]
    known = await store.database.transaction(lambda conn: maintenance.known_object_keys(conn, keys))
    return [info for info in objects if info.key not in known]


async def execute_gc(store: BlobStore, plan: GcPlan, progress: Progress = no_progress) -> GcStats:
    """Reclaim what ``plan`` lists that is still reclaimable, and abort stale incomplete uploads."""
    started = time.monotonic()
    reclaimed_blobs = reclaimed_bytes = 0
    total = len(plan.blobs)
    for start in range(0, total, BATCH):
        ids = [blob.blob_id for blob in plan.blobs[start : start + BATCH]]
        doomed = await store.database.transaction(partial(maintenance.tombstone, blob_ids=ids, cutoff=plan.cutoff))
        if doomed:
            await store.storage.delete_many([blob.object_key for blob in doomed])
            await store.database.transaction(partial(forget_blobs, blob_ids=[blob.blob_id for blob in doomed]))
        reclaimed_blobs += len(doomed)
        reclaimed_bytes += sum(blob.size for blob in doomed)
        progress("reclaiming blobs", len(ids), total)
    orphans = await _unaccounted(store, plan.orphans)
    for start in range(0, len(orphans), BATCH):
        await store.storage.delete_many([orphan.key for orphan in orphans[start : start + BATCH]])
        progress("deleting orphans", min(BATCH, len(orphans) - start), len(orphans))
    aborted = await store.storage.abort_incomplete_uploads(plan.cutoff)
    return GcStats(
        dry_run=False,
        blobs_reclaimed=reclaimed_blobs,
        bytes_reclaimed=reclaimed_bytes,
        orphans_deleted=len(orphans),
        orphan_bytes=sum(orphan.size for orphan in orphans),
        incomplete_uploads_aborted=aborted,
        duration_seconds=time.monotonic() - started,
    )


async def gc(store: BlobStore, *, dry_run: bool = False, progress: Progress = no_progress) -> GcStats:
    """Plan and, unless ``dry_run``, execute a GC run."""
    started = time.monotonic()
    plan = await plan_gc(store, progress)
    if not dry_run:
        return await execute_gc(store, plan, progress)
    return GcStats.of_plan(plan, time.monotonic() - started)
