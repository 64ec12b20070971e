"""Encoding what a put writes into frames (blobstore.storage.frames), in worker threads and bounded memory.

:func:`encoded` turns a write source (bytes, or a file read in pieces) into the stored object and its frame
index: in memory for bytes up to :data:`ENCODE_IN_MEMORY`, else into a temporary file, one frame in memory at
a time. Frames never compressed (compression off, an already-compressed content type) are the plaintext
itself, so the source is written as it is and only its frame digests are computed. :class:`FramedWriter`
encodes a stream on its way into a backend's staging place.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

from blobstore.storage.base import CHUNK_SIZE, Source
from blobstore.storage.frames import FrameEncoder, FrameIndex

#: Bytes held in memory are encoded in memory up to this length; longer ones into a temporary file.
ENCODE_IN_MEMORY = 8 * 1024 * 1024
#: Sources up to this length are encoded on the event loop; longer ones in a worker thread.
_ENCODE_INLINE = 64 * 1024


@contextlib.asynccontextmanager
async def encoded(source: Source, level: int | None) -> AsyncIterator[tuple[Source, FrameIndex]]:
    """The stored object of ``source`` (frames compressed at ``level`` where that pays; None: raw) and its
    frame index, for the life of the context (a temporary file is removed on leaving)."""
    if level is None:
        yield source, await _in_thread(source, lambda: _index(source, None, None))
        return
    if isinstance(source, bytes) and len(source) <= ENCODE_IN_MEMORY:
        parts: list[bytes] = []
        index = await _in_thread(source, lambda: _index(source, level, parts.append))
        yield b"".join(parts), index
        return
    fd, name = tempfile.mkstemp(prefix="blobstore-frames-")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            index = await asyncio.to_thread(_index, source, level, out.write)
        yield path, index
    finally:
        path.unlink(missing_ok=True)


class FramedWriter:
    """Encodes plaintext into frames on its way to ``write`` (a staged object's), a frame's compression in a
    worker thread. :meth:`write` calls come one at a time, in order."""

    def __init__(self, write: Callable[[bytes], Awaitable[None]], level: int | None) -> None:
        self._write = write
        self._encoder = FrameEncoder(level)

    async def write(self, plain: bytes) -> None:
        """Encode ``plain`` and write the frames it completed."""
        stored = await asyncio.to_thread(self._encoder.feed, plain)
        if stored:
            await self._write(stored)

    async def finish(self) -> FrameIndex:
        """Write the last frame; the frame index of everything written."""
        stored = self._encoder.finish()
        if stored:
            await self._write(stored)
        return self._encoder.index


async def _in_thread(source: Source, work: Callable[[], FrameIndex]) -> FrameIndex:
    """``work()``, in a worker thread unless ``source`` is short."""
    if isinstance(source, bytes) and len(source) <= _ENCODE_INLINE:
        return work()
    return await asyncio.to_thread(work)


def _index(source: Source, level: int | None, out: Callable[[bytes], object] | None) -> FrameIndex:
    """Encode ``source`` frame by frame, handing each frame's stored bytes to ``out`` (if given)."""
    encoder = FrameEncoder(level)
    for piece in _pieces(source):
        stored = encoder.feed(piece)
        if out is not None and stored:
            out(stored)
    stored = encoder.finish()
    if out is not None and stored:
        out(stored)
    return encoder.index


def _pieces(source: Source) -> Iterator[bytes | memoryview]:
    """The source's bytes in pieces of at most :data:`CHUNK_SIZE`."""
    if isinstance(source, bytes):
        view = memoryview(source)
        for at in range(0, len(source), CHUNK_SIZE):
            yield view[at : at + CHUNK_SIZE]
        return
    with source.open("rb") as file:
        while piece := file.read(CHUNK_SIZE):
            yield piece
