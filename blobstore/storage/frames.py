"""The stored format of a blob: independent frames, each zstd-compressed where that pays, each with a digest.

Pure functions and values, no I/O (docs/frames.md describes the format). A blob's plaintext is cut into
frames of :data:`FRAME_SIZE` bytes (the last one shorter; a blob smaller than a frame is one frame, an empty
blob none). :class:`FrameEncoder` turns the plaintext, fed in any pieces, into the stored bytes and a
:class:`FrameIndex`: per frame its plaintext offset and length, its stored offset and length, its codec and
the BLAKE3 digest of its plaintext. A frame is found by its offset, never as ``n x FRAME_SIZE``, so frames of
other lengths (content-defined chunks) fit the same index. :func:`decode_frame` turns one frame's stored
bytes back into its plaintext, or raises IntegrityError.
"""

from __future__ import annotations

import bisect
import enum
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import blake3
import zstandard

from blobstore.errors import IntegrityError

#: Plaintext bytes per frame (the last frame of a blob may be shorter).
FRAME_SIZE = 1024 * 1024
#: A blob shorter than this is stored raw: compressing it saves too little to pay for the attempt.
MIN_COMPRESSIBLE_SIZE = 4096
#: A frame is stored compressed only when that saves at least this share of its bytes.
MIN_SAVING = 0.10
#: After this many frames in a row fail to save MIN_SAVING, later frames are stored raw without trying ...
SKIP_AFTER_MISSES = 2
#: ... except every this many-th frame, a probe: one that pays resumes compressing every frame.
PROBE_EVERY = 8
#: Compression levels zstd offers here (BLOBSTORE_COMPRESSION_LEVEL).
MIN_LEVEL, MAX_LEVEL = 1, 19

#: Media types whose bytes are already compressed: compressing them again is not attempted.
_COMPRESSED_TYPES = frozenset(
    {
        "application/gzip",
        "application/x-gzip",
        "application/zip",
        "application/zstd",
        "application/x-zstd",
        "application/x-bzip2",
        "application/x-xz",
        "application/x-7z-compressed",
        "application/vnd.rar",
        "application/x-rar-compressed",
        "application/x-brotli",
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/heic",
        "image/heif",
        "audio/mpeg",
        "audio/aac",
        "audio/mp4",
        "audio/ogg",
        "audio/opus",
        "audio/flac",
        "audio/webm",
    }
)


class Codec(enum.IntEnum):
    """How a frame's plaintext is stored."""

    RAW = 0
    ZSTD = 1


@dataclass(frozen=True)
class Frame:
    """One frame: where its plaintext lies in the blob, where its stored bytes lie in the object, how they
    are encoded, and the BLAKE3 digest (32 bytes) of its plaintext."""

    offset: int
    size: int
    stored_offset: int
    stored_size: int
    codec: Codec
    digest: bytes

    @property
    def last(self) -> int:
        """The last plaintext byte's offset (inclusive)."""
        return self.offset + self.size - 1

    @property
    def stored_end(self) -> int:
        """The offset just past the frame's stored bytes."""
        return self.stored_offset + self.stored_size

    def describe(self, number: int) -> str:
        """The frame as an error names it: its number and plaintext byte range."""
        return f"frame {number} (bytes {self.offset}-{self.last})"


#: Version 1 of the encoded index: a header (version, frame count), then per frame its plaintext offset and
#: length, stored offset and length, codec and digest, little-endian.
_HEADER = struct.Struct("<BI")
_FRAME = struct.Struct("<QIQIB32s")
_VERSION = 1


@dataclass(frozen=True)
class FrameIndex:
    """A blob's frames in plaintext order: they cover its plaintext without gap or overlap, and their stored
    bytes follow one another in the object in the same order."""

    frames: tuple[Frame, ...]

    @property
    def size(self) -> int:
        """The blob's plaintext length."""
        return self.frames[-1].offset + self.frames[-1].size if self.frames else 0

    @property
    def stored_size(self) -> int:
        """The stored object's length."""
        return self.frames[-1].stored_end if self.frames else 0

    @cached_property
    def _offsets(self) -> list[int]:
        return [frame.offset for frame in self.frames]

    def overlapping(self, first: int, last: int) -> tuple[int, int]:
        """The numbers ``(start, stop)`` (a slice) of the frames holding plaintext bytes ``first``..``last``
        (inclusive); an empty slice if no frame holds any of them."""
        start = max(bisect.bisect_right(self._offsets, first) - 1, 0)
        stop = bisect.bisect_right(self._offsets, last)
        while start < stop and self.frames[start].last < first:
            start += 1
        return start, stop

    def encode(self) -> bytes:
        """The compact binary form kept in the catalog (:meth:`decode` reads it back)."""
        parts = [_HEADER.pack(_VERSION, len(self.frames))]
        parts += [_FRAME.pack(f.offset, f.size, f.stored_offset, f.stored_size, f.codec, f.digest) for f in self.frames]
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> FrameIndex:
        """The index :meth:`encode` wrote; IntegrityError if ``data`` is not one (truncated, another
        version, frames that leave a gap or overlap)."""
        try:
            version, count = _HEADER.unpack_from(data)
            if version != _VERSION or len(data) != _HEADER.size + count * _FRAME.size:
                raise ValueError(f"version {version} with {count} frames in {len(data)} bytes")
            frames = tuple(
                Frame(offset, size, stored_offset, stored_size, Codec(codec), digest)
                for offset, size, stored_offset, stored_size, codec, digest in _FRAME.iter_unpack(data[_HEADER.size :])
            )
        except (struct.error, ValueError) as exc:
            raise IntegrityError(f"the frame index is unreadable: {exc}") from None
        index = cls(frames)
        index.check()
        return index

    def check(self) -> None:
        """IntegrityError unless the frames follow one another without gap or overlap, in both the plaintext
        and the stored object, and none is empty."""
        plain = stored = 0
        for number, frame in enumerate(self.frames):
            if frame.offset != plain or frame.stored_offset < stored or frame.size <= 0 or frame.stored_size <= 0:
                raise IntegrityError(f"the frame index is inconsistent at {frame.describe(number)}")
            plain, stored = frame.offset + frame.size, frame.stored_end


def concatenated(indexes: Sequence[FrameIndex]) -> FrameIndex:
    """The index of the object that is the stored bytes of ``indexes``' objects one after another (each exactly
    its index's :attr:`~FrameIndex.stored_size` long): their frames, unchanged but for offsets shifted past the
    plaintext and the stored bytes before them."""
    frames: list[Frame] = []
    plain = stored = 0
    for index in indexes:
        frames += (
            replace(frame, offset=frame.offset + plain, stored_offset=frame.stored_offset + stored)
            for frame in index.frames
        )
        plain, stored = plain + index.size, stored + index.stored_size
    return FrameIndex(tuple(frames))


_CONTEXTS = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    """This thread's compressor at ``level``. A compression context is megabytes of tables and window that a
    new one maps and faults in again (about 1,200 page faults for a 1 MiB frame, several times the cost of
    compressing it); python-zstandard's contexts are safe in one thread at a time, so each thread keeps its own."""
    compressors: dict[int, zstandard.ZstdCompressor] = _CONTEXTS.__dict__.setdefault("compressors", {})
    found = compressors.get(level)
    if found is None:
        found = compressors[level] = zstandard.ZstdCompressor(level=level)
    return found


def _decompressor() -> zstandard.ZstdDecompressor:
    """This thread's decompressor (kept for the reason :func:`_compressor` gives)."""
    found: zstandard.ZstdDecompressor | None = _CONTEXTS.__dict__.get("decompressor")
    if found is None:
        found = _CONTEXTS.decompressor = zstandard.ZstdDecompressor()
    return found


def should_compress(content_type: str | None) -> bool:
    """False for content types whose bytes are already compressed (JPEG, PNG, WebP, MP4, ZIP, gzip, zstd,
    ...): compressing them is not attempted."""
    if content_type is None:
        return True
    media = content_type.partition(";")[0].strip().lower()
    return media not in _COMPRESSED_TYPES and not media.startswith("video/")


class FrameEncoder:
    """Cuts plaintext fed in any pieces into frames and encodes each one: compressed at ``level`` where that
    saves at least :data:`MIN_SAVING`, raw otherwise (``level`` None: always raw). Incompressible streams
    are cheap: after :data:`SKIP_AFTER_MISSES` frames in a row that do not pay, only every
    :data:`PROBE_EVERY`-th frame is tried, until one pays again.

    Holds at most one frame of plaintext. Not thread-safe: one caller at a time, in order.
    """

    def __init__(self, level: int | None, *, frame_size: int = FRAME_SIZE) -> None:
        self._level = level
        self._frame_size = frame_size
        self._pending = bytearray()
        self._frames: list[Frame] = []
        self._offset = self._stored = 0
        self._misses = self._skipped = 0
        self._finished = False

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Take more plaintext; the stored bytes of every frame it completed, in order.

        Whole frames of ``data`` are encoded where they lie; only a frame's start or end is held back,
        so a blob fed at once is copied once, into the stored bytes returned."""
        assert not self._finished, "no plaintext after finish()"
        view = memoryview(data).cast("B")
        out: list[bytes | memoryview] = []
        if self._pending:
            taken = min(len(view), self._frame_size - len(self._pending))
            self._pending += view[:taken]
            view = view[taken:]
            if len(self._pending) == self._frame_size:
                out.append(self._encode(bytes(self._pending)))
                self._pending.clear()
        while len(view) >= self._frame_size:
            out.append(self._encode(view[: self._frame_size]))
            view = view[self._frame_size :]
        self._pending += view
        return b"".join(out)

    def finish(self) -> bytes:
        """The stored bytes of the last frame (none if the plaintext ended at a frame's end)."""
        assert not self._finished, "finish() once"
        self._finished = True
        if not self._pending:
            return b""
        with memoryview(self._pending) as plain:
            out = bytes(self._encode(plain, whole_blob=not self._frames))
        self._pending.clear()
        return out

    @property
    def all_raw(self) -> bool:
        """Whether every frame encoded so far is stored raw (its stored bytes are its plaintext)."""
        return self._stored == self._offset

    @property
    def index(self) -> FrameIndex:
        """The frames encoded (complete once :meth:`finish` returned)."""
        return FrameIndex(tuple(self._frames))

    def _encode(self, plain: bytes | memoryview, *, whole_blob: bool = False) -> bytes | memoryview:
        """The frame's stored bytes (``plain`` itself when it stays raw), its Frame recorded."""
        stored, codec = plain, Codec.RAW
        if self._level is not None and not (whole_blob and len(plain) < MIN_COMPRESSIBLE_SIZE) and self._try():
            packed = _compressor(self._level).compress(plain)
            if len(packed) <= len(plain) * (1 - MIN_SAVING):
                stored, codec = packed, Codec.ZSTD
            self._misses = 0 if codec is Codec.ZSTD else self._misses + 1
        digest = blake3.blake3(plain).digest()
        self._frames.append(Frame(self._offset, len(plain), self._stored, len(stored), codec, digest))
        self._offset += len(plain)
        self._stored += len(stored)
        return stored

    def _try(self) -> bool:
        """Whether to try compressing the next frame: yes until SKIP_AFTER_MISSES misses in a row, then
        only every PROBE_EVERY-th frame."""
        if self._misses < SKIP_AFTER_MISSES:
            return True
        self._skipped += 1
        if self._skipped < PROBE_EVERY:
            return False
        self._skipped = 0
        return True


def decode_frame(frame: Frame, stored: bytes, number: int) -> bytes:
    """The plaintext of frame ``number`` from its stored bytes, checked against its length and digest;
    IntegrityError (naming the frame and its byte range) if they do not match."""
    if len(stored) != frame.stored_size:
        raise IntegrityError(f"{frame.describe(number)} is {len(stored)} bytes stored, not {frame.stored_size}")
    plain = stored
    if frame.codec is Codec.ZSTD:
        try:
            # A damaged header may claim any length: the recorded one bounds what is decompressed.
            if zstandard.frame_content_size(stored) != frame.size:
                raise IntegrityError(f"{frame.describe(number)} does not decompress to {frame.size} bytes")
            plain = _decompressor().decompress(stored, max_output_size=frame.size)
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"{frame.describe(number)} does not decompress: {exc}") from None
    if len(plain) != frame.size or blake3.blake3(plain).digest() != frame.digest:
        raise IntegrityError(f"{frame.describe(number)} does not hash to its digest")
    return plain
