"""P9: ``Tenant.stat`` of an existing key vs a bare-driver single-row SELECT by primary key, SQLite and PostgreSQL.

Subject: ``stat`` of the same existing key, one call after another.
Baseline: the same number of ``SELECT v FROM bench_rows WHERE k = ?`` on the
same database with the bare driver (aiosqlite with blobstore's pragmas, or
asyncpg), each its own statement outside any explicit transaction. The notes
add a floor in rounds of their own: the baseline's SELECT sent through
blobstore's ``Database.read`` (SQLAlchemy's async layer and pool), the least a
stat through that layer can cost.
"""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from benchmarks.deployments import open_store, postgres_database, raw_postgres, raw_sqlite
from benchmarks.harness import Context, Row, Stopwatch, Target, interleave, phase, throughput_row, unmeasured
from blobstore import BlobStore

TARGET = Target(">=", 0.5)
WHAT = "stat of an existing key"
_CREATE = (
    "CREATE TABLE bench_rows (k VARCHAR(64) PRIMARY KEY, v BIGINT NOT NULL)",
    "INSERT INTO bench_rows (k, v) VALUES ('key', 1)",
)


@dataclass(frozen=True)
class Sizes:
    reads: int  # per batch
    rounds: int


QUICK = Sizes(reads=200, rounds=5)
FULL = Sizes(reads=1000, rounds=11)


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    rows = [await _sqlite(ctx, sizes)]
    if ctx.postgres_admin_url is None:
        rows.append(unmeasured("P9", "postgres", WHAT, TARGET, "skip", "PostgreSQL disabled for this run"))
    else:
        rows.append(await _postgres(ctx, sizes))
    return rows


def batch_of(reads: int, one: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[float]]:
    """A timed batch of ``reads`` calls of ``one``."""

    async def batch() -> float:
        with Stopwatch() as watch:
            for _ in range(reads):
                await one()
        return watch.seconds

    return batch


async def _measure(
    ctx: Context, variant: str, store: BlobStore, bare: Callable[[], Awaitable[object]], sizes: Sizes, note: str
) -> Row:
    tenant = store.tenant("bench")
    await tenant.put("p9/key", b"x" * 4096)
    select = text("SELECT v FROM bench_rows WHERE k = :k")

    async def selected(conn: AsyncConnection) -> object:
        return (await conn.execute(select, {"k": "key"})).first()

    with phase(ctx, f"P9 {variant}"):
        paired = await interleave(
            sizes.rounds, batch_of(sizes.reads, bare), batch_of(sizes.reads, lambda: tenant.stat("p9/key"))
        )
        floor = await interleave(
            sizes.rounds, batch_of(sizes.reads, bare), batch_of(sizes.reads, lambda: store.database.read(selected))
        )
    notes = (
        f"baseline: {note}. Floor, in rounds of its own: the same SELECT through blobstore's Database.read "
        f"(SQLAlchemy) {sizes.reads / statistics.median(floor.subject):.0f} reads/s against "
        f"{sizes.reads / statistics.median(floor.baseline):.0f}/s bare ({floor.speed_ratio():.2f}x)"
    )
    return throughput_row("P9", variant, WHAT, paired, sizes.reads, "stats/s", TARGET, notes)


async def _sqlite(ctx: Context, sizes: Sizes) -> Row:
    home = ctx.workdir / "p9-sqlite"
    async with open_store(home) as store, raw_sqlite(home / "blobstore.db") as raw:
        for sql in _CREATE:
            await raw.execute(sql)

        async def bare() -> object:
            async with raw.execute("SELECT v FROM bench_rows WHERE k = ?", ("key",)) as cursor:
                return await cursor.fetchone()

        return await _measure(ctx, "sqlite", store, bare, sizes, "aiosqlite SELECT by primary key (autocommit)")


async def _postgres(ctx: Context, sizes: Sizes) -> Row:
    home = ctx.workdir / "p9-postgres"
    with postgres_database(ctx) as url:
        async with open_store(home, database_url=url) as store, raw_postgres(url) as raw:
            for sql in _CREATE:
                await raw.execute(sql)

            async def bare() -> object:
                return await raw.fetchrow("SELECT v FROM bench_rows WHERE k = $1", "key")

            return await _measure(ctx, "postgres", store, bare, sizes, "asyncpg fetchrow by primary key (autocommit)")
