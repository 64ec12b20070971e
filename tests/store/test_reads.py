"""The read path: reads take no write lock, write nothing synchronously, and egress stays exact."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blobstore import BlobStore, StorageUnavailable
from blobstore.core import egress
from tests.support.stores import StoreFactory
from tests.support.workers import rows


@contextlib.contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Another process's writer: a raw connection holding the SQLite write lock (``BEGIN IMMEDIATE``)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


async def test_sqlite_reads_go_on_while_another_process_holds_the_write_lock(open_store: StoreFactory) -> None:
    """stat, exists, get, list and stat_many answer while a writer holds the lock (they would wait 60 s)."""
    store = await open_store("sqlite-local")
    acme = store.tenant("acme")
    await acme.put("k", b"value")
    assert store.settings.sqlite_file is not None
    with write_lock_held(store.settings.sqlite_file):

        async def reads() -> None:
            assert (await acme.stat("k")).size == 5
            assert await acme.exists("k")
            assert await acme.get("k") == b"value"
            assert [info.key for info in await acme.list()] == ["k"]
            assert len(await acme.stat_many(["k"])) == 1

        await asyncio.wait_for(reads(), timeout=30)


async def test_a_read_writes_no_egress_on_its_path_yet_reports_count_it_exactly(store: BlobStore) -> None:
    """After a get the egress table is untouched; a report (or usage) written after it counts every byte."""
    acme = store.tenant("acme")
    await acme.put("k", b"x" * 100)
    await acme.get("k")
    async with acme.open("k", byte_range=(0, 9)) as stream:
        await stream.read()
    assert await rows(store, "SELECT bytes FROM egress") == []
    assert (await store.report(tenant="acme")).tenants[0].egress_bytes == 110
    assert await rows(store, "SELECT bytes FROM egress") == [(110,)]


async def test_egress_held_at_close_is_written(open_store: StoreFactory, deployment: str) -> None:
    """A store closed right after reads writes their egress; another store's report sees it."""
    first = await open_store(deployment)
    await first.tenant("acme").put("k", b"y" * 7)
    await first.tenant("acme").get("k")
    await first.close()
    second = await open_store(deployment)
    assert (await second.report(tenant="acme")).tenants[0].egress_bytes == 7


async def test_egress_whose_write_fails_is_kept_for_the_next(store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed egress write loses nothing: the report fails, the next one counts every byte once."""
    acme = store.tenant("acme")
    await acme.put("k", b"z" * 10)
    await acme.get("k")
    real = egress.record_many
    failures: list[int] = []

    async def failing_once(conn: Any, counts: Any) -> None:
        if not failures:
            failures.append(1)
            raise StorageUnavailable("injected: the database is away")
        await real(conn, counts)

    monkeypatch.setattr(egress, "record_many", failing_once)
    with pytest.raises(StorageUnavailable):
        await store.report(tenant="acme")
    await acme.get("k")
    assert (await store.report(tenant="acme")).tenants[0].egress_bytes == 20
