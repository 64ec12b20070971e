"""fsck: check that the database and object storage agree, optionally re-hash every object, and repair.

Checks, in order: references point only at live blobs; each tenant's usage
counters equal the sums over its references; then one walk over the blob rows
and the storage listing side by side, both in object-key order and in batches
(memory stays bounded whatever the store's size): each blob's reference count
equals its references, each live blob's object exists with the recorded size,
and with ``read_data`` reads back as a whole read does (each frame of a framed blob checked against its
digest, then the whole plaintext hashed). What GC would reclaim (past grace)
is reported, and ``repair`` reclaims it through GC itself. Objects the store did
not write are reported as foreign and never touched, not even by ``repair``.
Nothing is guessed: a missing or corrupted object is reported, not "fixed".
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from blobstore.core.reading import verified_chunks
from blobstore.db import maintenance
from blobstore.db.catalog import LIVE, blob_state
from blobstore.errors import BlobStoreError, IntegrityError, ObjectMissing
from blobstore.model.progress import Progress, no_progress
from blobstore.protocol.gc import Planned, gc, printable
from blobstore.storage.base import ObjectInfo
from blobstore.storage.layout import OBJECT_PREFIX, is_object_key

if TYPE_CHECKING:
    from blobstore.core.context import Core

#: Problems and foreign keys listed one by one in a report; beyond these they are only counted.
LISTED_PROBLEMS = 1000
FOREIGN_SAMPLE = 100
_GC_PROBLEMS = {
    "multipart-upload": "expired-multipart-upload",
    "blob": "reclaimable-blob",
    "orphan": "orphan-object",
    "upload": "incomplete-upload",
}


@dataclass(frozen=True)
class Problem:
    """One inconsistency: its kind, what it concerns, and whether fsck repaired it."""

    kind: str
    subject: str
    detail: str
    repaired: bool = False


@dataclass
class FsckReport:
    """The outcome of an fsck run; ``ok`` is true when no unrepaired problem remains.

    Memory stays bounded whatever the store's size: the first :data:`LISTED_PROBLEMS`
    problems are listed, every one is counted by kind in ``problem_counts``.
    Foreign objects and uploads (not the store's own) are no problem: they are
    counted, the first :data:`FOREIGN_SAMPLE` named, and left alone.
    """

    blobs_checked: int = 0
    objects_checked: int = 0
    bytes_hashed: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_counts: dict[str, int] = field(default_factory=dict)
    unrepaired: int = 0
    foreign_objects: int = 0
    foreign_sample: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.unrepaired == 0

    @property
    def unlisted(self) -> int:
        """Problems counted but not listed."""
        return sum(self.problem_counts.values()) - len(self.problems)

    def add(self, problem: Problem) -> None:
        """Count ``problem``, and list it while the list is short."""
        self.problem_counts[problem.kind] = self.problem_counts.get(problem.kind, 0) + 1
        self.unrepaired += not problem.repaired
        if len(self.problems) < LISTED_PROBLEMS:
            self.problems.append(problem)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


async def fsck(
    core: Core, *, read_data: bool = False, repair: bool = False, progress: Progress = no_progress
) -> FsckReport:
    """Check the store; with ``repair``, fix counter drift and reclaim what is past grace."""
    started = time.monotonic()
    report = FsckReport()
    database = core.database
    for tenant, key, blob_id in await database.read(maintenance.refs_to_unusable_blobs):
        report.add(Problem("dangling-reference", f"{tenant}/{key}", f"points at blob {blob_id}, which is not live"))
    for usage in await database.read(maintenance.usage_records):
        if (usage.used_bytes, usage.used_objects) != (usage.actual_bytes, usage.actual_objects):
            if repair:
                await database.transaction(partial(maintenance.recount_usage, tenant=usage.tenant))
            report.add(
                Problem(
                    "usage-drift",
                    f"tenant {usage.tenant}",
                    f"counters say {usage.used_bytes} bytes / {usage.used_objects} objects, references sum to "
                    f"{usage.actual_bytes} bytes / {usage.actual_objects} objects",
                    repaired=repair,
                )
            )
    await _walk(core, report, read_data=read_data, repair=repair, progress=progress)

    def reclaimable(planned: Planned) -> None:
        if planned.kind in _GC_PROBLEMS:
            report.add(
                Problem(_GC_PROBLEMS[planned.kind], planned.key, f"{planned.reason}, past grace", repaired=repair)
            )
        elif planned.kind == "foreign-upload":
            _foreign(report, planned.key)

    await gc(core, dry_run=not repair, on_planned=reclaimable)
    report.duration_seconds = time.monotonic() - started
    return report


async def _walk(core: Core, report: FsckReport, *, read_data: bool, repair: bool, progress: Progress) -> None:
    """Walk blob rows and stored objects side by side in object-key order, checking each row."""
    rows = _blob_rows(core)
    objects = _own_objects(core, report, progress)
    row = await anext(rows, None)
    stored = await anext(objects, None)
    while row is not None or stored is not None:
        if stored is None or (row is not None and row.object_key < stored.key):
            assert row is not None
            await _check_row(core, report, row, None, read_data=read_data, repair=repair, progress=progress)
            row = await anext(rows, None)
        elif row is None or stored.key < row.object_key:
            stored = await anext(objects, None)  # no row: GC's orphan sweep judges it (grace applies)
        else:
            await _check_row(core, report, row, stored, read_data=read_data, repair=repair, progress=progress)
            row, stored = await anext(rows, None), await anext(objects, None)


async def _blob_rows(core: Core) -> AsyncIterator[maintenance.BlobRecord]:
    after = ""
    while batch := await core.database.read(partial(maintenance.blob_records, after_key=after)):
        for record in batch:
            yield record
        after = batch[-1].object_key


async def _own_objects(core: Core, report: FsckReport, progress: Progress) -> AsyncIterator[ObjectInfo]:
    """The store's own objects in key order; foreign ones are counted in ``report`` and skipped."""
    async for info in core.storage.list(OBJECT_PREFIX):
        progress("listing storage", 1, None)
        if is_object_key(info.key):
            report.objects_checked += 1
            yield info
        else:
            _foreign(report, printable(info.key))


def _foreign(report: FsckReport, key: str) -> None:
    report.foreign_objects += 1
    if len(report.foreign_sample) < FOREIGN_SAMPLE:
        report.foreign_sample.append(key)


async def _check_row(
    core: Core,
    report: FsckReport,
    record: maintenance.BlobRecord,
    stored: ObjectInfo | None,
    *,
    read_data: bool,
    repair: bool,
    progress: Progress,
) -> None:
    report.blobs_checked += 1
    if record.refcount != record.actual_refs:
        if repair:
            await core.database.transaction(partial(maintenance.recount_blob, blob_id=record.blob_id, now=core.clock()))
        report.add(
            Problem(
                "refcount-drift",
                f"blob {record.blob_id}",
                f"refcount {record.refcount}, but {record.actual_refs} references",
                repaired=repair,
            )
        )
    if record.state != LIVE:
        return
    if record.spooled_on is not None:  # the bucket need not hold it: the spool does (docs/spool.md)
        await _check_spooled(core, report, record, read_data=read_data, progress=progress)
        return
    if stored is None:
        if await _really_missing(core, record):
            report.add(Problem("missing-object", record.object_key, f"blob {record.blob_id} ({record.digest})"))
    elif stored.size != record.stored_size:
        detail = f"{stored.size} bytes stored, {record.stored_size} recorded"
        report.add(Problem("size-mismatch", record.object_key, detail))
    elif read_data:
        report.bytes_hashed += await _check_digest(core, record, report, progress)


async def _check_spooled(
    core: Core, report: FsckReport, record: maintenance.BlobRecord, *, read_data: bool, progress: Progress
) -> None:
    """Check a live blob spooled on this node against its spool file; one spooled on another node is that
    node's fsck's to check."""
    if record.spooled_on != core.settings.node_id:
        return
    spooled = None if core.spool is None else await core.spool.storage.stat(record.object_key)
    if spooled is None:
        if await _really_missing(core, record):
            detail = f"blob {record.blob_id} ({record.digest}) is spooled on this node, but its spool file is missing"
            report.add(Problem("missing-object", record.object_key, detail))
    elif spooled.size != record.stored_size:
        detail = f"{spooled.size} bytes spooled, {record.stored_size} recorded"
        report.add(Problem("size-mismatch", record.object_key, detail))
    elif read_data:
        report.bytes_hashed += await _check_digest(core, record, report, progress)


async def _really_missing(core: Core, record: maintenance.BlobRecord) -> bool:
    """True if a live blob's object is missing now, not just at the moment fsck looked.

    fsck reads rows and the storage listing at slightly different moments, so an object may be
    written after its listing page was read (the row turned live in between), and a blob may be
    reclaimed by GC (row gone or tombstoned) meanwhile: neither is a problem.
    """
    if await core.readable.stat(record.object_key) is not None:
        return False
    state = await core.database.read(partial(blob_state, blob_id=record.blob_id))
    return state == LIVE


async def _check_digest(core: Core, record: maintenance.BlobRecord, report: FsckReport, progress: Progress) -> int:
    """Read one object back as a whole read does (each frame checked against its digest, the whole plaintext
    hashed), streaming; record a problem if it is corrupted (naming the frame and its byte range) or
    vanished. Returns the plaintext bytes read."""
    read = 0

    async def gone() -> BlobStoreError:
        return ObjectMissing(record.object_key)

    try:
        async for chunk in verified_chunks(
            core.readable,
            record.object_key,
            key=f"blob {record.blob_id}",
            digest=record.digest,
            size=record.size,
            frames=record.frames,
            byte_range=None,
            missing=gone,
        ):
            read += len(chunk)
            progress("hashing", len(chunk), None)
    except ObjectMissing:
        if await _really_missing(core, record):
            report.add(Problem("missing-object", record.object_key, f"blob {record.blob_id} vanished"))
    except IntegrityError as exc:
        report.add(Problem("corrupted-object", record.object_key, str(exc)))
    return read
