"""Puts of streams into storage that can stage (docs/gc-protocol.md, put step 2a).

A stream longer than STAGE_ABOVE is written into the storage's staging place as it is hashed, once,
never spooled, under a leased staging row committed first; the round publishes it under the upload's key
or, on a dedup hit found at the end, discards it. A failure stores nothing and leaves nothing; a crash
leaves a staging row and a staging file, which GC keeps while the lease holds and reclaims after.
"""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from blobstore import BlobStore, IntegrityError, ObjectTooLarge, StorageUnavailable
from blobstore.auth import tokens
from blobstore.core.ingest import STAGE_ABOVE
from blobstore.testing.faults import Fault, FaultyStorage, SimulatedCrash, dies_with
from tests.support.live_server import serving
from tests.support.stores import FakeClock, StoreFactory
from tests.support.workers import data_objects, invariant_violations, rows

MiB = 1024 * 1024
GRACE = 3600.0
LEASE = 60.0
BIG = os.urandom(3 * MiB + 17)
#: Staging rows: ``uploading`` blob rows of size 0 whose digest no content has.
STAGING_ROWS = "SELECT id, object_key, lease_expires_at FROM blobs WHERE state = 'uploading' AND size = 0"


@pytest.fixture(params=["sqlite-local", "postgres-local"])
async def store(open_store: StoreFactory, request: pytest.FixtureRequest) -> BlobStore:
    return await open_store(request.param)


@pytest.fixture(autouse=True)
def no_spooling(monkeypatch: pytest.MonkeyPatch) -> None:
    """A temporary file anywhere but in the storage's own directory fails the test: nothing is spooled."""
    real = tempfile.mkstemp

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        assert kwargs.get("dir") is not None, "a put spooled its stream to a temporary file"
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def faulty(store: BlobStore) -> FaultyStorage:
    """Rebuild the store's core around a fault-injecting wrapper of its storage (tenants taken after see it)."""
    wrapper = FaultyStorage(store.storage)
    store.core = replace(store.core, storage=wrapper)
    return wrapper


async def pieces(data: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def leftovers(store: BlobStore) -> list[str | None]:
    return [upload.key async for upload in store.storage.incomplete_uploads()]


async def nothing_left(store: BlobStore) -> None:
    """No staging row, staging file or stray object; every count exact."""
    assert await rows(store, STAGING_ROWS) == []
    assert await leftovers(store) == []
    assert await invariant_violations(store) == []


async def test_a_long_stream_is_staged_once_and_published(store: BlobStore) -> None:
    """The bytes go into the staging place as they arrive and are published under the blob's key: one
    publish (a ``write`` of the key), no spool, no staging row or file afterwards."""
    storage = faulty(store)
    info = await store.tenant("acme").put("k", pieces(BIG))
    assert (info.size, info.deduplicated) == (len(BIG), False)
    assert await store.tenant("acme").get("k") == BIG
    operations = [operation for operation, _ in storage.calls]
    assert operations.count("stage") == 1
    assert operations.count("stage_write") >= len(BIG) // STAGE_ABOVE
    assert [key for operation, key in storage.calls if operation == "write"] == await data_objects(store)
    await nothing_left(store)


async def test_a_short_stream_is_put_as_bytes_without_staging(store: BlobStore) -> None:
    """A stream of at most STAGE_ABOVE bytes is held, hashed and put like bytes: no staging row at all."""
    storage = faulty(store)
    await store.tenant("acme").put("k", pieces(b"small" * 1000, 1000))
    assert storage.count("stage") == 0
    assert await store.tenant("acme").get("k") == b"small" * 1000
    await nothing_left(store)


async def test_a_stream_that_refills_one_buffer_is_stored_as_it_was_sent(store: BlobStore) -> None:
    """Each chunk is hashed and staged while the next is read: a stream that refills the buffer it yielded
    (as ``readinto`` loops do) still stores the bytes it sent, under their digest."""
    buffer = bytearray(MiB)

    async def refilled() -> AsyncIterator[bytearray]:
        for n in range(4):
            buffer[:] = bytes([n]) * MiB
            yield buffer

    sent = b"".join(bytes([n]) * MiB for n in range(4))
    info = await store.tenant("acme").put("k", refilled())
    assert await store.tenant("acme").get("k") == sent
    assert info.digest == (await store.tenant("acme").put("again", sent)).digest
    await nothing_left(store)


async def test_a_dedup_hit_found_at_the_end_discards_the_staged_bytes(store: BlobStore) -> None:
    """Bytes that turn out to be stored already are bound to the live blob; the staged copy is discarded."""
    await store.tenant("acme").put("first", BIG)
    storage = faulty(store)
    info = await store.tenant("acme").put("second", pieces(BIG))
    assert info.deduplicated
    assert storage.count("stage") == 1
    assert storage.count("write") == 0
    assert len(await data_objects(store)) == 1
    assert await store.tenant("acme").get("second") == BIG
    await nothing_left(store)


@pytest.mark.parametrize("failure", ["stream", "too-large", "digest"])
async def test_a_failed_streamed_put_stores_nothing_and_leaves_nothing(open_store: StoreFactory, failure: str) -> None:
    """The stream raising, passing the maximum object size or hashing to another digest after staging
    began fails the put; no key, blob, staging row or staging file remains."""
    store = await open_store("sqlite-local", max_object_size=3 * MiB)

    async def broken() -> AsyncIterator[bytes]:
        yield BIG[: 2 * MiB]
        raise ConnectionResetError("the client went away")

    acme = store.tenant("acme")
    if failure == "stream":
        with pytest.raises(ConnectionResetError):
            await acme.put("k", broken())
    elif failure == "too-large":
        with pytest.raises(ObjectTooLarge):
            await acme.put("k", pieces(BIG))
    else:
        with pytest.raises(IntegrityError):
            await acme.put("k", pieces(BIG[: 2 * MiB]), digest="0" * 64)
    assert not await acme.exists("k")
    assert await data_objects(store) == []
    await nothing_left(store)


async def test_an_http_put_streams_its_body_into_storage_and_a_refused_one_leaves_nothing(
    open_store: StoreFactory, clock: FakeClock
) -> None:
    """A chunked PUT body is staged as it arrives, never spooled (201); one cut off past the maximum object
    size after staging began is 413 and leaves no key, row, staging file or object."""
    store = await open_store("sqlite-local", max_object_size=2 * MiB)
    token = (await tokens.create(store, "acme", scopes=tokens.SCOPES)).token
    with serving(store.settings, clock=clock) as url:
        async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {token}"}) as http:
            stored = await http.put("/v1/tenants/acme/objects/k", content=pieces(BIG[: 2 * MiB]))
            refused = await http.put("/v1/tenants/acme/objects/big", content=pieces(BIG))
    assert stored.status_code == 201, stored.text
    assert (refused.status_code, refused.json()["code"]) == (413, "ObjectTooLarge")
    assert await store.tenant("acme").get("k") == BIG[: 2 * MiB]
    assert not await store.tenant("acme").exists("big")
    assert len(await data_objects(store)) == 1
    await nothing_left(store)


class Held:
    """A stream that sends its first half, then waits for :meth:`release` before the rest."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.halfway = asyncio.Event()
        self.released = asyncio.Event()

    async def chunks(self) -> AsyncIterator[bytes]:
        half = len(self.data) // 2
        yield self.data[:half]
        self.halfway.set()
        await self.released.wait()
        yield self.data[half:]

    def release(self) -> None:
        self.released.set()


async def test_gc_leaves_a_leased_staging_alone_while_the_bytes_flow(
    open_store: StoreFactory, clock: FakeClock
) -> None:
    """Mid-stream a staging row holds its lease over the staging file; GC past the file's age keeps both."""
    store = await open_store("sqlite-local", gc_grace_seconds=0)
    held = Held(BIG)
    put = asyncio.create_task(store.tenant("acme").put("k", held.chunks()))
    await held.halfway.wait()
    [(_, name, _)] = await rows(store, STAGING_ROWS)
    assert await leftovers(store) == [name]
    clock.advance(LEASE / 2)
    stats = await store.gc()
    assert (stats.blobs_reclaimed, stats.incomplete_uploads_aborted) == (0, 0)
    held.release()
    assert (await put).size == len(BIG)
    assert await store.tenant("acme").get("k") == BIG
    await nothing_left(store)


async def test_a_staging_whose_uploader_stalled_past_its_lease_is_reclaimed_and_the_put_fails(
    open_store: StoreFactory, clock: FakeClock
) -> None:
    """GC reclaims the staging row and file of an uploader that stopped renewing; the put then fails with
    StorageUnavailable and stores nothing."""
    store = await open_store("sqlite-local", gc_grace_seconds=0)
    held = Held(BIG)
    put = asyncio.create_task(store.tenant("acme").put("k", held.chunks()))
    await held.halfway.wait()
    clock.advance(LEASE + 1)  # the renewer (every 20 s of real time) has not run: the lease lapsed
    stats = await store.gc()
    assert (stats.blobs_reclaimed, stats.incomplete_uploads_aborted) == (1, 1)
    held.release()
    with pytest.raises(StorageUnavailable, match="removed before they were published"):
        await put
    assert not await store.tenant("acme").exists("k")
    await nothing_left(store)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the dead put's open file
@pytest.mark.parametrize("point", ["mid-staging", "after-publish"])
async def test_a_crash_while_staging_leaves_only_what_gc_reclaims(
    store: BlobStore, clock: FakeClock, point: str
) -> None:
    """A process dying mid-stream leaves a leased staging row and its staging file; one dying after the
    publish also the upload's row and object. GC keeps them while the leases hold and reclaims them after."""
    storage = faulty(store)
    store.database.transaction = dies_with(storage, store.database.transaction)  # type: ignore[method-assign]
    if point == "mid-staging":
        storage.inject(Fault("stage_write", skip=1, error=SimulatedCrash("killed")))
    else:
        storage.inject(Fault("write", key_prefix="data/", phase="after", error=SimulatedCrash("killed")))
    with pytest.raises(SimulatedCrash):
        await store.tenant("acme").put("k", pieces(BIG))
    storage.clear()
    [(_, name, _)] = await rows(store, STAGING_ROWS)
    assert await leftovers(store) == ([name] if point == "mid-staging" else [])
    assert len(await data_objects(store)) == (1 if point == "after-publish" else 0)

    await store.gc()  # within the lease and grace: everything stays
    assert len(await rows(store, "SELECT id FROM blobs")) == (2 if point == "after-publish" else 1)
    clock.advance(GRACE + LEASE)
    await store.gc()
    assert await rows(store, "SELECT id FROM blobs") == []
    assert await data_objects(store) == []
    await nothing_left(store)
    gc.collect()  # closes the staging file the "dead" process left open, within this test
