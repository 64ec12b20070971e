"""P10: ``Tenant.get`` of a 4 KiB object on SQLite + a local directory vs a bare SELECT plus a read of the file.

Subject: ``get`` of the same existing 4 KiB key, one call after another
(look up the key, read and verify the bytes, meter the egress).
Baseline: an aiosqlite ``SELECT`` of a row naming the same object file by
primary key, then ``Path.read_bytes`` of that file in a worker thread.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from benchmarks.deployments import open_store, raw_sqlite
from benchmarks.harness import Context, Row, Target, interleave, phase, throughput_row
from benchmarks.stat_reads import batch_of

TARGET = Target(">=", 0.5)
WHAT = "get of a 4 KiB object"


@dataclass(frozen=True)
class Sizes:
    reads: int  # per batch
    rounds: int


QUICK = Sizes(reads=200, rounds=5)
FULL = Sizes(reads=1000, rounds=11)


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    home = ctx.workdir / "p10"
    async with open_store(home) as store, raw_sqlite(home / "blobstore.db") as raw:
        tenant = store.tenant("bench")
        data = os.urandom(4096)
        await tenant.put("p10/key", data)
        (object_key,) = await (await raw.execute("SELECT object_key FROM blobs")).fetchone()  # type: ignore[misc]
        await raw.execute("CREATE TABLE bench_objects (k VARCHAR(64) PRIMARY KEY, path TEXT NOT NULL)")
        await raw.execute("INSERT INTO bench_objects (k, path) VALUES ('key', ?)", (str(home / "blobs" / object_key),))

        async def bare() -> bytes:
            async with raw.execute("SELECT path FROM bench_objects WHERE k = ?", ("key",)) as cursor:
                (path,) = await cursor.fetchone()  # type: ignore[misc]
            return await asyncio.to_thread(Path(path).read_bytes)

        async def get() -> bytes:
            return await tenant.get("p10/key")

        assert await bare() == data == await get()
        with phase(ctx, "P10 local+sqlite"):
            paired = await interleave(sizes.rounds, batch_of(sizes.reads, bare), batch_of(sizes.reads, get))
    note = "baseline: aiosqlite SELECT by primary key, then Path.read_bytes in a worker thread"
    return [throughput_row("P10", "local+sqlite", WHAT, paired, sizes.reads, "gets/s", TARGET, note)]
