"""The object storage interface every backend implements.

Backends store opaque objects under string keys. They know nothing of tenants,
digests, reference counts or SQL: the store decides every key and all the
bookkeeping. Keys are ``/``-separated relative paths of ``[0-9a-z._/-]``.
"""

from __future__ import annotations

import abc
import asyncio
import os
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, Self

from blobstore.errors import IntegrityError, StorageUnavailable

#: What a backend is asked to store: bytes in memory, or a local file it may read
#: as often and in as many pieces as it likes (the file does not change meanwhile).
Source = bytes | Path

#: Size of the chunks that ``read`` yields.
CHUNK_SIZE = 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    """An object as the backend lists it; ``modified`` is timezone-aware UTC."""

    key: str
    size: int
    modified: datetime


@dataclass(frozen=True)
class IncompleteUpload:
    """A write that started and never finished: the key it was writing (None if the backend cannot
    tell), when it started (timezone-aware UTC), and the backend's handle for aborting it."""

    key: str | None
    started: datetime
    handle: str


class StagedObject(abc.ABC):
    """Bytes written into a backend's staging place before their key is known (see
    :meth:`ObjectStorage.stage`): appended with :meth:`write`, then published under a key or discarded."""

    @abc.abstractmethod
    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``; nothing of it is visible under any key until :meth:`publish`."""

    @abc.abstractmethod
    async def publish(self, key: str) -> None:
        """Make the bytes written so far the object ``key``, atomically and durably, as
        :meth:`ObjectStorage.write` would; afterwards the staging place holds nothing.

        Called at most once: whether it succeeds or fails, the staged bytes are spent.
        """

    @abc.abstractmethod
    async def discard(self) -> None:
        """Remove the staged bytes, if they are still staged; idempotent, a no-op after :meth:`publish`."""


class DeferredWrites:
    """The writes of one batch, made durable together (:meth:`ObjectStorage.deferred_writes`).

    :meth:`write` stores an object as :meth:`ObjectStorage.write` does, except that it need not be durable
    yet; :meth:`make_durable` then makes every object written so far durable at once. Until that returned
    without an error for a key, a crash may lose or tear its object: nothing may be acknowledged on it.
    This default writes each object durably at once, so :meth:`make_durable` has nothing left to do.
    """

    def __init__(self, storage: ObjectStorage) -> None:
        self._storage = storage

    async def write(self, key: str, source: Source) -> None:
        """Store ``source`` under ``key``, atomically as :meth:`ObjectStorage.write` does."""
        await self._storage.write(key, source)

    async def make_durable(self) -> dict[str, StorageUnavailable]:
        """Make every object written so far durable; per key that could not be made durable, its error (its
        object may be there or not: the caller deletes it). Call once, after the last :meth:`write`."""
        return {}


class ObjectStorage(abc.ABC):
    """A flat, async object store.

    Transient failures that outlast the backend's own retries raise
    :class:`~blobstore.errors.StorageUnavailable`; a misconfiguration found by
    :meth:`check` raises :class:`~blobstore.errors.ConfigurationError`.
    """

    #: A URL naming where the objects live, for messages and the store marker.
    url: str

    @property
    def supports_incomplete_uploads(self) -> bool:
        """True if the backend can leave incomplete uploads (see :meth:`incomplete_uploads`)."""
        return False

    @property
    def supports_staging(self) -> bool:
        """True if :meth:`stage` can take bytes whose key is not known yet and publish them under it for
        less than writing them again."""
        return False

    async def check(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Verify that the storage is reachable and usable (the bucket exists, the directory is writable).

        Creates nothing. Before :meth:`require_marker`, a problem raises ConfigurationError (a store
        being opened); after it, StorageUnavailable (a store in use, whose location may come back).
        """

    def require_marker(self, key: str) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Hold the location to the object ``key`` from now on: it must exist, and so must the location.

        Called once the store has paired with this storage. Nothing recreates the location afterwards;
        :meth:`check` and writes raise StorageUnavailable while either is missing, and recover by
        themselves when both are back. A backend that cannot tell cheaply on every write says which
        operations it checks.
        """

    def ensure_location(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Raise StorageUnavailable if the location is known to be gone (its marker missing).

        Cheap enough for every write that adds a reference without writing bytes (a dedup hit, a copy):
        no request, at most a local ``stat``. A backend that cannot tell that cheaply does nothing.
        """

    async def prepare_prefixes(self, prefixes: Sequence[str]) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Make the first write under each of ``prefixes`` (``a/b/``) as cheap as later ones, durably: a
        local directory creates them now. Called once, when a new store is created; object stores have no
        directories and do nothing."""

    @abc.abstractmethod
    async def write(self, key: str, source: Source) -> None:
        """Store ``source`` under ``key`` atomically: readers see the whole object or none.

        Writing an existing key replaces it. On failure nothing is left under ``key``
        (a partial upload may linger in :meth:`incomplete_uploads`).
        """

    def deferred_writes(self) -> DeferredWrites:
        """A batch of writes made durable together (by default, each at once: see :class:`DeferredWrites`)."""
        return DeferredWrites(self)

    async def write_concatenated(self, key: str, pieces: Sequence[tuple[str, int]]) -> None:
        """Store under ``key``, as :meth:`write` does, the first ``length`` bytes of each ``(object key, length)``
        of ``pieces``, one after another. ObjectMissing if one of those objects is gone, IntegrityError if one
        is shorter than its length (nothing is stored either way).

        By default the pieces are read into a temporary file, which is then written; a backend that can join
        objects for less overrides this.
        """
        fd, name = tempfile.mkstemp(prefix="blobstore-join-")
        spool = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                for source, length in pieces:
                    received = 0
                    if length:
                        async for chunk in self.read(source, (0, length - 1)):
                            received += len(chunk)
                            await asyncio.to_thread(out.write, chunk)
                    if received != length:
                        raise IntegrityError(f"object {source} holds {received} of its {length} bytes")
            await self.write(key, spool)
        finally:
            spool.unlink(missing_ok=True)

    @abc.abstractmethod
    async def write_if_absent(self, key: str, data: bytes) -> bool:
        """Create ``key`` holding ``data`` only if no object exists under it, atomically; True if
        this call created it. Of concurrent callers (in any process) exactly one wins."""

    @abc.abstractmethod
    def read(self, key: str, byte_range: tuple[int, int] | None = None) -> AsyncGenerator[bytes, None]:
        """Yield the object's bytes in chunks of at most :data:`CHUNK_SIZE`.

        ``byte_range`` is an inclusive ``(first, last)`` within the object; the
        caller never asks past its end. Raises :class:`~blobstore.errors.ObjectMissing` (before the
        first chunk) when there is no such object. A caller that stops early
        calls ``aclose()`` so the backend releases its file or connection.
        """

    @abc.abstractmethod
    async def stat(self, key: str) -> ObjectInfo | None:
        """Return the object's info, or None if there is no object under ``key``."""

    @abc.abstractmethod
    async def delete_many(self, keys: Sequence[str]) -> None:
        """Delete every object in ``keys``; keys without an object are ignored. Idempotent."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Yield every object whose key starts with ``prefix``, each exactly once, in ascending
        code-point order of the keys; memory stays bounded whatever the number of objects."""

    async def stage(self, name: str) -> StagedObject:
        """Open a staging place for bytes whose key is not known until the last of them (only if
        :attr:`supports_staging`).

        ``name`` is a key the caller holds a lease on: until the staged bytes are published or discarded,
        :meth:`incomplete_uploads` yields a leftover of a process that died meanwhile with ``name`` as its
        key, so GC can reclaim it once the lease lapsed. Nothing appears under ``name`` itself.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot stage bytes")

    async def incomplete_uploads(self) -> AsyncIterator[IncompleteUpload]:
        """Yield the writes under this storage that started and never finished; none by default.

        Only the backend's own leftovers are yielded (never another application's temporary files).
        """
        return
        yield

    async def abort_upload(self, upload: IncompleteUpload) -> None:
        """Abort one incomplete upload from :meth:`incomplete_uploads`; one already gone is ignored."""
        raise NotImplementedError(f"{type(self).__name__} has no incomplete uploads")

    async def enclosing_object(self, name: str) -> str | None:
        """The URL of the nearest location *enclosing* this storage's root (a parent directory, a
        shorter prefix of the bucket) that holds an object called ``name``; None if there is none."""
        del name
        return None

    async def missing_location(self) -> str | None:
        """What is missing if the location itself does not exist (a local directory that is not there), for
        an error message; None where it exists or the backend cannot tell."""
        return None

    @abc.abstractmethod
    async def set_storage_class(self, key: str, storage_class: str) -> None:
        """Put the object under ``key`` in ``storage_class`` (blobstore.model.transitions), atomically: a reader
        sees the same bytes throughout. A backend without classes (a local directory) moves nothing; the
        catalog records the class all the same. S3 raises ObjectMissing if there is no such object."""

    async def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections and clients; the backend is unusable afterwards."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class StorageWrapper(ObjectStorage):
    """Base of a backend that wraps another, ``inner`` (timing, fault injection, pairing later): the
    capabilities, the marker hooks and ``close`` are ``inner``'s; the wrapper implements the operations."""

    def __init__(self, inner: ObjectStorage) -> None:
        self.inner = inner
        self.url = inner.url

    @property
    def supports_incomplete_uploads(self) -> bool:
        return self.inner.supports_incomplete_uploads

    @property
    def supports_staging(self) -> bool:
        return self.inner.supports_staging

    def require_marker(self, key: str) -> None:
        self.inner.require_marker(key)

    def ensure_location(self) -> None:
        self.inner.ensure_location()

    async def close(self) -> None:
        await self.inner.close()


class ObjectReader(Protocol):
    """The read side of object storage: what a read of a blob needs (an :class:`ObjectStorage` is one)."""

    def read(self, key: str, byte_range: tuple[int, int] | None = None) -> AsyncGenerator[bytes, None]:
        """As :meth:`ObjectStorage.read`."""
        ...

    async def stat(self, key: str) -> ObjectInfo | None:
        """As :meth:`ObjectStorage.stat`."""
        ...


async def read_all(storage: ObjectStorage, key: str) -> bytes:
    """Return a whole object's bytes (for small objects and tests)."""
    return b"".join([chunk async for chunk in storage.read(key)])


def source_size(source: Source) -> int:
    """Return the byte length of a write source."""
    return len(source) if isinstance(source, bytes) else source.stat().st_size
