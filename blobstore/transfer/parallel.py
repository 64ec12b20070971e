"""Bounded concurrency: ``jobs`` workers taking items in order, so at most ``jobs`` items are in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from blobstore.errors import InvalidInput

T = TypeVar("T")

#: Progress of a transfer: called with the bytes of each file as it is done (stored, skipped or failed).
Advance = Callable[[int], None]


def no_advance(nbytes: int) -> None:
    """The default: report nothing."""


def check_jobs(jobs: object) -> int:
    """``jobs`` if it is an integer from 1 to 256, else InvalidInput."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= 256:
        raise InvalidInput(f"jobs must be an integer from 1 to 256, not {jobs!r}")
    return jobs


async def for_each(items: Iterable[T], jobs: int, work: Callable[[T], Awaitable[None]]) -> None:
    """Run ``work`` on every item, at most ``jobs`` at a time; the first exception cancels the rest and propagates."""
    pending = iter(items)

    async def worker() -> None:
        for item in pending:
            await work(item)

    workers = [asyncio.create_task(worker()) for _ in range(jobs)]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
