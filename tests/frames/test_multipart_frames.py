"""Completing a multipart upload reuses the parts' frames, on every deployment: the object is the parts' stored
bytes one after another and its frame index theirs shifted, ranged reads across part boundaries verify, a
damaged frame is found, and parts stored before frames still complete the old way."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from functools import partial

import aioboto3
import pytest
from aiobotocore.config import AioConfig
from sqlalchemy import text

from blobstore import BlobStore, IntegrityError, multipart
from blobstore.db import multipart as multipart_db
from blobstore.storage import read_all
from blobstore.storage.frames import FRAME_SIZE, Codec, FrameIndex
from blobstore.storage.s3 import S3Storage
from tests.frames.test_framed_blobs import flip, frames_of, read, text_of
from tests.support.workers import object_key_of

MIB = 2**20


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), MIB):
        yield data[start : start + MIB]


async def staged_parts(store: BlobStore, bodies: list[bytes]) -> tuple[str, list[tuple[int, str]]]:
    """An upload of b/k with ``bodies`` as parts 1, 2, ...; its id and the (number, ETag) list to complete it."""
    upload = await multipart.create(store.core, "acme", "b", "k", content_type=None, metadata={})
    listed = []
    for number, body in enumerate(bodies, 1):
        part = await multipart.upload_part(store.core, "acme", "b", "k", upload.id, number, chunks(body))
        listed.append((number, part.etag))
    return upload.id, listed


async def part_rows(store: BlobStore, upload_id: str) -> list[multipart_db.PartRow]:
    return await store.database.read(partial(multipart_db.list_parts, upload_id=upload_id))


#: Part 1 compresses, part 2 does not, part 3 (the last) is short and ends mid-frame.
def bodies() -> list[bytes]:
    return [text_of(5 * MIB + 12345), os.urandom(5 * MIB), text_of(FRAME_SIZE // 3)]


async def test_the_completed_object_is_the_parts_stored_frames_with_their_index_shifted(store: BlobStore) -> None:
    parts = bodies()
    upload_id, listed = await staged_parts(store, parts)
    rows = await part_rows(store, upload_id)
    stored = [await read_all(store.storage, row.object_key) for row in rows]
    indexes = [FrameIndex.decode(row.frames or b"") for row in rows]

    await multipart.complete(store.core, "acme", "b", "k", upload_id, listed)

    object_key = await object_key_of(store, "acme", "b/k")
    assert await read_all(store.storage, object_key) == b"".join(stored)
    index = await frames_of(store, "acme", "b/k")
    expected: list[tuple[int, int, int, Codec, bytes]] = []
    plain = stored_at = 0
    for part in indexes:
        expected += [(f.offset + plain, f.size, f.stored_offset + stored_at, f.codec, f.digest) for f in part.frames]
        plain, stored_at = plain + part.size, stored_at + part.stored_size
    assert [(f.offset, f.size, f.stored_offset, f.codec, f.digest) for f in index.frames] == expected
    assert {Codec.ZSTD, Codec.RAW} <= {frame.codec for frame in index.frames}
    whole = b"".join(parts)
    assert await store.tenant("acme").get("b/k") == whole
    for boundary in (len(parts[0]), len(parts[0]) + len(parts[1])):
        for first, last in ((boundary - 1, boundary), (boundary - 700_000, boundary + 900_000)):
            assert await read(store, "acme", "b/k", (first, last)) == whole[first : last + 1]
    assert (await store.fsck(read_data=True)).ok


async def test_a_damaged_frame_of_the_completed_object_fails_the_reads_that_touch_it(store: BlobStore) -> None:
    parts = bodies()
    upload_id, listed = await staged_parts(store, parts)
    await multipart.complete(store.core, "acme", "b", "k", upload_id, listed)
    object_key = await object_key_of(store, "acme", "b/k")
    index = await frames_of(store, "acme", "b/k")
    damaged = next(frame for frame in index.frames if frame.offset >= len(parts[0]))  # part 2's first frame
    await flip(store, object_key, await read_all(store.storage, object_key), damaged.stored_offset + 100)
    with pytest.raises(IntegrityError, match=f"bytes {damaged.offset}-{damaged.last}"):
        await read(store, "acme", "b/k", (damaged.offset - 10, damaged.offset + 10))
    assert await read(store, "acme", "b/k", (0, 1000)) == parts[0][:1001]
    assert [p.kind for p in (await store.fsck(read_data=True)).problems] == ["corrupted-object"]


async def test_a_damaged_part_fails_the_completion_and_changes_nothing(store: BlobStore) -> None:
    parts = bodies()
    upload_id, listed = await staged_parts(store, parts)
    row = (await part_rows(store, upload_id))[1]
    await flip(store, row.object_key, await read_all(store.storage, row.object_key), FRAME_SIZE + 3)
    with pytest.raises(IntegrityError, match="part 2"):
        await multipart.complete(store.core, "acme", "b", "k", upload_id, listed)
    assert not await store.tenant("acme").exists("b/k")
    _, staged, _ = await multipart.list_parts(store.core, "acme", "b", "k", upload_id)
    assert [part.number for part in staged] == [1, 2, 3]


async def test_parts_stored_before_frames_complete_as_before(store: BlobStore) -> None:
    parts = bodies()
    upload_id, listed = await staged_parts(store, parts)
    row = (await part_rows(store, upload_id))[0]
    await store.storage.write(row.object_key, parts[0])  # part 1 as a blob stored before frames: its raw bytes
    async with store.database.engine.begin() as conn:
        await conn.execute(
            text("UPDATE blobs SET frames = NULL, stored_size = NULL WHERE id = :id"), {"id": row.blob_id}
        )
    await multipart.complete(store.core, "acme", "b", "k", upload_id, listed)
    assert await store.tenant("acme").get("b/k") == b"".join(parts)
    index = await frames_of(store, "acme", "b/k")
    assert index.size == sum(map(len, parts))
    assert (await store.fsck(read_data=True)).ok


async def test_a_completion_of_bytes_already_stored_dedups_and_writes_nothing(store: BlobStore) -> None:
    parts = bodies()
    await store.tenant("acme").put("b/native", b"".join(parts))
    upload_id, listed = await staged_parts(store, parts)
    await multipart.complete(store.core, "acme", "b", "k", upload_id, listed)
    assert await object_key_of(store, "acme", "b/k") == await object_key_of(store, "acme", "b/native")
    assert await store.tenant("acme").get("b/k") == b"".join(parts)


async def test_parts_of_at_least_5_mib_stored_are_joined_by_the_storage(
    store: BlobStore, request: pytest.FixtureRequest
) -> None:
    """Parts whose stored bytes are all at least S3's 5 MiB part minimum (random bytes, stored raw): on S3 the
    object is a multipart upload of the store's own whose parts S3 copied (UploadPartCopy), one per part."""
    parts = [os.urandom(5 * MIB), os.urandom(6 * MIB + 1), os.urandom(3)]
    upload_id, listed = await staged_parts(store, parts)
    rows = await part_rows(store, upload_id)
    stored = [await read_all(store.storage, row.object_key) for row in rows]
    await multipart.complete(store.core, "acme", "b", "k", upload_id, listed)
    object_key = await object_key_of(store, "acme", "b/k")
    assert await read_all(store.storage, object_key) == b"".join(stored)
    assert await store.tenant("acme").get("b/k") == b"".join(parts)
    if isinstance(store.storage, S3Storage):
        s3 = request.getfixturevalue("s3")
        config = AioConfig(s3={"addressing_style": "path"})
        async with aioboto3.Session().client("s3", endpoint_url=s3.url, region_name=s3.region, config=config) as client:
            prefix = f"{store.storage.prefix}/" if store.storage.prefix else ""
            head = await client.head_object(Bucket=store.storage.bucket, Key=prefix + object_key)
        assert head["ETag"].endswith('-3"')
