"""Encoding what a put writes into frames (blobstore.storage.frames), in worker threads and bounded memory.

:func:`encoded` turns a write source (bytes, or a file read in pieces) into the stored object and its frame
index: in memory for bytes up to :data:`ENCODE_IN_MEMORY`, else into a temporary file, one frame in memory at
a time, begun only at the first compressed frame (a long source whose frames all stay raw, such as random
data, is written as it is). Frames never compressed (compression off, an already-compressed content type)
are the plaintext itself, so the source is written as it is and only its frame digests are computed.
:class:`FramedWriter` encodes a stream on its way into a backend's staging place.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import BinaryIO

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
    spool = _Spool(source)
    try:
        index = await asyncio.to_thread(spool.encode, level)
        yield spool.stored, index
    finally:
        spool.remove()


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


class _Spool:
    """The stored object of a long source: the source itself while every frame stays raw (their stored bytes
    are the source's own), else a temporary file, begun at the first compressed frame with the raw frames
    before it copied from the source (memory: one frame and one copy chunk at a time)."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self._raw = 0  # stored bytes of the raw frames before any compressed one: a prefix of the source
        self._file: BinaryIO | None = None
        self._path: Path | None = None

    @property
    def stored(self) -> Source:
        """The stored object (after :meth:`encode`)."""
        return self._source if self._path is None else self._path

    def encode(self, level: int) -> FrameIndex:
        """Encode the source into frames (blocking); the frame index."""
        encoder = FrameEncoder(level)
        for piece in _pieces(self._source):
            self._put(encoder.feed(piece), raw=encoder.all_raw)
        self._put(encoder.finish(), raw=encoder.all_raw)
        if self._file is not None:
            self._file.close()
        return encoder.index

    def remove(self) -> None:
        """Remove the temporary file, if there is one."""
        if self._file is not None:
            self._file.close()
        if self._path is not None:
            self._path.unlink(missing_ok=True)

    def _put(self, stored: bytes, *, raw: bool) -> None:
        if self._file is None:
            if raw:
                self._raw += len(stored)
                return
            fd, name = tempfile.mkstemp(prefix="blobstore-frames-")
            self._path = Path(name)
            self._file = os.fdopen(fd, "wb")
            for piece in _pieces(self._source, self._raw):
                self._file.write(piece)
        self._file.write(stored)


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


def _pieces(source: Source, limit: int | None = None) -> Iterator[bytes | memoryview]:
    """The source's bytes (the first ``limit`` of them, if given) in pieces of at most :data:`CHUNK_SIZE`."""
    if isinstance(source, bytes):
        view = memoryview(source)[:limit]
        for at in range(0, len(view), CHUNK_SIZE):
            yield view[at : at + CHUNK_SIZE]
        return
    remaining = sys.maxsize if limit is None else limit
    with source.open("rb") as file:
        while remaining > 0 and (piece := file.read(min(CHUNK_SIZE, remaining))):
            remaining -= len(piece)
            yield piece
