"""Storage-class transitions: the run that moves cold blobs to the colder class their rules allow, and warm
ones back to STANDARD (docs/lifecycle.md; which class a blob belongs in is blobstore.model.transitions).

A run fixes ``now`` from the store's clock, flushes the read days the process holds (so its own reads count),
reads every tenant's rules once, then walks the live, referenced blobs by id, ``batch`` at a time, with every
key holding them. The blobs of a batch whose recorded class is not the one they belong in move in three steps:
the catalog marks them as moving (``moving_to``, one transaction); their objects are copied, up to
COPY_CONCURRENCY at once (ObjectStorage.set_storage_class: on S3 a server-side copy onto itself with the new
class, the same bytes throughout; a local directory moves nothing); only then the catalog records the classes
of those copied and clears their marks (one transaction). A process killed (or a copy failing) between the
steps leaves objects in the old class or the new one, the catalog in the old one, and the marks: every class
here is read without a restore, so reads are unaffected, and the next run moves every marked blob again (to
the class it then belongs in; copying twice is harmless) and records it. Blobs whose object is over 5 GiB (one S3
copy's limit) stay where they are. A dry run counts the same moves and changes nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db import lifecycle as rule_queries
from blobstore.db import transitions as queries
from blobstore.errors import InvalidInput, ObjectMissing
from blobstore.model.lifecycle import Rule
from blobstore.model.transitions import STANDARD, class_for

if TYPE_CHECKING:
    from blobstore.core.context import Core

#: Blobs read per batch by default.
DEFAULT_BATCH = 500
#: The largest batch a run takes.
MAX_BATCH = 10_000
#: Objects copied at once.
COPY_CONCURRENCY = 16
#: The largest object one S3 CopyObject copies.
MAX_COPY_BYTES = 5 * 1024**3


@dataclass
class ClassMoves:
    """Blobs moved into one class, and their stored bytes."""

    blobs: int = 0
    bytes: int = 0


@dataclass
class TransitionStats:
    """What a transition run did (or, for a dry run, would do), by the class blobs moved to."""

    dry_run: bool
    now: datetime
    classes: dict[str, ClassMoves] = field(default_factory=dict)
    #: Blobs that belong in another class but are too large for one copy.
    too_large: int = 0

    @property
    def blobs(self) -> int:
        return sum(each.blobs for each in self.classes.values())

    @property
    def bytes(self) -> int:
        return sum(each.bytes for each in self.classes.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "dry_run": self.dry_run,
            "now": self.now.isoformat(),
            "blobs_moved": self.blobs,
            "bytes_moved": self.bytes,
            "too_large": self.too_large,
            "classes": {name: {"blobs": each.blobs, "bytes": each.bytes} for name, each in self.classes.items()},
        }


async def transition(core: Core, *, dry_run: bool = False, batch: int = DEFAULT_BATCH) -> TransitionStats:
    """Move every blob whose class is not the one its references' rules and reads put it in (a dry run:
    count them), reading ``batch`` blobs at a time."""
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise InvalidInput(f"batch must be a whole number from 1 to {MAX_BATCH}, not {batch!r}")
    stats = TransitionStats(dry_run, core.clock())
    if not await core.database.read(queries.has_work):
        return stats
    await core.egress.flush()
    by_tenant: dict[str, list[Rule]] = {}
    for rule in await core.database.read(rule_queries.rules):
        by_tenant.setdefault(rule.tenant, []).append(rule)
    after = 0
    while page := await core.database.read(partial(queries.live_blobs, after=after, limit=batch)):
        after = page[-1].id
        holders = await core.database.read(partial(queries.references, blob_ids=[blob.id for blob in page]))
        moves: list[Move] = []
        for blob in page:
            wanted = class_for(holders.get(blob.id, []), by_tenant, blob.last_read_at, stats.now)
            if wanted == (blob.storage_class or STANDARD) and blob.moving_to is None:
                continue
            if blob.stored_size > MAX_COPY_BYTES:
                stats.too_large += 1
            else:
                moves.append((blob, wanted))
        for blob, wanted in moves if stats.dry_run else await _move(core, moves):
            moved = stats.classes.setdefault(wanted, ClassMoves())
            moved.blobs += 1
            moved.bytes += blob.stored_size
    return stats


#: A blob and the class it moves to.
Move = tuple[queries.LiveBlob, str]


async def _move(core: Core, moves: list[Move]) -> list[Move]:
    """Mark the blobs of ``moves`` as moving (one transaction), copy their objects (up to COPY_CONCURRENCY at
    once), then record the classes of those copied (one transaction); the moves recorded."""
    if not moves:
        return []
    marked = await core.database.transaction(partial(_begin, moves=moves))
    copying = asyncio.Semaphore(COPY_CONCURRENCY)

    async def copy(move: Move) -> bool:
        async with copying:
            try:
                await core.storage.set_storage_class(move[0].object_key, move[1])
            except ObjectMissing:
                return False  # deleted or compacted since: nothing of this blob to move
            return True

    async with asyncio.TaskGroup() as group:  # a failed copy cancels the rest; the marks stay for the next run
        tasks = [group.create_task(copy(move)) for move in marked]
    copied = [move for move, task in zip(marked, tasks, strict=True) if task.result()]
    return await core.database.transaction(partial(_record, moves=copied))


async def _begin(conn: AsyncConnection, *, moves: list[Move]) -> list[Move]:
    """Mark each blob as moving; those still live in their objects (not deleted or compacted meanwhile)."""
    return [move for move in moves if await queries.begin_move(conn, move[0], move[1])]


async def _record(conn: AsyncConnection, *, moves: list[Move]) -> list[Move]:
    """Record each blob's new class and clear its mark; those still live in their objects."""
    recorded = []
    for blob, wanted in moves:
        if await queries.record_class(conn, blob, None if wanted == STANDARD else wanted):
            recorded.append((blob, wanted))
    return recorded
