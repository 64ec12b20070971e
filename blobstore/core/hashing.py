"""Hashing a stream in worker threads while it flows: checksums (MD5, SHA-256, CRCs) off the event loop.

hashlib, zlib and awscrt release the GIL while they hash a long buffer, so a block hashed in a worker thread
overlaps the event loop's work (and, on more than one core, other requests' hashing), where hashing every
network chunk on the loop serialises it all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Sequence

from blobstore.model.checksums import Hasher

#: Bytes gathered into one block before it is hashed: a thread hand-off per network chunk costs more than it saves.
HASH_BLOCK = 256 * 1024
#: A (last) block shorter than this is hashed on the event loop: the hand-off would cost more.
_HASH_INLINE = 64 * 1024


async def hashed_in_threads(
    chunks: AsyncIterable[bytes | bytearray | memoryview], hashers: Sequence[Hasher]
) -> AsyncIterator[bytes]:
    """``chunks`` regrouped into blocks of at least :data:`HASH_BLOCK` bytes (the last one shorter; no empty
    ones), each passed through every one of ``hashers``, in order, in a worker thread while the next block is
    gathered. A block is yielded as soon as it is gathered; every block has been hashed once the iteration ends
    (a caller reads the hashers after the last block, not before)."""
    pending: asyncio.Future[None] | None = None
    gathered: list[bytes | bytearray | memoryview] = []
    size = 0
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            gathered.append(chunk)
            size += len(chunk)
            if size < HASH_BLOCK:
                continue
            block = _joined(gathered)
            gathered, size = [], 0
            if pending is not None:
                await pending
            pending = asyncio.ensure_future(asyncio.to_thread(_update, hashers, block))
            yield block
        if pending is not None:
            await pending
            pending = None
        if gathered:
            block = _joined(gathered)
            if len(block) < _HASH_INLINE:
                _update(hashers, block)
            else:
                await asyncio.to_thread(_update, hashers, block)
            yield block
    finally:
        if pending is not None:  # the caller stopped early: let the hashing end, its outcome unwanted
            await asyncio.wait([pending])
            if not pending.cancelled():
                pending.exception()


def _joined(chunks: list[bytes | bytearray | memoryview]) -> bytes:
    return chunks[0] if len(chunks) == 1 and isinstance(chunks[0], bytes) else b"".join(chunks)


def _update(hashers: Sequence[Hasher], block: bytes) -> None:
    for hasher in hashers:
        hasher.update(block)
