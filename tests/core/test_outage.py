"""OutageMemory: after object storage fails a write, puts spool at once for a while, one retry at a time."""

from __future__ import annotations

import pytest

from blobstore.core import outage
from blobstore.core.outage import OutageMemory
from blobstore.errors import StorageUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def failing_write(memory: OutageMemory) -> None:
    with pytest.raises(StorageUnavailable), memory.trying():
        raise StorageUnavailable("connection refused")


def test_a_failed_write_makes_puts_spool_at_once_until_the_memory_lapses() -> None:
    clock = Clock()
    memory = OutageMemory(clock)
    assert not memory.spool_at_once()
    with memory.trying():
        pass  # a write that succeeds changes nothing
    assert not memory.spool_at_once()
    failing_write(memory)
    clock.now += outage.MEMORY_SECONDS - 0.1
    assert memory.spool_at_once()
    clock.now += 0.1
    assert not memory.spool_at_once()


def test_one_write_at_a_time_tries_again_and_its_outcome_decides() -> None:
    clock = Clock()
    memory = OutageMemory(clock)
    failing_write(memory)
    clock.now += outage.MEMORY_SECONDS
    with memory.trying():
        assert memory.spool_at_once()  # the others spool while this one tries
    assert not memory.spool_at_once()  # it succeeded: the outage is forgotten
    failing_write(memory)
    clock.now += outage.MEMORY_SECONDS
    failing_write(memory)  # the retry fails: the memory starts anew
    clock.now += outage.MEMORY_SECONDS - 0.1
    assert memory.spool_at_once()


def test_a_drain_that_reached_object_storage_forgets_the_outage() -> None:
    memory = OutageMemory(Clock())
    failing_write(memory)
    memory.recovered()
    assert not memory.spool_at_once()
