"""A write that waits for a blob row another transaction holds still sees the blob once it gets the lock.

Reproduces what the soak found on PostgreSQL: a copy whose source blob another tenant's put held locked
failed with "a referenced blob is always live". The lookup that read the candidate blobs and locked them
in one statement (a semi-join over a union, FOR UPDATE OF blobs) could return a row it had not waited
for, and drop one it had (PostgreSQL re-checks a row that changed while it waited against the whole
WHERE clause). Now the candidates are read first and locked by id in a second statement. Enough rows that the
planner picks the plans it picks in production; the other transaction holds the row as any writer does,
by updating it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

import pytest
from sqlalchemy import text

from blobstore import BlobStore, PutItem, Tenant
from blobstore.db import batches
from tests.support.stores import StoreFactory

T = TypeVar("T")

#: Whether a session waits for a lock the session ``holder`` (a backend pid) holds.
BLOCKED_BY = text("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted AND :holder = ANY(pg_blocking_pids(pid)))")


async def _seeded(open_store: StoreFactory) -> tuple[BlobStore, Tenant]:
    """acme's ``target`` and ``source`` on two blobs another tenant shares, then many other blobs."""
    store = await open_store("postgres-s3")
    acme, other = store.tenant("acme"), store.tenant("other")
    await acme.put("target", b"")
    await acme.put("source", b"the source bytes")
    await other.put("empty", b"")
    await other.put("same", b"the source bytes")
    for n in range(4):
        await store.tenant(f"filler{n}").put_many([PutItem(f"k{i}", f"{n}-{i}".encode()) for i in range(1000)])
    async with store.database.engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
        await conn.commit()
    return store, acme


async def _ids(store: BlobStore) -> tuple[int, dict[str, int]]:
    """acme's tenant id, and the blob id of each of its keys."""
    async with store.database.engine.connect() as conn:
        tenant = (await conn.execute(text("SELECT id FROM tenants WHERE name = 'acme'"))).scalar_one()
        query = text("SELECT key, blob_id FROM refs WHERE tenant_id = :t")
        return tenant, {row[0]: row[1] for row in await conn.execute(query, {"t": tenant})}


async def _while_row_is_held(store: BlobStore, blob_id: int, work: Awaitable[T]) -> tuple[T, bool]:
    """Run ``work`` while another transaction holds the blob's row, released once PostgreSQL shows ``work``
    waiting for that transaction's lock (or ``work`` is done): its result, and whether it waited."""
    async with store.database.engine.connect() as holder, store.database.engine.connect() as observer:
        holder_pid = (await holder.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await holder.execute(text("UPDATE blobs SET refcount = refcount + 1 WHERE id = :i"), {"i": blob_id})
        pending = asyncio.ensure_future(work)
        waited = False
        deadline = time.monotonic() + 60
        while not (waited or pending.done()):
            assert time.monotonic() < deadline, "the work neither waited for the row nor finished"
            waited = bool((await observer.execute(BLOCKED_BY, {"holder": holder_pid})).scalar_one())
            await observer.rollback()  # the next look sees the server as it is then
            await asyncio.sleep(0.01)
        await holder.rollback()
        return await pending, waited


@pytest.mark.postgres
async def test_a_lookup_waiting_for_a_named_blob_returns_it_locked(open_store: StoreFactory) -> None:
    """The lookup of a copy (the target's blob, the source's blob by id) while the source's row is held."""
    store, _ = await _seeded(open_store)
    tenant, blob_of = await _ids(store)
    for held in ([blob_of["target"]], [blob_of["source"]]):
        async with store.database.engine.connect() as conn, conn.begin():
            lookup = batches.lookup(conn, tenant, "", ["target"], set(), {blob_of["source"]})
            found, waited = await _while_row_is_held(store, held[0], lookup)
        assert sorted(found.blobs) == sorted(blob_of.values()), f"holding {held}"
        assert waited, "the lookup did not wait for the row it locks"
        assert {b.state for b in found.blobs.values()} == {"live"}
        assert {key: (old.blob_id, old.size) for key, old in found.olds.items()} == {"target": (blob_of["target"], 0)}


@pytest.mark.postgres
async def test_a_copy_whose_source_blob_is_held_waits_and_copies(open_store: StoreFactory) -> None:
    store, acme = await _seeded(open_store)
    _, blob_of = await _ids(store)
    info, waited = await _while_row_is_held(store, blob_of["source"], acme.copy("source", "target"))
    assert waited
    assert info.deduplicated
    assert await acme.get("target") == b"the source bytes"
