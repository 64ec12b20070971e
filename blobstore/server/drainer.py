"""Draining this node's spool inside a server process (docs/spool.md), whenever the store has a spool.

Every BLOBSTORE_SPOOL_DRAIN_INTERVAL seconds the process drains its node's spool (``store.drain_spool()``)
and records what the spool still holds in the ``blobstore_spool_*`` gauges. While object storage does not
answer the wait doubles, up to 30 intervals (at most five minutes); a drain that succeeds resets it. A failure is
logged, never raised: draining never stops the server.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from blobstore.errors import StorageUnavailable
from blobstore.server import metrics

if TYPE_CHECKING:
    from blobstore.store import BlobStore

log = logging.getLogger(__name__)

#: The longest wait between two drains while object storage stays unreachable: this many intervals, at most
#: :data:`MAX_BACKOFF_SECONDS`.
MAX_BACKOFF_INTERVALS = 30
MAX_BACKOFF_SECONDS = 300.0


async def drain_once(store: BlobStore) -> bool:
    """Drain once and record the spool's gauges; True if the drain finished."""
    finished = True
    try:
        await store.drain_spool()
    except StorageUnavailable as exc:
        log.warning("object storage is still unreachable; the spool waits: %s", exc)
        finished = False
    except Exception:
        log.exception("draining the spool failed; trying again later")
        finished = False
    try:
        await record_spool(store)
    except Exception:
        log.warning("could not read what the spool holds", exc_info=True)
    return finished


async def record_spool(store: BlobStore) -> None:
    """Set the gauges to what this node's spool holds."""
    mine = [node for node in await store.spool_status() if node.node_id == store.settings.node_id]
    metrics.record_spool(sum(node.blobs for node in mine), sum(node.bytes for node in mine))


async def drain_every(store: BlobStore, interval: float) -> None:
    """Run :func:`drain_once` every ``interval`` seconds, backing off while it fails, until cancelled."""
    delay, most = interval, min(interval * MAX_BACKOFF_INTERVALS, MAX_BACKOFF_SECONDS)
    while True:
        delay = interval if await drain_once(store) else min(delay * 2, most)
        await asyncio.sleep(delay)
