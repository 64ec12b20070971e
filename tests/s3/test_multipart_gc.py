"""Multipart uploads and GC/fsck, on SQLite and PostgreSQL, over a real S3 server with the store's clock in the
test's hands: staged parts are never reclaimed while their upload lives; abort and expiry release them, and GC
then reclaims their blobs past grace."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore import BlobStore
from blobstore.db.catalog import blob_count, blobs, tenants
from tests.s3.test_multipart import MIB, begin, client, error_of
from tests.support.cli_helpers import invoke
from tests.support.stores import FakeClock, StoreFactory

#: A short BLOBSTORE_MULTIPART_EXPIRY and grace, so the clock moves less than SigV4's 15 minutes of allowed skew.
EXPIRY = 300.0
GRACE = 100.0


@pytest.fixture(params=["sqlite-local", "postgres-local"])
async def store(open_store: StoreFactory, request: pytest.FixtureRequest) -> BlobStore:
    """An empty store whose multipart uploads expire after :data:`EXPIRY` seconds untouched."""
    return await open_store(str(request.param), multipart_expiry_seconds=EXPIRY, gc_grace_seconds=GRACE)


async def staged_upload(s3: Any, bucket: str, *bodies: bytes) -> dict[str, str]:
    """A new upload of ``bucket``/k with ``bodies`` staged as parts 1, 2, ..."""
    s3.create_bucket(Bucket=bucket)
    upload = begin(s3, bucket, "k")
    for number, body in enumerate(bodies, 1):
        s3.upload_part(**upload, PartNumber=number, Body=body)
    return upload


async def test_gc_keeps_staged_parts_and_reclaims_them_after_abort(
    store: BlobStore, url: str, clock: FakeClock
) -> None:
    """Past grace, GC reclaims nothing of a live upload (fsck is clean); abort frees the quota at once, and the
    next GC past grace reclaims the parts' blobs and their objects."""
    s3 = await client(store, url)
    upload = await staged_upload(s3, "aborted", os.urandom(MIB), os.urandom(MIB))
    clock.advance(GRACE + 1)
    assert (await store.gc()).blobs_reclaimed == 0
    report = await store.fsck(read_data=True)
    assert report.problems == []
    s3.abort_multipart_upload(**upload)
    assert (await store.quota("acme")).used_bytes == 0
    assert (await store.gc()).blobs_reclaimed == 0  # unreferenced only since now: within grace
    clock.advance(GRACE + 1)
    stats = await store.gc()
    assert (stats.blobs_reclaimed, stats.bytes_reclaimed) == (2, 2 * MIB)
    assert await store.database.read(blob_count) == 0
    assert [key async for key in _stored(store)] == []


async def test_gc_aborts_an_upload_untouched_past_the_expiry(store: BlobStore, url: str, clock: FakeClock) -> None:
    """A part restarts the expiry clock; once untouched for BLOBSTORE_MULTIPART_EXPIRY, GC (not a dry run) aborts
    the upload: its quota is freed, it answers NoSuchUpload, fsck reports it first, and past grace its blobs go."""
    s3 = await client(store, url)
    upload = await staged_upload(s3, "expiring", os.urandom(MIB))
    clock.advance(EXPIRY - 100)
    s3.upload_part(**upload, PartNumber=2, Body=os.urandom(MIB))
    clock.advance(200)  # begun EXPIRY + 100 ago, touched 200 ago
    assert (await store.gc()).multipart_uploads_expired == 0
    clock.advance(EXPIRY)
    report = await store.fsck()
    assert [problem.kind for problem in report.problems] == ["expired-multipart-upload"]
    dry = await store.gc(dry_run=True)
    assert (dry.multipart_uploads_expired, (await store.quota("acme")).used_bytes) == (1, 2 * MIB)
    assert (await store.gc()).multipart_uploads_expired == 1
    assert (await store.quota("acme")).used_bytes == 0
    assert error_of(s3.list_parts, **upload) == ("NoSuchUpload", 404)
    assert (await store.gc()).multipart_uploads_expired == 0
    clock.advance(GRACE + 1)
    assert (await store.gc()).blobs_reclaimed == 2
    assert (await store.fsck(read_data=True)).ok


async def test_gc_forgets_a_completed_upload_past_the_expiry(store: BlobStore, url: str, clock: FakeClock) -> None:
    """A completed upload answers a retried completion until BLOBSTORE_MULTIPART_EXPIRY after its completion; GC
    then forgets it (counting no expired upload, fsck clean) and a retry is NoSuchUpload, the object kept."""
    s3 = await client(store, url)
    upload = await staged_upload(s3, "forgotten", b"only part")
    parts = {"Parts": [{"PartNumber": 1, "ETag": s3.list_parts(**upload)["Parts"][0]["ETag"]}]}
    etag = s3.complete_multipart_upload(**upload, MultipartUpload=parts)["ETag"]
    clock.advance(EXPIRY - 1)
    assert (await store.gc()).multipart_uploads_expired == 0
    assert s3.complete_multipart_upload(**upload, MultipartUpload=parts)["ETag"] == etag
    clock.advance(2)
    assert (await store.gc()).multipart_uploads_expired == 0
    assert error_of(s3.complete_multipart_upload, **upload, MultipartUpload=parts) == ("NoSuchUpload", 404)
    assert s3.get_object(Bucket="forgotten", Key="k")["Body"].read() == b"only part"
    assert (await store.fsck(read_data=True)).ok


async def test_fsck_counts_part_rows_as_references(store: BlobStore, url: str) -> None:
    """A staged part's blob has refcount 1 with no ref, and its bytes count to the usage: fsck finds no drift,
    and repairs a drifted refcount and usage back to those figures (not to 0, which GC would reclaim)."""
    s3 = await client(store, url)
    upload = await staged_upload(s3, "recount", b"part one")
    assert (await store.fsck()).problems == []

    async def drift(conn: AsyncConnection) -> None:
        await conn.execute(update(blobs).values(refcount=0))
        await conn.execute(update(tenants).values(used_bytes=0))

    await store.database.transaction(drift)
    repaired = await store.fsck(repair=True)
    assert sorted(problem.kind for problem in repaired.problems) == ["refcount-drift", "usage-drift"]
    assert await store.database.read(lambda conn: _refcounts(conn)) == [1]
    assert (await store.quota("acme")).used_bytes == len(b"part one")
    assert [part["Size"] for part in s3.list_parts(**upload)["Parts"]] == [len(b"part one")]


async def _refcounts(conn: AsyncConnection) -> list[int]:
    return [row[0] for row in await conn.execute(select(blobs.c.refcount))]


async def _stored(store: BlobStore) -> Any:
    async for info in store.storage.list("data/"):
        yield info.key


async def test_blobstore_gc_aborts_expired_uploads_and_says_so(store: BlobStore, url: str) -> None:
    """``blobstore gc`` (a process of its own, on the real clock) aborts an upload untouched past a
    BLOBSTORE_MULTIPART_EXPIRY of 1 second, and its summary says so; ``--dry-run`` only says it would."""
    s3 = await client(store, url)
    upload = await staged_upload(s3, "cli", b"part")
    settings = store.settings
    env = {
        "BLOBSTORE_DATABASE_URL": settings.database_url,
        "BLOBSTORE_STORAGE_URL": settings.storage_url,
        "BLOBSTORE_SECRET_KEY": settings.secret_key,
        "BLOBSTORE_MULTIPART_EXPIRY": "1s",
    }
    await asyncio.sleep(1.1)
    dry = await asyncio.to_thread(invoke, ["gc", "--dry-run"], home=settings.home, env=env)
    assert "would abort 1 expired S3 multipart upload\n" in dry.ok().stdout
    run = await asyncio.to_thread(invoke, ["gc"], home=settings.home, env=env)
    assert "aborted 1 expired S3 multipart upload\n" in run.ok().stdout
    assert error_of(s3.list_parts, **upload) == ("NoSuchUpload", 404)


async def test_fsck_names_a_staged_part_whose_blob_is_not_live(store: BlobStore, url: str) -> None:
    """A part row pointing at a blob that is not live is a dangling reference, named by its upload and part."""
    s3 = await client(store, url)
    upload = await staged_upload(s3, "dangling", b"part")

    async def tombstone(conn: AsyncConnection) -> None:
        await conn.execute(update(blobs).values(state="deleting"))

    await store.database.transaction(tombstone)
    report = await store.fsck()
    dangling = [problem.subject for problem in report.problems if problem.kind == "dangling-reference"]
    assert dangling == [f"acme/dangling/k (multipart upload {upload['UploadId']}, part 1)"]
