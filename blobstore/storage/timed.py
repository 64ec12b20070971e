"""A wrapper that times every call of a backend and reports it to a callback.

``TimedStorage(inner, on_timed)`` behaves exactly like ``inner``; after each
operation it calls ``on_timed(operation, outcome, seconds)``, where
``operation`` is the :class:`~blobstore.storage.base.ObjectStorage` method's
name and ``outcome`` is ``"ok"``, or ``"error"`` when the call raised
(:class:`~blobstore.storage.base.ObjectMissing` included) or was cancelled.

A read or a listing counts only the time spent waiting for the backend's
items, not the consumer's between them (a slow HTTP client does not make the
storage look slow); one the consumer closes early counts as ``"ok"``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from typing import Literal, TypeVar

from blobstore.errors import StorageUnavailable
from blobstore.storage.base import (
    DeferredWrites,
    IncompleteUpload,
    ObjectInfo,
    ObjectStorage,
    Source,
    StagedObject,
    StorageWrapper,
)

T = TypeVar("T")

Outcome = Literal["ok", "error"]
#: Hears of each finished operation: its name, its outcome and the seconds it took.
OnTimed = Callable[[str, Outcome, float], None]
_OK: Outcome = "ok"
_ERROR: Outcome = "error"


class TimedStorage(StorageWrapper):
    """Wraps a backend; see the module docstring. ``close`` is delegated untimed."""

    def __init__(self, inner: ObjectStorage, on_timed: OnTimed) -> None:
        super().__init__(inner)
        self._on_timed = on_timed

    @contextlib.contextmanager
    def _timed(self, operation: str) -> Iterator[None]:
        started, outcome = time.perf_counter(), _ERROR
        try:
            yield
            outcome = _OK
        finally:
            self._on_timed(operation, outcome, time.perf_counter() - started)

    async def _timed_items(self, operation: str, items: AsyncIterator[T]) -> AsyncGenerator[T, None]:
        """Yield ``items``, timing only the waits for the next one (and closing them)."""
        spent, outcome = 0.0, _ERROR
        try:
            while True:
                started = time.perf_counter()
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    outcome = _OK
                    return
                finally:
                    spent += time.perf_counter() - started
                yield item
        except GeneratorExit:  # the consumer stopped early: the backend did nothing wrong
            outcome = _OK
            raise
        finally:
            started = time.perf_counter()
            try:
                if isinstance(items, AsyncGenerator):
                    await items.aclose()
            finally:
                self._on_timed(operation, outcome, spent + time.perf_counter() - started)

    async def check(self) -> None:
        with self._timed("check"):
            await self.inner.check()

    async def prepare_prefixes(self, prefixes: Sequence[str]) -> None:
        await self.inner.prepare_prefixes(prefixes)

    async def write(self, key: str, source: Source) -> None:
        with self._timed("write"):
            await self.inner.write(key, source)

    def deferred_writes(self) -> DeferredWrites:
        return _TimedDeferred(self.inner.deferred_writes(), self)

    async def write_concatenated(self, key: str, pieces: Sequence[tuple[str, int]]) -> None:
        with self._timed("write"):
            await self.inner.write_concatenated(key, pieces)

    async def stage(self, name: str) -> StagedObject:
        with self._timed("stage"):
            return _TimedStaged(await self.inner.stage(name), self)

    async def write_if_absent(self, key: str, data: bytes) -> bool:
        with self._timed("write_if_absent"):
            return await self.inner.write_if_absent(key, data)

    def read(self, key: str, byte_range: tuple[int, int] | None = None) -> AsyncGenerator[bytes, None]:
        return self._timed_items("read", self.inner.read(key, byte_range))

    async def stat(self, key: str) -> ObjectInfo | None:
        with self._timed("stat"):
            return await self.inner.stat(key)

    async def delete_many(self, keys: Sequence[str]) -> None:
        with self._timed("delete_many"):
            await self.inner.delete_many(keys)

    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        return self._timed_items("list", self.inner.list(prefix))

    def incomplete_uploads(self) -> AsyncIterator[IncompleteUpload]:
        return self._timed_items("incomplete_uploads", self.inner.incomplete_uploads())

    async def abort_upload(self, upload: IncompleteUpload) -> None:
        with self._timed("abort_upload"):
            await self.inner.abort_upload(upload)

    async def enclosing_object(self, name: str) -> str | None:
        with self._timed("enclosing_object"):
            return await self.inner.enclosing_object(name)

    async def missing_location(self) -> str | None:
        return await self.inner.missing_location()

    async def set_storage_class(self, key: str, storage_class: str) -> None:
        with self._timed("set_storage_class"):
            await self.inner.set_storage_class(key, storage_class)


class _TimedDeferred(DeferredWrites):
    """A batch of deferred writes whose calls are timed as ``write`` and ``make_durable``."""

    def __init__(self, inner: DeferredWrites, storage: TimedStorage) -> None:
        super().__init__(storage)
        self.inner = inner
        self._timed_storage = storage

    async def write(self, key: str, source: Source) -> None:
        with self._timed_storage._timed("write"):
            await self.inner.write(key, source)

    async def make_durable(self) -> dict[str, StorageUnavailable]:
        with self._timed_storage._timed("make_durable"):
            return await self.inner.make_durable()


class _TimedStaged(StagedObject):
    """Staged bytes whose calls are timed as ``stage_write``, ``stage_publish`` and ``stage_discard``."""

    def __init__(self, inner: StagedObject, storage: TimedStorage) -> None:
        self.inner = inner
        self._storage = storage

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        with self._storage._timed("stage_write"):
            await self.inner.write(data)

    async def publish(self, key: str) -> None:
        with self._storage._timed("stage_publish"):
            await self.inner.publish(key)

    async def discard(self) -> None:
        with self._storage._timed("stage_discard"):
            await self.inner.discard()
