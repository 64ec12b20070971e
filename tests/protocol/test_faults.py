"""Fault injection: failing, torn, slow and cancelled storage calls, and database connections that drop.

Storage faults come from the wrapper in blobstore/testing/faults.py swapped in
for ``store.storage``; database faults kill the PostgreSQL backend of a
transaction in flight, or lose the reply to a COMMIT that succeeded. Each
operation fails cleanly or succeeds through retries, and no half state is ever
visible: no reference to unreadable bytes, no drifted count, and after GC past
grace no leaked object.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from blobstore import BlobInfo, BlobStore, NotFound, PutItem, StorageUnavailable, Tenant
from blobstore.db import batches, binding, maintenance
from blobstore.db.engine import Database
from blobstore.storage.layout import object_key_for
from blobstore.testing.faults import Fault, FaultyStorage
from tests.support.stores import FakeClock, StoreFactory
from tests.support.workers import data_objects, invariant_violations, rows

GRACE = 3600.0
#: 2.5 MiB that do not compress, so its frames are stored raw: three chunks on every backend.
LARGE = random.Random(34).randbytes(10 * 256 * 1024)


def faulty(store: BlobStore) -> FaultyStorage:
    """Swap a fault-injecting wrapper in for the store's storage."""
    wrapper = FaultyStorage(store.storage)
    store.core = replace(store.core, storage=wrapper)
    return wrapper


async def states(store: BlobStore) -> list[str]:
    return sorted(state for (state,) in await rows(store, "SELECT state FROM blobs"))


async def collect_and_check(store: BlobStore, clock: FakeClock) -> None:
    """GC past grace, then nothing leaks and every count is exact. Past grace of the real time too: an object a
    cancelled write's thread finished after its upload was discarded is an orphan, dated by the real clock."""
    clock.advance_past_real_time(GRACE + 1)
    await store.gc()
    assert await invariant_violations(store) == []


# --- storage writes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "error"),
    [
        ("before", StorageUnavailable("injected: 503 Slow Down")),
        ("midway", StorageUnavailable("injected: connection reset mid-upload")),
        ("after", StorageUnavailable("injected: the reply to a successful PUT was lost")),
        ("after", TimeoutError("injected: the write timed out")),
    ],
)
async def test_a_failed_write_fails_the_put_cleanly(
    store: BlobStore, clock: FakeClock, phase: str, error: BaseException
) -> None:
    """A write failing before, midway (torn object) or after storing fails the put and leaves nothing behind.

    The key keeps its old value, a new key does not appear, no row or object remains.
    """
    storage = faulty(store)
    acme = store.tenant("acme")
    await acme.put("k", b"old value")
    fault = storage.inject(Fault("write", error=error, phase=phase, key_prefix="data/", times=2))  # type: ignore[arg-type]
    with pytest.raises(type(error)):
        await acme.put("k", LARGE)
    with pytest.raises(type(error)):
        await acme.put("new", LARGE)
    assert fault.hits == 2
    assert await acme.get("k") == b"old value"
    assert not await acme.exists("new")
    assert [info.key for info in await acme.list()] == ["k"]
    assert await states(store) == ["live"]
    assert len(await data_objects(store)) == 1
    assert await invariant_violations(store) == []
    await collect_and_check(store, clock)


async def test_a_failed_write_whose_clean_up_fails_too_is_finished_by_gc(store: BlobStore) -> None:
    """A failed write whose clean-up fails too leaves a tombstone that the next GC removes, object and all."""
    storage = faulty(store)
    storage.inject(Fault("write", error=StorageUnavailable("injected"), phase="after"))
    cleanup = storage.inject(Fault("delete_many", error=StorageUnavailable("injected: delete refused")))
    with pytest.raises(StorageUnavailable):
        await store.tenant("acme").put("k", b"value")
    assert cleanup.hits == 1
    assert await states(store) == ["deleting"]
    assert len(await data_objects(store)) == 1
    assert not await store.tenant("acme").exists("k")
    assert (await store.gc()).blobs_reclaimed == 1
    assert await invariant_violations(store) == []
    assert await data_objects(store) == []


# --- storage reads ---------------------------------------------------------------------------------


async def test_a_read_failing_mid_stream_fails_the_get_and_changes_nothing(store: BlobStore) -> None:
    """A read breaking mid-stream makes get raise, never return part of the value; the next read succeeds.

    A stream delivers the frames it had whole (each verified), then the error.
    """
    storage = faulty(store)
    acme = store.tenant("acme")
    await acme.put("big", LARGE)
    storage.inject(Fault("read", error=StorageUnavailable("injected: connection reset"), phase="midway", after_items=1))
    with pytest.raises(StorageUnavailable):
        await acme.get("big")

    storage.inject(Fault("read", error=StorageUnavailable("injected: connection reset"), phase="midway", after_items=1))
    received: list[bytes] = []

    async def stream_all() -> None:
        async with acme.open("big") as stream:
            async for chunk in stream:
                received.append(chunk)  # noqa: PERF401 - keep what arrived before the failure

    with pytest.raises(StorageUnavailable):
        await stream_all()
    arrived = b"".join(received)  # the frames the first storage chunk completed, each verified: maybe none
    assert len(arrived) < len(LARGE)
    assert LARGE.startswith(arrived)
    assert await acme.get("big") == LARGE
    assert await invariant_violations(store) == []


# --- storage deletes during GC ---------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["before", "midway"])
async def test_a_failed_storage_delete_during_gc_loses_nothing_and_the_next_gc_finishes(
    store: BlobStore, clock: FakeClock, phase: str
) -> None:
    """A GC whose batch delete fails (wholly or halfway) raises and loses nothing; the next GC finishes."""
    storage = faulty(store)
    acme = store.tenant("acme")
    for i in range(4):
        await acme.put(f"doomed/{i}", f"doomed {i}".encode())
        await acme.delete(f"doomed/{i}")
    await acme.put("kept", b"kept")
    await acme.copy("kept", "kept-too")
    clock.advance(GRACE + 1)
    storage.inject(Fault("delete_many", error=StorageUnavailable("injected: 500"), phase=phase))  # type: ignore[arg-type]
    with pytest.raises(StorageUnavailable):
        await store.gc()
    assert await states(store) == ["deleting"] * 4 + ["live"]
    assert len(await data_objects(store)) == (5 if phase == "before" else 3)
    assert await acme.get("kept-too") == b"kept"
    assert await invariant_violations(store, quiescent=False) == []

    assert (await store.gc()).blobs_reclaimed == 4
    assert await invariant_violations(store) == []
    assert len(await data_objects(store)) == 1


async def test_a_storage_listing_failing_during_gc_deletes_no_orphan(store: BlobStore, clock: FakeClock) -> None:
    """If listing storage for orphans breaks halfway, GC raises without deleting an orphan (the blob
    sweep before it reclaimed what the database vouched for); the next run finishes the job."""
    storage = faulty(store)
    acme = store.tenant("acme")
    for i in range(3):
        await acme.put(f"doomed/{i}", f"doomed {i}".encode())
        await acme.delete(f"doomed/{i}")
    for i in range(3):
        await storage.write(object_key_for(f"{i:064x}"), b"orphan")
    clock.advance_past_real_time(GRACE + 1)
    storage.inject(Fault("list", error=StorageUnavailable("injected"), phase="midway", after_items=1))
    with pytest.raises(StorageUnavailable):
        await store.gc()
    assert await states(store) == []
    assert len(await data_objects(store)) == 3
    stats = await store.gc()
    assert (stats.blobs_reclaimed, stats.orphans_deleted) == (0, 3)
    assert await data_objects(store) == []


# --- timeouts and cancellation ---------------------------------------------------------------------


async def poll(store: BlobStore, keys: list[str], seen: list[str], stop: asyncio.Event) -> None:
    """Read ``keys`` over and over until ``stop``; record every outcome other than a clean one."""
    acme = store.tenant("acme")
    while not stop.is_set():
        for key in keys:
            try:
                await acme.get(key)
            except NotFound:
                continue
            except Exception as error:
                seen.append(f"{key}: {error!r}")
        await asyncio.sleep(0.005)


async def cancelled_when_hit(fault: Fault, work: Coroutine[Any, Any, object]) -> None:
    """Run ``work`` until it reaches ``fault``, then cancel it, as a caller's timeout would (sent at that point
    however loaded the machine); it must end cancelled."""
    task = asyncio.create_task(work)
    deadline = time.monotonic() + 30
    while fault.hits == 0:
        assert not task.done(), "the work ended before it reached the fault"
        assert time.monotonic() < deadline, "the work never reached the fault"
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_put_timing_out_in_a_slow_write_is_never_half_visible(store: BlobStore, clock: FakeClock) -> None:
    """A put timing out in a slow upload fails cleanly; a reader meanwhile only ever sees the key missing."""
    storage = faulty(store)
    slow = storage.inject(Fault("write", delay=60.0, key_prefix="data/"))
    problems: list[str] = []
    stop = asyncio.Event()
    reader = asyncio.create_task(poll(store, ["slow"], problems, stop))
    await cancelled_when_hit(slow, store.tenant("acme").put("slow", b"slow bytes"))
    stop.set()
    await reader
    assert slow.hits == 1
    assert problems == []
    assert not await store.tenant("acme").exists("slow")
    assert await states(store) == []
    await collect_and_check(store, clock)
    assert await data_objects(store) == []


async def test_a_gc_cancelled_during_a_hung_delete_is_finished_by_the_next_run(
    store: BlobStore, clock: FakeClock
) -> None:
    """A GC cancelled in a hung storage delete leaves only tombstones, which the next GC finishes."""
    storage = faulty(store)
    acme = store.tenant("acme")
    await acme.put("doomed", b"doomed")
    await acme.delete("doomed")
    await acme.put("kept", b"kept")
    clock.advance(GRACE + 1)
    await cancelled_when_hit(storage.inject(Fault("delete_many", hang=True)), store.gc())
    assert await states(store) == ["deleting", "live"]
    assert await acme.get("kept") == b"kept"
    assert (await store.gc()).blobs_reclaimed == 1
    assert await invariant_violations(store) == []


async def test_operations_cancelled_at_any_moment_are_all_or_nothing(store: BlobStore, clock: FakeClock) -> None:
    """Puts, copies and deletes cancelled at random moments each took effect entirely or not at all.

    Slow storage makes every phase reachable; a concurrent reader never meets a key whose bytes are unreadable,
    no cancelled operation leaves a lock behind, counts stay exact and GC leaves no leak.
    """
    storage = faulty(store)
    storage.inject(Fault("write", delay=0.02, times=None))
    rng = random.Random(7)
    acme = store.tenant("acme")
    keys = ["a", "b", "c"]
    pool = [f"value {i}".encode() * (i + 1) for i in range(4)]
    model: dict[str, bytes] = {}
    problems: list[str] = []
    stop = asyncio.Event()
    reader = asyncio.create_task(poll(store, keys, problems, stop))
    cancelled = 0
    for _ in range(40):
        key, other, data = rng.choice(keys), rng.choice(keys), rng.choice(pool)
        kind = rng.choice(["put", "put", "copy", "delete"])
        if kind == "copy" and other not in model:
            kind = "put"
        operation: Awaitable[Any]
        if kind == "put":
            operation = acme.put(key, data)
        elif kind == "copy":
            operation = acme.copy(other, key)
        else:
            operation = acme.delete(key)
        task = asyncio.ensure_future(operation)
        await asyncio.sleep(rng.uniform(0, 0.025))  # about the time of a put's slow write
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            cancelled += 1
        new = {"put": data, "copy": model.get(other), "delete": None}[kind]
        try:  # promptly: a cancelled operation must not leave a lock that makes others wait
            now: bytes | None = await asyncio.wait_for(acme.get(key), 10)
        except NotFound:
            now = None
        assert now in (model.get(key), new), f"{kind} {key} left {now!r}"
        if now is None:
            model.pop(key, None)
        else:
            model[key] = now
        assert await invariant_violations(store, quiescent=False) == []
    stop.set()
    await reader
    assert problems == []
    assert cancelled > 10
    for key, data in model.items():
        assert await acme.get(key) == data
    await collect_and_check(store, clock)


# --- database connections --------------------------------------------------------------------------


def kill_own_connection_once(real: Callable[..., Awaitable[Any]], killed: list[int]) -> Callable[..., Awaitable[Any]]:
    """Wrap a query function so that, the first time, its transaction's PostgreSQL backend is terminated
    (from another connection) just before the query runs."""

    async def wrapper(conn: AsyncConnection, *args: Any, **kwargs: Any) -> Any:
        if not killed:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            async with conn.engine.connect() as other:
                await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            killed.append(pid)
        return await real(conn, *args, **kwargs)

    return wrapper


@pytest.mark.parametrize(
    ("module", "name"), [(batches, "add_refcounts"), (batches, "delete_refs"), (maintenance, "tombstone")]
)
@pytest.mark.postgres
async def test_a_connection_terminated_mid_transaction_is_retried_transparently(
    open_store: StoreFactory, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, module: Any, name: str
) -> None:
    """A PostgreSQL backend terminated mid-transaction is replayed on a new connection; the operation succeeds once.

    Killed in a batch put's commit (before the statement that promotes the uploads and counts their
    references), a delete (before it deletes the reference), or a GC tombstone. (A single put's transactions
    run on the driver connection: tests/store/test_hot_path.py kills them.)
    """
    store = await open_store("postgres-s3")
    acme = store.tenant("acme")
    await acme.put("kept", b"kept")
    await acme.put("doomed", b"doomed")
    killed: list[int] = []
    monkeypatch.setattr(module, name, kill_own_connection_once(getattr(module, name), killed))
    if name == "add_refcounts":
        await _put_two_new(acme)
    elif name == "delete_refs":
        assert await acme.delete("doomed") is True
        assert not await acme.exists("doomed")
    else:
        await acme.delete("doomed")
        clock.advance(GRACE + 1)
        assert (await store.gc()).blobs_reclaimed == 1
    assert len(killed) == 1
    assert await acme.get("kept") == b"kept"
    assert await invariant_violations(store, quiescent=False) == []
    await collect_and_check(store, clock)


async def _put_two_new(tenant: Tenant) -> None:
    """A batch of two puts of new bytes (the general path: one transaction reserves both, one commits both)."""
    outcomes = await tenant.put_many([PutItem("new", b"new bytes"), PutItem("other", b"other new bytes")])
    assert all(isinstance(outcome, BlobInfo) for outcome in outcomes), outcomes
    assert await tenant.get("new") == b"new bytes"
    assert await tenant.get("other") == b"other new bytes"


@pytest.mark.postgres
async def test_pooled_connections_dropped_by_the_server_are_replaced_transparently(
    open_store: StoreFactory, clock: FakeClock
) -> None:
    """After PostgreSQL drops every idle pooled connection (a restart, a failover), the next operations succeed."""
    store = await open_store("postgres-s3")
    acme = store.tenant("acme")
    await acme.put("a", b"before")
    await acme.put("gone", b"doomed")
    killer = Database(store.settings.database_url)
    try:
        async with killer.engine.connect() as conn:
            dropped = (
                await conn.execute(
                    text(
                        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            ).scalar_one()
    finally:
        await killer.dispose()
    assert dropped >= 1
    await acme.put("b", b"after")
    assert await acme.get("a") == b"before"
    assert await acme.delete("gone") is True
    clock.advance(GRACE + 1)
    assert (await store.gc()).blobs_reclaimed == 1
    assert await invariant_violations(store) == []


class LostReply:
    """An engine whose next transaction, once armed, commits but reports a dropped connection instead."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.armed = False
        self.lost = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn
        if self.armed:
            self.armed = False
            self.lost += 1
            raise DBAPIError("COMMIT", None, ConnectionResetError("injected: reply lost"), connection_invalidated=True)


@pytest.mark.parametrize(
    ("module", "name"),
    [(batches, "insert_uploads"), (batches, "add_refcounts"), (binding, "bind"), (batches, "delete_refs")],
)
async def test_a_lost_commit_reply_is_replayed_without_double_counting(
    store: BlobStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, module: Any, name: str
) -> None:
    """A commit whose reply was lost is replayed: the operation succeeds once and no count drifts.

    Lost after a batch put's reservation of its uploads, its commit, a copy, and a delete. (A single put's
    transactions run on the driver connection: tests/store/test_hot_path.py loses their replies.)
    """
    engine = LostReply(store.database.engine)
    monkeypatch.setattr(store.database, "engine", engine)
    real = getattr(module, name)

    async def arming(*args: Any, **kwargs: Any) -> Any:
        engine.armed = engine.lost == 0
        return await real(*args, **kwargs)

    acme = store.tenant("acme")
    await acme.put("old", b"old")
    monkeypatch.setattr(module, name, arming)
    if name == "delete_refs":
        await acme.delete("old")
        assert not await acme.exists("old")
    elif name == "bind":
        await acme.copy("old", "copy")
        assert await acme.get("copy") == b"old"
    else:
        await _put_two_new(acme)
    assert engine.lost == 1
    assert await invariant_violations(store, quiescent=False) == []
    await collect_and_check(store, clock)
