"""P9: ``Tenant.stat`` of an existing key vs the bare driver reading the same row, SQLite and PostgreSQL.

Setup: a run of puts into the store (so its tables and SQLite's WAL hold what a working store's do), one
of them the key to stat. Subject: ``stat`` of that key. Baseline: the bare driver reading the same row from
the store's own database (aiosqlite with blobstore's pragmas on the same file, or asyncpg on the same
database): the SELECT a stat needs (the reference by tenant name and key, joined with its blob), each its
own statement outside any explicit transaction. The two alternate call by call (stat, read, read, stat,
...), each call timed on its own; a round sums ``reads`` calls of each side. The notes add a floor, timed
the same way: the baseline's SELECT sent through blobstore's ``Database.read`` (SQLAlchemy's async layer
and pool).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from benchmarks.deployments import open_store, postgres_database, raw_postgres, raw_sqlite
from benchmarks.harness import Context, Paired, Row, Stopwatch, Target, phase, throughput_row, unmeasured
from blobstore import BlobStore

TARGET = Target(">=", 0.5)
WHAT = "stat of an existing key"
TENANT, KEY = "bench", "p9/key"
#: The row a stat reads: the reference by tenant name and key, with its blob.
_SELECT = (
    "SELECT r.key, r.blob_id, b.digest, b.object_key, r.size, r.content_type, r.metadata, r.created_at "
    "FROM refs r JOIN blobs b ON b.id = r.blob_id JOIN tenants t ON t.id = r.tenant_id "
    "WHERE t.name = {tenant} AND r.key = {key}"
)


@dataclass(frozen=True)
class Sizes:
    reads: int  # per side per round
    rounds: int
    puts: int = 20  # before timing starts


QUICK = Sizes(reads=200, rounds=5, puts=200)
FULL = Sizes(reads=1000, rounds=11, puts=1000)


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


async def alternate(
    rounds: int, reads: int, baseline: Callable[[], Awaitable[object]], subject: Callable[[], Awaitable[object]]
) -> Paired:
    """``rounds`` rounds of ``reads`` calls of each side, alternating call by call in ABBA order after one
    untimed call of each; each round's seconds per side are the sum of its calls' own."""
    await baseline()
    await subject()
    paired = Paired([], [])
    for _ in range(rounds):
        spent = {baseline: 0.0, subject: 0.0}
        for call in range(reads):
            for side in (baseline, subject) if call % 2 == 0 else (subject, baseline):
                started = time.perf_counter()
                await side()
                spent[side] += time.perf_counter() - started
        paired.baseline.append(spent[baseline])
        paired.subject.append(spent[subject])
    return paired


async def _measure(
    ctx: Context, variant: str, store: BlobStore, bare: Callable[[], Awaitable[object]], sizes: Sizes, note: str
) -> Row:
    tenant = store.tenant(TENANT)
    select = text(_SELECT.format(tenant=":tenant", key=":key"))

    async def selected(conn: AsyncConnection) -> object:
        return (await conn.execute(select, {"tenant": TENANT, "key": KEY})).first()

    with phase(ctx, f"P9 {variant}"):
        paired = await alternate(sizes.rounds, sizes.reads, bare, lambda: tenant.stat(KEY))
        floor = await alternate(sizes.rounds, sizes.reads, bare, lambda: store.database.read(selected))
    notes = (
        f"baseline: {note}, alternating with the subject call by call after {sizes.puts} puts. Floor, in rounds of "
        f"its own: the same SELECT through blobstore's Database.read (SQLAlchemy) "
        f"{sizes.reads / statistics.median(floor.subject):.0f} reads/s against "
        f"{sizes.reads / statistics.median(floor.baseline):.0f}/s bare ({floor.speed_ratio():.2f}x)"
    )
    return throughput_row("P9", variant, WHAT, paired, sizes.reads, "stats/s", TARGET, notes)


async def _put_run(store: BlobStore, puts: int) -> None:
    """``puts`` puts of small distinct values, the stat's key among them."""
    tenant = store.tenant(TENANT)
    for i in range(puts):
        await tenant.put(KEY if i == puts // 2 else f"p9/{i}", os.urandom(64))


async def _sqlite(ctx: Context, sizes: Sizes) -> Row:
    home = ctx.workdir / "p9-sqlite"
    async with open_store(home) as store:
        await _put_run(store, sizes.puts)
        async with raw_sqlite(home / "blobstore.db") as raw:
            sql = _SELECT.format(tenant="?", key="?")

            async def bare() -> object:
                async with raw.execute(sql, (TENANT, KEY)) as cursor:
                    return await cursor.fetchone()

            note = "aiosqlite SELECT of the row on the store's own database file (autocommit)"
            return await _measure(ctx, "sqlite", store, bare, sizes, note)


async def _postgres(ctx: Context, sizes: Sizes) -> Row:
    home = ctx.workdir / "p9-postgres"
    with postgres_database(ctx) as url:
        async with open_store(home, database_url=url) as store:
            await _put_run(store, sizes.puts)
            async with raw_postgres(url) as raw:
                sql = _SELECT.format(tenant="$1", key="$2")

                async def bare() -> object:
                    return await raw.fetchrow(sql, TENANT, KEY)

                note = "asyncpg fetchrow of the row on the store's own database (autocommit)"
                return await _measure(ctx, "postgres", store, bare, sizes, note)
