"""The conformance suite every :class:`~blobstore.storage.ObjectStorage` backend passes.

Subclass :class:`StorageConformance` in a test module and give it an async
``storage`` fixture that yields a fresh, empty backend and closes it::

    class TestMemoryStorage(StorageConformance):
        @pytest.fixture
        async def storage(self) -> AsyncIterator[ObjectStorage]:
            async with MemoryStorage() as storage:
                yield storage
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from blobstore.errors import IntegrityError, ObjectMissing
from blobstore.storage.base import CHUNK_SIZE, ObjectStorage, read_all

LARGE = 5 * 1024 * 1024 + 123


async def _read_range(storage: ObjectStorage, key: str, first: int, last: int) -> bytes:
    return b"".join([chunk async for chunk in storage.read(key, (first, last))])


async def _write_many(storage: ObjectStorage, keys: list[str], data: bytes) -> None:
    slots = asyncio.Semaphore(32)

    async def write(key: str) -> None:
        async with slots:
            await storage.write(key, data)

    await asyncio.gather(*(write(key) for key in keys))


async def _listed(storage: ObjectStorage, prefix: str = "") -> dict[str, int]:
    """Map each listed key to its size, failing if a key is listed twice."""
    keys = [(info.key, info.size) async for info in storage.list(prefix)]
    listed = dict(keys)
    assert len(listed) == len(keys), f"keys listed more than once: {sorted(k for k, _ in keys)}"
    return listed


class StorageConformance:
    """Behaviour every backend shares; subclasses provide the ``storage`` fixture."""

    async def test_bytes_round_trip(self, storage: ObjectStorage) -> None:
        """Bytes written under a key read back identically."""
        await storage.write("a/b/one", b"hello world")
        assert await read_all(storage, "a/b/one") == b"hello world"

    async def test_deferred_writes_read_back_and_are_made_durable_together(
        self, storage: ObjectStorage, tmp_path: Path
    ) -> None:
        """A batch's deferred writes (bytes and a file, in new and shared folders) read back as they were
        written, before and after :meth:`~blobstore.storage.DeferredWrites.make_durable`, which reports no
        failure."""
        source = tmp_path / "source.bin"
        source.write_bytes(b"from a file")
        batch = storage.deferred_writes()
        await batch.write("batch/x/one", b"first")
        await batch.write("batch/x/two", b"second")
        await batch.write("batch/y/three", source)
        assert await read_all(storage, "batch/x/two") == b"second"
        assert await batch.make_durable() == {}
        assert await _listed(storage, "batch/") == {"batch/x/one": 5, "batch/x/two": 6, "batch/y/three": 11}
        assert await read_all(storage, "batch/y/three") == b"from a file"

    async def test_path_round_trip(self, storage: ObjectStorage, tmp_path: Path) -> None:
        """A file written by path reads back with the file's bytes."""
        source = tmp_path / "source.bin"
        data = os.urandom(70_000)
        source.write_bytes(data)
        await storage.write("from-path", source)
        assert await read_all(storage, "from-path") == data

    async def test_empty_object(self, storage: ObjectStorage) -> None:
        """An empty object exists with size 0 and reads back as no bytes."""
        await storage.write("empty", b"")
        info = await storage.stat("empty")
        assert info is not None
        assert info.size == 0
        assert await read_all(storage, "empty") == b""

    async def test_large_object_streams_in_bounded_chunks(self, storage: ObjectStorage, tmp_path: Path) -> None:
        """A multi-chunk object reads back whole, in several chunks none larger than CHUNK_SIZE."""
        data = os.urandom(LARGE)
        source = tmp_path / "large.bin"
        source.write_bytes(data)
        await storage.write("large", source)
        chunks = [chunk async for chunk in storage.read("large")]
        assert len(chunks) > 1
        assert max(len(chunk) for chunk in chunks) <= CHUNK_SIZE
        assert b"".join(chunks) == data

    async def test_overwrite_replaces(self, storage: ObjectStorage) -> None:
        """Writing an existing key replaces its bytes and size."""
        await storage.write("key", b"first version, longer")
        await storage.write("key", b"second")
        assert await read_all(storage, "key") == b"second"
        info = await storage.stat("key")
        assert info is not None
        assert info.size == len(b"second")

    async def test_concurrent_writes_leave_one_whole_object(self, storage: ObjectStorage) -> None:
        """Concurrent writes of one key leave exactly one of the written objects, never a mix."""
        versions = [bytes([n]) * 100_000 for n in range(4)]
        await asyncio.gather(*(storage.write("contended", data) for data in versions))
        assert await read_all(storage, "contended") in versions

    async def test_byte_ranges_are_inclusive(self, storage: ObjectStorage) -> None:
        """Ranges return exactly bytes first..last: the first byte, a middle span, the last byte, everything."""
        data = bytes(range(256)) * 40
        await storage.write("ranged", data)
        last = len(data) - 1
        assert await _read_range(storage, "ranged", 0, 0) == data[:1]
        assert await _read_range(storage, "ranged", 100, 2099) == data[100:2100]
        assert await _read_range(storage, "ranged", last, last) == data[-1:]
        assert await _read_range(storage, "ranged", 0, last) == data

    async def test_byte_range_across_chunks(self, storage: ObjectStorage) -> None:
        """A range spanning chunk boundaries of a large object returns exactly its bytes."""
        data = os.urandom(LARGE)
        await storage.write("large-ranged", data)
        first, last = CHUNK_SIZE - 10, 3 * CHUNK_SIZE + 10
        chunks = [chunk async for chunk in storage.read("large-ranged", (first, last))]
        assert max(len(chunk) for chunk in chunks) <= CHUNK_SIZE
        assert b"".join(chunks) == data[first : last + 1]

    async def test_read_missing_raises(self, storage: ObjectStorage) -> None:
        """Reading a key without an object raises ObjectMissing, with or without a range."""
        with pytest.raises(ObjectMissing):
            await read_all(storage, "no/such/key")
        with pytest.raises(ObjectMissing):
            await _read_range(storage, "no/such/key", 0, 0)

    async def test_stat_missing_is_none(self, storage: ObjectStorage) -> None:
        """stat of a key without an object returns None."""
        assert await storage.stat("no/such/key") is None

    async def test_stat_present(self, storage: ObjectStorage) -> None:
        """stat reports the key, the exact size and a recent timezone-aware UTC modification time."""
        await storage.write("dir/stat-me", b"12345")
        info = await storage.stat("dir/stat-me")
        assert info is not None
        assert (info.key, info.size) == ("dir/stat-me", 5)
        assert info.modified.utcoffset() == timedelta(0)
        assert abs(datetime.now(UTC) - info.modified) < timedelta(minutes=10)

    async def test_failed_write_leaves_nothing(self, storage: ObjectStorage, tmp_path: Path) -> None:
        """A write from a file that does not exist fails and leaves no object under the key."""
        with pytest.raises(OSError, match="missing"):
            await storage.write("never", tmp_path / "missing")
        assert await storage.stat("never") is None
        assert await _listed(storage) == {}

    async def test_delete_many_ignores_missing(self, storage: ObjectStorage) -> None:
        """delete_many removes present keys, ignores absent ones, keeps the rest, and may be repeated."""
        await storage.write("d/1", b"1")
        await storage.write("d/2", b"2")
        await storage.write("d/keep", b"3")
        await storage.delete_many(["d/1", "d/absent", "d/2"])
        await storage.delete_many(["d/1", "d/2"])
        assert await storage.stat("d/1") is None
        assert await storage.stat("d/2") is None
        assert await _listed(storage) == {"d/keep": 1}

    async def test_delete_many_beyond_one_batch(self, storage: ObjectStorage) -> None:
        """delete_many of 1005 keys deletes objects anywhere in the list, past the 1000th too."""
        keys = [f"many/{n:04d}" for n in range(1005)]
        present = sorted({*keys[::40], *keys[998:]})  # a spread, plus both sides of the 1000 mark
        await _write_many(storage, present, b"x")
        await storage.write("other", b"y")
        assert len(await _listed(storage, "many/")) == len(present)
        await storage.delete_many(keys)
        assert await _listed(storage) == {"other": 1}

    async def test_delete_many_empty(self, storage: ObjectStorage) -> None:
        """delete_many with no keys does nothing."""
        await storage.write("stays", b"1")
        await storage.delete_many([])
        assert await _listed(storage) == {"stays": 1}

    async def test_list_by_prefix(self, storage: ObjectStorage) -> None:
        """list yields every key under the prefix exactly once, with its size, and no other key."""
        objects = {"a/1": b"1", "a/2": b"22", "a/b/3": b"333", "ab/4": b"4444", "b/5": b"55555"}
        for key, data in objects.items():
            await storage.write(key, data)
        assert await _listed(storage) == {key: len(data) for key, data in objects.items()}
        assert await _listed(storage, "a/") == {"a/1": 1, "a/2": 2, "a/b/3": 3}
        assert await _listed(storage, "a") == {"a/1": 1, "a/2": 2, "a/b/3": 3, "ab/4": 4}
        assert await _listed(storage, "a/b") == {"a/b/3": 3}
        assert await _listed(storage, "c") == {}

    async def test_list_reports_timezone_aware_times(self, storage: ObjectStorage) -> None:
        """Listed modification times are timezone-aware UTC."""
        await storage.write("timed", b"t")
        [info] = [info async for info in storage.list()]
        assert info.modified.utcoffset() == timedelta(0)

    async def test_no_incomplete_uploads_after_clean_writes(self, storage: ObjectStorage) -> None:
        """After only successful writes (plain and conditional) no incomplete upload is left."""
        await storage.write("complete", b"done")
        await storage.write_if_absent("created", b"once")
        assert isinstance(storage.supports_incomplete_uploads, bool)
        assert [upload async for upload in storage.incomplete_uploads()] == []
        assert await read_all(storage, "complete") == b"done"

    async def test_list_yields_keys_in_code_point_order(self, storage: ObjectStorage) -> None:
        """Listing order is the keys' code-point order, across directory levels ('a.b' < 'a/c' < 'a0')."""
        keys = ["a0", "a/c", "a.b", "a/b/z", "a/b.x", "b", "a-1", "a/b/a", "data/0f/00/x", "data/0e/ff/y"]
        for key in keys:
            await storage.write(key, key.encode())
        assert [info.key async for info in storage.list()] == sorted(keys)
        assert [info.key async for info in storage.list("a/b")] == sorted(k for k in keys if k.startswith("a/b"))

    async def test_write_if_absent_creates_once(self, storage: ObjectStorage) -> None:
        """The first conditional write creates the object; later ones change nothing and say so."""
        assert await storage.write_if_absent("marker", b"first") is True
        assert await storage.write_if_absent("marker", b"second") is False
        assert await read_all(storage, "marker") == b"first"
        await storage.write("plain", b"exists")
        assert await storage.write_if_absent("plain", b"other") is False
        assert await read_all(storage, "plain") == b"exists"

    async def test_concurrent_write_if_absent_has_exactly_one_winner(self, storage: ObjectStorage) -> None:
        """Of many concurrent conditional writes to one key exactly one wins, and its bytes stay."""
        results = await asyncio.gather(*(storage.write_if_absent("contested", b"writer %d" % i) for i in range(8)))
        assert results.count(True) == 1
        assert await read_all(storage, "contested") == b"writer %d" % results.index(True)

    async def test_staged_bytes_are_published_whole_under_a_key(self, storage: ObjectStorage) -> None:
        """Staged bytes are under no key until published; then the key holds exactly them (replacing what it
        held) and nothing staged is left. Discarding afterwards changes nothing."""
        if not storage.supports_staging:
            await _refuses_to_stage(storage)
            return
        data = os.urandom(LARGE)
        await storage.write("published", b"an older object")
        staged = await storage.stage("staging/one")
        for start in range(0, LARGE, CHUNK_SIZE // 2):
            await staged.write(data[start : start + CHUNK_SIZE // 2])
        assert await _listed(storage) == {"published": len(b"an older object")}
        await staged.publish("published")
        assert await read_all(storage, "published") == data
        assert await _listed(storage) == {"published": LARGE}
        assert [upload async for upload in storage.incomplete_uploads()] == []
        await staged.discard()
        assert await read_all(storage, "published") == data

    async def test_discarded_staged_bytes_leave_nothing(self, storage: ObjectStorage) -> None:
        """Discarding staged bytes (twice: it is idempotent) leaves no object and no incomplete upload."""
        if not storage.supports_staging:
            await _refuses_to_stage(storage)
            return
        staged = await storage.stage("staging/two")
        await staged.write(b"never published")
        await staged.discard()
        await staged.discard()
        assert await _listed(storage) == {}
        assert [upload async for upload in storage.incomplete_uploads()] == []

    async def test_a_staging_leftover_is_an_incomplete_upload_under_its_name(self, storage: ObjectStorage) -> None:
        """Until published or discarded, staged bytes are an incomplete upload whose key is the staging name
        (so GC can reclaim those of a process that died); aborting it removes them."""
        if not storage.supports_staging:
            await _refuses_to_stage(storage)
            return
        staged = await storage.stage("staging/three")
        await staged.write(b"left behind")
        if not storage.supports_incomplete_uploads:  # nothing outlives the process: nothing to reclaim
            assert [upload async for upload in storage.incomplete_uploads()] == []
            await staged.discard()
            return
        [upload] = [upload async for upload in storage.incomplete_uploads()]
        assert upload.key == "staging/three"
        await storage.abort_upload(upload)
        assert [upload async for upload in storage.incomplete_uploads()] == []
        await staged.discard()
        assert await _listed(storage) == {}

    @pytest.mark.parametrize("sizes", [[3], [5 * 2**20, 5 * 2**20 + 7, 10], [100, 5 * 2**20, 0]])
    async def test_write_concatenated_joins_the_pieces_prefixes(self, storage: ObjectStorage, sizes: list[int]) -> None:
        """Pieces of any lengths (S3 copies those of at least 5 MiB but the last itself, the rest are read and
        written): the object is each piece's first ``length`` bytes, in order."""
        objects = [os.urandom(size + 5) for size in sizes]
        for number, data in enumerate(objects):
            await storage.write(f"piece/{number}", data)
        await storage.write_concatenated("joined", [(f"piece/{n}", size) for n, size in enumerate(sizes)])
        assert await read_all(storage, "joined") == b"".join(
            data[:size] for data, size in zip(objects, sizes, strict=True)
        )
        assert [upload async for upload in storage.incomplete_uploads()] == []

    async def test_write_concatenated_of_a_missing_or_short_piece_stores_nothing(self, storage: ObjectStorage) -> None:
        await storage.write("piece/a", os.urandom(5 * 2**20))
        await storage.write("piece/b", b"short")
        with pytest.raises(ObjectMissing):
            await storage.write_concatenated("joined", [("piece/a", 5 * 2**20), ("piece/gone", 10)])
        with pytest.raises(IntegrityError):
            await storage.write_concatenated("joined", [("piece/a", 5 * 2**20), ("piece/b", 10)])
        assert await storage.stat("joined") is None

    async def test_a_fresh_storage_has_no_enclosing_marker(self, storage: ObjectStorage) -> None:
        """No location around a fresh test storage holds an object with a random name."""
        assert await storage.enclosing_object(f"no-such-marker-{os.urandom(6).hex()}") is None

    async def test_url_names_the_storage(self, storage: ObjectStorage) -> None:
        """The storage has a URL with a scheme."""
        assert "://" in storage.url

    async def test_close_twice(self, storage: ObjectStorage) -> None:
        """close may be called more than once (the fixture closes again afterwards)."""
        await storage.close()
        await storage.close()


async def _refuses_to_stage(storage: ObjectStorage) -> None:
    """A backend that does not stage says so when asked to, and nothing appears."""
    with pytest.raises(NotImplementedError):
        await storage.stage("staging/refused")
    assert await _listed(storage) == {}
