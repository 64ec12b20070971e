"""Object storage that a node with a spool opened while it did not answer (docs/spool.md, "A node started in
an outage").

A node whose object storage does not answer when it opens an existing store starts anyway if it has a spool:
its storage is wrapped in :class:`PairedLater`, whose every call first proves, once, that the storage answers
and is this store's (:func:`blobstore.core.identity.pair`, the marker's store id against the database's).
Until then each call fails as the unreachable storage does (StorageUnavailable; at once, without trying
again, for :data:`RETRY_SECONDS` after the start or an attempt that found the storage unreachable): puts land
in the spool, reads of objects in object storage answer 503, GC, fsck and drains touch no object. A storage
that answers but is another store's fails every call with ConfigurationError, so nothing is ever written into
it or deleted from it. Adding a reference to bytes the database already records (a dedup hit, a copy) needs
no storage and goes ahead, as it does on a running node during an outage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence

from blobstore.core.identity import pair
from blobstore.db.engine import Database
from blobstore.errors import BlobStoreError, StorageUnavailable, StorageUnreachable
from blobstore.storage.base import (
    DeferredWrites,
    IncompleteUpload,
    ObjectInfo,
    ObjectStorage,
    Source,
    StagedObject,
    StorageWrapper,
)

log = logging.getLogger(__name__)

#: Seconds after an attempt to pair that found the storage unreachable during which calls fail at once with
#: its error, rather than each waiting through the storage's own retries.
RETRY_SECONDS = 2.0


class PairedLater(StorageWrapper):
    """``inner``, used only once it has paired with ``database`` (see the module docstring)."""

    def __init__(self, inner: ObjectStorage, database: Database, outage: BlobStoreError) -> None:
        """``outage``: what the start's check of ``inner`` met."""
        super().__init__(inner)
        self._database = database
        self._paired = False
        self._pairing = asyncio.Lock()
        self._unreachable = (time.monotonic(), str(outage))  # when, and what, the last attempt to pair met

    async def _storage(self) -> ObjectStorage:
        """The inner storage, paired first if it is not yet: StorageUnavailable while it does not answer,
        ConfigurationError if it is another store's."""
        if not self._paired:
            async with self._pairing:
                if not self._paired:
                    await self._pair()
        return self.inner

    async def _pair(self) -> None:
        """Check the storage and pair with it (blobstore.core.identity.pair); StorageUnavailable, at once if an
        attempt met it less than :data:`RETRY_SECONDS` ago, while it does not answer."""
        if time.monotonic() - self._unreachable[0] < RETRY_SECONDS:
            raise StorageUnavailable(self._unreachable[1])
        try:
            await self.inner.check()
            await pair(self._database, self.inner)
        except (StorageUnreachable, StorageUnavailable) as error:
            self._unreachable = (time.monotonic(), str(error))
            raise StorageUnavailable(str(error)) from error
        self._paired = True
        log.warning("object storage %s answers and belongs to this store: in use again", self.url)

    async def check(self) -> None:
        await (await self._storage()).check()

    async def prepare_prefixes(self, prefixes: Sequence[str]) -> None:
        await (await self._storage()).prepare_prefixes(prefixes)

    async def write(self, key: str, source: Source) -> None:
        await (await self._storage()).write(key, source)

    def deferred_writes(self) -> DeferredWrites:
        """The inner storage's batches once paired; before, writes one at a time through :meth:`write`."""
        return self.inner.deferred_writes() if self._paired else DeferredWrites(self)

    async def write_concatenated(self, key: str, pieces: Sequence[tuple[str, int]]) -> None:
        await (await self._storage()).write_concatenated(key, pieces)

    async def stage(self, name: str) -> StagedObject:
        return await (await self._storage()).stage(name)

    async def write_if_absent(self, key: str, data: bytes) -> bool:
        return await (await self._storage()).write_if_absent(key, data)

    async def read(self, key: str, byte_range: tuple[int, int] | None = None) -> AsyncGenerator[bytes, None]:
        chunks = (await self._storage()).read(key, byte_range)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()

    async def stat(self, key: str) -> ObjectInfo | None:
        return await (await self._storage()).stat(key)

    async def delete_many(self, keys: Sequence[str]) -> None:
        await (await self._storage()).delete_many(keys)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        async for info in (await self._storage()).list(prefix):
            yield info

    async def incomplete_uploads(self) -> AsyncIterator[IncompleteUpload]:
        async for upload in (await self._storage()).incomplete_uploads():
            yield upload

    async def abort_upload(self, upload: IncompleteUpload) -> None:
        await (await self._storage()).abort_upload(upload)

    async def enclosing_object(self, name: str) -> str | None:
        return await (await self._storage()).enclosing_object(name)

    async def missing_location(self) -> str | None:
        return await (await self._storage()).missing_location()

    async def set_storage_class(self, key: str, storage_class: str) -> None:
        await (await self._storage()).set_storage_class(key, storage_class)
