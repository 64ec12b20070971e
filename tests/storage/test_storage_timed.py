"""TimedStorage passes the conformance suite and reports each operation's name, outcome and duration."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import pytest

from blobstore.errors import ObjectMissing, StorageUnavailable
from blobstore.storage import LocalStorage, MemoryStorage, ObjectStorage, read_all
from blobstore.storage import timed as timed_module
from blobstore.storage.base import CHUNK_SIZE, ObjectInfo
from blobstore.storage.timed import Outcome, TimedStorage
from blobstore.testing.faults import Fault, FaultyStorage
from blobstore.testing.storage_suite import StorageConformance

Timings = list[tuple[str, Outcome, float]]


class TestTimedStorage(StorageConformance):
    @pytest.fixture
    async def storage(self) -> AsyncIterator[ObjectStorage]:
        async with TimedStorage(MemoryStorage(), lambda *_: None) as storage:
            yield storage


@pytest.fixture
def timings() -> Timings:
    return []


@pytest.fixture
def faulty() -> FaultyStorage:
    return FaultyStorage(MemoryStorage())


@pytest.fixture
def timed(faulty: FaultyStorage, timings: Timings) -> TimedStorage:
    return TimedStorage(faulty, lambda *timing: timings.append(timing))


def outcomes(timings: Timings) -> list[tuple[str, Outcome]]:
    return [(operation, outcome) for operation, outcome, _seconds in timings]


async def test_every_operation_is_reported_once_by_name(timed: TimedStorage, timings: Timings) -> None:
    await timed.check()
    await timed.write("a", b"1")
    assert await timed.write_if_absent("b", b"2")
    assert await read_all(timed, "a") == b"1"
    assert await timed.stat("a") is not None
    assert [info.key async for info in timed.list()] == ["a", "b"]
    assert [upload async for upload in timed.incomplete_uploads()] == []
    assert await timed.enclosing_object("marker") is None
    await timed.delete_many(["a", "b"])
    await timed.close()
    assert outcomes(timings) == [
        ("check", "ok"),
        ("write", "ok"),
        ("write_if_absent", "ok"),
        ("read", "ok"),
        ("stat", "ok"),
        ("list", "ok"),
        ("incomplete_uploads", "ok"),
        ("enclosing_object", "ok"),
        ("delete_many", "ok"),
    ]
    assert all(seconds >= 0 for _operation, _outcome, seconds in timings)


async def test_a_call_that_raises_is_reported_as_an_error_and_still_raises(
    timed: TimedStorage, faulty: FaultyStorage, timings: Timings
) -> None:
    faulty.inject(Fault("write", error=StorageUnavailable("injected")))
    faulty.inject(Fault("list", error=StorageUnavailable("injected"), phase="midway", after_items=1))
    with pytest.raises(StorageUnavailable):
        await timed.write("a", b"1")
    with pytest.raises(ObjectMissing):
        await read_all(timed, "nothing-here")
    await timed.write("b", b"2")
    await timed.write("c", b"3")
    with pytest.raises(StorageUnavailable):
        [info async for info in timed.list()]
    assert outcomes(timings) == [
        ("write", "error"),
        ("read", "error"),
        ("write", "ok"),
        ("write", "ok"),
        ("list", "error"),
    ]


class HangingStat(MemoryStorage):
    """A stat that never answers; ``entered`` is set once one has begun."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()

    async def stat(self, key: str) -> ObjectInfo | None:
        self.entered.set()
        await asyncio.Event().wait()
        return None


async def test_a_cancelled_call_is_reported_as_an_error(timings: Timings) -> None:
    inner = HangingStat()
    timed = TimedStorage(inner, lambda *timing: timings.append(timing))
    call = asyncio.create_task(timed.stat("a"))
    await asyncio.wait_for(inner.entered.wait(), 60)  # the backend is in the call
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert outcomes(timings) == [("stat", "error")]


class StoppedClock:
    """Stands in for the ``time`` module of blobstore.storage.timed: ``perf_counter`` moves only when the
    test moves ``now``."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class SlowReads(MemoryStorage):
    """Each chunk of a read costs the backend ``per_chunk`` seconds of ``clock``."""

    def __init__(self, clock: StoppedClock) -> None:
        super().__init__()
        self.clock = clock
        self.per_chunk = 0.0

    async def read(self, key: str, byte_range: tuple[int, int] | None = None) -> AsyncGenerator[bytes, None]:
        async for chunk in super().read(key, byte_range):
            self.clock.now += self.per_chunk
            yield chunk


async def test_a_read_counts_the_backends_waits_not_the_consumers(
    timings: Timings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A consumer that dawdles between chunks does not make the storage look slow; a slow backend does."""
    clock = StoppedClock()
    monkeypatch.setattr(timed_module, "time", clock)
    inner = SlowReads(clock)
    timed = TimedStorage(inner, lambda *timing: timings.append(timing))
    await timed.write("big", b"x" * (3 * CHUNK_SIZE))
    async for _chunk in timed.read("big"):
        clock.now += 10.0  # the consumer dawdles
    inner.per_chunk = 2.0
    await read_all(timed, "big")
    assert timings[1:] == [("read", "ok", 0.0), ("read", "ok", 3 * 2.0)]


class ClosedReads(MemoryStorage):
    """Counts the reads that were closed."""

    closed = 0

    async def read(self, key: str, byte_range: tuple[int, int] | None = None) -> AsyncGenerator[bytes, None]:
        try:
            async for chunk in super().read(key, byte_range):
                yield chunk
        finally:
            self.closed += 1


async def test_a_read_the_consumer_stops_early_is_ok_and_closes_the_backends_read(timings: Timings) -> None:
    inner = ClosedReads()
    timed = TimedStorage(inner, lambda *timing: timings.append(timing))
    await timed.write("big", b"x" * (3 * CHUNK_SIZE))
    chunks = timed.read("big")
    assert len(await anext(chunks)) == CHUNK_SIZE
    assert inner.closed == 0
    await chunks.aclose()
    assert inner.closed == 1
    assert outcomes(timings) == [("write", "ok"), ("read", "ok")]


async def test_the_wrapper_shows_the_inner_backends_url_and_capabilities(timed: TimedStorage) -> None:
    assert timed.url == "memory://"
    assert timed.supports_incomplete_uploads is MemoryStorage().supports_incomplete_uploads


async def test_wrappers_pass_the_required_marker_to_the_backend(tmp_path: Path) -> None:
    """A timed (and fault-injecting) storage holds the wrapped backend to its marker, so a store opened over
    wrapped storage still refuses writes into a vanished directory."""
    local = LocalStorage(tmp_path / "root")
    await local.write_if_absent("marker", b"id")
    wrapped = TimedStorage(FaultyStorage(local), lambda *_: None)
    wrapped.require_marker("marker")
    (tmp_path / "root" / "marker").unlink()
    with pytest.raises(StorageUnavailable, match="marker"):
        await wrapped.write("k", b"x")
