"""Streaming reads that check the bytes against their digests: a framed blob frame by frame, a raw one whole."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence

from blobstore.core.ingest import new_hasher
from blobstore.errors import BlobStoreError, IntegrityError, ObjectMissing, StorageUnavailable
from blobstore.storage.base import ObjectReader
from blobstore.storage.frames import Frame, FrameIndex, decode_frame

#: Frames whose stored bytes are longer than this are decoded in a worker thread, shorter ones on the loop.
_DECODE_INLINE = 64 * 1024


async def verified_chunks(
    storage: ObjectReader,
    object_key: str,
    *,
    key: str,
    digest: str,
    size: int,
    frames: bytes | None,
    byte_range: tuple[int, int] | None,
    missing: Callable[[], Awaitable[BlobStoreError]],
) -> AsyncGenerator[bytes, None]:
    """Yield the plaintext of ``key`` (or its inclusive ``byte_range``, already clamped to the blob); raise
    IntegrityError if it is not what was put, and the error ``missing()`` returns if the object is gone.

    A framed blob (``frames``: its encoded frame index) is read frame by frame: a ranged read fetches only the
    frames overlapping the range, in one storage request, and each frame is checked against its digest
    before any of its bytes is yielded; a whole read also hashes the whole plaintext. A raw blob (``frames``
    None, stored before frames) is checked by length, and on a whole read by hashing it as it streams.
    Either way a whole read's error may come at the end, after the chunks; callers that must never see wrong
    bytes buffer (``Tenant.get`` does).
    """
    hasher = new_hasher() if byte_range is None else None
    if frames is None:
        chunks = _stored(storage, object_key, key, byte_range, size, missing)
    else:
        chunks = _framed(storage, object_key, key, _index(frames, key), byte_range, missing)
    async with contextlib.aclosing(chunks):  # a reader that stops early stops what reads under it now, not at GC
        async for chunk in chunks:
            if hasher is not None:
                hasher.update(chunk)
            yield chunk
    if hasher is not None and hasher.hexdigest() != digest:
        raise IntegrityError(f"stored object for {key!r} is corrupted: its bytes do not hash to {digest}")


def _index(frames: bytes, key: str) -> FrameIndex:
    try:
        return FrameIndex.decode(frames)
    except IntegrityError as exc:
        raise IntegrityError(f"stored object for {key!r} cannot be read: {exc}") from None


async def _framed(
    storage: ObjectReader,
    object_key: str,
    key: str,
    index: FrameIndex,
    byte_range: tuple[int, int] | None,
    missing: Callable[[], Awaitable[BlobStoreError]],
) -> AsyncGenerator[bytes, None]:
    """The plaintext of ``byte_range`` (None: all of it), decoded and checked frame by frame."""
    first, last = (0, index.size - 1) if byte_range is None else byte_range
    start, stop = index.overlapping(first, last) if byte_range is not None else (0, len(index.frames))
    wanted = index.frames[start:stop]
    if byte_range is None:  # the whole object, so an object longer than its frames is noticed
        stored_range = None
    elif not wanted:
        return
    else:
        stored_range = (wanted[0].stored_offset, wanted[-1].stored_end - 1)
    stored_frames = _frames_of(
        _stored(storage, object_key, key, stored_range, index.stored_size, missing), wanted, start
    )
    async with contextlib.aclosing(_decoded(stored_frames, key)) as decoded:
        async for frame, plain in decoded:
            if first <= frame.offset and frame.last <= last:
                yield plain
            else:
                yield plain[max(first - frame.offset, 0) : min(last, frame.last) - frame.offset + 1]


async def _decoded(
    frames: AsyncIterator[tuple[int, Frame, bytes]], key: str
) -> AsyncGenerator[tuple[Frame, bytes], None]:
    """Each frame with its checked plaintext, in order. A frame decodes (in a worker thread, unless it is
    short) while the one before it is being used and the one after it is read, so decompressing overlaps
    hashing and I/O; at most two frames are in memory."""
    ahead: tuple[Frame, asyncio.Future[bytes]] | None = None
    try:
        async for number, frame, stored in frames:
            previous, ahead = ahead, (frame, _decode(frame, stored, number))
            if previous is not None:
                yield previous[0], await _plain(previous[1], key)
        if ahead is not None:
            last, ahead = ahead, None
            yield last[0], await _plain(last[1], key)
    finally:
        if ahead is not None:  # the reader stopped early: the frame decoding ahead is not wanted
            ahead[1].cancel()
            if ahead[1].done() and not ahead[1].cancelled():
                ahead[1].exception()  # retrieved, so an error in it is not logged as never retrieved


def _decode(frame: Frame, stored: bytes, number: int) -> asyncio.Future[bytes]:
    """The frame's plaintext, decoding in a worker thread if the frame is long (on the loop, at once, if not)."""
    if len(stored) > _DECODE_INLINE:
        return asyncio.ensure_future(asyncio.to_thread(decode_frame, frame, stored, number))
    future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    try:
        future.set_result(decode_frame(frame, stored, number))
    except IntegrityError as exc:
        future.set_exception(exc)
    return future


async def _plain(decoding: asyncio.Future[bytes], key: str) -> bytes:
    try:
        return await decoding
    except IntegrityError as exc:
        raise IntegrityError(f"stored object for {key!r} is corrupted: {exc}") from None


async def _frames_of(
    chunks: AsyncIterator[bytes], frames: Sequence[Frame], number: int
) -> AsyncIterator[tuple[int, Frame, bytes]]:
    """Each of ``frames`` (numbered from ``number``) with its stored bytes, cut from ``chunks``, the stored
    object from the first frame's stored offset on (bytes between frames are skipped)."""
    buffer = bytearray()
    position = frames[0].stored_offset if frames else 0  # the stored offset of buffer[0]
    pending = iter(enumerate(frames, number))
    current = next(pending, None)
    async for chunk in chunks:
        buffer += chunk
        while current is not None and position + len(buffer) >= current[1].stored_end:
            at, frame = current
            begin = frame.stored_offset - position
            yield at, frame, bytes(buffer[begin : begin + frame.stored_size])
            del buffer[: begin + frame.stored_size]
            position = frame.stored_end
            current = next(pending, None)


async def _stored(
    storage: ObjectReader,
    object_key: str,
    key: str,
    byte_range: tuple[int, int] | None,
    size: int,
    missing: Callable[[], Awaitable[BlobStoreError]],
) -> AsyncGenerator[bytes, None]:
    """The stored bytes of ``byte_range`` of an object recorded as ``size`` bytes long (None: all of them);
    IntegrityError if they are short or long, the error ``missing()`` returns if the object is gone."""
    expected = size if byte_range is None else byte_range[1] - byte_range[0] + 1
    received = 0
    try:
        async for chunk in storage.read(object_key, byte_range):
            received += len(chunk)
            if received > expected:
                raise IntegrityError(f"stored object for {key!r} is longer than its recorded size {size}")
            yield chunk
    except ObjectMissing:
        raise await missing() from None
    except StorageUnavailable:
        # A range past the end of a shrunken object fails as a request error on S3 (416);
        # the object's real size tells a damaged object from an unreachable storage.
        if byte_range is None or received:
            raise
        actual = await storage.stat(object_key)
        if actual is None:
            raise await missing() from None
        if actual.size != size:
            raise IntegrityError(
                f"stored object for {key!r} is {actual.size} bytes, not its recorded size {size}"
            ) from None
        raise
    if received != expected:
        raise IntegrityError(f"stored object for {key!r} is truncated: {received} of {expected} bytes")
