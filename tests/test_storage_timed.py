"""TimedStorage passes the conformance suite and reports each operation's name, outcome and duration."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import pytest

from blobstore.errors import StorageUnavailable
from blobstore.storage import LocalStorage, MemoryStorage, ObjectStorage, read_all
from blobstore.storage.base import CHUNK_SIZE, ObjectMissing
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


async def test_a_cancelled_call_is_reported_as_an_error(
    timed: TimedStorage, faulty: FaultyStorage, timings: Timings
) -> None:
    faulty.inject(Fault("stat", hang=True))
    call = asyncio.create_task(timed.stat("a"))
    await asyncio.sleep(0.05)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert outcomes(timings) == [("stat", "error")]


async def test_a_read_counts_the_backends_waits_not_the_consumers(
    timed: TimedStorage, faulty: FaultyStorage, timings: Timings
) -> None:
    """A consumer that dawdles between chunks does not make the storage look slow; a slow backend does."""
    await timed.write("big", b"x" * (3 * CHUNK_SIZE))
    async for _chunk in timed.read("big"):
        await asyncio.sleep(0.1)
    faulty.inject(Fault("read", delay=0.3))
    await read_all(timed, "big")
    (_, _, dawdled), (_, _, slow) = timings[1:]
    assert dawdled < 0.1
    assert slow >= 0.3


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
