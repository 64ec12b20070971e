"""Outages after start (guarantee 9): every operation fails with StorageUnavailable, changes nothing,
and the store recovers by itself when the service returns.

The database outage is real: a PostgreSQL cluster of the test's own is stopped
and started again under a running store. So is the S3 outage: the network to
the real S3 endpoint is cut by a proxy and restored. A read-only SQLite database is real
too (opened with ``mode=ro``). A full disk is injected (no real one to fill).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from blobstore import BlobStore, Settings, StorageUnavailable
from blobstore.storage import LocalStorage
from tests.support.cli_helpers import invoke
from tests.support.s3_server import S3Endpoint
from tests.support.servers import ServerUnavailable, ThrowawayPostgres
from tests.support.stores import FakeClock, StoreFactory, unavailable
from tests.support.tcp_proxy import TcpProxy, proxied
from tests.support.workers import data_objects


@pytest.fixture
def cluster() -> Iterator[ThrowawayPostgres]:
    """A running PostgreSQL cluster of this test's own."""
    try:
        server = ThrowawayPostgres()
        server.start()
    except ServerUnavailable as exc:
        unavailable(str(exc))
        raise
    try:
        yield server
    finally:
        server.remove()


def settings_on(cluster: ThrowawayPostgres, tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, database_url=cluster.url, storage_url=(tmp_path / "blobs").as_uri())


@pytest.mark.postgres
async def test_a_database_outage_is_storage_unavailable_and_the_store_recovers(
    cluster: ThrowawayPostgres, tmp_path: Path
) -> None:
    """PostgreSQL stopped under a running store: put, stat, get, copy, delete, list, gc and fsck each raise
    StorageUnavailable naming the database and change nothing; after a restart the same store works."""
    async with await BlobStore.open(settings_on(cluster, tmp_path), migrate_schema=True) as store:
        acme = store.tenant("acme")
        await acme.put("before", b"stored before the outage")
        cluster.stop()
        calls = {
            "put": lambda: acme.put("during", b"never stored"),
            "put-same": lambda: acme.put("during", b"stored before the outage"),
            "stat": lambda: acme.stat("before"),
            "get": lambda: acme.get("before"),
            "copy": lambda: acme.copy("before", "copy"),
            "delete": lambda: acme.delete("before"),
            "list": lambda: acme.list(),
            "gc": lambda: store.gc(),
            "fsck": lambda: store.fsck(),
        }
        for name, call in calls.items():
            with pytest.raises(StorageUnavailable, match=f"127.0.0.1:{cluster.port}") as caught:
                await call()
            assert "\n" not in str(caught.value), name
            assert not isinstance(caught.value.__cause__, StorageUnavailable)
        cluster.start()
        assert [item.key for item in await acme.list()] == ["before"]
        assert await acme.get("before") == b"stored before the outage"
        assert len(await data_objects(store)) == 1
        await acme.put("after", b"stored after the outage")
        assert (await store.fsck()).ok


@pytest.mark.postgres
def test_the_cli_reports_a_database_outage_in_one_line(cluster: ThrowawayPostgres, tmp_path: Path) -> None:
    """`blobstore stat` and `put` against a stopped database: one line on stderr naming the database and its
    port, exit 1, no traceback (each command opens the store, so the outage shows at start)."""
    env = {"BLOBSTORE_DATABASE_URL": cluster.url, "BLOBSTORE_STORAGE_URL": (tmp_path / "blobs").as_uri()}
    invoke(["db", "upgrade"], home=tmp_path, env=env).ok()
    source = tmp_path / "value.bin"
    source.write_bytes(b"v" * 100)
    invoke(["put", "acme", "k", str(source)], home=tmp_path, env=env).ok()
    cluster.stop()
    invoke(["stat", "acme", "k"], home=tmp_path, env=env).failed("database", str(cluster.port))
    invoke(["put", "acme", "k2", str(source)], home=tmp_path, env=env).failed("database")
    cluster.start()
    assert "k2" not in invoke(["ls", "acme"], home=tmp_path, env=env).ok().stdout


async def test_a_read_only_sqlite_database_is_storage_unavailable(tmp_path: Path) -> None:
    """Writes to a database SQLite opened read-only fail with StorageUnavailable; reads still work."""
    blobs = (tmp_path / "blobs").as_uri()
    path = tmp_path / "db.sqlite"
    writable = Settings(home=tmp_path, database_url=f"sqlite+aiosqlite:///{path}", storage_url=blobs)
    async with await BlobStore.open(writable) as store:
        await store.tenant("acme").put("k", b"written while writable")
    read_only = Settings(
        home=tmp_path, database_url=f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true", storage_url=blobs
    )
    async with await BlobStore.open(read_only) as store:
        acme = store.tenant("acme")
        assert await acme.get("k") == b"written while writable"
        with pytest.raises(StorageUnavailable, match="readonly"):
            await acme.put("k2", b"refused")
        with pytest.raises(StorageUnavailable, match="readonly"):
            await acme.delete("k")
        assert [item.key for item in await acme.list()] == ["k"]
        assert len(await data_objects(store)) == 1
    assert not (tmp_path / "file:").exists()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
async def test_a_full_or_read_only_disk_is_storage_unavailable_and_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """A put whose object cannot be written (ENOSPC, EROFS) raises StorageUnavailable; nothing is referenced."""
    settings = Settings(
        home=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'db'}", storage_url=(tmp_path / "b").as_uri()
    )
    async with await BlobStore.open(settings) as store:
        assert isinstance(store.storage, LocalStorage)

        def no_space(fd: int) -> None:
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(os, "fsync", no_space)
        with pytest.raises(StorageUnavailable, match=os.strerror(code)):
            await store.tenant("acme").put("k", b"bytes with nowhere to go")
        monkeypatch.undo()
        assert not await store.tenant("acme").exists("k")
        assert await data_objects(store) == []


@pytest.fixture
def s3_proxy(s3: S3Endpoint) -> Iterator[TcpProxy]:
    """A proxy in front of the suite's S3 endpoint, to cut and restore."""
    parts = urlsplit(s3.url)
    with proxied(parts.hostname, parts.port or 80) as proxy:
        yield proxy


@pytest.mark.s3
@pytest.mark.postgres
async def test_an_s3_outage_is_storage_unavailable_and_the_store_recovers(
    open_store: StoreFactory, s3_proxy: TcpProxy, clock: FakeClock
) -> None:
    """With the S3 endpoint cut off, reads and writes that need it raise StorageUnavailable naming the storage,
    acknowledge nothing and lose nothing; when the network returns the same store works, and GC tidies up."""
    store = await open_store("postgres-s3", s3_endpoint_url=f"http://127.0.0.1:{s3_proxy.port}")
    acme = store.tenant("acme")
    await acme.put("before", b"stored before the outage")
    s3_proxy.stop()
    for call in (
        lambda: acme.get("before"),
        lambda: acme.put("during", b"never stored"),
        lambda: store.gc(),
    ):
        with pytest.raises(StorageUnavailable, match="S3"):
            await call()
    assert [item.key for item in await acme.list()] == ["before"]  # metadata needs no storage
    s3_proxy.start()
    assert await acme.get("before") == b"stored before the outage"
    assert not await acme.exists("during")
    clock.advance(store.settings.upload_lease_seconds + store.settings.gc_grace_seconds + 1)
    await store.gc()
    assert len(await data_objects(store)) == 1
    assert (await store.fsck(read_data=True)).ok
