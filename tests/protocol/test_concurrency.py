"""Concurrent puts, deletes, copies and GC, in one event loop and across OS processes.

After every scenario the bookkeeping must be exact (``workers.check_invariants``):
every blob's refcount equals its references, usage equals the sums over
references, every reference's object exists, and storage holds exactly the live
blobs' objects. No database deadlock or serialization failure may reach a caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError

from blobstore import AlreadyExists, BlobInfo, BlobStore, NotFound, ObjectMissing, StorageUnavailable
from blobstore.db import engine
from blobstore.storage.base import Source
from tests.support.digests import digest_of
from tests.support.stores import FakeClock, StoreFactory
from tests.support.workers import check_invariants, data_objects, refcount_of, rows, run_workers, scalar

pytestmark = pytest.mark.slow

#: How many worker processes race on each deployment (SQLite serves one machine; keep it small).
PROCESSES = {"sqlite-local": 3, "postgres-s3": 4}


async def refs_of(store: BlobStore) -> list[tuple[str, str]]:
    """(tenant, key) of every reference."""
    found = await rows(store, "SELECT t.name, r.key FROM refs r JOIN tenants t ON t.id = r.tenant_id ORDER BY 1, 2")
    return [(tenant, key) for tenant, key in found]


# --- (a) one process, many concurrent puts of the same bytes ---------------------------------------


async def test_concurrent_puts_of_new_bytes_store_them_once(store: BlobStore) -> None:
    """20 concurrent puts of never-seen bytes over 4 tenants store one object and count 20 references."""
    data = b"raced bytes " * 5000
    targets = [(f"tenant-{i % 4}", f"keys/{i}") for i in range(20)]
    infos = await asyncio.gather(*(store.tenant(t).put(k, data) for t, k in targets))
    assert {info.digest for info in infos} == {digest_of(data)}
    assert len(await data_objects(store)) == 1
    assert await refcount_of(store, digest_of(data)) == 20
    for tenant, key in targets:
        assert await store.tenant(tenant).get(key) == data
    await check_invariants(store)


async def test_concurrent_puts_of_the_same_bytes_to_one_tenant_flag_dedup_once_per_tenant(store: BlobStore) -> None:
    """Of 10 concurrent first puts in one tenant, the rest may dedup, but storage holds one object and 10 refs."""
    data = b"one tenant, many keys"
    infos = await asyncio.gather(*(store.tenant("acme").put(f"k{i}", data) for i in range(10)))
    assert sum(not info.deduplicated for info in infos) >= 1
    assert len(await data_objects(store)) == 1
    assert await refcount_of(store, digest_of(data)) == 10
    await check_invariants(store)


async def test_concurrent_puts_in_tenant_scope_store_one_object_per_tenant(
    open_store: StoreFactory, deployment: str
) -> None:
    """With dedup_scope='tenant', 12 concurrent puts over 3 tenants store exactly 3 objects."""
    store = await open_store(deployment, dedup_scope="tenant")
    data = b"tenant scoped"
    await asyncio.gather(*(store.tenant(f"t{i % 3}").put(f"k{i}", data) for i in range(12)))
    assert len(await data_objects(store)) == 3
    assert await rows(store, "SELECT scope, refcount FROM blobs ORDER BY scope") == [("t0", 4), ("t1", 4), ("t2", 4)]
    await check_invariants(store)


async def test_several_store_instances_race_like_processes(open_store: StoreFactory, deployment: str) -> None:
    """Three store instances (own pools, one deployment) putting the same bytes concurrently store them once."""
    stores = [await open_store(deployment) for _ in range(3)]
    data = b"three instances"
    await asyncio.gather(*(s.tenant("acme").put(f"s{n}/k{i}", data) for n, s in enumerate(stores) for i in range(5)))
    assert len(await data_objects(stores[0])) == 1
    assert await refcount_of(stores[0], digest_of(data)) == 15
    await check_invariants(stores[0])


# --- (b) several processes, the same bytes ---------------------------------------------------------


async def test_processes_putting_the_same_bytes_store_them_once(
    store: BlobStore, deployment: str, tmp_path: Path
) -> None:
    """Several OS processes, each with 8 concurrent puts of identical bytes, store one object and count every ref."""
    processes, puts = PROCESSES[deployment], 8
    commands = [
        ["put-same", "--tenant", f"tenant-{n % 2}", "--prefix", f"p{n}/", "--count", str(puts), "--data", "x" * 5000]
        for n in range(processes)
    ]
    reports = await run_workers(store, tmp_path / "sync", commands)
    data = b"x" * 5000
    assert [report["puts"] for report in reports] == [puts] * processes
    assert {d for report in reports for d in report["digests"]} == {digest_of(data)}
    assert len(await data_objects(store)) == 1
    assert await refcount_of(store, digest_of(data)) == processes * puts
    assert len(await refs_of(store)) == processes * puts
    await check_invariants(store)


# --- (c) put racing the delete of the last reference (and GC) --------------------------------------


@pytest.mark.parametrize("rounds", [200])
async def test_put_racing_delete_and_gc_never_loses_acknowledged_bytes(
    open_store: StoreFactory, deployment: str, clock: FakeClock, rounds: int
) -> None:
    """Each round races put, delete of the last reference and GC on the same bytes: the key then either
    reads back exactly its bytes or is absent, and no reference ever points at a missing object."""
    store = await open_store(deployment, gc_grace_seconds=1)
    clock.advance(-86400)  # behind the real clock, so GC never takes a file being written for a stale one
    acme = store.tenant("acme")
    data = b"fragile bytes"
    rng = random.Random(7)

    async def after(delay: float, step: Awaitable[object]) -> None:
        await asyncio.sleep(delay)
        await step

    async def collect() -> None:
        clock.advance(2)  # past the grace period: whatever is unreferenced now may be reclaimed
        outcomes["reclaimed"] += (await store.gc()).blobs_reclaimed

    outcomes = {"present": 0, "absent": 0, "reclaimed": 0}
    for _ in range(rounds):
        if rng.random() < 0.1:  # sometimes the raced reference is not the last one
            await acme.put("other", data)
        # Random head starts of up to 15 ms (about one put) let each of the three win in some rounds.
        await asyncio.gather(
            after(rng.random() * 0.005, acme.put("k", data)),
            after(rng.random() * 0.015, acme.delete("k")),
            after(rng.random() * 0.015, collect()),
        )
        try:
            assert await acme.get("k") == data
            outcomes["present"] += 1
        except NotFound:
            outcomes["absent"] += 1
        await check_invariants(store)
        await acme.delete("other")
    assert outcomes["present"] > 0, outcomes
    assert outcomes["absent"] > 0, outcomes
    assert outcomes["reclaimed"] > 0, outcomes


@pytest.mark.postgres
async def test_processes_racing_put_delete_and_gc_keep_every_reference_readable(
    open_store: StoreFactory, tmp_path: Path
) -> None:
    """Processes that put-and-read, delete, and GC the same bytes on PostgreSQL + S3 never read wrong or
    missing bytes, and leave exact counts with every reference's object in storage."""
    store = await open_store("postgres-s3", gc_grace_seconds=0.3)
    seconds = "4"
    commands = [
        ["churn", "--prefix", "k", "--seconds", seconds, "--data", "churned bytes"],
        ["churn", "--prefix", "k2", "--seconds", seconds, "--data", "other churned bytes"],
        ["delete", "--prefix", "k", "--seconds", seconds],
        ["delete", "--prefix", "k2", "--seconds", seconds],
        ["gc", "--seconds", seconds],
    ]
    churned, _, deleted, _, collected = await run_workers(store, tmp_path / "sync", commands)
    assert churned["read_back"] + churned["missing"] > 0
    assert deleted["deleted"] > 0
    assert collected["runs"] > 0
    await check_invariants(store)
    for key, data in (("k", b"churned bytes"), ("k2", b"other churned bytes")):
        if await store.tenant("acme").exists(key):
            assert await store.tenant("acme").get(key) == data


@pytest.mark.parametrize("failure", [FileNotFoundError, ObjectMissing])
async def test_a_put_whose_upload_gc_reclaimed_mid_write_uploads_again(
    open_store: StoreFactory,
    deployment: str,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    failure: type[Exception],
) -> None:
    """When an uploader stalls past its lease and GC reclaims the upload mid-write (its partial object
    vanishes), the put uploads again under a fresh key and succeeds instead of surfacing the backend's error."""
    store = await open_store(deployment, gc_grace_seconds=1)
    clock.advance(-86400)
    original = store.storage.write
    written: list[str] = []

    async def write_outlasting_grace(key: str, source: Source) -> None:
        written.append(key)
        if len(written) == 1:
            clock.advance(store.settings.upload_lease_seconds + 1)  # the uploader stalls past its lease...
            assert (await store.gc()).blobs_reclaimed == 1  # ...so GC reclaims it and aborts its partial object
            raise failure(key)
        await original(key, source)

    monkeypatch.setattr(store.storage, "write", write_outlasting_grace)
    info = await store.tenant("acme").put("k", b"slow upload")
    monkeypatch.undo()
    assert len(written) == 2
    assert written[0] != written[1]
    assert await store.tenant("acme").get("k") == b"slow upload"
    assert info.size == len(b"slow upload")
    await check_invariants(store)


async def test_a_failed_write_of_a_live_upload_is_reported_and_cleaned_up(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A storage failure during an upload GC did not reclaim surfaces to the caller and leaves nothing behind."""

    async def failing_write(key: str, source: Source) -> None:
        raise StorageUnavailable("storage is down")

    monkeypatch.setattr(store.storage, "write", failing_write)
    with pytest.raises(StorageUnavailable):
        await store.tenant("acme").put("k", b"never stored")
    monkeypatch.undo()
    assert not await store.tenant("acme").exists("k")
    await check_invariants(store)


# --- (d) several processes putting the same key ----------------------------------------------------


async def test_processes_putting_one_key_leave_exactly_one_reference(
    store: BlobStore, deployment: str, tmp_path: Path
) -> None:
    """Processes racing concurrent puts of distinct bytes to one key leave one reference and exact refcounts."""
    processes, puts = PROCESSES[deployment], 6
    commands = [["put-key", "--prefix", "the/key", "--count", str(puts), "--data", "v"] for _ in range(processes)]
    reports = await run_workers(store, tmp_path / "sync", commands)
    assert sum(report["puts"] for report in reports) == processes * puts
    assert await refs_of(store) == [("acme", "the/key")]
    live_total = await scalar(store, "SELECT SUM(refcount) FROM blobs WHERE state = 'live'")
    assert live_total == 1
    value = await store.tenant("acme").get("the/key")
    assert value in {f"v-{n}-{i}".encode() for n in range(processes) for i in range(puts)}
    assert await rows(store, "SELECT used_bytes, used_objects FROM tenants") == [(len(value), 1)]
    await check_invariants(store)


async def test_concurrent_puts_to_one_key_in_one_process(store: BlobStore) -> None:
    """20 concurrent puts of distinct bytes to one key leave one reference whose bytes are one of those put."""
    values = [f"value {i}".encode() for i in range(20)]
    await asyncio.gather(*(store.tenant("acme").put("k", value) for value in values))
    assert await refs_of(store) == [("acme", "k")]
    assert await store.tenant("acme").get("k") in values
    assert await scalar(store, "SELECT SUM(refcount) FROM blobs") == 1
    await check_invariants(store)


async def test_concurrent_if_absent_puts_admit_exactly_one(store: BlobStore) -> None:
    """Of 10 concurrent put(if_absent=True) on one key exactly one succeeds; the rest raise AlreadyExists."""
    results = await asyncio.gather(
        *(store.tenant("acme").put("k", f"v{i}".encode(), if_absent=True) for i in range(10)), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, BlobInfo)]
    assert len(winners) == 1
    assert all(isinstance(r, AlreadyExists) for r in results if r is not winners[0])
    assert digest_of(await store.tenant("acme").get("k")) == winners[0].digest
    assert await scalar(store, "SELECT SUM(refcount) FROM blobs") == 1
    await check_invariants(store)


# --- (e) a mix of replace, copy and delete ---------------------------------------------------------


async def test_a_concurrent_mix_of_put_copy_delete_and_gc_keeps_counts_exact(
    open_store: StoreFactory, deployment: str, clock: FakeClock
) -> None:
    """Hundreds of concurrent replaces, copies, deletes and GC runs over a few keys keep refcounts and usage exact."""
    store = await open_store(deployment, gc_grace_seconds=1)
    clock.advance(-86400)  # behind the real clock, so GC never takes a file being written for a stale one
    rng = random.Random(11)
    tenants = [store.tenant("acme"), store.tenant("other")]
    keys = [f"k{i}" for i in range(5)]
    values = [f"value {i}".encode() * (i + 1) for i in range(4)]

    async def one() -> None:
        tenant, op = rng.choice(tenants), rng.random()
        if op < 0.45:
            await tenant.put(rng.choice(keys), rng.choice(values))
        elif op < 0.7:
            with contextlib.suppress(NotFound):  # the source may be absent
                await tenant.copy(rng.choice(keys), rng.choice(keys))
        elif op < 0.95:
            await tenant.delete(rng.choice(keys))
        else:
            clock.advance(2)
            await store.gc()

    for _ in range(15):
        await asyncio.gather(*(one() for _ in range(16)))
        await check_invariants(store)
    for tenant in tenants:
        for item in await tenant.list():
            assert await tenant.get(item.key) in values


@pytest.mark.postgres
async def test_concurrent_writers_never_deadlock_on_postgres(
    open_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent puts, replaces, copies and deletes (same and different keys, shared blobs) never make
    PostgreSQL detect a deadlock: writers lock rows in one order, so none waits a deadlock timeout (1 s)."""
    store = await open_store("postgres-s3")
    conflicts: list[str] = []
    transient = engine.is_transient

    def spy(exc: DBAPIError) -> bool:
        conflicts.append(str(getattr(exc.orig, "sqlstate", None)))
        return transient(exc)

    monkeypatch.setattr(engine, "is_transient", spy)
    rng = random.Random(5)
    tenants = [store.tenant("acme"), store.tenant("other")]
    keys = [f"k{i}" for i in range(4)]
    values = [f"value {i}".encode() for i in range(3)]

    async def one() -> None:
        tenant, op = rng.choice(tenants), rng.random()
        if op < 0.5:
            await tenant.put(rng.choice(keys), rng.choice(values))
        elif op < 0.7:
            with contextlib.suppress(NotFound):
                await tenant.copy(rng.choice(keys), rng.choice(keys))
        else:
            await tenant.delete(rng.choice(keys))

    for _ in range(12):
        await asyncio.gather(*(one() for _ in range(12)))
    assert "40P01" not in conflicts, f"deadlocks were detected (and retried): {conflicts}"
    await check_invariants(store)


@pytest.mark.postgres
async def test_processes_mixing_put_copy_delete_keep_counts_exact(open_store: StoreFactory, tmp_path: Path) -> None:
    """Processes running random replaces, copies and deletes over shared keys on PostgreSQL + S3 keep counts exact."""
    store = await open_store("postgres-s3")
    processes, batches = PROCESSES["postgres-s3"], 12
    commands = [["mix", "--prefix", "m/", "--count", str(batches), "--data", "mixed"] for _ in range(processes)]
    reports = await run_workers(store, tmp_path / "sync", commands)
    operations = sum(sum(report[op] for op in ("put", "copy", "delete", "copy-missing")) for report in reports)
    assert operations == processes * batches * 4
    await check_invariants(store)
    values = {f"mixed-{i}".encode() for i in range(3)}
    for item in await store.tenant("acme").list():
        assert await store.tenant("acme").get(item.key) in values
