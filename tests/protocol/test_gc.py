"""Garbage collection: the grace period, dry runs, batches, orphans, incomplete uploads, and safety.

Every test runs on SQLite + local directory and on PostgreSQL + S3 (a real HTTP
endpoint) unless it says otherwise. Crashed puts are simulated in-process: the
storage "dies" after (or before) the upload, and the database dies with it, so
none of the put's clean-up runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import aioboto3
import pytest
from aiobotocore.config import AioConfig
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from blobstore import BlobStore, ConfigurationError, NotFound
from blobstore.db import catalog, maintenance
from blobstore.db.models import Base
from blobstore.protocol import gc as gc_module
from blobstore.protocol.gc import BATCH, GcStats, Planned
from blobstore.storage import LocalStorage, S3Storage, open_storage_from_url
from blobstore.storage.layout import OBJECT_PREFIX, object_key_for
from blobstore.testing.faults import Fault, FaultyStorage, SimulatedCrash, dies_with
from tests.support.digests import digest_of
from tests.support.s3_server import S3Endpoint
from tests.support.stores import FakeClock, StoreFactory
from tests.support.workers import data_objects, invariant_violations, rows, scalar

GRACE = 3600.0


async def crash_put(
    store: BlobStore, key: str, data: bytes, point: Literal["after-intent", "after-upload"] = "after-upload"
) -> None:
    """Run a put whose process dies right before (``after-intent``) or right after (``after-upload``)
    it writes the object: it leaves an ``uploading`` row, with or without the object."""
    faulty = FaultyStorage(store.storage)
    fault = faulty.inject(
        Fault("write", error=SimulatedCrash("killed"), phase="before" if point == "after-intent" else "after")
    )
    real_storage, real_transaction = store.storage, store.database.transaction
    store.core = replace(store.core, storage=faulty)
    store.database.transaction = dies_with(faulty, real_transaction)  # type: ignore[method-assign]
    try:
        with pytest.raises(SimulatedCrash):
            await store.tenant("acme").put(key, data)
    finally:
        store.core = replace(store.core, storage=real_storage)
        del store.database.transaction  # the class's method again
    assert fault.hits == 1


async def blob_states(store: BlobStore) -> list[tuple[str, int]]:
    """(state, refcount) of every blob row, in id order."""
    return [(state, rc) for state, rc in await rows(store, "SELECT state, refcount FROM blobs ORDER BY id")]


async def snapshot(store: BlobStore) -> tuple[list[Any], list[str]]:
    """Every blob row and every stored key (everything, not only data/)."""
    blob_rows = [tuple(row) for row in await rows(store, "SELECT * FROM blobs ORDER BY id")]
    return blob_rows, sorted([info.key async for info in store.storage.list("")])


async def write_objects(store: BlobStore, keys: list[str], data: bytes = b"x") -> None:
    """Write ``data`` under each key straight into storage, a few dozen at a time (plain files, without the
    fsyncs, on local storage: these are test fixtures)."""
    if isinstance(store.storage, LocalStorage):
        for key in keys:
            path = store.storage.path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return
    slots = asyncio.Semaphore(32)

    async def one(key: str) -> None:
        async with slots:
            await store.storage.write(key, data)

    await asyncio.gather(*(one(key) for key in keys))


def orphan_key() -> str:
    """A key that looks like a blob object's but that no row will ever hold."""
    return object_key_for(secrets.token_hex(32))


# --- the grace period ------------------------------------------------------------------------------


async def test_an_unreferenced_blob_is_kept_one_second_short_of_grace_and_reclaimed_one_second_after(
    store: BlobStore, clock: FakeClock
) -> None:
    """A blob whose last reference was deleted survives GC at grace - 1 s and is reclaimed at grace + 1 s."""
    acme = store.tenant("acme")
    await acme.put("keep", b"kept bytes")
    await acme.put("gone", b"doomed bytes")
    await acme.delete("gone")
    assert len(await data_objects(store)) == 2

    clock.advance(GRACE - 1)
    kept = await store.gc()
    assert (kept.blobs_reclaimed, kept.bytes_reclaimed) == (0, 0)
    assert len(await data_objects(store)) == 2
    assert await blob_states(store) == [("live", 1), ("live", 0)]

    clock.advance(2)
    collected = await store.gc()
    assert (collected.blobs_reclaimed, collected.bytes_reclaimed) == (1, len(b"doomed bytes"))
    assert await blob_states(store) == [("live", 1)]
    assert len(await data_objects(store)) == 1
    assert await acme.get("keep") == b"kept bytes"
    assert await invariant_violations(store) == []


async def test_a_reference_taken_before_grace_ends_saves_the_blob(store: BlobStore, clock: FakeClock) -> None:
    """Putting the same bytes again within the grace period revives the unreferenced blob; GC keeps it."""
    acme = store.tenant("acme")
    await acme.put("a", b"revived")
    await acme.delete("a")
    clock.advance(GRACE - 1)
    info = await acme.put("b", b"revived")
    clock.advance(GRACE * 2)
    assert (await store.gc()).blobs_reclaimed == 0
    assert await acme.get("b") == b"revived"
    assert info.deduplicated is False  # the tenant no longer held the bytes when it put them again
    assert await invariant_violations(store) == []


@pytest.mark.parametrize("point", ["after-intent", "after-upload"])
async def test_an_abandoned_upload_is_kept_until_its_lease_expires(
    store: BlobStore, clock: FakeClock, point: Literal["after-intent", "after-upload"]
) -> None:
    """A put that crashed after recording its intent leaves no key; GC reclaims its row and object only once
    the dead uploader's lease has expired (a second short of it: kept).

    With or without the object written (``after-upload`` / ``after-intent``).
    """
    lease = store.settings.upload_lease_seconds
    await crash_put(store, "crashed", b"never acknowledged", point)
    assert await blob_states(store) == [("uploading", 0)]
    assert len(await data_objects(store)) == (1 if point == "after-upload" else 0)
    with pytest.raises(NotFound):
        await store.tenant("acme").get("crashed")

    clock.advance(lease - 1)
    assert (await store.gc()).blobs_reclaimed == 0
    assert await blob_states(store) == [("uploading", 0)]

    clock.advance(2)
    planned: list[Planned] = []
    await store.gc(dry_run=True, on_planned=planned.append)
    assert [item.reason for item in planned if item.kind == "blob"] == ["abandoned-upload"]
    stats = await store.gc()
    assert stats.blobs_reclaimed == 1
    assert await blob_states(store) == []
    assert await data_objects(store) == []
    assert await invariant_violations(store) == []


async def test_a_put_after_a_crashed_upload_of_the_same_bytes_stores_them_afresh(
    store: BlobStore, clock: FakeClock
) -> None:
    """The crashed upload's object is never trusted: a later put uploads anew, and GC removes only the wreck."""
    await crash_put(store, "first", b"same bytes")
    info = await store.tenant("acme").put("second", b"same bytes")
    assert info.deduplicated is False
    assert sorted(state for state, _ in await blob_states(store)) == ["live", "uploading"]
    clock.advance(GRACE + 1)
    assert (await store.gc()).blobs_reclaimed == 1
    assert await store.tenant("acme").get("second") == b"same bytes"
    assert await invariant_violations(store) == []


class _PausedDeletes(FaultyStorage):
    """Storage whose object deletions wait until ``go`` is set (``reached`` is set when the first one waits)."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.reached = asyncio.Event()
        self.go = asyncio.Event()

    async def delete_many(self, keys: Any) -> None:
        self.reached.set()
        await self.go.wait()
        await super().delete_many(keys)


async def test_two_gc_runs_at_once_count_a_reclaimed_blob_once(
    open_store: StoreFactory, deployment: str, clock: FakeClock
) -> None:
    """Two processes collect at once: one tombstoned a blob and is deleting its object when the other re-drives
    the tombstone and finishes the job. Both succeed, and the blob is counted by one run only."""
    first, second = await open_store(deployment), await open_store(deployment)
    acme = first.tenant("acme")
    await acme.put("gone", b"doomed bytes")
    await acme.delete("gone")
    clock.advance(GRACE + 1)
    paused = _PausedDeletes(first.storage)
    first.core = replace(first.core, storage=paused)
    slow = asyncio.create_task(first.gc())
    await asyncio.wait_for(paused.reached.wait(), 30)
    fast = await second.gc()
    paused.go.set()
    slowed = await slow
    assert (fast.blobs_reclaimed, fast.bytes_reclaimed) == (1, len(b"doomed bytes"))
    assert (slowed.blobs_reclaimed, slowed.bytes_reclaimed) == (0, 0)
    assert await invariant_violations(second) == []


# --- dry runs and reports --------------------------------------------------------------------------


async def make_garbage(store: BlobStore, clock: FakeClock) -> None:
    """Three unreferenced blobs, one abandoned upload and two orphans, all past grace; two live keys."""
    acme = store.tenant("acme")
    for i in range(3):
        await acme.put(f"doomed/{i}", f"doomed {i}".encode() * (i + 1))
        await acme.delete(f"doomed/{i}")
    await acme.put("live/0", b"live 0")
    await acme.copy("live/0", "live/1")
    await crash_put(store, "crashed", b"crashed upload")
    await store.storage.write(orphan_key(), b"orphan one")
    await store.storage.write(orphan_key(), b"orphan number two")
    clock.advance(GRACE + 10)


async def test_a_dry_run_changes_nothing_and_predicts_what_gc_then_does(store: BlobStore, clock: FakeClock) -> None:
    """gc(dry_run=True) leaves every row and object in place and reports exactly the counts a real run achieves."""
    await make_garbage(store, clock)
    before = await snapshot(store)
    dry = await store.gc(dry_run=True)
    assert await snapshot(store) == before
    assert dry.dry_run is True
    assert (dry.blobs_reclaimed, dry.orphans_deleted) == (4, 2)
    assert dry.bytes_reclaimed == sum(len(f"doomed {i}".encode()) * (i + 1) for i in range(3)) + len(b"crashed upload")
    assert dry.orphan_bytes == len(b"orphan one") + len(b"orphan number two")

    done = await store.gc()
    assert done.dry_run is False
    predicted = ("blobs_reclaimed", "bytes_reclaimed", "orphans_deleted", "orphan_bytes")
    assert {name: getattr(done, name) for name in predicted} == {name: getattr(dry, name) for name in predicted}
    assert len(await data_objects(store)) == 1
    assert await store.tenant("acme").get("live/1") == b"live 0"
    assert (await store.gc(dry_run=True)).blobs_reclaimed == 0
    assert await invariant_violations(store) == []


async def test_planned_deletions_and_stats_serialise_to_json(store: BlobStore, clock: FakeClock) -> None:
    """Each planned deletion and GcStats.to_dict are plain JSON; a run hears of every deletion it makes."""
    await make_garbage(store, clock)
    planned: list[Planned] = []
    stats = await store.gc(on_planned=planned.append)
    assert isinstance(stats, GcStats)
    items = json.loads(json.dumps([item.to_dict() for item in planned]))
    assert sorted(item["kind"] for item in items) == ["blob"] * 4 + ["orphan"] * 2
    assert {item["reason"] for item in items if item["kind"] == "blob"} == {"unreferenced", "abandoned-upload"}
    assert all(item["key"].startswith(OBJECT_PREFIX) for item in items)
    reported = json.loads(json.dumps(stats.to_dict()))
    assert reported["blobs_reclaimed"] == 4
    assert reported["orphans_deleted"] == 2
    assert set(reported) >= {"dry_run", "bytes_reclaimed", "orphan_bytes", "incomplete_uploads_aborted"}


# --- batches ---------------------------------------------------------------------------------------


async def test_more_blobs_than_one_batch_are_all_reclaimed(store: BlobStore, clock: FakeClock) -> None:
    """1,100 unreferenced blobs (more than one 1,000-blob batch) are all reclaimed in one run, in two batches.

    Every blob has its object on local storage; on S3, where each write costs ~10 ms, every tenth blob and
    the blobs at the batch boundary do (deleting the others' missing objects is a no-op).
    """
    count = BATCH + 100
    datas = [f"tiny {i}".encode() for i in range(count)]
    keys = [object_key_for(digest_of(data)) for data in datas]
    now = clock()
    rows_ = [
        {
            "scope": "",
            "digest": digest_of(data),
            "size": len(data),
            "object_key": key,
            "state": catalog.LIVE,
            "refcount": 0,
            "created_at": now,
            "unreferenced_since": now,
        }
        for data, key in zip(datas, keys, strict=True)
    ]

    async def record(conn: Any) -> None:
        await conn.execute(catalog.blobs.insert(), rows_)

    await store.database.transaction(record)
    sampled = isinstance(store.storage, S3Storage)
    written = [key for i, key in enumerate(keys) if not sampled or i % 10 == 0 or BATCH - 1 <= i <= BATCH]
    await write_objects(store, written)
    await store.tenant("acme").put("survivor", b"still referenced")
    clock.advance(GRACE + 10)

    seen: list[tuple[str, int]] = []
    stats = await store.gc(progress=lambda phase, done, total: seen.append((phase, done)))
    assert (stats.blobs_reclaimed, stats.bytes_reclaimed) == (count, sum(len(data) for data in datas))
    assert [done for phase, done in seen if phase == "reclaiming blobs"] == [BATCH, 100]
    assert len(await data_objects(store)) == 1
    assert await scalar(store, "SELECT COUNT(*) FROM blobs") == 1
    assert await store.tenant("acme").get("survivor") == b"still referenced"


async def test_more_orphans_than_one_batch_are_all_deleted(
    store: BlobStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Orphans beyond one batch are listed, re-checked and deleted batch by batch.

    1,100 of them on local storage; on S3 (~10 ms a write) 100 of them with the batch size lowered to 40.
    """
    if isinstance(store.storage, S3Storage):
        monkeypatch.setattr(gc_module, "BATCH", 40)
        count, batch = 100, 40
    else:
        count, batch = BATCH + 100, BATCH
    orphans = [orphan_key() for _ in range(count)]
    await write_objects(store, orphans, b"orphan")
    await store.tenant("acme").put("survivor", b"still referenced")
    clock.advance_past_real_time(GRACE + 1)

    seen: list[tuple[str, int]] = []
    stats = await store.gc(progress=lambda phase, done, total: seen.append((phase, done)))
    assert (stats.orphans_deleted, stats.orphan_bytes) == (count, count * len(b"orphan"))
    deleted = [done for phase, done in seen if phase == "deleting orphans"]
    assert sum(deleted) == count
    assert len(deleted) >= -(-count // batch)
    assert max(deleted) <= batch
    assert len(await data_objects(store)) == 1
    assert await store.tenant("acme").get("survivor") == b"still referenced"


# --- orphans and incomplete uploads ----------------------------------------------------------------


async def test_an_orphan_is_deleted_only_past_grace_and_nothing_outside_data_is_touched(
    store: BlobStore, clock: FakeClock
) -> None:
    """An object under data/ without a row is deleted only once grace has passed since it was written.

    Objects outside data/ (the store marker, anything else) are never touched.
    """
    await store.tenant("acme").put("k", b"referenced")
    orphan = orphan_key()
    await store.storage.write(orphan, b"nobody's")
    await store.storage.write("elsewhere/file", b"not ours to judge")
    written = await store.storage.stat(orphan)
    assert written is not None

    clock.now = written.modified + timedelta(seconds=GRACE - 1)
    kept = await store.gc()
    assert kept.orphans_deleted == 0
    assert await store.storage.stat(orphan) is not None

    clock.advance(2)
    collected = await store.gc()
    assert (collected.orphans_deleted, collected.orphan_bytes) == (1, len(b"nobody's"))
    assert await store.storage.stat(orphan) is None
    assert await store.storage.stat("elsewhere/file") is not None
    assert await store.storage.stat("blobstore-store-id") is not None
    assert await store.tenant("acme").get("k") == b"referenced"


async def s3_client(s3: S3Endpoint) -> Any:
    config = AioConfig(s3={"addressing_style": "path"})
    return aioboto3.Session().client("s3", endpoint_url=s3.url, region_name=s3.region, config=config)


async def incomplete_uploads(store: BlobStore, request: pytest.FixtureRequest) -> list[tuple[str, datetime]]:
    """(key, start time) of the store's incomplete uploads: S3 multipart uploads, or local temp files in .tmp/."""
    if isinstance(store.storage, S3Storage):
        s3 = request.getfixturevalue("s3")
        async with await s3_client(s3) as client:
            listed = await client.list_multipart_uploads(Bucket=store.storage.bucket, Prefix=store.storage.prefix)
        return [(upload["Key"], upload["Initiated"]) for upload in listed.get("Uploads", [])]
    assert isinstance(store.storage, LocalStorage)
    tmp = store.storage.root / ".tmp"
    return sorted(
        (path.name, datetime.fromtimestamp(path.stat().st_mtime, UTC))
        for path in tmp.iterdir()
        if path.name.endswith(".upload")
    )


async def start_incomplete_upload(store: BlobStore, request: pytest.FixtureRequest) -> None:
    """Leave what a crashed large write leaves: an S3 multipart upload never completed, or a local temp file."""
    key = orphan_key()
    if isinstance(store.storage, S3Storage):
        s3 = request.getfixturevalue("s3")
        async with await s3_client(s3) as client:
            upload = await client.create_multipart_upload(
                Bucket=store.storage.bucket, Key=f"{store.storage.prefix}/{key}"
            )
            await client.upload_part(
                Bucket=store.storage.bucket,
                Key=f"{store.storage.prefix}/{key}",
                UploadId=upload["UploadId"],
                PartNumber=1,
                Body=b"part one",
            )
    else:
        assert isinstance(store.storage, LocalStorage)
        tmp = store.storage.root / ".tmp"
        tmp.mkdir(exist_ok=True)
        (tmp / f"{key.replace('/', '~')}.{secrets.token_hex(4)}.upload").write_bytes(b"half a file")


async def test_incomplete_uploads_are_aborted_only_past_grace(
    store: BlobStore, clock: FakeClock, request: pytest.FixtureRequest
) -> None:
    """An S3 multipart upload never completed, or a stale local temp file, no lease holds is aborted by GC
    past grace. And kept before, where the endpoint reports when the upload started (moto says 2010 for
    every upload; test_gc_foreign.py proves with a live lease that moto's uploads can be kept).
    """
    await start_incomplete_upload(store, request)
    [(_, started)] = await incomplete_uploads(store, request)
    if started > clock() - timedelta(seconds=GRACE):
        early = await store.gc()
        assert early.incomplete_uploads_aborted == 0
        assert len(await incomplete_uploads(store, request)) == 1

    clock.advance(GRACE + 60)
    late = await store.gc()
    assert late.incomplete_uploads_aborted == 1
    assert await incomplete_uploads(store, request) == []


# --- safety ----------------------------------------------------------------------------------------


async def wipe_database(store: BlobStore, deployment: str) -> str:
    """Return the URL of an empty database standing in for the store's own (lost, or pointed at by mistake)."""
    if deployment.startswith("postgres"):
        async with store.database.engine.begin() as conn:
            names = ", ".join(table.name for table in Base.metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        return store.settings.database_url
    return f"sqlite+aiosqlite:///{store.settings.home / 'empty.db'}"


async def test_an_empty_database_never_meets_storage_that_holds_objects(
    store: BlobStore, deployment: str, clock: FakeClock
) -> None:
    """An empty database does not open with the store's storage, so GC never runs on it: every object survives."""
    acme = store.tenant("acme")
    for i in range(3):
        await acme.put(f"k{i}", f"value {i}".encode())
    before = await data_objects(store)
    empty = await wipe_database(store, deployment)
    clock.advance(GRACE * 10)

    with pytest.raises(ConfigurationError, match="database is empty"):
        await BlobStore.open(replace(store.settings, database_url=empty), clock=clock, migrate_schema=True)
    assert await data_objects(store) == before


async def test_an_empty_database_never_meets_storage_that_lost_its_marker(
    store: BlobStore, deployment: str, clock: FakeClock
) -> None:
    """Storage that holds objects but lost its store marker is not taken for a new store by an empty database."""
    await store.tenant("acme").put("k", b"precious")
    await store.storage.delete_many(["blobstore-store-id"])
    empty = await wipe_database(store, deployment)
    with pytest.raises(ConfigurationError, match="holds blob objects but no blobstore marker"):
        await BlobStore.open(replace(store.settings, database_url=empty), clock=clock, migrate_schema=True)
    settings = store.settings  # the store's own storage no longer lists without its marker: look with a new one
    async with open_storage_from_url(
        settings.storage_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region
    ) as unmarked:
        assert len([info async for info in unmarked.list(OBJECT_PREFIX)]) == 1


async def test_a_database_of_another_store_is_refused(
    open_store: StoreFactory, deployment: str, tmp_path: Path
) -> None:
    """A database that belongs to a different store does not open with this storage."""
    store = await open_store(deployment)
    await store.tenant("acme").put("k", b"v")
    other_home = tmp_path / "other"
    other = await BlobStore.open(
        replace(
            store.settings,
            home=other_home,
            database_url=f"sqlite+aiosqlite:///{other_home / 'other.db'}",
            storage_url=(other_home / "blobs").as_uri(),
        )
    )
    await other.close()
    with pytest.raises(ConfigurationError, match="belongs to"):
        await BlobStore.open(replace(store.settings, database_url=other.settings.database_url))
    assert len(await data_objects(store)) == 1


def failing(name: str) -> Any:
    async def fail(*args: Any, **kwargs: Any) -> Any:
        raise ProgrammingError(f"SELECT ... /* {name} */", {}, Exception("injected: relation does not exist"))

    return fail


@pytest.mark.parametrize(("query", "blobs_left"), [("find_reclaimable", 4), ("tombstone", 4), ("known_object_keys", 0)])
async def test_a_failing_database_query_during_gc_deletes_nothing_it_checks(
    store: BlobStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, query: str, blobs_left: int
) -> None:
    """If one of GC's queries fails, GC raises and deletes nothing that query was to vouch for.

    The blob sweep runs first (find, tombstone); the orphan sweep (known_object_keys) after it, so when
    that fails the blobs are legitimately gone and the orphans all still there.
    """
    await make_garbage(store, clock)
    orphans_before = len(await data_objects(store)) - 5  # 5 blobs hold objects: 3 doomed, 1 crashed, 1 live
    monkeypatch.setattr(maintenance, query, failing(query))
    with pytest.raises(ProgrammingError, match="injected"):
        await store.gc()
    monkeypatch.undo()
    assert await store.tenant("acme").get("live/1") == b"live 0"
    assert orphans_before == 2
    assert len(await data_objects(store)) == 1 + orphans_before + blobs_left
    stats = await store.gc()
    assert (stats.blobs_reclaimed, stats.orphans_deleted) == (blobs_left, orphans_before)
    assert len(await data_objects(store)) == 1


async def test_gc_against_a_broken_database_deletes_nothing(store: BlobStore, clock: FakeClock) -> None:
    """With the blobs table gone (a broken or wrong database), GC fails on its first query and deletes nothing."""
    await make_garbage(store, clock)
    before_objects = sorted([info.key async for info in store.storage.list("")])
    async with store.database.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE blobs RENAME TO blobs_hidden"))
    try:
        with pytest.raises(Exception, match="blobs"):
            await store.gc()
        assert sorted([info.key async for info in store.storage.list("")]) == before_objects
    finally:
        async with store.database.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE blobs_hidden RENAME TO blobs"))


async def test_concurrent_gc_runs_and_writers_leave_every_reference_readable(
    open_store: StoreFactory, deployment: str, clock: FakeClock
) -> None:
    """Two GC runs racing writers on two stores leave every key readable and, after a final GC, no leak.

    The writers put bytes whose blobs are unreferenced past grace (reviving them or uploading anew), copy and delete.
    """
    clock.advance(-(GRACE + 100))  # the set-up happens "long ago", so it is past grace now
    first, second = await open_store(deployment), await open_store(deployment)
    pool = [f"shared value {i}".encode() * (i + 1) for i in range(12)]
    setup = first.tenant("acme")
    for i, data in enumerate(pool):
        await setup.put(f"old/{i}", data)
        await setup.delete(f"old/{i}")  # unreferenced, past grace once the clock moves on
    clock.advance(GRACE + 1)

    model: dict[tuple[str, str], bytes] = {}

    async def writer(store: BlobStore, tenant: str, seed: int) -> None:
        rng = random.Random(seed)
        handle = store.tenant(tenant)
        for step in range(25):
            key = f"k{rng.randrange(8)}"
            roll = rng.random()
            if roll < 0.6 or (tenant, key) not in model:
                data = rng.choice(pool)
                await handle.put(key, data)
                model[tenant, key] = data
            elif roll < 0.8:
                target = f"k{rng.randrange(8)}"
                await handle.copy(key, target)
                model[tenant, target] = model[tenant, key]
            else:
                assert await handle.delete(key)
                del model[tenant, key]
            if step % 5 == 0:
                await asyncio.sleep(0)

    async def collector(store: BlobStore) -> None:
        for _ in range(4):
            await store.gc()

    await asyncio.gather(
        collector(first),
        collector(second),
        writer(first, "acme", 1),
        writer(second, "globex", 2),
        writer(second, "initech", 3),
    )
    for (tenant, key), data in model.items():
        assert await first.tenant(tenant).get(key) == data
    assert await invariant_violations(first, quiescent=False) == []

    clock.advance(GRACE + 1)
    await first.gc()
    assert await invariant_violations(first) == []
    assert (await first.fsck(read_data=True)).ok


async def test_gc_finds_nothing_to_do_on_a_clean_store(store: BlobStore, clock: FakeClock) -> None:
    """On a store where everything is referenced, GC past grace reclaims nothing and deletes nothing."""
    acme = store.tenant("acme")
    for i in range(5):
        await acme.put(f"k{i}", os.urandom(64))
    before = await snapshot(store)
    clock.advance(GRACE * 5)
    started = time.monotonic()
    stats = await store.gc()
    assert stats.duration_seconds <= time.monotonic() - started
    assert (stats.blobs_reclaimed, stats.orphans_deleted, stats.incomplete_uploads_aborted) == (0, 0, 0)
    assert await snapshot(store) == before


async def test_a_read_racing_a_legitimate_delete_and_gc_is_not_found(store: BlobStore, clock: FakeClock) -> None:
    """A stream opened before its key was deleted and its object reclaimed ends in NotFound, not IntegrityError.

    IntegrityError means corruption: bytes wrong or missing under a live reference. Here nothing is wrong.
    """
    acme = store.tenant("acme")
    await acme.put("k", b"short-lived bytes")
    async with acme.open("k") as stream:
        assert await acme.delete("k")
        clock.advance(GRACE + 1)
        assert (await store.gc()).blobs_reclaimed == 1
        with pytest.raises(NotFound, match="deleted while it was being read"):
            await stream.read()
