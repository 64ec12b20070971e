"""Database.snapshot: read-only work whose statements all see one snapshot, on SQLite (a deferred
transaction in WAL mode) and on PostgreSQL (REPEATABLE READ, READ ONLY), so figures read by several
queries (the cost report's) add up even while writers commit in between."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from blobstore.db.catalog import refs
from tests.support.stores import StoreFactory


async def test_a_snapshot_read_does_not_see_a_write_committed_between_its_statements(
    open_store: StoreFactory, deployment: str
) -> None:
    reader = await open_store(deployment)
    writer = await open_store(deployment)  # another process of the deployment: its own connections
    await writer.tenant("acme").put("first", b"first")
    read_once = asyncio.Event()
    written = asyncio.Event()

    async def count(conn: AsyncConnection) -> int:
        return int((await conn.execute(select(func.count()).select_from(refs))).scalar_one())

    async def twice(conn: AsyncConnection) -> tuple[int, int]:
        before = await count(conn)
        read_once.set()
        await written.wait()
        return before, await count(conn)

    async def write_between() -> None:
        await read_once.wait()
        await writer.tenant("acme").put("second", b"second")
        written.set()

    counts, _ = await asyncio.wait_for(asyncio.gather(reader.database.snapshot(twice), write_between()), 60)
    assert counts == (1, 1)
    assert await reader.database.read(count) == 2  # the write was committed all along
