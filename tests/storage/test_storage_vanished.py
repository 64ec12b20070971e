"""A storage location that vanishes under an open store is an outage, never a fresh empty location.

Removed, renamed away or unmounted (the directory back, but empty): once the
store is open nothing recreates its storage root or marker, so writes and
readiness fail with StorageUnavailable (503 with Retry-After over HTTP), nothing
is recorded, and everything works again, earlier keys included, once the real
location is back. On S3, a deleted bucket fails the same way.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aioboto3
import httpx
import pytest
from aiobotocore.config import AioConfig

from blobstore import BlobStore, PutItem, Settings, StorageUnavailable
from blobstore.auth import tokens
from blobstore.core.identity import MARKER_KEY
from blobstore.server import create_app
from blobstore.storage import LocalStorage, open_storage_from_url
from tests.support.s3_server import S3Endpoint, unique_bucket_name
from tests.support.stores import StoreFactory
from tests.support.workers import rows

#: How the directory goes: renamed away (an unmount whose mount point went too), or its mount point stays
#: behind, empty.
VANISHINGS = ["renamed-away", "unmounted"]


def storage_root(store: BlobStore) -> Path:
    """The directory of the store's local storage (the store's storage may be wrapped, e.g. timed)."""
    storage = open_storage_from_url(store.settings.storage_url, endpoint_url=None, region="")
    assert isinstance(storage, LocalStorage)
    return storage.root


@pytest.fixture
def vanishing() -> Iterator[list[tuple[Path, Path, bool]]]:
    """``vanish(root, how)`` moves the directory away; the test's end (or ``restore``) brings it back."""
    moved: list[tuple[Path, Path, bool]] = []
    yield moved
    for root, away, _ in moved:
        restore(root, away)


def vanish(moved: list[tuple[Path, Path, bool]], root: Path, how: str) -> Path:
    away = root.with_name(root.name + ".away")
    root.rename(away)
    if how == "unmounted":
        root.mkdir()
    moved.append((root, away, how == "unmounted"))
    return away


def restore(root: Path, away: Path) -> None:
    if not away.exists():
        return
    if root.exists():
        root.rmdir()  # only the empty mount point (or an empty directory something recreated)
    away.rename(root)


@pytest.mark.parametrize("how", VANISHINGS)
async def test_a_put_into_a_vanished_storage_directory_fails_and_records_nothing(
    open_store: StoreFactory, how: str, vanishing: list[tuple[Path, Path, bool]]
) -> None:
    """With the directory gone, put raises StorageUnavailable, stores no key and recreates neither the directory
    nor its marker; get and the storage check fail the same way (never IntegrityError); restored, all works."""
    store = await open_store("sqlite-local")
    acme = store.tenant("acme")
    await acme.put("before", b"stored before the directory went")
    root = storage_root(store)
    away = vanish(vanishing, root, how)

    with pytest.raises(StorageUnavailable, match="storage"):
        await acme.put("during", b"never stored")
    with pytest.raises(StorageUnavailable):
        await acme.get("before")
    with pytest.raises(StorageUnavailable):
        await store.storage.check()
    with pytest.raises(StorageUnavailable):
        await store.fsck()
    assert not await acme.exists("during")
    assert await rows(store, "SELECT key FROM refs ORDER BY key") == [("before",)]
    assert sorted(path.name for path in root.iterdir()) == [] if how == "unmounted" else not root.exists()

    restore(root, away)
    await store.storage.check()
    await acme.put("after", b"stored after the directory came back")
    assert await acme.get("before") == b"stored before the directory went"
    assert await acme.get("after") == b"stored after the directory came back"
    problems = [problem for problem in (await store.fsck()).problems if problem.kind != "reclaimable-blob"]
    assert problems == []  # only the failed put's upload is left, for GC to reclaim; nothing is lost


@pytest.mark.parametrize("how", VANISHINGS)
async def test_a_reference_to_stored_bytes_is_refused_while_the_directory_is_gone(
    open_store: StoreFactory, how: str, vanishing: list[tuple[Path, Path, bool]]
) -> None:
    """A dedup hit, a copy and a put by digest write no bytes, yet none is acknowledged while the directory is
    gone (after an rm -rf, the bytes it would point at exist nowhere); each changes nothing, and works once back."""
    store = await open_store("sqlite-local")
    acme, globex = store.tenant("acme"), store.tenant("globex")
    data = b"bytes both tenants upload"
    digest = (await acme.put("original", data)).digest
    root = storage_root(store)
    away = vanish(vanishing, root, how)

    attempts = {
        "dedup hit": lambda: acme.put("dedup", data),
        "cross-tenant dedup hit": lambda: globex.put("dedup", data),
        "batch dedup hit": lambda: acme.put_many([PutItem("batched", data)]),
        "copy": lambda: acme.copy("original", "copy"),
        "put by digest": lambda: acme.put("by-digest", digest=digest),
    }
    for name, attempt in attempts.items():
        result = await _outcome_of(attempt)
        assert isinstance(result, StorageUnavailable), f"{name}: {result!r}"
    assert await rows(store, "SELECT key FROM refs ORDER BY key") == [("original",)]

    restore(root, away)
    for attempt in attempts.values():
        assert not isinstance(await _outcome_of(attempt), BaseException)
    assert await globex.get("dedup") == data


async def _outcome_of(attempt: Any) -> Any:
    """What an attempt returned (a batch: its one outcome), or the error it raised."""
    try:
        result = await attempt()
    except StorageUnavailable as exc:
        return exc
    return result[0] if isinstance(result, list) else result


async def test_a_removed_storage_directory_is_never_recreated(open_store: StoreFactory) -> None:
    """rm -rf of the directory: every later put fails; the store creates neither root nor marker."""
    store = await open_store("sqlite-local")
    root = storage_root(store)
    shutil.rmtree(root)
    for key in ("one", "two"):
        with pytest.raises(StorageUnavailable):
            await store.tenant("acme").put(key, key.encode())
    with pytest.raises(StorageUnavailable):
        await store.storage.check()
    assert not root.exists()


async def test_the_first_open_of_a_new_location_creates_root_and_marker(tmp_path: Path) -> None:
    """Only opening a brand-new store creates the directory (parents included) and its marker."""
    root = tmp_path / "new" / "blobs"
    settings = Settings(home=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'db'}", storage_url=root.as_uri())
    async with await BlobStore.open(settings):
        assert (root / MARKER_KEY).is_file()


async def test_a_lost_marker_is_an_outage_not_a_new_store(open_store: StoreFactory) -> None:
    """The directory is there but its marker is gone: puts fail until the marker is back."""
    store = await open_store("sqlite-local")
    marker = storage_root(store) / MARKER_KEY
    kept = marker.read_bytes()
    marker.unlink()
    with pytest.raises(StorageUnavailable, match=MARKER_KEY):
        await store.tenant("acme").put("k", b"never stored")
    assert not marker.exists()
    marker.write_bytes(kept)
    await store.tenant("acme").put("k", b"stored")


@pytest.fixture
async def http(open_store: StoreFactory) -> AsyncIterator[tuple[httpx.AsyncClient, BlobStore]]:
    """The app in this process (ASGI transport) over a SQLite + local directory store, with acme's token."""
    store = await open_store("sqlite-local")
    token = (await tokens.create(store.core, "acme", scopes=tokens.SCOPES)).token
    app = create_app(store)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://blobstore", headers=headers) as client:
            yield client, store


@pytest.mark.parametrize("how", VANISHINGS)
async def test_over_http_a_vanished_directory_is_503_until_it_is_back(
    http: tuple[httpx.AsyncClient, BlobStore], how: str, vanishing: list[tuple[Path, Path, bool]]
) -> None:
    """/readyz and PUT answer 503 StorageUnavailable with Retry-After while the directory is gone; then 200/201."""
    client, store = http
    assert (await client.put("/v1/tenants/acme/objects/before", content=b"before")).status_code == 201
    root = storage_root(store)
    away = vanish(vanishing, root, how)

    ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()["code"], ready.headers["retry-after"]) == (503, "StorageUnavailable", "1")
    put = await client.put("/v1/tenants/acme/objects/during", content=b"never stored")
    assert (put.status_code, put.json()["code"], put.headers["retry-after"]) == (503, "StorageUnavailable", "1")
    assert (await client.get("/v1/tenants/acme/objects/during")).status_code == 404
    assert (await client.get("/readyz")).status_code == 503  # asking again does not recreate it either

    restore(root, away)
    assert (await client.get("/readyz")).status_code == 200
    assert (await client.put("/v1/tenants/acme/objects/after", content=b"after")).status_code == 201
    assert (await client.get("/v1/tenants/acme/objects/before")).content == b"before"


@pytest.fixture
async def s3_client(s3: S3Endpoint) -> AsyncIterator[Any]:
    config = AioConfig(s3={"addressing_style": "path"})
    async with aioboto3.Session().client("s3", endpoint_url=s3.url, region_name=s3.region, config=config) as client:
        yield client


@pytest.mark.s3
async def test_a_deleted_bucket_fails_puts_and_readiness_with_storage_unavailable(
    s3: S3Endpoint, s3_client: Any, tmp_path: Path
) -> None:
    """The bucket emptied and deleted under an open store: put and the storage check raise StorageUnavailable
    (not a ConfigurationError, a 500 over HTTP), and no key is recorded."""
    bucket = unique_bucket_name()
    await s3_client.create_bucket(Bucket=bucket)
    settings = Settings(
        home=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db'}",
        storage_url=f"s3://{bucket}",
        s3_endpoint_url=s3.url,
    )
    async with await BlobStore.open(settings) as store:
        acme = store.tenant("acme")
        await acme.put("before", b"stored before the bucket went")
        listed = await s3_client.list_objects_v2(Bucket=bucket)
        await s3_client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": item["Key"]} for item in listed["Contents"]]}
        )
        await s3_client.delete_bucket(Bucket=bucket)
        with pytest.raises(StorageUnavailable, match=bucket):
            await acme.put("during", b"never stored")
        with pytest.raises(StorageUnavailable, match=bucket):
            await store.storage.check()
        assert not await acme.exists("during")


@pytest.mark.s3
async def test_a_deleted_prefix_is_seen_by_the_storage_check(s3: S3Endpoint, s3_client: Any, tmp_path: Path) -> None:
    """The store's prefix emptied (the bucket kept): the storage check behind /readyz raises StorageUnavailable,
    naming the lost marker, until the marker is back."""
    bucket = unique_bucket_name()
    await s3_client.create_bucket(Bucket=bucket)
    settings = Settings(
        home=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db'}",
        storage_url=f"s3://{bucket}/deploy",
        s3_endpoint_url=s3.url,
    )
    try:
        async with await BlobStore.open(settings) as store:
            marker = await s3_client.get_object(Bucket=bucket, Key=f"deploy/{MARKER_KEY}")
            kept = await marker["Body"].read()
            await s3_client.delete_object(Bucket=bucket, Key=f"deploy/{MARKER_KEY}")
            with pytest.raises(StorageUnavailable, match=MARKER_KEY):
                await store.storage.check()
            await s3_client.put_object(Bucket=bucket, Key=f"deploy/{MARKER_KEY}", Body=kept)
            await store.storage.check()
    finally:
        listed = await s3_client.list_objects_v2(Bucket=bucket)
        if objects := [{"Key": item["Key"]} for item in listed.get("Contents", [])]:
            await s3_client.delete_objects(Bucket=bucket, Delete={"Objects": objects})
        await s3_client.delete_bucket(Bucket=bucket)
