"""OutageMemory: after object storage fails a write, puts spool at once for a while, one retry at a time."""

from __future__ import annotations

import asyncio

from blobstore.core import outage
from blobstore.core.outage import OutageMemory
from blobstore.errors import StorageUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def failing_write(memory: OutageMemory) -> None:
    async def write() -> str:
        raise StorageUnavailable("connection refused")

    assert await memory.tried(write) is None


async def written(memory: OutageMemory) -> str | None:
    async def write() -> str:
        return "written"

    return await memory.tried(write)


async def test_a_failed_write_makes_puts_spool_at_once_until_the_memory_lapses() -> None:
    clock = Clock()
    memory = OutageMemory(clock)
    assert await written(memory) == "written"  # a write that succeeds changes nothing
    assert not memory.spool_at_once()
    await failing_write(memory)
    clock.now += outage.MEMORY_SECONDS - 0.1
    assert memory.spool_at_once()
    assert await written(memory) is None  # not tried: spool instead
    clock.now += 0.1
    assert not memory.spool_at_once()


async def test_one_write_at_a_time_tries_again_and_its_outcome_decides() -> None:
    clock = Clock()
    memory = OutageMemory(clock)
    await failing_write(memory)
    clock.now += outage.MEMORY_SECONDS
    trying = asyncio.Event()
    answer = asyncio.Event()

    async def slow_write() -> str:
        trying.set()
        await answer.wait()
        return "written"

    retry = asyncio.create_task(memory.tried(slow_write))
    await trying.wait()
    assert await written(memory) is None  # the others spool while one tries
    answer.set()
    assert await retry == "written"
    assert not memory.spool_at_once()  # it succeeded: the outage is forgotten
    await failing_write(memory)
    clock.now += outage.MEMORY_SECONDS
    await failing_write(memory)  # the retry fails: the memory starts anew
    clock.now += outage.MEMORY_SECONDS - 0.1
    assert memory.spool_at_once()


async def test_a_drain_that_reached_object_storage_forgets_the_outage() -> None:
    memory = OutageMemory(Clock())
    await failing_write(memory)
    memory.recovered()
    assert not memory.spool_at_once()
