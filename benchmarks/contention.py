"""P7: 32 concurrent puts of identical bytes, against 32 concurrent puts of 32 distinct existing blobs.

Both sides are dedup hits under new keys, started together with
``asyncio.gather``; the subject's puts all acquire the same blob row, so
they queue on its lock, while the baseline's touch 32 different rows. On
SQLite every write transaction is serialised anyway (``BEGIN IMMEDIATE``).
The notes compare the baseline with the same puts made one after another.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from dataclasses import dataclass
from statistics import median

from benchmarks.deployments import open_store, postgres_database
from benchmarks.harness import Context, Row, Stopwatch, Target, guarded, interleave, phase, throughput_row, unmeasured
from blobstore import BlobStore

TARGET = Target(">=", 0.5)
WHAT = "32 concurrent puts of identical bytes"
CONCURRENCY = 32


@dataclass(frozen=True)
class Sizes:
    gathers: int  # gathers of 32 puts per batch
    rounds: int


QUICK = Sizes(gathers=2, rounds=5)
FULL = Sizes(gathers=4, rounds=7)


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    rows = await guarded(_sqlite(ctx, sizes), "P7", "sqlite", WHAT, TARGET)
    if ctx.postgres_admin_url is None:
        rows.append(unmeasured("P7", "postgres", WHAT, TARGET, "skip", "PostgreSQL disabled for this run"))
    else:
        rows += await guarded(_postgres(ctx, sizes), "P7", "postgres", WHAT, TARGET)
    return rows


async def _measure(ctx: Context, store: BlobStore, variant: str, sizes: Sizes) -> Row:
    tenant = store.tenant("bench")
    shared = os.urandom(4096)
    distinct = [os.urandom(4096) for _ in range(CONCURRENCY)]
    for i, blob in enumerate([shared, *distinct]):
        await tenant.put(f"p7/seed/{i}", blob)
    keys = itertools.count()

    async def side(blobs: list[bytes]) -> float:
        with Stopwatch() as watch:
            for _ in range(sizes.gathers):
                await asyncio.gather(*(tenant.put(f"p7/{next(keys)}", blob) for blob in blobs))
        return watch.seconds

    async def baseline() -> float:
        return await side(distinct)

    async def subject() -> float:
        return await side([shared] * CONCURRENCY)

    async def one_by_one() -> float:
        with Stopwatch() as watch:
            for _ in range(sizes.gathers):
                for blob in distinct:
                    await tenant.put(f"p7/{next(keys)}", blob)
        return watch.seconds

    with phase(ctx, f"P7 {variant}"):
        paired = await interleave(sizes.rounds, baseline, subject)
        serial = await interleave(sizes.rounds, one_by_one, baseline)
    puts = sizes.gathers * CONCURRENCY
    notes = (
        "baseline: 32 concurrent puts of 32 distinct blobs already stored (dedup hits on 32 rows). "
        f"For scale, in rounds of their own the same 32 distinct puts ran at {puts / median(serial.subject):.0f} "
        f"puts/s concurrently and {puts / median(serial.baseline):.0f} puts/s one after another "
        f"(concurrent / one by one: {serial.speed_ratio():.2f}x)"
    )
    return throughput_row("P7", variant, WHAT, paired, puts, "puts/s", TARGET, notes)


async def _sqlite(ctx: Context, sizes: Sizes) -> list[Row]:
    async with open_store(ctx.workdir / "p7-sqlite") as store:
        return [await _measure(ctx, store, "sqlite", sizes)]


async def _postgres(ctx: Context, sizes: Sizes) -> list[Row]:
    with postgres_database(ctx) as url:
        async with open_store(ctx.workdir / "p7-postgres", database_url=url) as store:
            row = await _measure(ctx, store, "postgres", sizes)
    row.notes += "; the store's pool: 5 connections + 10 overflow"
    return [row]
