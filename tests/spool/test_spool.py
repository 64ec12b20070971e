"""The spool (docs/spool.md): puts acknowledged through a real object-storage outage, read back on their node,
refused (never wrong) on another, collected by GC, and drained into object storage once it answers.

The outage is real: the network to the suite's S3 endpoint (a moto server) is cut by a proxy and restored.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client import REGISTRY

from blobstore import BlobStore, ConfigurationError, NotFound, Settings, StorageUnavailable, StorageUnreachable
from blobstore.core import outage, pairing
from blobstore.core.outage import OutageMemory
from blobstore.core.spool import DRAIN_LOCK
from blobstore.server import create_app, drainer
from blobstore.storage.layout import OBJECT_PREFIX
from blobstore.testing.faults import FaultyStorage
from tests.support.cli_helpers import invoke
from tests.support.s3_server import S3Endpoint
from tests.support.stores import FakeClock, StoreFactory
from tests.support.tcp_proxy import TcpProxy, proxied
from tests.support.workers import data_objects, invariant_violations, object_key_of, rows, worker_env

pytestmark = [pytest.mark.s3, pytest.mark.postgres]

#: 2.5 MiB that do not compress: several frames, so ranged reads fetch some of them.
LARGE = random.Random(22).randbytes(10 * 256 * 1024)
SPOOL_BYTES = 10 * 2**20


@pytest.fixture
def s3_proxy(s3: S3Endpoint) -> Iterator[TcpProxy]:
    """A proxy in front of the suite's S3 endpoint, to cut and restore."""
    parts = urlsplit(s3.url)
    with proxied(parts.hostname, parts.port or 80) as proxy:
        yield proxy


async def node(open_store: StoreFactory, proxy: TcpProxy, tmp_path: Path, name: str, **overrides: object) -> BlobStore:
    """A store on node ``name`` with a spool of its own, over the proxy to S3 and the shared PostgreSQL."""
    settings: dict[str, object] = {"spool_dir": tmp_path / name, "spool_max_bytes": SPOOL_BYTES, "node_id": name}
    return await open_store("postgres-s3", s3_endpoint_url=f"http://127.0.0.1:{proxy.port}", **(settings | overrides))


def spool_files(store: BlobStore) -> list[str]:
    assert store.core.spool is not None
    root = store.core.spool.storage.root / OBJECT_PREFIX
    return sorted(str(path.relative_to(store.core.spool.storage.root)) for path in root.rglob("*") if path.is_file())


async def spooled_on(store: BlobStore, tenant: str, key: str) -> str | None:
    object_key = await object_key_of(store, tenant, key)
    [(node_id,)] = await rows(store, "SELECT spooled_on FROM blobs WHERE object_key = :k", k=object_key)
    return node_id  # type: ignore[no-any-return]


async def test_a_put_in_an_outage_is_spooled_acknowledged_and_read_back_on_its_node(
    open_store: StoreFactory, s3_proxy: TcpProxy, tmp_path: Path
) -> None:
    """With S3 cut off a put lands, fsynced, in its node's spool and is acknowledged; that node reads it back
    whole and ranged, verified; dedup and copy treat it like any blob."""
    store = await node(open_store, s3_proxy, tmp_path, "node-a")
    acme = store.tenant("acme")
    s3_proxy.stop()
    small = await acme.put("small", b"spooled while S3 was down")
    large = await acme.put("large", LARGE)
    assert (small.size, large.size) == (25, len(LARGE))
    assert await spooled_on(store, "acme", "small") == "node-a"
    assert len(spool_files(store)) == 2
    assert await acme.get("small") == b"spooled while S3 was down"
    assert await acme.get("large") == LARGE
    async with acme.open("large", (300_000, 1_100_000)) as stream:
        assert b"".join([chunk async for chunk in stream]) == LARGE[300_000:1_100_001]
    assert (await acme.put("same", LARGE)).deduplicated
    assert not (await store.tenant("other").put("same", LARGE)).deduplicated  # its first; one blob all the same
    assert await rows(store, "SELECT refcount FROM blobs WHERE digest = :d", d=large.digest) == [(3,)]
    await acme.copy("large", "large-copy")
    assert await acme.get("large-copy") == LARGE
    assert len(spool_files(store)) == 2


async def test_after_a_put_found_s3_down_the_next_puts_spool_at_once_until_the_memory_lapses(
    open_store: StoreFactory, s3_proxy: TcpProxy, tmp_path: Path
) -> None:
    """The first put of an outage waits through the S3 client's retries before it is spooled; the node then
    remembers the outage, so the next puts are spooled without trying S3. Once the memory lapses a put tries
    S3 again and, S3 answering, is stored there."""
    store = await node(open_store, s3_proxy, tmp_path, "node-a")
    spy = FaultyStorage(store.core.storage)  # no faults: it counts the writes that reach object storage
    store.core = replace(store.core, storage=spy)
    assert store.core.spool is not None
    clock = FakeMonotonic()
    store.core.spool.outage = OutageMemory(clock)
    acme = store.tenant("acme")
    s3_proxy.stop()
    await acme.put("first", b"waited for S3's retries")
    assert spy.count("write") == 1
    for number in range(3):
        await acme.put(f"next-{number}", f"spooled at once {number}".encode())
    assert spy.count("write") == 1
    assert [await spooled_on(store, "acme", key) for key in ("first", "next-0", "next-1", "next-2")] == ["node-a"] * 4
    s3_proxy.start()
    clock.now += outage.MEMORY_SECONDS
    await acme.put("after", b"S3 answers again")
    assert spy.count("write") == 2
    assert await spooled_on(store, "acme", "after") is None
    assert not store.core.spool.outage.spool_at_once()


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_another_node_refuses_a_blob_spooled_elsewhere(
    open_store: StoreFactory, s3_proxy: TcpProxy, tmp_path: Path
) -> None:
    """A blob spooled on node-a is StorageUnavailable on node-b (whether S3 answers or not), never a wrong or
    missing answer."""
    a = await node(open_store, s3_proxy, tmp_path, "node-a")
    b = await node(open_store, s3_proxy, tmp_path, "node-b")
    s3_proxy.stop()
    await a.tenant("acme").put("k", b"on node-a's disk")
    with pytest.raises(StorageUnavailable):
        await b.tenant("acme").get("k")
    s3_proxy.start()
    with pytest.raises(StorageUnavailable, match="node-a"):
        await b.tenant("acme").get("k")
    assert (await b.tenant("acme").stat("k")).size == 16


async def test_a_full_spool_fails_the_put_as_before_and_changes_nothing(
    open_store: StoreFactory, s3_proxy: TcpProxy, tmp_path: Path
) -> None:
    store = await node(open_store, s3_proxy, tmp_path, "node-a", spool_max_bytes=len(LARGE) + 100)
    acme = store.tenant("acme")
    s3_proxy.stop()
    await acme.put("first", LARGE)
    with pytest.raises(StorageUnavailable, match="spool is full"):
        await acme.put("second", b"x" * 200)
    assert not await acme.exists("second")
    assert len(spool_files(store)) == 1


async def test_the_spools_room_is_read_from_the_catalog_without_listing_the_spool(
    open_store: StoreFactory, s3_proxy: TcpProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each spooled put checks the room left with one query of the catalog, not a listing of the spool (which
    would grow with every put of an outage); the limit holds the same."""
    store = await node(open_store, s3_proxy, tmp_path, "node-a", spool_max_bytes=2 * len(LARGE) + 100)
    assert store.core.spool is not None

    def listed(*args: object) -> None:
        raise AssertionError("a put listed the spool")

    monkeypatch.setattr(store.core.spool.storage, "list", listed)
    acme = store.tenant("acme")
    s3_proxy.stop()
    await acme.put("first", LARGE)
    await acme.put("second", LARGE[::-1])
    with pytest.raises(StorageUnavailable, match="spool is full"):
        await acme.put("third", b"x" * 200)
    assert not await acme.exists("third")
    assert len(spool_files(store)) == 2


async def test_gc_of_a_deleted_spooled_blob_removes_its_spool_file_on_its_node_only(
    open_store: StoreFactory, s3_proxy: TcpProxy, tmp_path: Path, clock: FakeClock
) -> None:
    a = await node(open_store, s3_proxy, tmp_path, "node-a")
    b = await node(open_store, s3_proxy, tmp_path, "node-b")
    s3_proxy.stop()
    await a.tenant("acme").put("k", b"deleted before it was drained")
    await a.tenant("acme").delete("k")
    s3_proxy.start()
    clock.advance_past_real_time(a.settings.gc_grace_seconds + a.settings.upload_lease_seconds + 1)
    assert (await b.gc()).blobs_reclaimed == 0  # node-b cannot delete node-a's spool file
    assert (await a.gc()).blobs_reclaimed == 1
    assert spool_files(a) == []
    assert await invariant_violations(a) == []


async def test_a_put_with_s3_up_never_touches_the_spool(
    open_store: StoreFactory, s3_proxy: TcpProxy, tmp_path: Path
) -> None:
    store = await node(open_store, s3_proxy, tmp_path, "node-a")
    await store.tenant("acme").put("k", b"straight to S3")
    assert await spooled_on(store, "acme", "k") is None
    assert spool_files(store) == []
    assert len(await data_objects(store)) == 1
    with pytest.raises(NotFound):
        await store.tenant("acme").get("missing")


async def test_a_drain_moves_spooled_blobs_into_object_storage_and_frees_the_spool(
    open_store: StoreFactory, s3_proxy: TcpProxy, tmp_path: Path
) -> None:
    """While S3 is down a drain fails and keeps everything; once it answers the drain uploads, verifies and
    switches every blob of its node (not another node's), frees the spool, and the blobs read from S3."""
    a = await node(open_store, s3_proxy, tmp_path, "node-a")
    b = await node(open_store, s3_proxy, tmp_path, "node-b")
    s3_proxy.stop()
    await a.tenant("acme").put("small", b"spooled on a")
    await a.tenant("acme").put("large", LARGE)
    await b.tenant("acme").put("on-b", b"spooled on b")
    with pytest.raises(StorageUnavailable):
        await a.drain_spool()
    assert len(spool_files(a)) == 2
    s3_proxy.start()
    stats = await a.drain_spool()
    assert (stats.blobs_drained, stats.bytes_drained) == (2, len(LARGE) + 12)
    assert spool_files(a) == []
    assert [(n.node_id, n.blobs) for n in await a.spool_status()] == [("node-b", 1)]
    assert await b.tenant("acme").get("large") == LARGE  # from S3 now, on any node
    assert await b.tenant("acme").get("small") == b"spooled on a"
    assert (await b.drain_spool()).blobs_drained == 1
    assert await a.tenant("acme").get("on-b") == b"spooled on b"
    assert await a.spool_status() == []
    assert await invariant_violations(a) == []
    report = await a.fsck(read_data=True)
    assert report.ok, report.problems


async def test_processes_sharing_a_spool_drain_it_one_at_a_time(
    open_store: StoreFactory, s3_proxy: TcpProxy, tmp_path: Path
) -> None:
    """Two stores of one node (two workers of a server, sharing its spool) drain at once: the spooled blob is
    uploaded once, by one of them; a drain waits while another process holds the spool's drain lock."""
    a = await node(open_store, s3_proxy, tmp_path, "node-a")
    b = await node(open_store, s3_proxy, tmp_path, "node-a")
    s3_proxy.stop()
    await a.tenant("acme").put("k", LARGE)
    s3_proxy.start()
    recorders = []
    for store in (a, b):
        recorder = FaultyStorage(store.storage)
        store.core = replace(store.core, storage=recorder)
        recorders.append(recorder)
    with _drain_lock_held(tmp_path / "node-a"):
        waiting = asyncio.create_task(a.drain_spool())
        await asyncio.sleep(0.5)
        assert not waiting.done()
        assert [recorder.count("write") for recorder in recorders] == [0, 0]
    first, second = await asyncio.gather(waiting, b.drain_spool())
    assert first.blobs_drained + second.blobs_drained == 1
    assert sum(recorder.count("write") for recorder in recorders) == 1
    assert spool_files(a) == []
    assert await b.tenant("acme").get("k") == LARGE


async def test_a_drain_before_anything_was_spooled_finds_nothing(
    open_store: StoreFactory, s3_proxy: TcpProxy, tmp_path: Path
) -> None:
    """A node whose spool directory does not exist yet (nothing was ever spooled) drains nothing, without error."""
    store = await node(open_store, s3_proxy, tmp_path, "node-a", spool_dir=tmp_path / "not-yet" / "spool")
    stats = await store.drain_spool()
    assert (stats.blobs_drained, stats.leftovers_removed) == (0, 0)
    assert await drainer.drain_once(store)


@contextlib.contextmanager
def _drain_lock_held(spool_dir: Path) -> Iterator[None]:
    """Hold the spool's drain lock as another process would."""
    fd = os.open(spool_dir / DRAIN_LOCK, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


async def test_a_drain_without_a_spool_is_a_configuration_error(
    open_store: StoreFactory, s3_proxy: TcpProxy, tmp_path: Path
) -> None:
    store = await node(open_store, s3_proxy, tmp_path, "node-a", spool_dir=None, spool_max_bytes=0)
    with pytest.raises(ConfigurationError, match="BLOBSTORE_SPOOL_DIR"):
        await store.drain_spool()


async def test_the_cli_shows_every_nodes_spool_and_drains_its_own(
    open_store: StoreFactory, s3_proxy: TcpProxy, tmp_path: Path
) -> None:
    """``blobstore spool status`` lists each node's blobs, bytes and oldest; ``spool drain`` on node-a (the
    node id and spool of the environment) drains node-a's."""
    a = await node(open_store, s3_proxy, tmp_path, "node-a")
    s3_proxy.stop()
    await a.tenant("acme").put("k", b"spooled for the CLI")
    s3_proxy.start()
    env = worker_env(a) | {
        "BLOBSTORE_SPOOL_DIR": str(tmp_path / "node-a"),
        "BLOBSTORE_SPOOL_MAX_BYTES": str(SPOOL_BYTES),
        "BLOBSTORE_NODE_ID": "node-a",
    }

    def bs(*args: str) -> str:  # in a thread: the CLI runs its own event loop
        return invoke(args, home=tmp_path, env=env).ok().stdout

    [status] = json.loads(await asyncio.to_thread(bs, "spool", "status", "--json"))
    assert (status["node_id"], status["blobs"], status["bytes"]) == ("node-a", 1, 19)
    assert status["oldest"] is not None
    assert "node-a" in await asyncio.to_thread(bs, "spool", "status")
    assert "drained 1 blob (19 bytes)" in await asyncio.to_thread(bs, "spool", "drain")
    assert "no node holds spooled blobs" in await asyncio.to_thread(bs, "spool", "status")
    assert spool_files(a) == []


async def test_fsck_checks_a_spooled_blob_against_its_spool_file_on_its_node(
    open_store: StoreFactory, s3_proxy: TcpProxy, tmp_path: Path
) -> None:
    """fsck on node-a reads node-a's spooled blobs from the spool (a missing bucket object is no problem) and
    reports a spool file that is gone; node-b leaves them to node-a."""
    a = await node(open_store, s3_proxy, tmp_path, "node-a")
    b = await node(open_store, s3_proxy, tmp_path, "node-b")
    s3_proxy.stop()
    await a.tenant("acme").put("k", LARGE)
    s3_proxy.start()
    report = await a.fsck(read_data=True)
    assert report.ok, report.problems
    assert report.bytes_hashed == len(LARGE)
    assert (await b.fsck(read_data=True)).ok
    [spooled] = spool_files(a)
    (tmp_path / "node-a" / spooled).unlink()
    [problem] = (await a.fsck()).problems
    assert (problem.kind, problem.subject) == ("missing-object", spooled)
    assert (await b.fsck()).ok


async def test_the_servers_drainer_backs_off_while_s3_is_down_and_keeps_the_gauges(
    open_store: StoreFactory, s3_proxy: TcpProxy, tmp_path: Path
) -> None:
    """One drain of the background drainer: unfinished while S3 is down (the gauges say what waits), finished
    once it answers (the gauges drop to zero)."""
    store = await node(open_store, s3_proxy, tmp_path, "node-a")
    s3_proxy.stop()
    await store.tenant("acme").put("k", b"waiting for S3")
    assert not await drainer.drain_once(store)
    assert (REGISTRY.get_sample_value("blobstore_spool_blobs"), REGISTRY.get_sample_value("blobstore_spool_bytes")) == (
        1,
        14,
    )
    s3_proxy.start()
    assert await drainer.drain_once(store)
    assert REGISTRY.get_sample_value("blobstore_spool_blobs") == 0
    assert spool_files(store) == []


# --- a node started in an outage (blobstore.core.pairing) ----------------------------------------------


async def test_a_node_started_in_an_outage_spools_puts_and_pairs_once_s3_answers(
    open_store: StoreFactory, s3_proxy: TcpProxy, tmp_path: Path, clock: FakeClock
) -> None:
    """A node with a spool starts while S3 does not answer (a restart during an outage): its puts are spooled
    and read back, what lies in S3 answers StorageUnavailable, GC touches nothing; once S3 answers, the
    drain pairs the node with it and moves the spool into it."""
    a = await node(open_store, s3_proxy, tmp_path, "node-a")
    await a.tenant("acme").put("before", b"stored before the outage")
    s3_proxy.stop()
    b = await node(open_store, s3_proxy, tmp_path, "node-b")
    assert b.core.spool is not None
    assert b.core.spool.outage.spool_at_once()  # its puts spool without waiting
    acme = b.tenant("acme")
    await acme.put("during", LARGE)
    assert await spooled_on(b, "acme", "during") == "node-b"
    assert await acme.get("during") == LARGE
    assert (await acme.put("copy-of-before", b"stored before the outage")).deduplicated  # no storage needed
    with pytest.raises(StorageUnavailable):
        await acme.get("before")
    await acme.delete("copy-of-before")
    clock.advance_past_real_time(b.settings.gc_grace_seconds + b.settings.upload_lease_seconds + 1)
    with pytest.raises(StorageUnavailable):
        await b.gc()
    with pytest.raises(StorageUnavailable):
        await b.drain_spool()
    assert len(spool_files(b)) == 1
    s3_proxy.start()
    await asyncio.sleep(pairing.RETRY_SECONDS)  # calls fail at once this long after an attempt found S3 down
    assert (await b.drain_spool()).blobs_drained == 1
    assert spool_files(b) == []
    assert await acme.get("before") == b"stored before the outage"
    assert await a.tenant("acme").get("during") == LARGE
    assert await invariant_violations(b) == []
    report = await b.fsck(read_data=True)
    assert report.ok, report.problems


async def test_a_node_without_a_spool_or_a_new_store_still_refuses_to_start_in_an_outage(
    open_store: StoreFactory, s3_proxy: TcpProxy, tmp_path: Path
) -> None:
    """Without a spool an unreachable S3 is a start-up error naming BLOBSTORE_S3_ENDPOINT_URL; with one, a
    brand-new store (no id yet to check the storage against) cannot start either."""
    s3_proxy.stop()
    with pytest.raises(StorageUnreachable, match="BLOBSTORE_S3_ENDPOINT_URL"):
        await node(open_store, s3_proxy, tmp_path, "node-a")
    s3_proxy.start()
    await node(open_store, s3_proxy, tmp_path, "node-a")
    s3_proxy.stop()
    with pytest.raises(ConfigurationError, match="BLOBSTORE_S3_ENDPOINT_URL"):
        await node(open_store, s3_proxy, tmp_path, "node-b", spool_dir=None, spool_max_bytes=0)


async def test_a_node_started_in_an_outage_never_touches_another_stores_storage(
    open_store: StoreFactory, s3: S3Endpoint, s3_proxy: TcpProxy, tmp_path: Path, clock: FakeClock
) -> None:
    """A node started in an outage whose storage, once it answers, is another store's: the drain, GC and
    readiness refuse it (ConfigurationError), its spooled put stays spooled and readable, and the other
    store's objects are exactly as they were."""
    home = await node(open_store, s3_proxy, tmp_path, "node-a")
    await home.tenant("acme").put("k", b"this store's bytes")
    other_url = f"{home.settings.storage_url}-other"
    other = await BlobStore.open(
        Settings(
            home=tmp_path / "other",
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'other.db'}",
            storage_url=other_url,
            s3_endpoint_url=s3.url,
        )
    )
    await other.tenant("globex").put("theirs", b"the other store's bytes")
    theirs = sorted([info.key async for info in other.storage.list()])
    s3_proxy.stop()
    wrong = await node(open_store, s3_proxy, tmp_path, "node-b", storage_url=other_url)
    await wrong.tenant("acme").put("during", b"spooled on the misconfigured node")
    s3_proxy.start()
    await asyncio.sleep(pairing.RETRY_SECONDS)
    with pytest.raises(ConfigurationError, match="belongs to blobstore"):
        await wrong.drain_spool()
    clock.advance_past_real_time(wrong.settings.gc_grace_seconds + wrong.settings.upload_lease_seconds + 1)
    with pytest.raises(ConfigurationError, match="belongs to blobstore"):
        await wrong.gc()
    app = create_app(wrong)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node-b") as http,
    ):
        ready = await http.get("/readyz")
    assert (ready.status_code, ready.json()["detail"]) == (503, "not ready: the object storage is not this store's")
    assert await wrong.tenant("acme").get("during") == b"spooled on the misconfigured node"
    assert await spooled_on(wrong, "acme", "during") == "node-b"
    assert sorted([info.key async for info in other.storage.list()]) == theirs
    assert await other.tenant("globex").get("theirs") == b"the other store's bytes"
    await other.close()
