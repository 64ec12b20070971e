"""Turning what a caller hands to ``put`` into a digest, a size and a source a backend can write.

One pass over the input: bytes are hashed in place; a path is hashed where it
lies (memory-mapped) and later read by the backend; file objects and async
iterables are hashed while they are spooled to a temporary file (:func:`ingest`)
or, where the storage can stage bytes, written straight into its staging place
(:func:`stream`), because their digest is known only after the last byte.
Nothing large is ever held in memory.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import stat
import tempfile
from collections.abc import AsyncIterable, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import blake3

from blobstore.core.framing import FramedWriter, encoded
from blobstore.errors import IntegrityError, InvalidInput, NotFound, ObjectTooLarge
from blobstore.storage.base import CHUNK_SIZE, DeferredWrites, ObjectStorage, Source, StagedObject
from blobstore.storage.frames import FrameIndex

#: Inputs that ``put`` accepts.
PutData = bytes | bytearray | memoryview | os.PathLike[str] | IO[bytes] | AsyncIterable[bytes]

_THREADED_HASH_BYTES = 1024 * 1024
#: A stream of at most this many bytes is held in memory and put as bytes; a longer one is staged.
STAGE_ABOVE = 1024 * 1024
#: How much of a file is mapped into memory at once while hashing it (a multiple of the page size).
_HASH_WINDOW = 16 * 1024 * 1024


class Writable(Protocol):
    """Hashed bytes a put can store (:class:`Ingested`, or blobs joined by blobstore.core.joining)."""

    async def write_to(self, storage: ObjectStorage, key: str, level: int | None) -> FrameIndex:
        """Store the bytes under ``key`` as frames (compressed at ``level`` where that pays); their index."""
        ...


@dataclass
class Ingested:
    """The hashed input, ready to upload: call :meth:`discard` when done with it."""

    digest: str
    size: int
    #: The bytes, a file, or bytes already staged in the storage they are to be published in.
    source: Source | StagedObject
    spooled: bool = False
    fingerprint: tuple[int, int] | None = None
    #: The frame index of staged bytes, which are the stored object already (encoded as they were staged).
    frames: FrameIndex | None = None

    async def write_to(self, storage: ObjectStorage | DeferredWrites, key: str, level: int | None) -> FrameIndex:
        """Store the bytes under ``key`` as frames compressed at ``level`` where that pays (None: raw); their
        frame index. Staged bytes are published as they were encoded (only once); anything else is encoded
        (blobstore.core.framing) and written. IntegrityError, after the write, if a caller's file changed
        since it was hashed."""
        if isinstance(self.source, StagedObject):
            assert self.frames is not None, "staged bytes are encoded as they are staged"
            await self.source.publish(key)
            return self.frames
        async with encoded(self.source, level) as (stored, frames):
            await storage.write(key, stored)
        self.ensure_unchanged()
        return frames

    def ensure_unchanged(self) -> None:
        """Raise IntegrityError if a caller's file changed since it was hashed."""
        if (
            self.fingerprint is not None
            and isinstance(self.source, Path)
            and _fingerprint(self.source) != self.fingerprint
        ):
            raise IntegrityError(f"{self.source} changed while it was being stored; nothing was stored")

    @property
    def in_memory(self) -> bool:
        """Whether the bytes are held in memory (nothing to clean up, nothing that can change under a write)."""
        return isinstance(self.source, bytes)

    def discard(self) -> None:
        """Remove the spool file, if this ingest made one."""
        if self.spooled and isinstance(self.source, Path):
            self.source.unlink(missing_ok=True)


def new_hasher() -> Any:
    """A BLAKE3 hasher that uses several threads for large updates."""
    return blake3.blake3(max_threads=blake3.blake3.AUTO)


def check_object_size(size: int, most: int) -> None:
    """Raise ObjectTooLarge if an object of ``size`` bytes (or a stream that reached ``size``) exceeds ``most``."""
    if size > most:
        raise ObjectTooLarge(
            f"the object is larger than the maximum object size of {most} bytes (BLOBSTORE_MAX_OBJECT_SIZE)"
        )


async def ingest(data: object, *, max_size: int) -> Ingested:
    """Hash ``data`` in one pass and return it as a writable source; raise InvalidInput for anything else,
    and ObjectTooLarge as soon as it is known to hold more than ``max_size`` bytes (a stream is read no
    further than the chunk that crosses it)."""
    if isinstance(data, bytes | bytearray | memoryview):
        check_object_size(len(data), max_size)
        return await _ingest_bytes(bytes(data))
    if isinstance(data, str):
        raise InvalidInput(
            "cannot store a str: pass bytes, or a pathlib.Path to store a file (a str is never read as a path)"
        )
    if isinstance(data, os.PathLike):
        return await _ingest_path(Path(data), max_size)
    return await _spool(_stream_chunks(data), max_size)


def is_stream(data: object) -> bool:
    """True if ``data`` is an input read once, in order: a binary file object or an async iterable."""
    return not isinstance(data, bytes | bytearray | memoryview | str | os.PathLike) and (
        hasattr(data, "read") or isinstance(data, AsyncIterable)
    )


async def stream(
    data: object, *, max_size: int, stage: Callable[[], Awaitable[StagedObject]], level: int | None
) -> Ingested:
    """Hash the stream ``data`` (see :func:`is_stream`) in one pass, as :func:`ingest` does, without spooling
    it: up to :data:`STAGE_ABOVE` bytes are held and returned as bytes; past that ``stage()`` is called once
    and every byte is encoded into frames (compressed at ``level`` where that pays, blobstore.core.framing)
    and written into the staged object it returns as it is hashed, a chunk being hashed and encoded (in
    worker threads) and written while the next one is read.

    The caller discards the staged object if it is not published; no write is in flight once this returns or
    raises. ObjectTooLarge as soon as the stream passes ``max_size`` bytes (nothing of the chunk that crosses
    it is staged); what the stream raises passes through."""
    hasher = new_hasher()
    size = 0
    held = bytearray()
    staged: StagedObject | None = None
    framed: FramedWriter | None = None
    pending: asyncio.Future[Any] | None = None  # the previous chunk's hashing and writing
    try:
        async for piece in _stream_chunks(data):
            chunk = _require_bytes(piece)
            size += len(chunk)
            check_object_size(size, max_size)
            if staged is None:
                held += chunk
                if len(held) <= STAGE_ABOVE:
                    continue
                staged, chunk, held = await stage(), bytes(held), bytearray()
                framed = FramedWriter(staged.write, level)
            if not isinstance(chunk, bytes):  # held while the next is read: a buffer the stream reuses must not change
                chunk = bytes(chunk)
            if pending is not None:
                await pending
            assert framed is not None, "made with the staged object"
            pending = asyncio.gather(asyncio.to_thread(hasher.update, chunk), framed.write(chunk))
        if pending is not None:
            await pending
    finally:
        if pending is not None:
            await _settled(pending)
    if staged is None or framed is None:
        return await _ingest_bytes(bytes(held))
    return Ingested(hasher.hexdigest(), size, staged, frames=await framed.finish())


async def _settled(pending: asyncio.Future[Any]) -> None:
    """Wait until ``pending`` is done, whatever its outcome (an error of it is the caller's to ignore)."""
    await asyncio.wait([pending])
    if not pending.cancelled():
        pending.exception()  # retrieved: not reported as never retrieved


async def _ingest_bytes(data: bytes) -> Ingested:
    hasher = new_hasher()
    if len(data) >= _THREADED_HASH_BYTES:
        await asyncio.to_thread(hasher.update, data)
    else:
        hasher.update(data)
    return Ingested(hasher.hexdigest(), len(data), data)


async def _ingest_path(path: Path, max_size: int) -> Ingested:
    try:
        fingerprint = _fingerprint(path)
    except FileNotFoundError:
        raise NotFound(f"no such file: {path}") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    check_object_size(fingerprint[0], max_size)

    def _hash() -> str:
        hasher = new_hasher()
        with path.open("rb") as file:
            for window in _mapped_windows(file, fingerprint[0]):
                with window:
                    hasher.update(window)
        return str(hasher.hexdigest())

    try:
        digest = await asyncio.to_thread(_hash)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    ingested = Ingested(digest, fingerprint[0], path, fingerprint=fingerprint)
    ingested.ensure_unchanged()
    return ingested


def _mapped_windows(file: IO[bytes], size: int) -> Iterator[mmap.mmap]:
    """The file as consecutive read-only memory maps of at most :data:`_HASH_WINDOW` bytes.

    Mapping a window at a time keeps resident memory bounded (one window), where
    mapping the whole file would count every page of it against the process.
    """
    for offset in range(0, size, _HASH_WINDOW):
        yield mmap.mmap(file.fileno(), min(_HASH_WINDOW, size - offset), access=mmap.ACCESS_READ, offset=offset)


def _fingerprint(path: Path) -> tuple[int, int]:
    """Size and modification time of a regular file; InvalidInput for anything else."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(f"{path} is not a regular file")
    return info.st_size, info.st_mtime_ns


def _stream_chunks(data: object) -> AsyncIterable[Any]:
    """The chunks of a file object or async iterable; InvalidInput for anything else."""
    if hasattr(data, "read"):
        return _file_chunks(data)
    if isinstance(data, AsyncIterable):
        return data
    raise InvalidInput(
        f"cannot store {type(data).__name__}: pass bytes, a path, a binary file or an async iterable of bytes"
    )


async def _file_chunks(file: Any) -> AsyncIterable[bytes]:
    """The file's bytes; ``read1`` (where the file has it) returns what a pipe has so far instead of
    blocking until a whole chunk arrives."""
    read = getattr(file, "read1", file.read)
    while chunk := await asyncio.to_thread(read, CHUNK_SIZE):
        yield chunk


async def _spool(chunks: AsyncIterable[Any], max_size: int) -> Ingested:
    fd, name = tempfile.mkstemp(prefix="blobstore-spool-")
    path = Path(name)
    hasher = new_hasher()
    size = 0
    try:
        with os.fdopen(fd, "wb") as spool:
            async for chunk in chunks:
                await asyncio.to_thread(_hash_and_write, hasher, spool, chunk)
                size += len(chunk)
                check_object_size(size, max_size)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Ingested(hasher.hexdigest(), size, path, spooled=True)


def _hash_and_write(hasher: Any, spool: IO[bytes], chunk: object) -> None:
    data = _require_bytes(chunk)
    hasher.update(data)
    spool.write(data)


def _require_bytes(chunk: object) -> bytes | bytearray | memoryview:
    """``chunk``, if it is bytes; InvalidInput if not."""
    if not isinstance(chunk, bytes | bytearray | memoryview):
        raise InvalidInput(f"the input yielded {type(chunk).__name__}, expected bytes")
    return chunk
