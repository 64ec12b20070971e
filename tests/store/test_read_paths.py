"""Read-only paths run as reads (Database.read): on SQLite they send no BEGIN IMMEDIATE, so they never queue
behind a writer, in this process or another: authentication, token listing, quota and usage reads, the
missing-digest probe, the pairing checks of every open, and the scans of GC and fsck (their tombstones and
repairs stay write transactions)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from sqlalchemy.engine import make_url

from blobstore import BlobStore
from blobstore.accounting import holdings
from blobstore.auth import tokens
from blobstore.core import identity
from blobstore.testing.statements import begins_sent, statements_sent
from tests.support.live_server import serving
from tests.support.stores import FakeClock, StoreFactory

#: How long the other connection holds the write lock at most, so a read that waits for it fails the test
#: instead of hanging it (SQLite's busy timeout, 60 s, outlasts it).
HOLD_AT_MOST = 20.0


@pytest.fixture
async def sqlite_store(open_store: StoreFactory, clock: FakeClock) -> BlobStore:
    """A SQLite store holding a kept key and a deleted one (reclaimable), with the clock past GC's grace."""
    store = await open_store("sqlite-local")
    acme = store.tenant("acme")
    await acme.put("kept", b"kept bytes")
    await acme.put("doomed", b"doomed bytes")
    await acme.delete("doomed")
    await store.set_quota("acme", max_bytes=10_000)
    clock.advance(store.settings.gc_grace_seconds + 60)
    return store


READ_ONLY_PATHS: dict[str, Callable[[BlobStore], Awaitable[object]]] = {
    "list-tokens": lambda store: tokens.list_tokens(store.core, "acme"),
    "quota": lambda store: store.quota("acme"),
    "tenants": lambda store: store.tenants(),
    "usage": lambda store: holdings.usage(store.core, "acme"),
    "missing": lambda store: holdings.missing(store.core, "acme", ["0" * 64, "f" * 64]),
    "gc-dry-run": lambda store: store.gc(dry_run=True),
    "fsck": lambda store: store.fsck(read_data=True),
    "pairing-at-open": lambda store: identity.pair(store.database, store.storage),
}


@pytest.mark.parametrize("path", list(READ_ONLY_PATHS))
async def test_a_read_only_path_takes_no_write_lock(sqlite_store: BlobStore, path: str) -> None:
    """Each read-only path reads the database without ever opening a write transaction."""
    with statements_sent(sqlite_store) as sent, begins_sent(sqlite_store) as begun:
        await READ_ONLY_PATHS[path](sqlite_store)
    assert sent, "the path never reached the database"
    assert begun == [], sent


async def test_authentication_takes_no_write_lock(sqlite_store: BlobStore) -> None:
    """Checking a token (every HTTP request does) is one read."""
    new = await tokens.create(sqlite_store.core, "acme")
    with statements_sent(sqlite_store) as sent, begins_sent(sqlite_store) as begun:
        info = await tokens.authenticate(sqlite_store.core, new.token)
    assert info.tenant == "acme"
    assert len(sent) == 1, sent
    assert begun == []


async def test_a_gc_with_nothing_to_reclaim_takes_no_write_lock(sqlite_store: BlobStore) -> None:
    """A GC run writes only to tombstone and forget what it reclaims; its scans (blobs, orphans) are reads."""
    first = await sqlite_store.gc()
    assert first.blobs_reclaimed == 1
    with statements_sent(sqlite_store) as sent, begins_sent(sqlite_store) as begun:
        again = await sqlite_store.gc()
    assert (again.blobs_reclaimed, again.orphans_deleted) == (0, 0)
    assert len(sent) >= 2, sent  # the blob scan, and the orphan check of the kept blob's object
    assert begun == [], sent


async def test_gc_still_tombstones_in_a_write_transaction(sqlite_store: BlobStore) -> None:
    """What decides a deletion stays a write transaction: the tombstone re-checks the plan under the lock."""
    with begins_sent(sqlite_store) as begun:
        stats = await sqlite_store.gc()
    assert stats.blobs_reclaimed == 1
    assert begun, "the tombstone must run as a write transaction"


class _HeldWriteLock:
    """Another connection to the SQLite file, inside BEGIN IMMEDIATE (holding the write lock) from
    :meth:`take` until :meth:`release` (or :data:`HOLD_AT_MOST` seconds, whichever comes first)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.taken = threading.Event()
        self.release_now = threading.Event()
        self.released = threading.Event()
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=60)
        try:
            conn.execute("BEGIN IMMEDIATE")
            self.taken.set()
            self.release_now.wait(HOLD_AT_MOST)
            conn.execute("ROLLBACK")
        finally:
            self.released.set()
            conn.close()

    async def take(self) -> None:
        self.thread.start()
        assert await asyncio.to_thread(self.taken.wait, 60), "the other connection never got the write lock"

    async def release(self) -> None:
        self.release_now.set()
        await asyncio.to_thread(self.thread.join, 60)


@contextlib.asynccontextmanager
async def write_lock_held_elsewhere(store: BlobStore) -> AsyncIterator[_HeldWriteLock]:
    """While the block runs, another connection holds the write lock of the store's SQLite file."""
    database = make_url(store.settings.database_url).database
    assert database is not None
    lock = _HeldWriteLock(database)
    await lock.take()
    try:
        yield lock
    finally:
        await lock.release()


@pytest.mark.slow  # on code that authenticates in a write transaction it waits HOLD_AT_MOST seconds, then fails
async def test_authenticate_completes_while_another_connection_holds_the_write_lock(sqlite_store: BlobStore) -> None:
    """A writer of another process inside its transaction does not hold up authentication."""
    new = await tokens.create(sqlite_store.core, "acme")
    async with write_lock_held_elsewhere(sqlite_store) as lock:
        info = await tokens.authenticate(sqlite_store.core, new.token)
        still_held = not lock.released.is_set()
    assert info.tenant == "acme"
    assert still_held, "authenticate waited for the other connection's write lock"


@pytest.mark.slow  # a real server; on code that authenticates in a write transaction it waits, then fails
async def test_an_authenticated_get_completes_while_another_connection_holds_the_write_lock(
    sqlite_store: BlobStore, clock: FakeClock
) -> None:
    """An authenticated GET (a listing) answers while a writer of another process holds the database."""
    new = await tokens.create(sqlite_store.core, "acme")
    with serving(sqlite_store.settings, clock=clock) as url:
        headers = {"authorization": f"Bearer {new.token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=2 * HOLD_AT_MOST) as http:
            assert (await http.get("/v1/tenants/acme/objects")).status_code == 200  # the server is warm
            async with write_lock_held_elsewhere(sqlite_store) as lock:
                response = await http.get("/v1/tenants/acme/objects")
                still_held = not lock.released.is_set()
    assert response.status_code == 200, response.text
    assert [item["key"] for item in response.json()["items"]] == ["kept"]
    assert still_held, "the GET waited for the other connection's write lock"


async def test_the_cost_report_takes_no_write_lock(sqlite_store: BlobStore) -> None:
    """The cost report reads every figure in one read transaction: a deferred BEGIN, never BEGIN IMMEDIATE."""
    with statements_sent(sqlite_store) as sent, begins_sent(sqlite_store) as begun:
        report = await sqlite_store.report()
    assert report.total.objects == 1
    assert sent, "the report never reached the database"
    assert [statement for statement in begun if "IMMEDIATE" in statement.upper()] == [], begun


@pytest.mark.slow  # on code that reports in a write transaction it waits HOLD_AT_MOST seconds, then fails
async def test_the_cost_report_completes_while_another_connection_holds_the_write_lock(
    sqlite_store: BlobStore,
) -> None:
    """A writer of another process inside its transaction does not hold up the cost report."""
    async with write_lock_held_elsewhere(sqlite_store) as lock:
        report = await sqlite_store.report()
        still_held = not lock.released.is_set()
    assert [row.tenant for row in report.tenants] == ["acme"]
    assert still_held, "the report waited for the other connection's write lock"
