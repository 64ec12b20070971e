"""Fault injection for object storage: a wrapper that fails, slows, hangs or "crashes" chosen calls.

Faults are a wrapper around a real backend, never flags inside one::

    storage = FaultyStorage(real_storage)
    fault = storage.inject(Fault("write", error=StorageUnavailable("injected")))
    store = await BlobStore.open(settings, storage=storage)
    ...
    assert fault.hits == 1          # prove the fault really fired

A :class:`Fault` picks calls by operation (and optionally by key prefix), lets
``skip`` of them through, then hits the next ``times`` of them: it waits
``delay`` seconds (or forever, ``hang``), then at its ``phase`` runs ``action``
(a test hook, for example one that kills the process) and raises ``error``:

* ``before`` the real call (nothing happened),
* ``after`` the real call (it happened, but the caller hears of a failure),
* ``midway`` through it: a write stores only the first half of the bytes
  under the key (a torn object), a delete removes only the first half of
  the keys, a read or listing yields ``after_items`` items before failing.

Raising :class:`SimulatedCrash` models the process dying at that point: the
storage is dead afterwards (every later call raises it too), and since it is
a ``BaseException`` no ``except Exception`` clean-up runs past it. Wrap the
process's other dependencies with :func:`dies_with` so they die with it::

    store.database.transaction = dies_with(storage, store.database.transaction)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar

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

P = ParamSpec("P")
T = TypeVar("T")

Operation = Literal[
    "check",
    "write",
    "write_if_absent",
    "read",
    "stat",
    "delete_many",
    "list",
    "incomplete_uploads",
    "abort_upload",
    "enclosing_object",
    "set_storage_class",
    "stage",
    "stage_write",
    "stage_discard",
    "make_durable",
]
Phase = Literal["before", "after", "midway"]


class SimulatedCrash(BaseException):
    """The process "died" here. Every later call of the storage raises it too."""


@dataclass
class Fault:
    """One injected misbehaviour of one storage operation (see the module docstring)."""

    operation: Operation
    error: BaseException | Callable[[], BaseException] | None = None
    phase: Phase = "before"
    delay: float = 0.0
    hang: bool = False
    action: Callable[[], None] | None = None
    key_prefix: str = ""
    skip: int = 0
    times: int | None = 1
    after_items: int = 0
    #: Matching calls seen, and calls this fault hit.
    seen: int = field(default=0, init=False)
    hits: int = field(default=0, init=False)

    def make_error(self) -> BaseException | None:
        """A fresh exception to raise, or None for a fault that only delays or runs its action."""
        if self.error is None or isinstance(self.error, BaseException):
            return self.error
        return self.error()

    def _claims(self, operation: str, key: str) -> bool:
        """Count a call and say whether this fault hits it."""
        if operation != self.operation or not key.startswith(self.key_prefix):
            return False
        self.seen += 1
        if self.seen <= self.skip or (self.times is not None and self.hits >= self.times):
            return False
        self.hits += 1
        return True


class FaultyStorage(StorageWrapper):
    """Wraps a backend; each call consults the injected faults, then delegates to ``inner``."""

    def __init__(self, inner: ObjectStorage, *faults: Fault) -> None:
        super().__init__(inner)
        self.faults = list(faults)
        #: Every call made, as ``(operation, key or prefix)``, in order.
        self.calls: list[tuple[str, str]] = []
        #: True once a SimulatedCrash fired: the "process" is dead.
        self.crashed = False

    def inject(self, fault: Fault) -> Fault:
        """Add a fault; returns it, so the test can check ``fault.hits`` later."""
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every fault and forget a crash: the storage behaves like ``inner`` again."""
        self.faults.clear()
        self.crashed = False

    def count(self, operation: str) -> int:
        """How many calls of ``operation`` were made."""
        return sum(1 for op, _ in self.calls if op == operation)

    async def _enter(self, operation: Operation, key: str = "") -> Fault | None:
        """Record the call; for the fault that hits it, wait, and strike now if its phase is ``before``."""
        if self.crashed:
            raise SimulatedCrash(f"{operation}({key!r}) called after the simulated crash")
        self.calls.append((operation, key))
        fault = next((fault for fault in self.faults if fault._claims(operation, key)), None)
        if fault is None:
            return None
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.hang:
            await asyncio.Event().wait()
        if fault.phase == "before":
            self._strike(fault)
        return fault

    def _strike(self, fault: Fault) -> None:
        """Run the fault's action, then raise its error (if it has one)."""
        if fault.action is not None:
            fault.action()
        error = fault.make_error()
        if error is None:
            return
        if isinstance(error, SimulatedCrash):
            self.crashed = True
        raise error

    def _leave(self, fault: Fault | None) -> None:
        """Strike a fault whose phase is ``after`` (or ``midway``, if the call ended before the middle)."""
        if fault is not None and fault.phase != "before":
            self._strike(fault)

    async def check(self) -> None:
        fault = await self._enter("check")
        await self.inner.check()
        self._leave(fault)

    async def prepare_prefixes(self, prefixes: Sequence[str]) -> None:
        await self.inner.prepare_prefixes(prefixes)

    async def write(self, key: str, source: Source) -> None:
        await self._write(self.inner.write, key, source)

    async def _write(self, write: Callable[[str, Source], Awaitable[None]], key: str, source: Source) -> None:
        """The operation ``write`` of ``key`` by ``write`` (the storage's, or a batch's deferred one)."""
        fault = await self._enter("write", key)
        if fault is not None and fault.phase == "midway":
            data = source if isinstance(source, bytes) else await asyncio.to_thread(Path.read_bytes, source)
            await write(key, data[: len(data) // 2])
        else:
            await write(key, source)
        self._leave(fault)

    def deferred_writes(self) -> DeferredWrites:
        """The inner storage's batch, whose writes are the operation ``write`` and whose sync is
        ``make_durable``."""
        return _FaultyDeferred(self, self.inner.deferred_writes())

    async def write_concatenated(self, key: str, pieces: Sequence[tuple[str, int]]) -> None:
        """The operation ``write`` of ``key``; a midway fault stores the first piece only (a torn object)."""
        fault = await self._enter("write", key)
        torn = fault is not None and fault.phase == "midway"
        await self.inner.write_concatenated(key, pieces[:1] if torn else pieces)
        self._leave(fault)

    async def stage(self, name: str) -> StagedObject:
        fault = await self._enter("stage", name)
        staged = _FaultyStaged(self, await self.inner.stage(name), name)
        self._leave(fault)
        return staged

    async def read(self, key: str, byte_range: tuple[int, int] | None = None) -> AsyncGenerator[bytes, None]:
        fault = await self._enter("read", key)
        chunks = self.inner.read(key, byte_range)
        try:
            yielded = 0
            async for chunk in chunks:
                if fault is not None and fault.phase == "midway" and yielded == fault.after_items:
                    self._strike(fault)
                yield chunk
                yielded += 1
        finally:
            await chunks.aclose()
        self._leave(fault)

    async def stat(self, key: str) -> ObjectInfo | None:
        fault = await self._enter("stat", key)
        info = await self.inner.stat(key)
        self._leave(fault)
        return info

    async def delete_many(self, keys: Sequence[str]) -> None:
        fault = await self._enter("delete_many", keys[0] if keys else "")
        if fault is not None and fault.phase == "midway":
            await self.inner.delete_many(keys[: len(keys) // 2])
        else:
            await self.inner.delete_many(keys)
        self._leave(fault)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        fault = await self._enter("list", prefix)
        yielded = 0
        async for info in self.inner.list(prefix):
            if fault is not None and fault.phase == "midway" and yielded == fault.after_items:
                self._strike(fault)
            yield info
            yielded += 1
        self._leave(fault)

    async def write_if_absent(self, key: str, data: bytes) -> bool:
        fault = await self._enter("write_if_absent", key)
        created = await self.inner.write_if_absent(key, data)
        self._leave(fault)
        return created

    async def incomplete_uploads(self) -> AsyncIterator[IncompleteUpload]:
        fault = await self._enter("incomplete_uploads")
        async for upload in self.inner.incomplete_uploads():
            yield upload
        self._leave(fault)

    async def abort_upload(self, upload: IncompleteUpload) -> None:
        fault = await self._enter("abort_upload", upload.key or "")
        await self.inner.abort_upload(upload)
        self._leave(fault)

    async def enclosing_object(self, name: str) -> str | None:
        fault = await self._enter("enclosing_object", name)
        found = await self.inner.enclosing_object(name)
        self._leave(fault)
        return found

    async def set_storage_class(self, key: str, storage_class: str) -> None:
        fault = await self._enter("set_storage_class", key)
        await self.inner.set_storage_class(key, storage_class)
        self._leave(fault)

    async def missing_location(self) -> str | None:
        return await self.inner.missing_location()


class _FaultyDeferred(DeferredWrites):
    """Deferred writes of a :class:`FaultyStorage` (see :meth:`FaultyStorage.deferred_writes`)."""

    def __init__(self, storage: FaultyStorage, inner: DeferredWrites) -> None:
        super().__init__(storage)
        self._faulty = storage
        self._inner = inner

    async def write(self, key: str, source: Source) -> None:
        await self._faulty._write(self._inner.write, key, source)

    async def make_durable(self) -> dict[str, StorageUnavailable]:
        fault = await self._faulty._enter("make_durable")
        failed = await self._inner.make_durable()
        self._faulty._leave(fault)
        return failed


class _FaultyStaged(StagedObject):
    """Staged bytes of a :class:`FaultyStorage`: appends are the operation ``stage_write`` and discarding
    ``stage_discard`` (keyed by the staging name); publishing is a ``write`` of its key, since that is when
    the bytes land under it (it cannot be torn ``midway``; a ``midway`` ``stage_write`` stages half a chunk)."""

    def __init__(self, storage: FaultyStorage, inner: StagedObject, name: str) -> None:
        self._storage = storage
        self._inner = inner
        self._name = name

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        fault = await self._storage._enter("stage_write", self._name)
        if fault is not None and fault.phase == "midway":
            await self._inner.write(data[: len(data) // 2])
        else:
            await self._inner.write(data)
        self._storage._leave(fault)

    async def publish(self, key: str) -> None:
        fault = await self._storage._enter("write", key)
        if fault is not None and fault.phase == "midway":
            raise NotImplementedError("a midway fault cannot tear a staged publish: fault its stage_write instead")
        await self._inner.publish(key)
        self._storage._leave(fault)

    async def discard(self) -> None:
        fault = await self._storage._enter("stage_discard", self._name)
        await self._inner.discard()
        self._storage._leave(fault)


def dies_with(storage: FaultyStorage, call: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Wrap another async dependency of the process (say, the database's transaction runner) so it
    raises :class:`SimulatedCrash` once ``storage`` has crashed: nothing runs after a crash."""

    async def dead_or_alive(*args: P.args, **kwargs: P.kwargs) -> T:
        if storage.crashed:
            raise SimulatedCrash(f"{getattr(call, '__name__', 'call')} after the simulated crash")
        return await call(*args, **kwargs)

    return dead_or_alive
