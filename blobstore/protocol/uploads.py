"""The write half of docs/gc-protocol.md: intent, lease, write, promote, discard (blobstore/protocol/gc.py is the
reclaim half).

:meth:`Uploader.put` stores hashed items, a single put being a batch of one. A round of it runs the
protocol's steps, each one transaction however many items:

1. *bind or record* (step 1 and 2): bind every item whose bytes are live; for each other distinct digest
   insert an ``uploading`` blob row under a fresh object key, with a lease;
2. *write* (step 3): write those objects, a few at a time, renewing their leases while the bytes flow;
3. *promote* (step 4): make the written uploads live and bind their items (or dedup onto a live blob that
   appeared meanwhile);
4. *discard*: every upload not made live is tombstoned, its object deleted and its row forgotten, best
   effort.

Items whose upload GC reclaimed from a stalled uploader (its lease lapsed) go round again, at most
:data:`MAX_ATTEMPTS` rounds in all.

:meth:`Uploader.ingested` hashes what a put was handed; a long stream, whose digest is known only after its
last byte, it writes into the storage's staging place as it hashes, under an intent recorded first: an
``uploading`` *staging row* whose object key names the staging place, leased while the bytes flow. The round
then publishes the staged bytes under the upload's own key instead of writing them again; a dedup hit
discards them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.core.ingest import Ingested, Writable, ingest, is_stream, stream
from blobstore.db import batches, binding, catalog, hot_path
from blobstore.db import spool as spool_db
from blobstore.db.engine import Database
from blobstore.db.hot_path import Upload
from blobstore.errors import BlobStoreError, StorageUnavailable
from blobstore.model.results import BlobInfo
from blobstore.storage import DeferredWrites, ObjectStorage, StagedObject
from blobstore.storage.frames import FrameIndex, should_compress
from blobstore.storage.layout import object_key_for

if TYPE_CHECKING:
    from blobstore.core.context import Core
    from blobstore.core.spool import Spool

log = logging.getLogger(__name__)

#: The outcome of one item: its result, or the error its single put would have raised.
PutOutcome = BlobInfo | BlobStoreError
#: Rounds of a put: the first, and again for uploads GC reclaimed from a stalled uploader.
MAX_ATTEMPTS = 3
#: Uploads of one batch in flight at once.
_CONCURRENT_WRITES = 8
#: Marks an upload GC reclaimed from a stalled uploader (its items go around again).
_RECLAIMED = object()


class Binder(Protocol):
    """Decides and records the items of a round under the tenant's lock, in the caller's transaction, as
    :func:`blobstore.db.binding.bind` does (its default: references under keys); ``ours`` and ``written`` as
    there."""

    async def __call__(
        self,
        conn: AsyncConnection,
        tenant: catalog.LockedTenant,
        scope: str,
        items: Sequence[binding.Item],
        now: datetime,
        *,
        ours: Mapping[str, int] | None = None,
        written: Mapping[int, batches.Written] | None = None,
    ) -> binding.Outcome: ...


@dataclass(frozen=True)
class Uploader:
    """One tenant's puts into one store: where the rows and the bytes go, and the clock and lease they keep."""

    database: Database
    storage: ObjectStorage
    clock: Callable[[], datetime]
    lease_seconds: float
    tenant: str
    #: The dedup scope of the tenant's blobs: everyone (``""``) or the tenant.
    scope: str
    #: The zstd level frames are compressed at where that pays (None: compression off; blobstore.storage.frames).
    frame_level: int | None
    #: What holds the uploaded blobs: references under keys, or (blobstore.multipart) a multipart upload's
    #: part. Only the default takes the driver-level path of a single put (blobstore.db.hot_path).
    binder: Binder = binding.bind
    #: Where an object goes when object storage is unreachable (docs/spool.md); None: the put fails instead.
    spool: Spool | None = None

    @classmethod
    def of(cls, core: Core, tenant: str) -> Uploader:
        """The tenant's uploader over the store's parts as they are now."""
        return cls(
            core.database,
            core.storage,
            core.clock,
            core.settings.upload_lease_seconds,
            tenant,
            core.dedup_scope_of(tenant),
            core.settings.frame_level,
            spool=core.spool,
        )

    def level_for(self, content_type: str | None) -> int | None:
        """The level bytes of ``content_type`` are compressed at: None for an already-compressed type."""
        return self.frame_level if should_compress(content_type) else None

    @contextlib.asynccontextmanager
    async def ingested(self, data: object, *, max_size: int, content_type: str | None) -> AsyncIterator[Ingested]:
        """``data`` hashed and ready for :meth:`put` (blobstore.core.ingest), for the life of the context.

        A stream longer than :data:`blobstore.core.ingest.STAGE_ABOVE` goes, where the storage can stage, into
        its staging place as it is hashed, encoded into frames for ``content_type``: first a staging row is
        committed (``uploading``, leased, its object key a fresh placeholder that names the staging place),
        then the bytes flow while the lease is renewed. On leaving, staged bytes :meth:`put` did not publish
        are discarded and the staging row deleted (nothing is ever stored under its key), best effort: a
        crash or error leaves a staging row and maybe a staging leftover, which GC reclaims once the lease
        lapsed (docs/gc-protocol.md).
        Anything else is hashed (and a stream spooled) by :func:`blobstore.core.ingest.ingest`.
        """
        if not (self.storage.supports_staging and is_stream(data)):
            ingested = await ingest(data, max_size=max_size)
            try:
                yield ingested
            finally:
                ingested.discard()
            return
        async with contextlib.AsyncExitStack() as stack:

            async def stage() -> StagedObject:
                blob_id, name = await self.database.transaction(self._record_staging)
                stack.push_async_callback(self._drop_staging, blob_id)
                await stack.enter_async_context(self._lease_renewed([blob_id]))
                staged = await self._stage(name)
                stack.push_async_callback(_discard_staged, staged)
                return staged

            yield await stream(data, max_size=max_size, stage=stage, level=self.level_for(content_type))

    async def put(
        self, pending: list[binding.Item], sources: Mapping[int, Writable], outcomes: list[PutOutcome | None]
    ) -> None:
        """Store the hashed items ``pending`` (item ``i``'s bytes in ``sources[i]``), each item's BlobInfo or
        BlobStoreError into ``outcomes[i]``, decided in item order as if the puts ran one after another.

        Acknowledged when: an item gets its BlobInfo only once the transaction binding its reference
        committed, and for uploaded bytes only after their object was durably written. An item's error
        changes nothing for the others, and an item that failed stored nothing.

        A crash (or an error) at each step leaves, and GC (blobstore.protocol.gc) reclaims:

        * in *bind or record*: nothing, or that transaction whole (its bindings are done);
        * in *write*: ``uploading`` rows and maybe partial objects or multipart parts, not acknowledged:
          GC reclaims them once their lease lapses (the lease is renewed while this uploader lives);
        * before *promote* commits: ``uploading`` rows and their objects, not acknowledged: the same;
        * after *promote*: the puts are durable (a caller that never heard dedups onto them on retry);
        * in *discard*: ``deleting`` or ``uploading`` rows, maybe their objects: GC finishes the job.

        Raises only what is not a BlobStoreError (a bug, cancellation); those are items' outcomes.
        """
        for _ in range(MAX_ATTEMPTS):
            if not pending:
                return
            pending = await self._round(pending, sources, outcomes)
        for item in pending:
            outcomes[item.index] = StorageUnavailable(
                f"upload of {item.digest} kept stalling past its {self.lease_seconds:g} s lease, so GC "
                "reclaimed it; nothing was stored"
            )

    async def _round(
        self, pending: list[binding.Item], sources: Mapping[int, Writable], outcomes: list[PutOutcome | None]
    ) -> list[binding.Item]:
        """One round: bind or record, write, promote, discard. Outcomes go into ``outcomes``; returns the items
        whose uploads GC reclaimed (to try again)."""

        async def bind_or_record(conn: AsyncConnection) -> tuple[binding.Outcome, dict[str, Upload]]:
            now = self.clock()
            outcome = await self.binder(conn, await self._lock_or_create(conn, now), self.scope, pending, now)
            # A fresh object key per attempt: a replay after a lost COMMIT reply must not collide with the
            # row that did commit (which GC reclaims as an abandoned upload).
            new = {item.digest: (item.size, object_key_for(item.digest)) for item in outcome.unbound}
            lease_until = now + timedelta(seconds=self.lease_seconds)
            ids = await batches.insert_uploads(
                conn, self.scope, [(digest, size, key) for digest, (size, key) in new.items()], now, lease_until
            )
            return outcome, {digest: Upload(blob, new[digest][1]) for digest, blob in zip(new, ids, strict=True)}

        try:
            self.storage.ensure_location()  # a dedup hit writes no bytes: a vanished location must still refuse it
            at_once = await self._bound_or_recorded_at_once(pending)
            first, uploads = await self.database.transaction(bind_or_record) if at_once is None else at_once
        except BlobStoreError as exc:
            _fail_all(outcomes, pending, exc)
            return []
        _record(outcomes, first)
        if not uploads:
            return []
        by_digest = {item.digest: item for item in reversed(first.unbound)}
        used: set[int] = set()
        try:
            async with self._lease_renewed([blob for blob, _ in uploads.values()]):
                failed, stored = await self._write_all(uploads, by_digest, sources)
            written = [item for item in first.unbound if item.digest not in failed]
            try:
                ours = {item.digest: uploads[item.digest][0] for item in written}
                second = await self._promote(written, ours, {ours[digest]: stored[digest] for digest in ours})
            except BlobStoreError as exc:  # the commit could not run: none of the written items is stored
                _fail_all(outcomes, written, exc)
                second = binding.Outcome()
            used = second.acquired
        finally:
            for blob, object_key in uploads.values():
                if blob not in used:
                    await self._discard(blob, object_key)
        _record(outcomes, second)
        for item in first.unbound:
            error = failed.get(item.digest)
            if isinstance(error, BlobStoreError):
                outcomes[item.index] = error
        reclaimed = [item for item in first.unbound if failed.get(item.digest) is _RECLAIMED]
        if reclaimed or second.unbound:
            again = sorted({item.digest for item in reclaimed + second.unbound})
            log.warning("uploads of %s lost their lease to GC; uploading again", again)
        return reclaimed + second.unbound

    async def _bound_or_recorded_at_once(
        self, pending: list[binding.Item]
    ) -> tuple[binding.Outcome, dict[str, Upload]] | None:
        """A single put bound, or its upload recorded, in one transaction on the driver connection
        (blobstore.db.hot_path), as ``bind_or_record`` would; None if it is not a single put of bytes named
        by digest (nothing written)."""
        if len(pending) != 1 or pending[0].blob_id is not None or self.binder is not binding.bind:
            return None
        [item] = pending
        now = self.clock()
        reservation = hot_path.Reservation(
            partial(object_key_for, item.digest), now + timedelta(seconds=self.lease_seconds)
        )
        outcome, upload = await hot_path.bind_one(self.database, self.tenant, self.scope, item, now, reservation)
        return outcome, {} if upload is None else {item.digest: upload}

    async def _promote(
        self, written: list[binding.Item], ours: dict[str, int], stored: dict[int, batches.Written]
    ) -> binding.Outcome:
        """Make the written uploads live, recording what each one's object turned out to be (``stored``, by
        blob id), and bind their items, in one transaction (deduplicating onto a live blob that appeared
        meanwhile instead)."""
        if not written:
            return binding.Outcome()
        at_once = await self._committed_at_once(written, ours, stored)
        if at_once is not None:
            return at_once

        async def commit(conn: AsyncConnection) -> binding.Outcome:
            now = self.clock()
            tenant = await self._lock_or_create(conn, now)
            return await self.binder(conn, tenant, self.scope, written, now, ours=ours, written=stored)

        return await self.database.transaction(commit)

    async def _committed_at_once(
        self, written: list[binding.Item], ours: dict[str, int], stored: dict[int, batches.Written]
    ) -> binding.Outcome | None:
        """A single written upload made live and bound on the driver connection (blobstore.db.hot_path), as
        ``_promote``'s transaction would; None if there is more than one (nothing written)."""
        if len(written) != 1 or self.binder is not binding.bind:
            return None
        [item] = written
        upload = ours[item.digest]
        return await hot_path.commit_one(
            self.database, self.tenant, self.scope, item, upload, self.clock(), stored[upload]
        )

    async def _write_all(
        self, uploads: dict[str, Upload], items: dict[str, binding.Item], sources: Mapping[int, Writable]
    ) -> tuple[dict[str, BlobStoreError | object], dict[str, batches.Written]]:
        """Write every recorded upload (the bytes of ``items[digest]``) as frames, a few at a time. Per digest
        that failed, its error (or :data:`_RECLAIMED` if GC took the upload from us); per digest written, its
        frame index and stored size, for the commit to record.

        Every object returned as written is durable. A single upload is written durably on its own; several
        are written as one batch of deferred writes (blobstore.storage.DeferredWrites: on a local directory,
        all renamed into place, then all fsynced, then each directory once), made durable before this
        returns, so the commit that makes them live still comes after every sync.
        """
        failed: dict[str, BlobStoreError | object] = {}
        stored: dict[str, batches.Written] = {}
        limit = asyncio.Semaphore(_CONCURRENT_WRITES)
        batch = self.storage.deferred_writes() if len(uploads) > 1 else None
        writer = self.storage if batch is None else batch

        async def one(digest: str, blob_id: int, object_key: str) -> None:
            item = items[digest]
            async with limit:
                try:
                    frames = await self._write(sources[item.index], blob_id, object_key, item.content_type, writer)
                    stored[digest] = batches.Written(frames.encode(), frames.stored_size)
                except Exception as exc:
                    if await self._reclaimed(blob_id):  # GC took the upload (and its partial object) mid-write
                        failed[digest] = _RECLAIMED
                    elif isinstance(exc, BlobStoreError):
                        failed[digest] = exc
                    else:
                        raise

        try:
            async with asyncio.TaskGroup() as group:
                for digest, (blob_id, object_key) in uploads.items():
                    group.create_task(one(digest, blob_id, object_key))
        except BaseExceptionGroup as errors:  # not a BlobStoreError: raised as a single put raises it
            raise errors.exceptions[0] from None
        if batch is not None:
            written = {uploads[digest].object_key: digest for digest in stored}
            for digest, error in (await _made_durable(batch, written)).items():
                failed[digest] = error
                del stored[digest]
        return failed, stored

    async def _stage(self, name: str) -> StagedObject:
        """A staging place for a stream's bytes: object storage's, or where it is unreachable (or was just now:
        blobstore.core.outage), the spool's."""
        if self.spool is None:
            return await self.storage.stage(name)
        if (staged := await self.spool.outage.tried(partial(self.storage.stage, name))) is not None:
            return staged
        log.warning("object storage is unreachable: staging %s in the spool", name)
        return SpoolStaged(await self.spool.storage.stage(name))

    async def _write(
        self,
        source: Writable,
        blob_id: int,
        object_key: str,
        content_type: str | None,
        writer: ObjectStorage | DeferredWrites,
    ) -> FrameIndex:
        """Write the upload ``blob_id``'s object through ``writer`` (object storage, or its batch's deferred
        writes); into the spool, durably, where object storage is unreachable (after its own retries, or at once
        while this node remembers it failing: blobstore.core.outage) or the bytes were staged there. Parts
        joined by a multipart Complete (blobstore.core.joining) are a single upload whose pieces are in object
        storage: they are never batched nor spooled."""
        level = self.level_for(content_type)
        if not isinstance(source, Ingested):
            assert isinstance(writer, ObjectStorage), "joined parts are a single upload"
            return await source.write_to(writer, object_key, level)
        if isinstance(source.source, SpoolStaged):
            return await self._spooled(source, blob_id, object_key, level)
        if self.spool is None or isinstance(source.source, StagedObject):
            return await source.write_to(writer, object_key, level)
        if (frames := await self.spool.outage.tried(partial(source.write_to, writer, object_key, level))) is not None:
            return frames
        return await self._spooled(source, blob_id, object_key, level)

    async def _spooled(self, source: Ingested, blob_id: int, object_key: str, level: int | None) -> FrameIndex:
        """Write the upload's object into the spool, fsynced, once its row records the spool's node (so GC,
        finding the row, deletes the spool file too). StorageUnavailable if the spool is full or GC
        reclaimed the upload meanwhile; either way nothing was spooled."""
        assert self.spool is not None, "called only with a spool"
        spool = self.spool
        async with spool.room:
            await spool.ensure_room(self.database, source.size if source.frames is None else source.frames.stored_size)
            if not await self.database.transaction(
                partial(spool_db.mark_spooled, blob_id=blob_id, node_id=spool.node_id)
            ):
                raise StorageUnavailable(f"the upload of {object_key} was reclaimed by GC; nothing was stored")
            frames = await source.write_to(spool.storage, object_key, level)
        log.warning("object storage is unreachable: %s is spooled on node %s until drained", object_key, spool.node_id)
        return frames

    async def _lock_or_create(self, conn: AsyncConnection, now: datetime) -> catalog.LockedTenant:
        """Lock the tenant's row, creating the tenant if it has never stored anything."""
        tenant = await catalog.lock_tenant(conn, self.tenant, now, create=True)
        assert tenant is not None, "lock_tenant creates the tenant"
        return tenant

    def _lease_renewed(self, blob_ids: Sequence[int]) -> contextlib.AbstractAsyncContextManager[None]:
        return leases_renewed(self.database, self.clock, self.lease_seconds, blob_ids)

    async def _record_staging(self, conn: AsyncConnection) -> tuple[int, str]:
        """Insert a staging row: ``uploading``, leased, of size 0, under a random placeholder digest (no
        content hashes to it) whose fresh object key names the staging place; its id and that key."""
        placeholder = secrets.token_hex(32)  # fresh per attempt, as bind_or_record's keys are
        name = object_key_for(placeholder)
        now = self.clock()
        lease_until = now + timedelta(seconds=self.lease_seconds)
        [blob_id] = await batches.insert_uploads(conn, self.scope, [(placeholder, 0, name)], now, lease_until)
        return blob_id, name

    async def _drop_staging(self, blob_id: int) -> None:
        """Best effort: delete a staging row, tombstoned and forgotten in one transaction (nothing is ever
        stored under its key). A staging leftover no lease holds any more is GC's to reclaim."""

        async def drop(conn: AsyncConnection) -> None:
            if await catalog.abandon(conn, blob_id):
                await catalog.forget_blobs(conn, [blob_id])

        try:
            await self.database.transaction(drop)
        except Exception:
            log.warning("could not delete staging row %s; GC will reclaim it", blob_id, exc_info=True)

    async def _reclaimed(self, blob_id: int) -> bool:
        """True if GC reclaimed our ``uploading`` blob row; False if it is still ours or we cannot tell.
        One statement, so a read: it takes no write lock."""
        try:
            state = await self.database.read(partial(catalog.blob_state, blob_id=blob_id))
        except Exception:
            return False
        return state != catalog.UPLOADING

    async def _discard(self, blob_id: int, object_key: str) -> None:
        await discard_upload(self.database, self.storage, blob_id, object_key, self.spool)


@contextlib.asynccontextmanager
async def leases_renewed(
    database: Database, clock: Callable[[], datetime], lease_seconds: float, blob_ids: Sequence[int]
) -> AsyncIterator[None]:
    """Renew the uploads' leases every third of their length while the body runs, so GC leaves an
    upload alone however long it takes; only a dead (or stalled) uploader's lease lapses."""

    async def renew() -> None:
        while True:
            await asyncio.sleep(lease_seconds / 3)
            until = clock() + timedelta(seconds=lease_seconds)
            try:
                if not await database.transaction(partial(batches.renew_leases, blob_ids=blob_ids, lease_until=until)):
                    return  # all reclaimed: the commit will find out
            except Exception:
                log.warning("could not renew the leases of uploads %s; retrying", blob_ids, exc_info=True)

    renewer = asyncio.create_task(renew())
    try:
        yield
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer


async def discard_upload(
    database: Database, storage: ObjectStorage, blob_id: int, object_key: str, spool: Spool | None = None
) -> None:
    """Best effort: tombstone an upload nobody references, delete its object (in ``spool`` too, where it may
    have been spooled), forget its row.

    Whatever a crash or error leaves behind here, GC finishes (docs/gc-protocol.md).
    """
    try:
        if await database.transaction(lambda conn: catalog.abandon(conn, blob_id)):
            if spool is not None:
                await spool.storage.delete_many([object_key])
            await storage.delete_many([object_key])
            await database.transaction(lambda conn: catalog.forget_blobs(conn, [blob_id]))
    except Exception:
        log.warning("could not discard upload %s; GC will reclaim it", object_key, exc_info=True)


class SpoolStaged(StagedObject):
    """A stream's bytes staged in the spool because object storage was unreachable: published into the spool."""

    def __init__(self, staged: StagedObject) -> None:
        self.staged = staged

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` to the spool's staging file."""
        await self.staged.write(data)

    async def publish(self, key: str) -> None:
        """Make the staged bytes the spool's object ``key``."""
        await self.staged.publish(key)

    async def discard(self) -> None:
        """Remove the spool's staging file, unless it was published."""
        await self.staged.discard()


async def _discard_staged(staged: StagedObject) -> None:
    """Best effort: discard staged bytes (a no-op once published); GC reclaims what is left."""
    try:
        await staged.discard()
    except Exception:
        log.warning("could not discard staged bytes; GC will reclaim them", exc_info=True)


async def _made_durable(batch: DeferredWrites, digests: Mapping[str, str]) -> dict[str, BlobStoreError]:
    """Make a batch's written objects durable; per digest (``digests`` maps each object key written to its
    digest) whose object could not be, the error: all of them if the sync itself failed."""
    try:
        not_durable: Mapping[str, BlobStoreError] = await batch.make_durable()
    except BlobStoreError as exc:
        not_durable = dict.fromkeys(digests, exc)
    return {digests[key]: error for key, error in not_durable.items() if key in digests}


def _record(outcomes: list[PutOutcome | None], decided: binding.Outcome) -> None:
    for index, info in decided.bound.items():
        outcomes[index] = info
    for index, error in decided.failed.items():
        outcomes[index] = error


def _fail_all(outcomes: list[PutOutcome | None], items: Iterable[binding.Item], error: BlobStoreError) -> None:
    """Give every one of ``items`` the same error (a whole phase of the batch failed)."""
    for item in items:
        outcomes[item.index] = error
