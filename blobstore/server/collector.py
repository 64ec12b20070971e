"""Periodic lifecycle expiry and garbage collection inside a server process (``blobstore serve --gc-interval``).

Each process runs ``store.expire()`` and ``store.transition()`` (docs/lifecycle.md), then ``store.gc()``, every
``interval`` seconds,
the first time at a
random moment within the first interval (so the processes of a fleet started
together do not all collect at once; concurrent runs are safe anyway, see
docs/gc-protocol.md and blobstore.maintenance.lifecycle). Every run is recorded in blobstore.server.metrics;
one that fails is logged and counted, and the next runs on schedule: neither ever stops the server, and a
failed expiry run does not keep GC from running.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from blobstore.server import metrics

if TYPE_CHECKING:
    from blobstore.store import BlobStore

log = logging.getLogger(__name__)
Stats = TypeVar("Stats")


async def expire(store: BlobStore) -> None:
    """Run lifecycle expiry once and record it; a failure is logged and counted, never raised."""
    stats = await _scheduled("lifecycle expiry", store.expire, metrics.record_expiry, metrics.record_expiry_failure)
    if stats is not None and stats.keys:
        log.info("lifecycle expiry deleted %d keys (%d bytes)", stats.keys, stats.bytes)


async def transition(store: BlobStore) -> None:
    """Run storage-class transitions once and record it; a failure is logged and counted, never raised."""
    stats = await _scheduled(
        "lifecycle transitions", store.transition, metrics.record_transitions, metrics.record_transition_failure
    )
    if stats is not None and stats.blobs:
        log.info("lifecycle transitions moved %d blobs (%d bytes)", stats.blobs, stats.bytes)


async def collect(store: BlobStore) -> None:
    """Run GC once and record it; a failure is logged and counted, never raised."""
    stats = await _scheduled("garbage collection", store.gc, metrics.record_gc, metrics.record_gc_failure)
    if stats is not None:
        log.info(
            "garbage collection reclaimed %d blobs (%d bytes), %d orphans, %d incomplete uploads in %.3f s",
            stats.blobs_reclaimed,
            stats.bytes_reclaimed,
            stats.orphans_deleted,
            stats.incomplete_uploads_aborted,
            stats.duration_seconds,
        )


async def _scheduled(
    name: str, run: Callable[[], Awaitable[Stats]], record: Callable[[Stats], None], failed: Callable[[], None]
) -> Stats | None:
    """One scheduled run of ``run``: its stats recorded, or (None) its failure logged and counted, never raised."""
    try:
        stats = await run()
    except Exception:
        log.exception("%s failed; the next run is on schedule", name)
        failed()
        return None
    record(stats)
    return stats


async def collect_every(store: BlobStore, interval: float) -> None:
    """Run :func:`expire`, :func:`transition` and :func:`collect` every ``interval`` seconds until cancelled
    (see the module docstring)."""
    await asyncio.sleep(random.uniform(0, interval))
    while True:
        await expire(store)
        await transition(store)
        await collect(store)
        await asyncio.sleep(interval)
