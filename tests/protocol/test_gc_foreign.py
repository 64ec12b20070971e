"""GC and fsck touch only what the store wrote (guarantee 7), and never an upload in progress (guarantee 8).

Another application's files, another store's objects and marker, names that are
not valid text and other applications' multipart uploads live beside a store's
objects; GC (any grace) and ``fsck --repair`` leave them all alone. Stores never
nest, and two stores initialised at once on one location cannot both claim it.
A put slower than the grace period succeeds beside a GC loop, because its
upload holds a lease. Every test runs on SQLite + a directory and on
PostgreSQL + S3 over HTTP unless it says otherwise.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

import aioboto3
import pytest
from aiobotocore.config import AioConfig

from blobstore import BlobStore, ConfigurationError, Settings
from blobstore.core.identity import MARKER_KEY
from blobstore.storage import LocalStorage, S3Storage
from blobstore.storage import local as local_module
from blobstore.storage import s3 as s3_module
from blobstore.storage.layout import object_key_for
from tests.support.s3_server import S3Endpoint, temporary_bucket
from tests.support.stores import FakeClock, StoreFactory
from tests.support.workers import data_objects, invariant_violations, rows

GRACE = 3600.0

#: Keys another application (or another store) may write beside a store's objects.
FOREIGN_KEYS = [
    "data/reports/q3.csv",  # another application under data/
    "data/ab/cd/not-a-digest.txt",
    "data/" + object_key_for("ab" * 32).upper()[5:],  # the right shape in the wrong case
    "data/" + object_key_for("cd" * 32)[5:-1],  # a token one digit short
    "data/" + object_key_for("ab" * 32),  # the objects of a store nested at ROOT/data
    "data/data/ab/ab/" + "ab" * 32 + "." + "0" * 32,  # ... in the two-level shape of older stores
    "data/" + MARKER_KEY,  # ... and its marker
    "reports/q3.csv",  # outside data/
]


async def write_foreign(store: BlobStore) -> None:
    for key in FOREIGN_KEYS:
        await store.storage.write(key, f"foreign: {key}".encode())


async def foreign_left(store: BlobStore) -> list[str]:
    """The foreign keys still holding exactly what was written."""
    left = []
    for key in FOREIGN_KEYS:
        info = await store.storage.stat(key)
        if info is not None and info.size == len(f"foreign: {key}".encode()):
            left.append(key)
    return left


async def test_gc_and_fsck_repair_never_touch_foreign_objects(store: BlobStore, clock: FakeClock) -> None:
    """Past any grace, GC deletes only the store's own garbage; foreign keys are counted and left as they are."""
    acme = store.tenant("acme")
    await acme.put("kept", b"referenced")
    await acme.put("doomed", b"unreferenced soon")
    await acme.delete("doomed")
    await write_foreign(store)
    clock.advance(GRACE * 100)

    dry = await store.gc(dry_run=True)
    assert dry.foreign_objects == len(FOREIGN_KEYS) - 1  # reports/q3.csv lies outside data/: not even listed
    stats = await store.gc()
    assert (stats.blobs_reclaimed, stats.orphans_deleted, stats.foreign_objects) == (1, 0, len(FOREIGN_KEYS) - 1)
    assert await foreign_left(store) == FOREIGN_KEYS

    report = await store.fsck(read_data=True, repair=True)
    assert report.ok, report.problems
    assert report.foreign_objects == len(FOREIGN_KEYS) - 1
    assert "data/reports/q3.csv" in report.foreign_sample
    assert await foreign_left(store) == FOREIGN_KEYS
    assert await acme.get("kept") == b"referenced"
    assert await invariant_violations(store) == []


async def test_undecodable_names_are_skipped_and_counted(open_store: StoreFactory, clock: FakeClock) -> None:
    """A file and a directory whose names are not UTF-8 under data/ never stop GC or fsck (local storage)."""
    store = await open_store("sqlite-local")
    assert isinstance(store.storage, LocalStorage)
    await store.tenant("acme").put("k", b"value")
    data = store.storage.root / "data"
    bad_file = data / os.fsdecode(b"bad\xffname")  # a name that is not UTF-8, as the OS hands it over
    bad_dir = data / os.fsdecode(b"\xfe\xfd") / "ab"
    bad_file.write_bytes(b"not ours")
    bad_dir.mkdir(parents=True)
    (bad_dir / "x").write_bytes(b"nested, not ours")
    clock.advance(GRACE * 2)

    for _ in range(2):
        stats = await store.gc()
        assert stats.foreign_objects == 2
        report = await store.fsck(read_data=True, repair=True)
        assert report.ok, report.problems
        assert report.foreign_objects == 2
        assert sorted(report.foreign_sample) == ["data/\\xfe\\xfd/ab/x", "data/bad\\xffname"]
    assert bad_file.read_bytes() == b"not ours"
    assert (bad_dir / "x").read_bytes() == b"nested, not ours"
    assert await store.tenant("acme").get("k") == b"value"


# --- stores never nest, and one location has one store ---------------------------------------------


def nested(store: BlobStore, below: str) -> str:
    """The storage URL of a location ``below`` the store's own."""
    return f"{store.settings.storage_url.rstrip('/')}/{below}"


async def test_a_store_inside_another_stores_storage_is_refused(
    open_store: StoreFactory, deployment: str, tmp_path: Path
) -> None:
    """Opening a new store at ROOT/data (or deeper) of an existing store fails with one sentence."""
    outer = await open_store(deployment)
    for below in ("data", "sub/dir"):
        settings = replace(
            outer.settings,
            database_url=f"sqlite+aiosqlite:///{tmp_path / secrets.token_hex(4)}.db",
            storage_url=nested(outer, below),
        )
        with pytest.raises(ConfigurationError, match="lies inside the storage of another blobstore") as caught:
            await BlobStore.open(settings)
        assert "\n" not in str(caught.value)
    assert [key for key in await all_keys(outer) if key.endswith(MARKER_KEY)] == [MARKER_KEY]


async def test_a_store_around_another_store_is_refused(
    open_store: StoreFactory, deployment: str, tmp_path: Path
) -> None:
    """Creating a store at a location that holds another store deeper down fails with one sentence."""
    inner = await open_store(deployment)
    root = inner.settings.storage_url.rstrip("/").rpartition("/")[0]
    settings = replace(inner.settings, database_url=f"sqlite+aiosqlite:///{tmp_path / 'outer.db'}", storage_url=root)
    with pytest.raises(ConfigurationError, match="holds another blobstore"):
        await BlobStore.open(settings)


async def all_keys(store: BlobStore) -> list[str]:
    return [info.key async for info in store.storage.list()]


async def test_two_stores_initialised_at_once_on_one_location_cannot_both_claim_it(
    open_store: StoreFactory, deployment: str, tmp_path: Path
) -> None:
    """Two new stores (two databases) opened concurrently on one empty location: exactly one opens."""
    existing = await open_store(deployment)
    if isinstance(existing.storage, S3Storage):
        location = f"s3://{existing.storage.bucket}/{secrets.token_hex(6)}"
    else:
        location = (tmp_path / "shared-blobs").as_uri()

    async def open_one(name: str) -> BlobStore:
        settings = replace(
            existing.settings, database_url=f"sqlite+aiosqlite:///{tmp_path / name}.db", storage_url=location
        )
        return await BlobStore.open(settings)

    outcomes = await asyncio.gather(*(open_one(f"db{i}") for i in range(4)), return_exceptions=True)
    opened = [store for store in outcomes if isinstance(store, BlobStore)]
    refused = [error for error in outcomes if isinstance(error, ConfigurationError)]
    try:
        assert (len(opened), len(refused)) == (1, 3), outcomes
        winner = opened[0]
        marker = b"".join([chunk async for chunk in winner.storage.read(MARKER_KEY)]).decode()
        assert (await rows(winner, "SELECT value FROM store_meta WHERE name = 'store_id'")) == [(marker,)]
    finally:
        for store in opened:
            await store.close()


# --- incomplete uploads: only our own, and never one in progress ---------------------------------------


def s3_client(s3: S3Endpoint) -> Any:
    return aioboto3.Session().client(
        "s3", endpoint_url=s3.url, region_name=s3.region, config=AioConfig(s3={"addressing_style": "path"})
    )


async def multipart_keys(client: Any, bucket: str) -> list[str]:
    listed = await client.list_multipart_uploads(Bucket=bucket)
    return sorted(upload["Key"] for upload in listed.get("Uploads", []))


@pytest.fixture
async def bucket_root_store(s3: S3Endpoint, tmp_path: Path, clock: FakeClock) -> AsyncIterator[BlobStore]:
    """A store at the root of a bucket of its own (no prefix), on SQLite."""
    async with temporary_bucket(s3) as bucket:
        settings = Settings(
            home=tmp_path,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'root.db'}",
            storage_url=f"s3://{bucket}",
            s3_endpoint_url=s3.url,
            gc_grace_seconds=0,
        )
        store = await BlobStore.open(settings, clock=clock)
        try:
            yield store
        finally:
            await store.close()


@pytest.mark.s3
async def test_gc_never_aborts_other_applications_multipart_uploads(
    bucket_root_store: BlobStore, s3: S3Endpoint, clock: FakeClock
) -> None:
    """With no prefix (the whole bucket is the store's), GC with grace 0 aborts only its own dead uploads.

    moto reports every upload as started in 2010, so age alone would doom them all.
    """
    store = bucket_root_store
    assert isinstance(store.storage, S3Storage)
    bucket = store.storage.bucket
    own_dead = object_key_for(secrets.token_hex(32))
    async with s3_client(s3) as client:
        for key in ("reports/q3.csv", "data/reports/big.csv", "backup.tar", own_dead):
            await client.create_multipart_upload(Bucket=bucket, Key=key)
        clock.advance(10)
        stats = await store.gc()
        assert stats.incomplete_uploads_aborted == 1
        assert stats.foreign_uploads == 3
        assert await multipart_keys(client, bucket) == ["backup.tar", "data/reports/big.csv", "reports/q3.csv"]


class Throttle:
    """Slows the storage's reads of an upload's source file: each MiB-sized piece takes ``pause`` seconds."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, pause: float) -> None:
        self.pause = pause
        original_read_part = s3_module._read_part

        def slow_read_part(path: Path, offset: int, length: int) -> bytes:
            time.sleep(self.pause)
            return original_read_part(path, offset, length)

        def slow_copy(source: BinaryIO, target: BinaryIO, length: int = 0) -> None:
            while chunk := source.read(1024 * 1024):
                time.sleep(self.pause)
                target.write(chunk)

        monkeypatch.setattr(s3_module, "_read_part", slow_read_part)
        monkeypatch.setattr(local_module.shutil, "copyfileobj", slow_copy)


async def test_an_upload_slower_than_the_grace_period_succeeds_beside_a_gc_loop(
    open_store: StoreFactory,
    deployment: str,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A put whose upload lasts many lease lengths, with GC (grace 0) every 0.2 s, stores one object.

    On S3 it is a multipart upload (one part at a time, each throttled); locally a throttled file copy.
    Without leases GC reclaimed the upload every time and the put failed.
    """
    store = await open_store(deployment, gc_grace_seconds=0, upload_lease_seconds=1.5)
    if isinstance(store.storage, S3Storage):
        store.storage.max_concurrency = 1
        store.storage.part_size = 5 * 1024 * 1024
        Throttle(monkeypatch, pause=1.5)  # 4 parts of 5 MiB: ~6 s
    else:
        Throttle(monkeypatch, pause=0.3)  # 20 chunks of 1 MiB: ~6 s
    payload = tmp_path / "big.bin"
    payload.write_bytes(os.urandom(20 * 1024 * 1024))
    stop = asyncio.Event()
    runs = 0

    async def gc_loop() -> None:
        nonlocal runs
        while not stop.is_set():
            clock.advance(0.2)
            await store.gc()
            runs += 1
            await asyncio.sleep(0.2)

    collector = asyncio.create_task(gc_loop())
    started = time.monotonic()
    try:
        info = await store.tenant("acme").put("big", payload)
    finally:
        stop.set()
        await collector
    assert time.monotonic() - started > 4 * 1.5  # it really outlasted the lease several times
    assert runs >= 10
    assert info.size == 20 * 1024 * 1024
    assert len(await data_objects(store)) == 1
    assert await rows(store, "SELECT state, refcount FROM blobs") == [("live", 1)]
    assert await store.tenant("acme").get("big") == payload.read_bytes()
    assert await invariant_violations(store) == []
