"""P12: 1,000 dedup-hit puts of 4 KiB as one ``Tenant.put_many`` batch vs 1,000 single ``Tenant.put`` calls.

Subject: one ``put_many`` of the same 4 KiB under 1,000 new keys (one
transaction binds them all). Baseline: the same 1,000 keys put one by one
(one transaction each), as a service without batches does. Both on SQLite
and on PostgreSQL, each in a store of its own.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from benchmarks.deployments import open_store, postgres_database
from benchmarks.harness import Context, Row, Stopwatch, Target, interleave, phase, throughput_row, unmeasured
from blobstore import BlobInfo, BlobStore, PutItem

TARGET = Target(">=", 10)
WHAT = "1,000 dedup-hit puts of 4 KiB: one batch vs single puts"
BLOB = 4096


@dataclass(frozen=True)
class Sizes:
    puts: int  # per batch
    rounds: int


QUICK = Sizes(puts=200, rounds=3)
FULL = Sizes(puts=1000, rounds=5)


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    async with open_store(ctx.workdir / "p12-sqlite") as store:
        rows = [await _measure(ctx, "sqlite", store, sizes)]
    if ctx.postgres_admin_url is None:
        rows.append(unmeasured("P12", "postgres", WHAT, TARGET, "skip", "PostgreSQL disabled for this run"))
        return rows
    with postgres_database(ctx) as url:
        async with open_store(ctx.workdir / "p12-postgres", database_url=url) as store:
            rows.append(await _measure(ctx, "postgres", store, sizes))
    return rows


async def _measure(ctx: Context, variant: str, store: BlobStore, sizes: Sizes) -> Row:
    tenant = store.tenant("bench")
    data = os.urandom(BLOB)
    await tenant.put("p12/seed", data)  # the tenant and the blob exist before timing starts
    batches = itertools.count()

    def timed(put_all: Callable[[list[str]], Awaitable[None]]) -> Callable[[], Awaitable[float]]:
        async def batch() -> float:
            keys = [f"p12/{next(batches)}/{i}" for i in range(sizes.puts)]
            with Stopwatch() as watch:
                await put_all(keys)
            return watch.seconds

        return batch

    async def one_batch(keys: list[str]) -> None:
        outcomes = await tenant.put_many([PutItem(key, data) for key in keys])
        assert all(isinstance(outcome, BlobInfo) and outcome.deduplicated for outcome in outcomes)

    async def single_puts(keys: list[str]) -> None:
        for key in keys:
            await tenant.put(key, data)

    with phase(ctx, f"P12 {variant}"):
        paired = await interleave(sizes.rounds, timed(single_puts), timed(one_batch))
    notes = f"{sizes.puts} puts per batch; baseline: the same puts one Tenant.put at a time"
    return throughput_row("P12", variant, WHAT, paired, sizes.puts, "puts/s", TARGET, notes)
