"""The one-hop aiosqlite dialect (blobstore.db.sqlite_driver): one hand-off to SQLite's thread per statement,
with SQLAlchemy's results and error translation unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from blobstore import BlobStore
from blobstore.core.config import Settings
from blobstore.db import driver_reads
from blobstore.db.engine import Database


@pytest.fixture
def hand_offs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every call aiosqlite hands to its connection thread."""
    calls: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return calls


async def test_a_stat_is_one_hand_off(tmp_path: Path, hand_offs: list[str]) -> None:
    async with await BlobStore.open(Settings.from_env({"BLOBSTORE_HOME": str(tmp_path)})) as store:
        acme = store.tenant("acme")
        await acme.put("k", b"value")
        hand_offs.clear()
        assert (await acme.stat("k")).size == 5
    # the statement, run to the end on the thread in one call (blobstore.db.driver_reads), and nothing else
    # before the store closes
    one_statement = driver_reads._fetchall.__name__
    assert hand_offs[0] == one_statement, hand_offs
    assert hand_offs.count(one_statement) == 1, hand_offs
    assert "_execute" not in hand_offs, hand_offs
    # the read committed nothing and rolled nothing back; closing the store closes the connection
    assert "commit" not in hand_offs
    assert "rollback" not in hand_offs


async def test_a_write_transaction_is_one_hand_off_per_statement(tmp_path: Path, hand_offs: list[str]) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        await database.transaction(lambda conn: conn.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")))
        hand_offs.clear()

        async def work(conn: Any) -> tuple[int, Any, list[Any]]:
            inserted = await conn.execute(text("INSERT INTO t (k, v) VALUES (1, 'a'), (2, 'b')"))
            updated = await conn.execute(text("UPDATE t SET v = 'c' WHERE k >= 1"))
            rows = (await conn.execute(text("SELECT k, v FROM t ORDER BY k"))).all()
            return updated.rowcount, inserted.lastrowid, rows

        rowcount, lastrowid, rows = await database.transaction(work)
        calls = list(hand_offs)
    finally:
        await database.dispose()
    assert (rowcount, lastrowid, [tuple(row) for row in rows]) == (2, 2, [(1, "c"), (2, "c")])
    # BEGIN IMMEDIATE, three statements, COMMIT; no rollback at check-in after the commit
    assert calls == ["_execute"] * 4 + ["commit"], calls


async def test_driver_errors_are_translated_as_by_sqlalchemy(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with database.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
            await conn.execute(text("INSERT INTO t (k) VALUES (1)"))
        async with database.engine.connect() as conn:
            await conn.execute(text("INSERT INTO t (k) VALUES (2)"))
            with pytest.raises(IntegrityError, match="UNIQUE constraint failed"):
                await conn.execute(text("INSERT INTO t (k) VALUES (1)"))
            await conn.rollback()
            with pytest.raises(OperationalError, match="no such table"):
                await conn.execute(text("SELECT * FROM missing"))
        # the failed transaction was rolled back as a whole: the connection works and holds no lock
        rows = await database.read(lambda conn: conn.execute(text("SELECT k FROM t")))
        assert rows.scalars().all() == [1]
    finally:
        await database.dispose()
