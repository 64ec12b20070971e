"""Framed blobs through the store, on every deployment: what is stored, whole and ranged reads, corruption of
each frame in turn, old raw blobs beside new framed ones, compression off."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import blake3
import pytest

from blobstore import BlobStore, IntegrityError
from blobstore.db import hot_path
from blobstore.storage import ObjectStorage, open_storage_from_url, read_all
from blobstore.storage.frames import FRAME_SIZE, Codec, FrameIndex
from blobstore.storage.timed import TimedStorage
from tests.support.stores import StoreFactory
from tests.support.workers import make_raw, object_key_of, scalar

TEXT = b"".join(b"%08d,2026-12-07T08:00:00Z,GET,/api/items/%d,200,0.003\n" % (n, n % 977) for n in range(200_000))


def text_of(size: int) -> bytes:
    """``size`` bytes of CSV-like text (compresses well)."""
    return (TEXT * (size // len(TEXT) + 1))[:size]


def data_of(size: int, kind: str) -> bytes:
    return text_of(size) if kind == "text" else os.urandom(size)


async def frames_of(store: BlobStore, tenant: str, key: str) -> FrameIndex:
    ref = await hot_path.find_ref_named(store.database, tenant, key)
    assert ref is not None
    assert ref.frames is not None
    return FrameIndex.decode(ref.frames)


async def read(store: BlobStore, tenant: str, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
    async with store.tenant(tenant).open(key, byte_range) as stream:
        return await stream.read()


async def chunks_of(data: bytes) -> AsyncIterator[bytes]:
    for at in range(0, len(data), 100_000):
        yield data[at : at + 100_000]


SIZES = [0, 1, 4095, FRAME_SIZE - 1, FRAME_SIZE, FRAME_SIZE + 1, 3 * FRAME_SIZE + 777]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["text", "random"])
@pytest.mark.parametrize("given", ["bytes", "stream", "path"])
async def test_every_size_class_round_trips_and_is_stored_compressed_where_it_pays(
    store: BlobStore, tmp_path: Path, size: int, kind: str, given: str
) -> None:
    """Bytes, streams and files of every size come back exactly; text is stored compressed, random bytes raw;
    the digest and size are the plaintext's."""
    data = data_of(size, kind)
    source: Any = {"bytes": data, "stream": chunks_of(data), "path": tmp_path / "f"}[given]
    if given == "path":
        source.write_bytes(data)
    info = await store.tenant("acme").put("k", source)
    assert (info.digest, info.size) == (blake3.blake3(data).hexdigest(), size)
    assert await store.tenant("acme").get("k") == data
    if size:
        assert await read(store, "acme", "k", (size - 1, size - 1)) == data[-1:]
    index = await frames_of(store, "acme", "k")
    stored = await read_all(store.storage, await object_key_of(store, "acme", "k"))
    assert (index.size, index.stored_size, len(index.frames)) == (size, len(stored), -(-size // FRAME_SIZE))
    if kind == "text" and size >= 4096:
        assert len(stored) < size // 3
        assert [frame.codec for frame in index.frames if frame.size >= 4096] == [Codec.ZSTD] * (size // FRAME_SIZE or 1)
    else:
        assert stored == data
    stored_size = await scalar(store, "SELECT stored_size FROM blobs WHERE digest = :d", d=info.digest)
    assert stored_size == len(stored)


async def test_identity_and_dedup_are_the_plaintexts(store: BlobStore) -> None:
    """The same plaintext put from bytes, from a stream and by another tenant is one blob."""
    data = text_of(2 * FRAME_SIZE + 5)
    first = await store.tenant("acme").put("a", data)
    second = await store.tenant("acme").put("b", chunks_of(data))
    assert (second.digest, second.deduplicated) == (first.digest, True)
    await store.tenant("globex").put("c", io.BytesIO(data))
    assert await scalar(store, "SELECT count(*) FROM blobs") == 1
    assert (await store.tenant("globex").stat("c")).size == len(data)


class RangeLog(TimedStorage):
    """A real backend whose reads are logged: (object key, byte range) of each."""

    def __init__(self, inner: ObjectStorage) -> None:
        super().__init__(inner, lambda *_: None)
        self.reads: list[tuple[str, tuple[int, int] | None]] = []

    def read(self, key: str, byte_range: tuple[int, int] | None = None) -> Any:
        self.reads.append((key, byte_range))
        return super().read(key, byte_range)


@pytest.fixture
async def logged(settings_for: Any, deployment: str, clock: Any) -> AsyncIterator[tuple[BlobStore, RangeLog]]:
    """A store on ``deployment`` whose storage reads are logged."""
    settings = await settings_for(deployment)
    inner = open_storage_from_url(
        settings.storage_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region
    )
    storage = RangeLog(inner)
    store = await BlobStore.open(settings, storage=storage, clock=clock, migrate_schema=True)
    yield store, storage
    await store.close()


async def test_ranged_reads_at_every_boundary_fetch_only_their_frames_in_one_request(
    logged: tuple[BlobStore, RangeLog],
) -> None:
    """First byte, last byte, across two frames, inside one, a whole frame, a suffix, past the end: exactly
    the plaintext slice, from one storage request spanning just the overlapping frames."""
    store, storage = logged
    data = text_of(2 * FRAME_SIZE) + os.urandom(FRAME_SIZE) + text_of(1000)
    size = len(data)
    await store.tenant("acme").put("k", data)
    index = await frames_of(store, "acme", "k")
    object_key = await object_key_of(store, "acme", "k")
    cases = [
        ((0, 0), [0]),
        ((size - 1, size - 1), [3]),
        ((FRAME_SIZE - 1, FRAME_SIZE), [0, 1]),
        ((FRAME_SIZE - 10, 2 * FRAME_SIZE + 10), [0, 1, 2]),
        ((100, 200), [0]),
        ((FRAME_SIZE, 2 * FRAME_SIZE - 1), [1]),
        ((2 * FRAME_SIZE + 5, 2 * FRAME_SIZE + 4096), [2]),
        ((size - 1500, size - 1), [2, 3]),
        ((size - 5, size + 100), [3]),
        ((0, size - 1), [0, 1, 2, 3]),
    ]
    for (first, last), numbers in cases:
        storage.reads.clear()
        assert await read(store, "acme", "k", (first, last)) == data[first : last + 1], (first, last)
        wanted = [index.frames[n] for n in numbers]
        assert storage.reads == [(object_key, (wanted[0].stored_offset, wanted[-1].stored_end - 1))], (first, last)


async def flip(store: BlobStore, object_key: str, original: bytes, at: int) -> None:
    """Store ``original`` with the byte at ``at`` flipped under ``object_key``."""
    damaged = bytearray(original)
    damaged[at] ^= 0x40
    await store.storage.write(object_key, bytes(damaged))


async def test_a_corrupt_frame_fails_exactly_the_reads_that_touch_it(store: BlobStore) -> None:
    """A byte flipped in each frame in turn: every ranged read touching that frame raises IntegrityError,
    the others succeed, a whole read fails, and fsck --read-data names the frame and its byte range."""
    data = text_of(FRAME_SIZE) + os.urandom(FRAME_SIZE) + text_of(FRAME_SIZE) + os.urandom(3000)
    await store.tenant("acme").put("k", data)
    await store.tenant("acme").put("other", b"unrelated bytes")
    index = await frames_of(store, "acme", "k")
    assert [frame.codec for frame in index.frames] == [Codec.ZSTD, Codec.RAW, Codec.ZSTD, Codec.RAW]
    object_key = await object_key_of(store, "acme", "k")
    original = await read_all(store.storage, object_key)
    ranges = [(frame.offset + 7, frame.offset + 9) for frame in index.frames]
    ranges += [(frame.offset - 1, frame.offset) for frame in index.frames[1:]]
    for number, damaged in enumerate(index.frames):
        await flip(store, object_key, original, damaged.stored_offset + damaged.stored_size // 2)
        for first, last in ranges:
            if damaged.offset <= last and first <= damaged.last:
                with pytest.raises(IntegrityError, match=f"frame {number} \\(bytes {damaged.offset}-{damaged.last}\\)"):
                    await read(store, "acme", "k", (first, last))
            else:
                assert await read(store, "acme", "k", (first, last)) == data[first : last + 1]
        with pytest.raises(IntegrityError, match=f"frame {number}"):
            await store.tenant("acme").get("k")
        report = await store.fsck(read_data=True)
        assert [(p.kind, p.subject) for p in report.problems] == [("corrupted-object", object_key)]
        assert f"frame {number} (bytes {damaged.offset}-{damaged.last})" in report.problems[0].detail
    await store.storage.write(object_key, original)
    assert await store.tenant("acme").get("k") == data
    assert (await store.fsck(read_data=True)).ok


async def test_a_whole_read_stopped_early_gets_its_bytes_though_the_frame_decoded_ahead_is_damaged(
    store: BlobStore,
) -> None:
    """Frames decode one ahead of the reader: a reader that stops after the first frame, while the damaged
    second one has already failed to decode, gets the first frame's bytes and no error."""
    data = text_of(3 * FRAME_SIZE)
    await store.tenant("acme").put("k", data)
    index = await frames_of(store, "acme", "k")
    object_key = await object_key_of(store, "acme", "k")
    original = await read_all(store.storage, object_key)
    await flip(store, object_key, original, index.frames[1].stored_offset + 50)
    async with store.tenant("acme").open("k") as stream:
        async for chunk in stream:
            assert chunk == data[:FRAME_SIZE]
            break
    with pytest.raises(IntegrityError, match="frame 1"):
        await store.tenant("acme").get("k")


async def test_a_damaged_zstd_header_claiming_another_length_is_an_integrity_error(store: BlobStore) -> None:
    data = text_of(FRAME_SIZE + 10)
    await store.tenant("acme").put("k", data)
    object_key = await object_key_of(store, "acme", "k")
    original = await read_all(store.storage, object_key)
    await flip(store, object_key, original, 5)  # inside the first frame's zstd header
    with pytest.raises(IntegrityError, match="frame 0"):
        await read(store, "acme", "k", (0, 10))
    assert await read(store, "acme", "k", (FRAME_SIZE, FRAME_SIZE + 9)) == data[FRAME_SIZE:]


async def test_a_truncated_framed_object_is_an_integrity_error(store: BlobStore) -> None:
    data = text_of(2 * FRAME_SIZE)
    await store.tenant("acme").put("k", data)
    object_key = await object_key_of(store, "acme", "k")
    await store.storage.write(object_key, (await read_all(store.storage, object_key))[:-10])
    with pytest.raises(IntegrityError):
        await store.tenant("acme").get("k")
    with pytest.raises(IntegrityError):
        await read(store, "acme", "k", (FRAME_SIZE, FRAME_SIZE))
    assert await read(store, "acme", "k", (0, 9)) == data[:10]


async def test_old_raw_blobs_read_as_before_beside_framed_ones(store: BlobStore) -> None:
    """A blob stored before frames reads whole and ranged as before, dedups new puts of its bytes, and passes
    fsck; a framed blob beside it reads as framed."""
    old, new = text_of(2 * FRAME_SIZE + 3), text_of(FRAME_SIZE + 99)[::-1]
    await store.tenant("acme").put("old", old)
    await make_raw(store, "acme", "old", old)
    await store.tenant("acme").put("new", new)
    assert await store.tenant("acme").get("old") == old
    assert await read(store, "acme", "old", (FRAME_SIZE - 2, FRAME_SIZE + 2)) == old[FRAME_SIZE - 2 : FRAME_SIZE + 3]
    assert await store.tenant("acme").get("new") == new
    await store.tenant("globex").put("copy", old)
    assert await scalar(store, "SELECT count(*) FROM blobs WHERE frames IS NULL") == 1
    assert await scalar(store, "SELECT count(*) FROM blobs") == 2
    assert await store.tenant("globex").get("copy") == old
    assert (await store.fsck(read_data=True)).ok
    object_key = await object_key_of(store, "acme", "old")
    await flip(store, object_key, old, 10)
    with pytest.raises(IntegrityError, match="do not hash"):
        await store.tenant("acme").get("old")
    assert [p.kind for p in (await store.fsck(read_data=True)).problems] == ["corrupted-object"]


async def test_with_compression_off_frames_are_raw_and_still_verified(
    open_store: StoreFactory, deployment: str
) -> None:
    """BLOBSTORE_COMPRESSION=off: the object is the plaintext, and a ranged read still checks its frames."""
    store = await open_store(deployment, compression="off")
    data = text_of(2 * FRAME_SIZE + 10)
    await store.tenant("acme").put("k", data)
    object_key = await object_key_of(store, "acme", "k")
    assert await read_all(store.storage, object_key) == data
    assert {frame.codec for frame in (await frames_of(store, "acme", "k")).frames} == {Codec.RAW}
    await flip(store, object_key, data, FRAME_SIZE + 5)
    with pytest.raises(IntegrityError, match="frame 1"):
        await read(store, "acme", "k", (FRAME_SIZE, FRAME_SIZE + 10))
    assert await read(store, "acme", "k", (0, 10)) == data[:11]


@pytest.mark.parametrize("content_type", ["image/jpeg", "application/zip", "video/mp4"])
async def test_already_compressed_content_types_are_stored_raw(store: BlobStore, content_type: str) -> None:
    data = text_of(FRAME_SIZE + 10)
    await store.tenant("acme").put("k", data, content_type=content_type)
    assert await read_all(store.storage, await object_key_of(store, "acme", "k")) == data
    await store.tenant("acme").put("stream", io.BytesIO(data[::-1]), content_type=content_type)
    assert await read_all(store.storage, await object_key_of(store, "acme", "stream")) == data[::-1]


async def test_compression_level_is_the_settings(open_store: StoreFactory) -> None:
    """BLOBSTORE_COMPRESSION_LEVEL=19 stores text smaller than level 1."""
    data = text_of(FRAME_SIZE)
    sizes = []
    for level in (1, 19):
        store = await open_store("sqlite-local", compression_level=level)
        await store.tenant(f"t{level}").put("k", data + b"%d" % level)
        sizes.append((await frames_of(store, f"t{level}", "k")).stored_size)
    assert sizes[1] < sizes[0]
