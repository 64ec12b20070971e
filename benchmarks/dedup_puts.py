"""P1: puts per second of 4 KiB blobs whose bytes already exist (dedup hits), on SQLite and PostgreSQL.

Subject: ``Tenant.put`` of the same 4 KiB under new keys, one after another
(hash the bytes, then one transaction binds the key to the existing blob).
Baseline: the same number of raw transactions of two statements (an UPDATE of
a counter row and an INSERT of a row) with the bare driver (aiosqlite with
blobstore's pragmas, or asyncpg) on the same database. The notes add two
floors measured through blobstore's own ``Database.transaction`` (SQLAlchemy's
async layer) in rounds of their own: the same two statements (the cost of the
layer alone), and a transaction of as many statements as one put sends
(counted as it runs), the trivial statements a put could at best become.
"""

from __future__ import annotations

import itertools
import os
import statistics
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from benchmarks.deployments import open_store, postgres_database, raw_postgres, raw_sqlite
from benchmarks.harness import (
    Batch,
    Context,
    Paired,
    Row,
    Stopwatch,
    Target,
    interleave,
    phase,
    throughput_row,
    unmeasured,
)
from blobstore import BlobStore, Tenant
from blobstore.testing.statements import statements_sent

TARGET = Target(">=", 0.5)
WHAT = "puts/s, 4 KiB dedup hits"
BLOB = 4096


@dataclass(frozen=True)
class Sizes:
    puts: int  # per batch
    rounds: int


QUICK = Sizes(puts=40, rounds=9)
FULL = Sizes(puts=100, rounds=21)

_UPDATE = text("UPDATE bench_counter SET n = n + 1 WHERE id = 1")
_INSERT = text("INSERT INTO bench_rows (k, v) VALUES (:k, 1)")
_SELECT = text("SELECT n FROM bench_counter WHERE id = 1")
_CREATE = (
    "CREATE TABLE bench_counter (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)",
    "CREATE TABLE bench_rows (k VARCHAR(64) PRIMARY KEY, v BIGINT NOT NULL)",
    "INSERT INTO bench_counter (id, n) VALUES (1, 0)",
)


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    rows = [await _sqlite(ctx, sizes)]
    if ctx.postgres_admin_url is None:
        rows.append(unmeasured("P1", "postgres", WHAT, TARGET, "skip", "PostgreSQL disabled for this run"))
    else:
        rows.append(await _postgres(ctx, sizes))
    return rows


def _subject(tenant: Tenant, puts: int) -> Callable[[], Awaitable[float]]:
    data = os.urandom(BLOB)
    batches = itertools.count()

    async def batch() -> float:
        number = next(batches)
        with Stopwatch() as watch:
            for i in range(puts):
                await tenant.put(f"p1/{number}/{i}", data)
        return watch.seconds

    return batch


async def _measure(ctx: Context, variant: str, store: BlobStore, baseline: Batch, sizes: Sizes, note: str) -> Row:
    """Interleave the raw baseline with the subject, then with two floors through blobstore's own SQLAlchemy
    transaction runner: the baseline's two statements, and as many statements as a put sends."""
    tenant = store.tenant("bench")
    subject = _subject(tenant, sizes.puts)
    await subject()  # the blob exists from here on
    await tenant.put("p1/counted", b"x" * BLOB)
    with statements_sent(store) as sent:
        await tenant.put("p1/counted-again", b"x" * BLOB)  # a dedup hit of the bytes just stored
    per_put = len(sent)
    seq = itertools.count()
    with phase(ctx, f"P1 {variant}"):
        paired = await interleave(sizes.rounds, baseline, subject)
        two = await interleave(sizes.rounds, baseline, _layered(store, 2, sizes.puts, seq))
        as_many = await interleave(sizes.rounds, baseline, _layered(store, per_put, sizes.puts, seq))
    raw_rate = sizes.puts / statistics.median(two.baseline)
    notes = (
        f"baseline: {note} ({raw_rate:.0f} tx/s in the floors' rounds). Floors through blobstore's "
        f"Database.transaction (SQLAlchemy), in rounds of their own: the same two statements "
        f"{_rate(two, sizes.puts)} tx/s ({two.speed_ratio():.2f}x); {per_put} trivial statements, as many as one "
        f"put sends, {_rate(as_many, sizes.puts)} tx/s ({as_many.speed_ratio():.2f}x)"
    )
    return throughput_row("P1", variant, WHAT, paired, sizes.puts, "puts/s", TARGET, notes)


def _layered(store: BlobStore, statements: int, transactions: int, seq: Iterator[int]) -> Batch:
    """A batch of ``transactions`` transactions of ``statements`` statements (an UPDATE, an INSERT of
    key ``s<next(seq)>``, then SELECTs by primary key) through the store's own transaction runner."""

    async def work(conn: AsyncConnection) -> None:
        await conn.execute(_UPDATE)
        await conn.execute(_INSERT, {"k": f"s{next(seq)}"})
        for _ in range(statements - 2):
            await conn.execute(_SELECT)

    async def batch() -> float:
        with Stopwatch() as watch:
            for _ in range(transactions):
                await store.database.transaction(work)
        return watch.seconds

    return batch


def _rate(paired: Paired, transactions: int) -> str:
    return f"{transactions / statistics.median(paired.subject):.0f}"


async def _sqlite(ctx: Context, sizes: Sizes) -> Row:
    home = ctx.workdir / "p1-sqlite"
    async with open_store(home) as store, raw_sqlite(home / "blobstore.db") as raw:
        await store.tenant("bench").put("p1/seed", b"")  # the tenant exists before timing starts
        for sql in _CREATE:
            await raw.execute(sql)
        seq = itertools.count()

        async def baseline() -> float:
            with Stopwatch() as watch:
                for _ in range(sizes.puts):
                    await raw.execute("BEGIN IMMEDIATE")
                    await raw.execute("UPDATE bench_counter SET n = n + 1 WHERE id = 1")
                    await raw.execute("INSERT INTO bench_rows (k, v) VALUES (?, ?)", (f"r{next(seq)}", 1))
                    await raw.execute("COMMIT")
            return watch.seconds

        note = "aiosqlite BEGIN IMMEDIATE; UPDATE; INSERT; COMMIT with blobstore's pragmas (WAL, synchronous=FULL)"
        return await _measure(ctx, "sqlite", store, baseline, sizes, note)


async def _postgres(ctx: Context, sizes: Sizes) -> Row:
    home = ctx.workdir / "p1-postgres"
    with postgres_database(ctx) as url:
        async with open_store(home, database_url=url) as store, raw_postgres(url) as raw:
            await store.tenant("bench").put("p1/seed", b"")
            for sql in _CREATE:
                await raw.execute(sql)
            seq = itertools.count()

            async def baseline() -> float:
                with Stopwatch() as watch:
                    for _ in range(sizes.puts):
                        async with raw.transaction():
                            await raw.execute("UPDATE bench_counter SET n = n + 1 WHERE id = 1")
                            await raw.execute("INSERT INTO bench_rows (k, v) VALUES ($1, $2)", f"r{next(seq)}", 1)
                return watch.seconds

            note = "asyncpg transaction of UPDATE + INSERT (synchronous_commit as the server sets it)"
            return await _measure(ctx, "postgres", store, baseline, sizes, note)
