"""The crash-point matrix: a real child process is killed with SIGKILL at each named point of a put, a batch put,
a delete, a GC run, a compact run and a storage-class transition run (tests/support/crash_worker.py); then the
store is reopened, collected past grace and checked.

After every crash: no acknowledged write is lost, the interrupted operation took effect entirely or not at
all (as its point dictates), a rerun of compact finishes, GC leaves no leaked object or row, and fsck
--read-data finds nothing wrong.
Runs on SQLite + local directory and on PostgreSQL + S3; mid-multipart only on S3.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aioboto3
import pytest
from aiobotocore.config import AioConfig

from blobstore import BlobStore, NotFound
from blobstore.storage import S3Storage
from tests.support.crash_worker import (
    BATCH,
    COLD_CLASS,
    COMPACTED_KEY,
    CRASH_KEY,
    DELETED_KEY,
    DOOMED,
    POINTS,
    PRELUDE,
    TENANT,
    payload,
)
from tests.support.digests import digest_of
from tests.support.stores import DEPLOYMENTS, FakeClock, StoreFactory
from tests.support.workers import data_objects, invariant_violations, rows, worker_env

WORKER = Path(__file__).parents[1] / "support" / "crash_worker.py"
GRACE = 3600.0
#: Where a point needs a backend of its own: multipart uploads on S3, staging on a local directory.
ONLY_ON = {"put-mid-multipart": "-s3", "stream-mid-staging": "-local", "stream-after-publish": "-local"}
CASES = [
    (deployment, point)
    for deployment in DEPLOYMENTS
    for point in POINTS
    if deployment.endswith(ONLY_ON.get(point, deployment))
]


async def run_worker(store: BlobStore, point: str) -> list[str]:
    """Run the worker until it is killed at ``point``; return its stdout lines."""
    env = worker_env(store)
    if point.startswith("gc"):
        env["BLOBSTORE_GC_GRACE"] = "0"  # the worker's GC reclaims what it just deleted
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), point, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = out.decode().splitlines()
    assert proc.returncode == -signal.SIGKILL, f"worker exited with {proc.returncode}:\n{out.decode()}{err.decode()}"
    assert lines[-1] == f"CRASH {point}", lines
    return lines


def acknowledged(lines: list[str]) -> dict[str, bytes]:
    """What the keys hold according to the operations the worker saw return."""
    values = {**PRELUDE, **BATCH, DOOMED[0]: DOOMED[1]}
    model: dict[str, bytes] = {}
    for line in lines:
        match line.split():
            case ["ACK", "put", key]:
                model[key] = values[key]
            case ["ACK", "delete", key]:
                del model[key]
    return model


async def blob_of(store: BlobStore, data: bytes) -> tuple[str, int, str]:
    """(state, refcount, object key) of the one blob row holding ``data``."""
    found = await rows(store, "SELECT state, refcount, object_key FROM blobs WHERE digest = :d", d=digest_of(data))
    assert len(found) == 1, found
    state, refcount, object_key = found[0]
    return state, refcount, object_key


async def stored(store: BlobStore, object_key: str) -> bool:
    return await store.storage.stat(object_key) is not None


async def multipart_uploads(store: BlobStore, request: pytest.FixtureRequest) -> int:
    """How many incomplete multipart uploads the store's S3 prefix holds (0 for other storage)."""
    if not isinstance(store.storage, S3Storage):
        return 0
    s3 = request.getfixturevalue("s3")
    config = AioConfig(s3={"addressing_style": "path"})
    session = aioboto3.Session()
    async with session.client("s3", endpoint_url=s3.url, region_name=s3.region, config=config) as client:
        listed = await client.list_multipart_uploads(Bucket=store.storage.bucket, Prefix=store.storage.prefix)
    return len(listed.get("Uploads", []))


async def staging_debris(store: BlobStore) -> tuple[int, list[str | None]]:
    """How many staging rows (``uploading``, size 0) remain, and the keys of the staging leftovers."""
    staging = await rows(store, "SELECT id FROM blobs WHERE state = 'uploading' AND size = 0")
    return len(staging), [upload.key async for upload in store.storage.incomplete_uploads()]


async def check_debris(store: BlobStore, point: str, request: pytest.FixtureRequest) -> None:
    """The crash left exactly what its point implies (so the kill really came where it was meant to)."""
    if point == "stream-mid-staging":
        [(name,)] = await rows(store, "SELECT object_key FROM blobs WHERE state = 'uploading' AND size = 0")
        assert await staging_debris(store) == (1, [name])
        assert not await rows(store, "SELECT id FROM blobs WHERE digest = :d", d=digest_of(payload(point)))
    elif point == "stream-after-publish":
        state, refcount, object_key = await blob_of(store, payload(point))
        assert (state, refcount, await stored(store, object_key)) == ("uploading", 0, True)
        assert await staging_debris(store) == (1, [])
    elif point.startswith("batch"):  # written before the sync (whose kill leaves them unsynced or synced)
        for data in BATCH.values():
            state, refcount, object_key = await blob_of(store, data)
            assert (state, refcount, await stored(store, object_key)) == ("uploading", 0, True)
    elif point.startswith("put"):
        state, refcount, object_key = await blob_of(store, payload(point))
        if point == "put-after-commit":
            assert (state, refcount, await stored(store, object_key)) == ("live", 1, True)
        else:
            assert (state, refcount) == ("uploading", 0)
            assert await stored(store, object_key) == (point == "put-after-upload")
        assert await multipart_uploads(store, request) == (1 if point == "put-mid-multipart" else 0)
    elif point.startswith("compact"):
        await check_compact_debris(store, point)
    elif point.startswith("transition"):
        await check_transition_debris(store, point)
    elif point == "delete-after-commit":
        state, refcount, object_key = await blob_of(store, PRELUDE[DELETED_KEY])
        assert (state, refcount, await stored(store, object_key)) == ("live", 0, True)
    else:
        state, refcount, object_key = await blob_of(store, DOOMED[1])
        assert (state, refcount) == ("deleting", 0)
        assert await stored(store, object_key) == (point == "gc-after-tombstone")


async def object_classes(store: BlobStore) -> dict[str, str]:
    """Each live blob's object key -> the class its object is in on S3 (HeadObject), or the class the catalog
    records where storage has no classes."""
    found = await rows(store, "SELECT object_key, storage_class FROM blobs WHERE state = 'live'")
    if not isinstance(store.storage, S3Storage):
        return {key: recorded or "STANDARD" for key, recorded in found}
    client = await store.storage._s3()
    classes = {}
    for key, _ in found:
        head = await client.head_object(Bucket=store.storage.bucket, Key=store.storage._key(key))
        classes[key] = head.get("StorageClass", "STANDARD")
    return classes


async def check_transition_debris(store: BlobStore, point: str) -> None:
    """Every blob (one batch) marked as moving, no class recorded; on S3, after a copy, some object is in the
    new class (copies run concurrently: others may have finished before the kill), before it none is."""
    found = await rows(store, "SELECT storage_class, moving_to FROM blobs WHERE state = 'live'")
    assert set(found) == {(None, COLD_CLASS)}
    classes = list((await object_classes(store)).values())
    if isinstance(store.storage, S3Storage) and point == "transition-after-copy":
        assert COLD_CLASS in classes
    else:
        assert set(classes) == {"STANDARD"}


async def check_transitions_finish(store: BlobStore, clock: FakeClock) -> None:
    """A rerun after the crash moves the marked blob to where it belongs (STANDARD: the checks just read every
    key), then, once cold again, every blob to the cold class, the catalog agreeing with the objects."""
    await store.transition()
    assert not await rows(store, "SELECT id FROM blobs WHERE moving_to IS NOT NULL")
    assert set((await object_classes(store)).values()) == {"STANDARD"}
    clock.advance(3 * 86400)
    await store.transition()
    recorded = dict(await rows(store, "SELECT object_key, storage_class FROM blobs WHERE state = 'live'"))
    assert await object_classes(store) == recorded
    assert set(recorded.values()) == {COLD_CLASS}


async def check_compact_debris(store: BlobStore, point: str) -> None:
    """The compacted blob's live row and the compact's ``uploading`` row: before the switch the live row is
    raw and the upload holds the new key (its object written from compact-after-write on); after it the live
    row is framed and the upload row holds the old key, its object kept for GC past grace."""
    found = await rows(
        store,
        "SELECT state, refcount, object_key, frames IS NULL FROM blobs WHERE digest = :d ORDER BY state",
        d=digest_of(PRELUDE[COMPACTED_KEY]),
    )
    [(live, refcount, live_key, raw), (uploading, _, upload_key, _)] = found
    assert (live, refcount, uploading) == ("live", 1, "uploading")
    assert raw == (point != "compact-after-switch")
    assert await stored(store, live_key)
    assert await stored(store, upload_key) == (point != "compact-after-intent")


@pytest.mark.parametrize(("deployment", "point"), CASES)
async def test_a_killed_process_loses_no_acknowledged_write_and_leaks_nothing(
    open_store: StoreFactory, deployment: str, point: str, clock: FakeClock, request: pytest.FixtureRequest
) -> None:
    """After SIGKILL at the point: ACKed keys read back, the operation is all or nothing, nothing leaks.

    Checked after reopening the store, collecting past grace and running fsck --read-data.
    """
    store = await open_store(deployment)
    lines = await run_worker(store, point)
    await check_debris(store, point, request)

    restarted = await open_store(deployment)  # a new process on the same database and storage
    tenant = restarted.tenant(TENANT)
    model = acknowledged(lines)
    if point == "put-after-commit":
        model[CRASH_KEY] = payload(point)  # committed before the kill: durable, though never acknowledged
    if point == "delete-after-commit":
        del model[DELETED_KEY]
    for key, data in model.items():
        assert await tenant.get(key) == data
    listed = [info.key for info in await tenant.list()]
    assert listed == sorted(model)
    for never_acknowledged in {CRASH_KEY, *BATCH} - set(model):
        with pytest.raises(NotFound):
            await tenant.get(never_acknowledged)

    clock.advance(GRACE + 60)
    await restarted.gc()
    assert await invariant_violations(restarted) == []
    assert await staging_debris(restarted) == (0, [])
    assert len(await data_objects(restarted)) == len(set(model.values()))
    assert await multipart_uploads(restarted, request) == 0
    report = await restarted.fsck(read_data=True)
    assert report.ok, report.problems
    assert report.problems == []
    for key, data in model.items():
        assert await tenant.get(key) == data
    if point.startswith("compact"):  # a rerun finishes what the killed one began
        assert (await restarted.compact()).failures == []
        assert not await rows(restarted, "SELECT id FROM blobs WHERE state = 'live' AND frames IS NULL")
        for key, data in model.items():
            assert await tenant.get(key) == data
    if point.startswith("transition"):
        await check_transitions_finish(restarted, clock)
