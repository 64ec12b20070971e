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
from typing import TYPE_CHECKING

from blobstore.server import metrics

if TYPE_CHECKING:
    from blobstore.store import BlobStore

log = logging.getLogger(__name__)


async def expire(store: BlobStore) -> None:
    """Run lifecycle expiry once and record it; a failure is logged and counted, never raised."""
    try:
        stats = await store.expire()
    except Exception:
        log.exception("lifecycle expiry failed; the next run is on schedule")
        metrics.record_expiry_failure()
        return
    metrics.record_expiry(stats)
    if stats.keys:
        log.info("lifecycle expiry deleted %d keys (%d bytes)", stats.keys, stats.bytes)


async def transition(store: BlobStore) -> None:
    """Run storage-class transitions once and record it; a failure is logged and counted, never raised."""
    try:
        stats = await store.transition()
    except Exception:
        log.exception("lifecycle transitions failed; the next run is on schedule")
        metrics.record_transition_failure()
        return
    metrics.record_transitions(stats)
    if stats.blobs:
        log.info("lifecycle transitions moved %d blobs (%d bytes)", stats.blobs, stats.bytes)


async def collect(store: BlobStore) -> None:
    """Run GC once and record it; a failure is logged and counted, never raised."""
    try:
        stats = await store.gc()
    except Exception:
        log.exception("garbage collection failed; the next run is on schedule")
        metrics.record_gc_failure()
        return
    metrics.record_gc(stats)
    log.info(
        "garbage collection reclaimed %d blobs (%d bytes), %d orphans, %d incomplete uploads in %.3f s",
        stats.blobs_reclaimed,
        stats.bytes_reclaimed,
        stats.orphans_deleted,
        stats.incomplete_uploads_aborted,
        stats.duration_seconds,
    )


async def collect_every(store: BlobStore, interval: float) -> None:
    """Run :func:`expire`, :func:`transition` and :func:`collect` every ``interval`` seconds until cancelled
    (see the module docstring)."""
    await asyncio.sleep(random.uniform(0, interval))
    while True:
        await expire(store)
        await transition(store)
        await collect(store)
        await asyncio.sleep(interval)
