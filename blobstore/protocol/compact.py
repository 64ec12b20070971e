"""``compact``: rewriting blobs stored before frames (their object the raw bytes) into framed objects.

Safe beside writers, readers, GC and other compact runs (docs/gc-protocol.md, **compact**). Per blob:

1. *intent*: an ``uploading`` row (leased, as a put's) under a fresh object key;
2. *write* the old object's bytes, read and verified against the blob's digest, as frames under that key,
   renewing the lease;
3. *verify*: read the new object back, every frame against its digest and the whole against the blob's;
4. *switch* (one transaction): only if the blob is still live under its old object key and our row is still
   ours, the blob takes the new key, frame index and stored size, our row goes, and the old key is kept by an
   ``uploading`` row leased for BLOBSTORE_GC_GRACE, so readers that looked it up go on reading it until GC
   reclaims it past the grace.

A blob that changed meanwhile (deleted and reclaimed, or compacted by another run) is skipped and its new
object discarded. Resumable: a run takes what is still unframed. A dry run reads and compresses, writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blobstore.core.framing import ENCODE_IN_MEMORY, encoded
from blobstore.core.reading import verified_chunks
from blobstore.db import batches, catalog, compaction
from blobstore.errors import BlobStoreError, IntegrityError
from blobstore.model.progress import Progress, no_progress
from blobstore.protocol.uploads import discard_upload, leases_renewed
from blobstore.storage.base import Source
from blobstore.storage.layout import object_key_for

if TYPE_CHECKING:
    from blobstore.core.context import Core

log = logging.getLogger(__name__)

#: Blobs planned per catalog query, and rewritten at once.
BATCH = 100
CONCURRENT = 4


@dataclass
class CompactStats:
    """What a compact run did (or, dry, would do): blobs rewritten and their stored bytes before and after."""

    dry_run: bool
    blobs_rewritten: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    #: Blobs that changed while being rewritten (deleted, or compacted by another run): left as they are.
    blobs_skipped: int = 0
    #: Blobs whose old object could not be read back as its digest: ``object key: error``, left as they are.
    failures: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0

    @property
    def bytes_saved(self) -> int:
        return self.bytes_before - self.bytes_after

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bytes_saved": self.bytes_saved}


async def compact(
    core: Core, *, tenant: str | None = None, dry_run: bool = False, progress: Progress = no_progress
) -> CompactStats:
    """Rewrite every live blob without frames (with ``tenant``: those it references) as frames, a few at a
    time; see the module docstring. A blob that fails is reported in ``failures`` and the run goes on."""
    started = time.monotonic()
    stats, after = CompactStats(dry_run), 0
    total = await core.database.read(partial(compaction.count_raw_blobs, tenant=tenant))
    limit = asyncio.Semaphore(CONCURRENT)

    async def one(blob: compaction.RawBlob) -> None:
        async with limit:
            await _compact_one(core, blob, dry_run, stats)
            progress("compacting blobs", 1, total)

    while batch := await core.database.read(partial(compaction.raw_blobs, tenant=tenant, after_id=after, limit=BATCH)):
        after = batch[-1].blob_id
        async with asyncio.TaskGroup() as group:
            for blob in batch:
                group.create_task(one(blob))
    stats.failures.sort()
    stats.duration_seconds = time.monotonic() - started
    return stats


async def _compact_one(core: Core, blob: compaction.RawBlob, dry_run: bool, stats: CompactStats) -> None:
    """Rewrite (or, dry, estimate) ``blob`` and count the outcome in ``stats``."""
    try:
        stored_size = await (_estimate(core, blob) if dry_run else _rewrite(core, blob))
    except BlobStoreError as exc:
        if await core.database.read(partial(compaction.still_raw, blob=blob)):
            stats.failures.append(f"{blob.object_key}: {exc}")
            log.warning("could not compact %s: %s", blob.object_key, exc)
        else:  # deleted and reclaimed, or compacted by another run, meanwhile
            stats.blobs_skipped += 1
        return
    if stored_size is None:
        stats.blobs_skipped += 1
    else:
        stats.blobs_rewritten += 1
        stats.bytes_before += blob.size
        stats.bytes_after += stored_size


async def _estimate(core: Core, blob: compaction.RawBlob) -> int:
    """The stored size ``blob`` would have as frames (its old object read, verified and compressed)."""
    async with _plaintext(core, blob) as plain, encoded(plain, core.settings.frame_level) as (_, index):
        return index.stored_size


async def _rewrite(core: Core, blob: compaction.RawBlob) -> int | None:
    """Rewrite ``blob`` as frames under a fresh key and switch the catalog to it; its new stored size, or None
    if it changed meanwhile (then nothing is switched and the new object is discarded) or GC reclaimed our
    upload (we stalled past its lease)."""
    database, settings = core.database, core.settings
    new_key = object_key_for(blob.digest)
    now = core.clock()
    [upload_id] = await database.transaction(
        partial(
            batches.insert_uploads,
            scope=blob.scope,
            uploads=[(blob.digest, blob.size, new_key)],
            now=now,
            lease_until=now + timedelta(seconds=settings.upload_lease_seconds),
        )
    )
    switched: compaction.Switch = "blob-changed"
    try:
        async with leases_renewed(database, core.clock, settings.upload_lease_seconds, [upload_id]):
            try:
                async with _plaintext(core, blob) as plain, encoded(plain, settings.frame_level) as (stored, index):
                    await core.storage.write(new_key, stored)
                written = batches.Written(index.encode(), index.stored_size)
                await _verify(core, blob, new_key, written.frames)
            except BlobStoreError:
                if await database.read(partial(catalog.blob_state, blob_id=upload_id)) == catalog.UPLOADING:
                    raise
                return None  # we stalled past our lease and GC took the new object: a rerun takes the blob
            now = core.clock()
            switched = await database.transaction(
                partial(
                    compaction.switch_to_framed,
                    blob=blob,
                    upload_id=upload_id,
                    new_key=new_key,
                    written=written,
                    now=now,
                    retire_until=now + timedelta(seconds=settings.gc_grace_seconds),
                )
            )
    finally:
        if switched == "blob-changed":  # also on any error: our upload is nobody's
            await discard_upload(database, core.storage, upload_id, new_key)
    return index.stored_size if switched == "switched" else None


async def _verify(core: Core, blob: compaction.RawBlob, object_key: str, frames: bytes) -> None:
    """IntegrityError unless the object under ``object_key`` reads back, frame by frame, as ``blob``."""
    async for _ in _chunks(core, blob, object_key, frames):
        pass


@contextlib.asynccontextmanager
async def _plaintext(core: Core, blob: compaction.RawBlob) -> AsyncIterator[Source]:
    """``blob``'s bytes, read from its old object and verified against its digest: in memory up to
    :data:`ENCODE_IN_MEMORY`, else in a temporary file removed on leaving."""
    chunks = _chunks(core, blob, blob.object_key, None)
    if blob.size <= ENCODE_IN_MEMORY:
        yield b"".join([chunk async for chunk in chunks])
        return
    fd, name = tempfile.mkstemp(prefix="blobstore-compact-")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in chunks:
                out.write(chunk)
        yield path
    finally:
        path.unlink(missing_ok=True)


def _chunks(core: Core, blob: compaction.RawBlob, object_key: str, frames: bytes | None) -> AsyncIterator[bytes]:
    async def missing() -> BlobStoreError:
        return IntegrityError(f"object {object_key} of blob {blob.digest} is missing")

    return verified_chunks(
        core.storage,
        object_key,
        key=object_key,
        digest=blob.digest,
        size=blob.size,
        frames=frames,
        byte_range=None,
        missing=missing,
    )
