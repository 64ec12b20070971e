"""A node's spool (docs/spool.md): the local directory a put's stored object lands in, fsynced, while object
storage is unreachable, until a drain (blobstore.protocol.drain) moves it into object storage.

The spool is a :class:`~blobstore.storage.local.LocalStorage` under BLOBSTORE_SPOOL_DIR holding objects under
their own object keys (each blob row's key is fresh, so a spool file belongs to exactly one row), written
the way that backend writes: a temporary file, fsynced, renamed into place, the directory fsynced.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncGenerator, AsyncIterator
from functools import partial
from pathlib import Path

from blobstore.core.outage import OutageMemory
from blobstore.db import spool as spool_db
from blobstore.db.engine import Database
from blobstore.errors import ObjectMissing, StorageUnavailable
from blobstore.storage.base import ObjectInfo, ObjectStorage
from blobstore.storage.local import LocalStorage

#: The file in the spool's root whose lock a drain holds (blobstore.protocol.drain).
DRAIN_LOCK = ".drain.lock"
#: Seconds between two tries for the drain lock.
_LOCK_POLL_SECONDS = 0.05


class Spool:
    """The spool of node ``node_id``: at most ``max_bytes`` of stored objects under ``root``."""

    def __init__(self, root: Path, max_bytes: int, node_id: str) -> None:
        self.storage = LocalStorage(root)
        self.max_bytes = max_bytes
        self.node_id = node_id
        #: Held while a put checks the room left and spools, so two puts cannot both take the last of it.
        self.room = asyncio.Lock()
        #: Whether object storage failed this process's writes just now (then puts spool at once).
        self.outage = OutageMemory()

    async def ensure_room(self, database: Database, size: int) -> None:
        """Raise StorageUnavailable if ``size`` more bytes would take the spool past BLOBSTORE_SPOOL_MAX_BYTES,
        counting what the catalog records as spooled on this node (one indexed query however much is spooled;
        a listing of the spool would grow with every put of an outage). Call it holding :attr:`room`."""
        used = await database.read(partial(spool_db.spooled_bytes, node_id=self.node_id))
        if used + size > self.max_bytes:
            raise StorageUnavailable(
                f"object storage is unreachable and the spool is full ({used} of {self.max_bytes} bytes, "
                "BLOBSTORE_SPOOL_MAX_BYTES); nothing was stored"
            )

    @contextlib.asynccontextmanager
    async def draining(self) -> AsyncIterator[None]:
        """Held while a drain runs: one drain of this spool at a time, among every process that shares it (the
        workers of one server, the CLI). Waits for a drain in progress to end; the lock is the kernel's (an
        ``flock`` on :data:`DRAIN_LOCK`, in the spool's directory, made here if nothing was spooled yet), so a
        process killed while draining releases it."""
        self.storage.root.mkdir(parents=True, exist_ok=True)  # as the first spooled put would
        fd = os.open(self.storage.root / DRAIN_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            while not _locked(fd):  # noqa: ASYNC110 - another process's kernel lock: no event to wait on
                await asyncio.sleep(_LOCK_POLL_SECONDS)
            yield
        finally:
            os.close(fd)  # releases the lock

    def reading(self, storage: ObjectStorage) -> SpoolFirst:
        """Reads from this spool where it holds the object, from ``storage`` otherwise."""
        return SpoolFirst(self.storage, storage)


def _locked(fd: int) -> bool:
    """Take the exclusive lock on ``fd`` if no other open file description holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class SpoolFirst:
    """The read side of object storage (``read`` and ``stat``, what blobstore.core.reading uses) that looks
    in the spool first: an object drained away between the two looks is read from object storage."""

    def __init__(self, spool: ObjectStorage, storage: ObjectStorage) -> None:
        self.spool = spool
        self.storage = storage

    async def read(self, key: str, byte_range: tuple[int, int] | None = None) -> AsyncGenerator[bytes, None]:
        """The object's bytes from the spool if it holds them, else from object storage."""
        chunks = self.spool.read(key, byte_range)
        try:
            first = await anext(chunks)
        except StopAsyncIteration:  # an empty object
            return
        except ObjectMissing:
            async for chunk in self.storage.read(key, byte_range):
                yield chunk
            return
        try:
            yield first
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()

    async def stat(self, key: str) -> ObjectInfo | None:
        """The object's info from the spool if it holds it, else from object storage."""
        return await self.spool.stat(key) or await self.storage.stat(key)
