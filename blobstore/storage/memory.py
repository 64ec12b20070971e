"""Objects in a dict, for tests: each instance is its own empty store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from datetime import UTC, datetime

from blobstore.errors import ObjectMissing, StorageUnavailable
from blobstore.storage.base import CHUNK_SIZE, ObjectInfo, ObjectStorage, Source, StagedObject


class MemoryStorage(ObjectStorage):
    """Objects held in memory; writes are atomic because one dict assignment publishes them."""

    url = "memory://"

    def __init__(self) -> None:
        self._objects: dict[str, tuple[bytes, datetime]] = {}

    async def write(self, key: str, source: Source) -> None:
        """Store a copy of the bytes, stamped with the current UTC time."""
        data = source if isinstance(source, bytes) else await asyncio.to_thread(source.read_bytes)
        self._objects[key] = (data, datetime.now(UTC))

    @property
    def supports_staging(self) -> bool:
        """Staged bytes are a buffer; publishing them is one dict assignment."""
        return True

    async def stage(self, name: str) -> StagedObject:
        """A buffer outside the store (a process that dies takes it along, so nothing is left to reclaim)."""
        del name
        return _StagedBuffer(self._objects)

    async def write_if_absent(self, key: str, data: bytes) -> bool:
        """Store ``data`` unless ``key`` exists (one event loop: no await between check and store)."""
        if key in self._objects:
            return False
        self._objects[key] = (bytes(data), datetime.now(UTC))
        return True

    async def read(self, key: str, byte_range: tuple[int, int] | None = None) -> AsyncGenerator[bytes, None]:
        """Yield the object (or the inclusive range) in chunks of at most CHUNK_SIZE."""
        try:
            data, _ = self._objects[key]
        except KeyError:
            raise ObjectMissing(key) from None
        first, last = byte_range or (0, len(data) - 1)
        for start in range(first, last + 1, CHUNK_SIZE):
            yield data[start : min(start + CHUNK_SIZE, last + 1)]

    async def stat(self, key: str) -> ObjectInfo | None:
        """Return the object's info, or None if absent."""
        if key not in self._objects:
            return None
        data, modified = self._objects[key]
        return ObjectInfo(key, len(data), modified)

    async def set_storage_class(self, key: str, storage_class: str) -> None:
        """No classes in memory: nothing moves."""

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Drop every key; absent keys are ignored."""
        for key in keys:
            self._objects.pop(key, None)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Yield a snapshot of the objects under ``prefix``, each once, in key order."""
        for key, (data, modified) in sorted(self._objects.items()):
            if key.startswith(prefix):
                yield ObjectInfo(key, len(data), modified)


class _StagedBuffer(StagedObject):
    """Staged bytes of a :class:`MemoryStorage`, published into its dict."""

    def __init__(self, objects: dict[str, tuple[bytes, datetime]]) -> None:
        self._objects = objects
        self._buffer: bytearray | None = bytearray()

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` to the buffer."""
        assert self._buffer is not None, "write after publish or discard"
        self._buffer += data

    async def publish(self, key: str) -> None:
        """Store the buffer's bytes under ``key``."""
        if self._buffer is None:
            raise StorageUnavailable(f"the staged bytes for {key} were published or discarded already")
        self._objects[key] = (bytes(self._buffer), datetime.now(UTC))
        self._buffer = None

    async def discard(self) -> None:
        """Drop the buffer."""
        self._buffer = None
