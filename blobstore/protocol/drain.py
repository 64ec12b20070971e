"""Draining a node's spool (docs/spool.md): each live blob spooled on this node is uploaded into object
storage, read back and verified, switched in the catalog (``spooled_on`` NULL, one transaction), and only then
its spool file removed; then spool files no row holds any more, and spool writes a dead process left, are
removed.

A process killed at any point loses nothing and leaves what the next drain or GC finishes:

* after the upload, before the switch: the blob is still spooled; the next drain uploads it again (the same
  bytes under the same key). If it is deleted first, GC deletes both its spool file and the uploaded object;
* after the switch, before the spool file is removed: the blob reads from object storage; the next drain
  removes the spool file, which no row holds any more;
* a switch that finds the row gone (GC reclaimed the blob meanwhile): the uploaded object is an orphan that
  GC removes past grace.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from blobstore.core.reading import verified_chunks
from blobstore.db import maintenance
from blobstore.db import spool as spool_db
from blobstore.errors import BlobStoreError, ConfigurationError, IntegrityError, StorageUnavailable
from blobstore.storage.layout import OBJECT_PREFIX

if TYPE_CHECKING:
    from blobstore.core.context import Core
    from blobstore.core.spool import Spool

log = logging.getLogger(__name__)

#: Spooled blobs looked up per query, and spool files per lookup of their rows.
BATCH = 100


@dataclass
class DrainStats:
    """What a drain did."""

    blobs_drained: int = 0
    bytes_drained: int = 0
    #: Spool files and dead spool writes removed that no row held any more.
    leftovers_removed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def spool_of(core: Core) -> Spool:
    """The node's spool; ConfigurationError if it has none."""
    if core.spool is None:
        raise ConfigurationError("BLOBSTORE_SPOOL_DIR is not set: this node has no spool")
    return core.spool


async def drain(core: Core) -> DrainStats:
    """Move every live blob spooled on this node into object storage (see the module docstring), then remove
    leftovers; one drain of a spool at a time (a drain waits for another process's to end, then finds what is
    left). StorageUnavailable as soon as object storage still does not answer (what was drained stays
    drained); ConfigurationError without a spool."""
    spool = spool_of(core)
    stats = DrainStats()
    after = 0
    async with spool.draining():
        while batch := await core.database.read(
            partial(spool_db.live_spooled, node_id=spool.node_id, after_id=after, limit=BATCH)
        ):
            after = batch[-1].blob_id
            for blob in batch:
                await _drain_one(core, spool, blob, stats)
        await _remove_leftovers(core, spool, stats)
    if stats.blobs_drained:
        log.info("drained %d spooled blobs (%d bytes) into object storage", stats.blobs_drained, stats.bytes_drained)
    return stats


async def _drain_one(core: Core, spool: Spool, blob: spool_db.SpooledBlob, stats: DrainStats) -> None:
    """Upload, verify, switch, free one blob; a spool file that is gone (GC removed it) is skipped."""
    try:
        await core.storage.write(blob.object_key, spool.storage.path(blob.object_key))
    except FileNotFoundError:  # GC reclaimed the blob meanwhile, or the file is lost (fsck reports that)
        log.warning("the spool file of %s is gone; not drained", blob.object_key)
        return
    spool.outage.recovered()  # object storage answers: puts try it first again
    await _verify(core, blob)
    if await core.database.transaction(partial(spool_db.unspool, blob_id=blob.blob_id, node_id=spool.node_id)):
        stats.blobs_drained += 1
        stats.bytes_drained += blob.size
    await spool.storage.delete_many([blob.object_key])


async def _verify(core: Core, blob: spool_db.SpooledBlob) -> None:
    """Read the uploaded object back and check it against the blob's digest (and frames); StorageUnavailable
    if it is not what was spooled (the blob stays spooled)."""

    async def missing() -> BlobStoreError:
        return StorageUnavailable(f"{blob.object_key} was not in object storage right after it was written")

    try:
        async for _ in verified_chunks(
            core.storage,
            blob.object_key,
            key=blob.object_key,
            digest=blob.digest,
            size=blob.size,
            frames=blob.frames,
            byte_range=None,
            missing=missing,
        ):
            pass
    except IntegrityError as exc:
        raise StorageUnavailable(
            f"the drained copy of {blob.object_key} does not verify ({exc}); kept spooled"
        ) from None


async def _remove_leftovers(core: Core, spool: Spool, stats: DrainStats) -> None:
    """Remove spool files no row records as spooled on this node (their blob drained or reclaimed), and
    spool writes no live upload lease holds (their process died)."""
    batch: list[str] = []
    async for info in spool.storage.list(OBJECT_PREFIX):
        batch.append(info.key)
        if len(batch) == BATCH:
            await _remove_unheld(core, spool, batch, stats)
            batch = []
    if batch:
        await _remove_unheld(core, spool, batch, stats)
    now = core.clock()
    async for upload in spool.storage.incomplete_uploads():
        keys = [] if upload.key is None else [upload.key]
        leased: set[str] = set()
        if keys:
            leased = await core.database.read(partial(maintenance.leased_object_keys, object_keys=keys, now=now))
        if leased:
            continue
        await spool.storage.abort_upload(upload)
        stats.leftovers_removed += 1


async def _remove_unheld(core: Core, spool: Spool, keys: list[str], stats: DrainStats) -> None:
    held = await core.database.read(partial(spool_db.spooled_keys, object_keys=keys, node_id=spool.node_id))
    unheld = [key for key in keys if key not in held]
    if unheld:
        await spool.storage.delete_many(unheld)
        stats.leftovers_removed += len(unheld)
