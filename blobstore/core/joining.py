"""Joining framed blobs into one without encoding them again: the new object is their stored bytes one after
another, its frame index theirs with offsets shifted (blobstore.storage.frames.concatenated).

:func:`joined` reads every blob once, each frame checked against its digest, to hash the whole plaintext (the
joined blob's identity); :meth:`Joined.write_to` then has the storage join the objects as they are
(:meth:`blobstore.storage.base.ObjectStorage.write_concatenated`): nothing is decompressed, compressed or
hashed again. A multipart upload's completion joins its parts this way (blobstore.multipart).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from blobstore.core.ingest import check_object_size, new_hasher
from blobstore.core.reading import verified_chunks
from blobstore.errors import BlobStoreError, ObjectMissing
from blobstore.storage.base import ObjectStorage
from blobstore.storage.frames import FrameIndex, concatenated


@dataclass(frozen=True)
class Piece:
    """A framed blob to join: its object, what errors call it, its digest and size, and its encoded frame
    index (never None: a blob stored before frames cannot be joined)."""

    object_key: str
    name: str
    digest: str
    size: int
    frames: bytes


@dataclass(frozen=True)
class Joined:
    """The blob the pieces make, hashed and ready for a put (blobstore.protocol.uploads.Uploader.put)."""

    digest: str
    size: int
    pieces: tuple[Piece, ...]
    #: The joined object's frame index.
    index: FrameIndex
    missing: Callable[[], Awaitable[BlobStoreError]]

    async def write_to(self, storage: ObjectStorage, key: str, level: int | None) -> FrameIndex:
        """Store the pieces' objects joined under ``key`` (their frames as they are encoded, whatever
        ``level``); the joined frame index. The error ``missing()`` returns if a piece's object is gone."""
        del level  # the pieces' frames are kept as they were encoded
        lengths = [(piece.object_key, FrameIndex.decode(piece.frames).stored_size) for piece in self.pieces]
        try:
            await storage.write_concatenated(key, [(object_key, length) for object_key, length in lengths if length])
        except ObjectMissing:
            raise await self.missing() from None
        return self.index


async def joined(
    storage: ObjectStorage,
    pieces: Sequence[Piece],
    *,
    max_size: int,
    missing: Callable[[], Awaitable[BlobStoreError]],
) -> Joined:
    """The blob that is ``pieces``' plaintext one after another: every frame read and checked against its
    digest (IntegrityError naming the piece and the frame if one is damaged), the whole hashed. ObjectTooLarge
    (before a byte is read) past ``max_size``; the error ``missing()`` returns if a piece's object is gone."""
    size = sum(piece.size for piece in pieces)
    check_object_size(size, max_size)
    hasher = new_hasher()
    for piece in pieces:
        if not piece.size:
            continue
        async for chunk in verified_chunks(
            storage,
            piece.object_key,
            key=piece.name,
            digest=piece.digest,
            size=piece.size,
            frames=piece.frames,
            byte_range=(0, piece.size - 1),  # every frame checked; the whole is hashed below
            missing=missing,
        ):
            await asyncio.to_thread(hasher.update, chunk)
    index = concatenated([FrameIndex.decode(piece.frames) for piece in pieces])
    return Joined(hasher.hexdigest(), size, tuple(pieces), index, missing)
