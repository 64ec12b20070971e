"""Estimating what files would take stored as frames (blobstore.storage.frames), from a sample of them.

A dry run cannot compress every byte of a large source in reasonable time, so it compresses the first
:data:`SAMPLE_BYTES` of up to :data:`SAMPLE_FILES` files spread evenly over the new ones (in digest order, so
the choice is fair and repeatable) exactly as a put would (same level, same skipped content types), and
scales the share of bytes that remained to the whole: an estimate, said as such wherever it is shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from blobstore.core.ingest import PutData
from blobstore.errors import BlobStoreError
from blobstore.storage.frames import FRAME_SIZE, FrameEncoder, should_compress
from blobstore.transfer.importer import content_type_of
from blobstore.transfer.sources import ImportSource, SourceFile

#: Files sampled at most, and bytes read from the start of each.
SAMPLE_FILES = 32
SAMPLE_BYTES = 4 * FRAME_SIZE


@dataclass(frozen=True)
class CompressionSample:
    """What a sample of files took as frames: how many files, their plaintext bytes read, and the bytes stored."""

    files: int = 0
    plain_bytes: int = 0
    stored_bytes: int = 0

    def scaled(self, size: int) -> int:
        """The stored size of ``size`` plaintext bytes at the sample's ratio (``size`` itself with no sample)."""
        return round(size * self.stored_bytes / self.plain_bytes) if self.plain_bytes else size


def spread(items: Sequence[SourceFile], count: int = SAMPLE_FILES) -> list[SourceFile]:
    """At most ``count`` of ``items``, evenly spaced from the first."""
    if len(items) <= count:
        return list(items)
    return [items[index * len(items) // count] for index in range(count)]


async def sample_compression(source: ImportSource, files: Sequence[SourceFile], level: int | None) -> CompressionSample:
    """Encode the start of each of ``files`` as a put at ``level`` would (None: compression off); files that
    cannot be read are left out of the sample."""
    files_read = plain = stored = 0
    for file in files:
        try:
            head = await _head(await source.data(file), SAMPLE_BYTES)
        except (BlobStoreError, OSError):
            continue
        frame_level = level if should_compress(content_type_of(file.path)) else None
        files_read, plain, stored = (
            files_read + 1,
            plain + len(head),
            stored + await asyncio.to_thread(_stored_size, head, frame_level),
        )
    return CompressionSample(files_read, plain, stored)


def _stored_size(plain: bytes, level: int | None) -> int:
    encoder = FrameEncoder(level)
    return len(encoder.feed(plain)) + len(encoder.finish())


async def _head(data: PutData, limit: int) -> bytes:
    """The first ``limit`` bytes of a file as a source hands it over (a path, or a stream it stops early)."""
    if isinstance(data, os.PathLike):
        return await asyncio.to_thread(_read_head, Path(data), limit)
    assert isinstance(data, AsyncIterable), f"sources hand over paths or streams, not {type(data).__name__}"
    head = bytearray()
    chunks = aiter(data)
    try:
        async for chunk in chunks:
            head += chunk
            if len(head) >= limit:
                break
    finally:
        with contextlib.suppress(Exception):
            await chunks.aclose()  # type: ignore[attr-defined]
    return bytes(head[:limit])


def _read_head(path: Path, limit: int) -> bytes:
    with path.open("rb") as file:
        return file.read(limit)
