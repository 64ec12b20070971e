"""fsck: check that the database and object storage agree, optionally re-hash every object, and repair.

Checks, in order: references point only at live blobs; each blob's reference
count equals its references; each tenant's usage counters equal the sums over
its references; each live blob's object exists with the recorded size; with
``read_data``, each object hashes to its digest. Objects and rows that GC
would reclaim (past grace) are reported, and ``repair`` reclaims them through
GC itself. Nothing is guessed: a missing or corrupted object is reported, not
"fixed".
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from blobstore.db import maintenance
from blobstore.db.catalog import LIVE, blob_state
from blobstore.gc import execute_gc, plan_gc
from blobstore.ingest import new_hasher
from blobstore.layout import OBJECT_PREFIX
from blobstore.progress import Progress, no_progress
from blobstore.storage.base import ObjectMissing

if TYPE_CHECKING:
    from blobstore.store import BlobStore


@dataclass(frozen=True)
class Problem:
    """One inconsistency: its kind, what it concerns, and whether fsck repaired it."""

    kind: str
    subject: str
    detail: str
    repaired: bool = False


@dataclass
class FsckReport:
    """The outcome of an fsck run; ``ok`` is true when no unrepaired problem remains."""

    blobs_checked: int = 0
    objects_checked: int = 0
    bytes_hashed: int = 0
    problems: list[Problem] = field(default_factory=list)
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(problem.repaired for problem in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


async def fsck(
    store: BlobStore, *, read_data: bool = False, repair: bool = False, progress: Progress = no_progress
) -> FsckReport:
    """Check the store; with ``repair``, fix counter drift and reclaim what is past grace."""
    started = time.monotonic()
    report = FsckReport()
    database = store.database
    for tenant, key, blob_id in await database.transaction(maintenance.refs_to_unusable_blobs):
        report.problems.append(
            Problem("dangling-reference", f"{tenant}/{key}", f"points at blob {blob_id}, which is not live")
        )
    records = await database.transaction(maintenance.blob_records)
    report.blobs_checked = len(records)
    for record in records:
        if record.refcount != record.actual_refs:
            if repair:
                await database.transaction(partial(maintenance.recount_blob, blob_id=record.blob_id, now=store.clock()))
            report.problems.append(
                Problem(
                    "refcount-drift",
                    f"blob {record.blob_id}",
                    f"refcount {record.refcount}, but {record.actual_refs} references",
                    repaired=repair,
                )
            )
    for usage in await database.transaction(maintenance.usage_records):
        if (usage.used_bytes, usage.used_objects) != (usage.actual_bytes, usage.actual_objects):
            if repair:
                await database.transaction(partial(maintenance.recount_usage, tenant=usage.tenant))
            report.problems.append(
                Problem(
                    "usage-drift",
                    f"tenant {usage.tenant}",
                    f"counters say {usage.used_bytes} bytes / {usage.used_objects} objects, references sum to "
                    f"{usage.actual_bytes} bytes / {usage.actual_objects} objects",
                    repaired=repair,
                )
            )
    sizes = {}
    async for info in store.storage.list(OBJECT_PREFIX):
        sizes[info.key] = info.size
        progress("listing storage", 1, None)
    live = [record for record in records if record.state == LIVE]
    for record in live:
        found = sizes.get(record.object_key)
        if found is None and not await _still_live(store, record):
            continue  # deleted by GC while fsck ran: not a problem
        if found is None:
            report.problems.append(
                Problem("missing-object", record.object_key, f"blob {record.blob_id} ({record.digest})")
            )
        elif found != record.size:
            report.problems.append(
                Problem("size-mismatch", record.object_key, f"{found} bytes stored, {record.size} recorded")
            )
    report.objects_checked = len(sizes)
    if read_data:
        total = sum(record.size for record in live if record.object_key in sizes)
        for record in live:
            if record.object_key in sizes:
                report.bytes_hashed += await _check_digest(store, record, report, total, progress)
    plan = await plan_gc(store)
    for blob in plan.blobs:
        report.problems.append(
            Problem("reclaimable-blob", blob.object_key, f"{blob.reason}, past grace", repaired=repair)
        )
    for orphan in plan.orphans:
        report.problems.append(
            Problem("orphan-object", orphan.key, "no blob row accounts for it, past grace", repaired=repair)
        )
    if repair and (plan.blobs or plan.orphans):
        await execute_gc(store, plan)
    report.duration_seconds = time.monotonic() - started
    return report


async def _still_live(store: BlobStore, record: maintenance.BlobRecord) -> bool:
    """True if the blob is still live now (fsck reads rows and storage at slightly different moments)."""
    state = await store.database.transaction(partial(blob_state, blob_id=record.blob_id))
    return state == LIVE


async def _check_digest(
    store: BlobStore, record: maintenance.BlobRecord, report: FsckReport, total: int, progress: Progress
) -> int:
    """Re-hash one object, streaming; record a problem if it is corrupted or vanished. Returns bytes read."""
    hasher = new_hasher()
    read = 0
    try:
        async for chunk in store.storage.read(record.object_key):
            hasher.update(chunk)
            read += len(chunk)
            progress("hashing", len(chunk), total)
    except ObjectMissing:
        report.problems.append(Problem("missing-object", record.object_key, f"blob {record.blob_id} vanished"))
        return read
    if hasher.hexdigest() != record.digest:
        report.problems.append(Problem("corrupted-object", record.object_key, f"bytes do not hash to {record.digest}"))
    return read
