"""The hot path on the driver connection (blobstore.db.hot_path) does what the general path through
SQLAlchemy does: the same outcomes and the same rows for a single put, the same reference for a stat;
driver errors go through the one translation boundary (Database.on_driver) into the same replays and the
same StorageUnavailable; a lost COMMIT reply or a killed backend is replayed without double counting.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from blobstore import BlobInfo, BlobStore, BlobStoreError, StorageUnavailable
from blobstore.accounting import quotas
from blobstore.db import catalog, hot_path
from blobstore.db.engine import Database, Driver
from blobstore.model.s3_facts import S3Facts
from blobstore.protocol.uploads import Uploader
from tests.support.stores import FakeClock, StoreFactory
from tests.support.workers import invariant_violations, rows

#: The S3 facts some puts of the scenario carry.
_FACTS = S3Facts("a" * 32, {"crc32": "AAAAAA==", "sha256": "b" * 44})


def _general_path_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bind every put through blobstore.db.binding on SQLAlchemy, as before the hot path."""

    async def not_at_once(_self: Uploader, *_items: object) -> None:
        return None

    monkeypatch.setattr(Uploader, "_bound_or_recorded_at_once", not_at_once)
    monkeypatch.setattr(Uploader, "_committed_at_once", not_at_once)


async def _scenario(store: BlobStore, prefix: str) -> tuple[list[object], list[str]]:
    """Single puts covering every decision of a binding, by tenants and bytes of their own (``prefix``):
    each step's outcome without the names and digests that differ between prefixes, and the two digests."""
    acme, other = store.tenant(f"{prefix}-acme"), store.tenant(f"{prefix}-other")
    one, two, three = f"{prefix} one".encode(), f"{prefix} two".encode(), f"{prefix} three".encode()
    first, third = await acme.put("a", one), await acme.put("t", three)
    steps: list[Callable[[], Awaitable[object]]] = [
        lambda: acme.put("b", one, content_type="text/plain", metadata={"m": "1"}),  # dedup hit, new key
        lambda: acme.put("b", two),  # new bytes replacing a key
        lambda: acme.put("a", two),  # dedup hit replacing a key: its old blob loses its last reference
        lambda: acme.put("a", two),  # the same bytes again
        lambda: acme.put("u", three),  # dedup hit
        lambda: acme.put("e", three, expires_in=3600),  # dedup hit that expires
        lambda: acme.put("e", one),  # dedup hit replacing it: no expiry of its own any more
        lambda: acme.put("g", two, expires_in=60),  # dedup hit that expires, kept
        lambda: acme.put("t", two),  # dedup hit replacing a key: its old blob keeps a reference
        lambda: acme.put("u", two),  # ... and loses its last one, for good
        lambda: acme.put_with_headers(
            "b", one, if_absent=True, headers={}, s3_facts=lambda: _FACTS
        ),  # AlreadyExists: no facts recorded
        lambda: acme.put_with_headers("s", one, headers={}, s3_facts=lambda: _FACTS),  # dedup hit with its S3 facts
        lambda: other.put_with_headers(
            "s", three, headers={}, s3_facts=lambda: S3Facts("c" * 32)
        ),  # new bytes with an MD5 alone
        lambda: acme.put("a", one, if_match=first.digest),  # PreconditionFailed: "a" moved on
        lambda: acme.put("c", one, if_match="*"),  # PreconditionFailed: no such key
        lambda: other.put("x", two),  # a new tenant's first put, a dedup hit
        lambda: store.set_quota(other.name, max_objects=1, max_bytes=100),
        lambda: other.put("y", two),  # QuotaExceeded (objects)
        lambda: other.put("x", one),  # a replacement within the quota
        lambda: other.put("x", b"x" * 101),  # QuotaExceeded (bytes), before any upload
    ]
    outcomes: list[object] = []
    for step in steps:
        try:
            outcome = await step()
        except BlobStoreError as exc:
            outcomes.append(type(exc).__name__)
            continue
        if isinstance(outcome, BlobInfo):
            info = (outcome.key, outcome.size, outcome.content_type, outcome.metadata, outcome.created_at)
            outcomes.append((*info, outcome.deduplicated, outcome.replaced))
    return outcomes, [first.digest, (await acme.stat("a")).digest, third.digest]


async def _snapshot(store: BlobStore, prefix: str, digests: list[str]) -> dict[str, list[Any]]:
    """The run's rows: its tenants, their references and the blobs of its bytes, without names and digests."""
    label = {f"{prefix}-acme": "acme", f"{prefix}-other": "other"}
    tenants = await rows(
        store,
        "SELECT name, used_bytes, used_objects, max_bytes, max_objects FROM tenants WHERE name LIKE :p ORDER BY name",
        p=f"{prefix}-%",
    )
    refs = await rows(
        store,
        "SELECT t.name, r.key, b.digest, r.size, r.content_type, r.metadata, r.created_at, r.expires_at "
        "FROM refs r "
        "JOIN tenants t ON t.id = r.tenant_id JOIN blobs b ON b.id = r.blob_id WHERE t.name LIKE :p "
        "ORDER BY t.name, r.key",
        p=f"{prefix}-%",
    )
    blobs = await rows(
        store,
        "SELECT digest, state, refcount, unreferenced_since FROM blobs WHERE digest IN (:one, :two, :three)",
        one=digests[0],
        two=digests[1],
        three=digests[2],
    )
    facts = await rows(
        store,
        "SELECT t.name, e.digest, e.md5, c.algorithm, c.value FROM etags e JOIN tenants t ON t.id = e.tenant_id "
        "LEFT JOIN checksums c ON c.tenant_id = e.tenant_id AND c.digest = e.digest WHERE t.name LIKE :p",
        p=f"{prefix}-%",
    )
    return {
        "facts": sorted((label[row[0]], digests.index(row[1]), *row[2:]) for row in facts),
        "tenants": [(label[row[0]], *row[1:]) for row in tenants],
        "refs": [(label[row[0]], row[1], digests.index(row[2]), *row[3:]) for row in refs],
        "blobs": sorted((digests.index(row[0]), *row[1:]) for row in blobs),
    }


async def test_a_single_put_writes_what_the_general_path_writes(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same puts, once bound on SQLAlchemy and once on the driver connection: the same outcomes, rows."""
    with monkeypatch.context() as patched:
        _general_path_only(patched)
        general, general_digests = await _scenario(store, "g")
    hot, hot_digests = await _scenario(store, "h")
    assert hot == general
    snapshot = await _snapshot(store, "h", hot_digests)
    assert snapshot == await _snapshot(store, "g", general_digests)
    assert snapshot["facts"] == [
        ("acme", 0, "a" * 32, "crc32", "AAAAAA=="),
        ("acme", 0, "a" * 32, "sha256", "b" * 44),
        ("other", 2, "c" * 32, None, None),
    ]
    assert await invariant_violations(store, quiescent=False) == []


async def test_a_stat_reads_what_the_general_path_reads(store: BlobStore) -> None:
    acme = store.tenant("acme")
    await acme.put("k", b"bytes", content_type="text/plain", metadata={"a": "1", "b": "two"})
    await store.tenant("other").put("theirs", b"bytes")

    async def general(tenant: str, key: str) -> catalog.RefRow | None:
        return await store.database.read(lambda conn: catalog.find_ref_named(conn, tenant, key))

    for tenant, key in [("acme", "k"), ("acme", "missing"), ("acme", "theirs"), ("nobody", "k")]:
        assert await hot_path.find_ref_named(store.database, tenant, key) == await general(tenant, key)
    found = await hot_path.find_ref_named(store.database, "acme", "k")
    assert found is not None
    assert found.created_at.tzinfo is not None


async def test_a_puts_room_is_the_tenants_usage_and_the_size_it_replaces(store: BlobStore) -> None:
    """:func:`hot_path.room` (the HTTP put's quota pre-check) reads what the SQLAlchemy queries read."""
    acme = store.tenant("acme")
    await acme.put("k", b"12345")
    await store.tenant("other").put("theirs", b"123")
    await store.set_quota("acme", max_bytes=100)
    [row] = await store.database.read(lambda conn: quotas.tenant_rows(conn, "acme"))
    usage = catalog.Usage(row.used_bytes, row.used_objects, row.max_bytes, row.max_objects)
    assert usage == catalog.Usage(5, 1, 100, None)

    assert await hot_path.room(store.database, "acme", "k") == (usage, 5)
    assert await hot_path.room(store.database, "acme", "theirs") == (usage, None)
    assert await hot_path.room(store.database, "nobody", "k") is None


async def test_a_lost_commit_reply_of_a_dedup_put_is_replayed_without_double_counting(
    store: BlobStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The put's transaction commits, its reply is lost (the connection dropped): the replay finds the key
    bound to the blob already and counts nothing twice."""
    acme = store.tenant("acme")
    await acme.put("seed", b"shared bytes")
    real = Database.on_driver
    lost: list[int] = []

    async def reply_lost(self: Database, work: Callable[[Driver], Awaitable[Any]]) -> Any:
        async def committed_then_lost(driver: Driver) -> Any:
            result = await work(driver)
            if not lost:
                lost.append(1)
                raise OSError("injected: the COMMIT reply was lost")
            return result

        return await real(self, committed_then_lost)

    monkeypatch.setattr(Database, "on_driver", reply_lost)
    info = await acme.put("again", b"shared bytes")
    assert lost == [1]
    assert info.deduplicated
    assert (await store.quota("acme")).used_objects == 2
    assert await invariant_violations(store, quiescent=False) == []


def _reply_lost_on_call(monkeypatch: pytest.MonkeyPatch, call: int) -> list[int]:
    """Make the ``call``-th transaction on the driver connection (1-based) commit and then lose its reply (the
    connection drops); the list returned fills with the number of that call once it happened."""
    real = Database.on_driver
    calls: list[int] = []
    lost: list[int] = []

    async def reply_lost(self: Database, work: Callable[[Driver], Awaitable[Any]]) -> Any:
        calls.append(1)
        number = len(calls)

        async def committed_then_lost(driver: Driver) -> Any:
            result = await work(driver)
            if number == call and not lost:
                lost.append(number)
                raise OSError("injected: the COMMIT reply was lost")
            return result

        return await real(self, committed_then_lost)

    monkeypatch.setattr(Database, "on_driver", reply_lost)
    return lost


async def test_a_lost_commit_reply_of_a_unique_puts_record_gets_a_fresh_key_and_gc_reclaims_the_first(
    store: BlobStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transaction recording a new upload commits, its reply is lost: the replay records the upload again
    under an object key of its own (no collision with the committed row), the put succeeds once, and the
    lost attempt's row is an abandoned upload GC reclaims once its lease lapsed."""
    acme = store.tenant("acme")
    lost = _reply_lost_on_call(monkeypatch, 1)
    info = await acme.put("new", b"bytes nobody stored before")
    assert lost == [1]
    assert not info.deduplicated
    found = await rows(store, "SELECT state, object_key FROM blobs WHERE digest = :d ORDER BY id", d=info.digest)
    assert [state for state, _ in found] == ["uploading", "live"]
    assert len({key for _, key in found}) == 2
    clock.advance_past_real_time(store.settings.upload_lease_seconds + store.settings.gc_grace_seconds + 1)
    assert (await store.gc()).blobs_reclaimed == 1
    assert await invariant_violations(store) == []
    assert await acme.get("new") == b"bytes nobody stored before"
    assert (await store.quota("acme")).used_objects == 1


async def test_a_lost_commit_reply_of_a_unique_puts_commit_is_replayed_without_double_counting(
    store: BlobStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit binding the written upload commits, its reply is lost: the replay finds the key bound to the
    upload, now live, and counts nothing twice; the upload stays (it is the key's blob)."""
    acme = store.tenant("acme")
    await acme.put("seed", b"warm the tenant row")
    lost = _reply_lost_on_call(monkeypatch, 2)
    info = await acme.put("new", b"bytes nobody stored before")
    assert lost == [2]
    assert info.size == len(b"bytes nobody stored before")
    found = await rows(store, "SELECT state, refcount FROM blobs WHERE digest = :d", d=info.digest)
    assert found == [("live", 1)]
    quota = await store.quota("acme")
    assert (quota.used_objects, quota.used_bytes) == (2, len(b"warm the tenant row") + info.size)
    assert await invariant_violations(store, quiescent=False) == []
    clock.advance_past_real_time(store.settings.upload_lease_seconds + store.settings.gc_grace_seconds + 1)
    assert (await store.gc()).blobs_reclaimed == 0
    assert await acme.get("new") == b"bytes nobody stored before"


@pytest.mark.postgres
async def test_a_backend_killed_before_a_dedup_put_is_replayed_on_a_new_connection(
    open_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_store("postgres-s3")
    acme = store.tenant("acme")
    await acme.put("seed", b"shared bytes")
    real = hot_path._postgres_put_one
    killed: list[int] = []

    async def killing(driver: Driver, *args: Any) -> Any:
        if not killed:
            killed.append(driver.connection.get_server_pid())
            async with store.database.engine.connect() as other:
                await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": killed[0]})
        return await real(driver, *args)

    monkeypatch.setattr(hot_path, "_postgres_put_one", killing)
    assert (await acme.put("again", b"shared bytes")).deduplicated
    assert len(killed) == 1
    assert (await store.quota("acme")).used_objects == 2
    assert await invariant_violations(store, quiescent=False) == []


@pytest.mark.postgres
async def test_a_backend_killed_in_a_unique_puts_commit_is_replayed_on_a_new_connection(
    open_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backend dies as the commit of a put of new bytes begins: the commit runs again on a new connection
    and binds the written upload once."""
    store = await open_store("postgres-s3")
    acme = store.tenant("acme")
    await acme.put("seed", b"warm the tenant row")
    real = hot_path._postgres_bind
    killed: list[int] = []

    async def killing_the_commit(driver: Driver, attempt: Any) -> Any:
        if attempt.ours is not None and not killed:
            killed.append(driver.connection.get_server_pid())
            async with store.database.engine.connect() as other:
                await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": killed[0]})
        return await real(driver, attempt)

    monkeypatch.setattr(hot_path, "_postgres_bind", killing_the_commit)
    info = await acme.put("new", b"bytes nobody stored before")
    assert not info.deduplicated
    assert len(killed) == 1
    assert await acme.get("new") == b"bytes nobody stored before"
    assert (await store.quota("acme")).used_objects == 2
    assert await invariant_violations(store, quiescent=False) == []


def _failing(errors: list[Exception]) -> Callable[[Driver], Awaitable[str]]:
    """Work that raises each of ``errors`` in turn, then returns "done"."""

    async def work(_driver: Driver) -> str:
        if errors:
            raise errors.pop(0)
        return "done"

    return work


async def test_a_transient_driver_error_is_replayed(open_store: StoreFactory) -> None:
    store = await open_store("sqlite-local")
    errors: list[Exception] = [sqlite3.OperationalError("database is locked")] * 2
    assert await store.database.on_driver(_failing(errors)) == "done"
    assert errors == []


async def test_a_driver_outage_is_storage_unavailable(open_store: StoreFactory) -> None:
    store = await open_store("sqlite-local")
    with pytest.raises(StorageUnavailable, match="disk I/O error"):
        await store.database.on_driver(_failing([sqlite3.OperationalError("disk I/O error")]))


async def test_a_driver_error_that_is_no_outage_is_raised_as_sqlalchemy_raises_it(open_store: StoreFactory) -> None:
    store = await open_store("sqlite-local")
    with pytest.raises(DBAPIError) as raised:
        await store.database.on_driver(_failing([sqlite3.IntegrityError("FOREIGN KEY constraint failed")]))
    assert isinstance(raised.value.orig, sqlite3.IntegrityError)


@pytest.mark.postgres
async def test_a_postgres_conflict_is_replayed(open_store: StoreFactory) -> None:
    import asyncpg

    store = await open_store("postgres-s3")
    errors: list[Exception] = [
        asyncpg.SerializationError("could not serialize"),
        asyncpg.DeadlockDetectedError("deadlock"),
    ]
    assert await store.database.on_driver(_failing(errors)) == "done"
    assert errors == []
