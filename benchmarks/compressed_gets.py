"""C3: get of 64 MiB of compressible data against zstd decompression alone.

Subject: ``Tenant.get`` of a blob of 64 MiB of seeded JSON logs (benchmarks/corpus.py) stored with
compression ``auto`` in SQLite + a local directory: it reads the object, decompresses and verifies each
frame and hashes the whole plaintext. Baseline: python-zstandard decompressing the same bytes compressed
whole at level 3, in the same process (one call, one thread). The object stays in the page cache.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import zstandard

from benchmarks import corpus
from benchmarks.deployments import open_store
from benchmarks.harness import Context, Row, Stopwatch, Target, interleave, phase, throughput_row

MiB = 1024 * 1024
SEED = 21
TARGET = Target(">=", 0.7)


@dataclass(frozen=True)
class Sizes:
    size: int
    rounds: int


QUICK = Sizes(64 * MiB, rounds=5)
FULL = Sizes(64 * MiB, rounds=9)


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    with phase(ctx, "C3 data"):
        text = corpus.json_logs(random.Random(SEED), sizes.size)[: sizes.size]
        packed = zstandard.ZstdCompressor(level=3).compress(text)
    mib = sizes.size // MiB
    async with open_store(ctx.workdir / "c3") as store:
        tenant = store.tenant("bench")
        await tenant.put("c3/logs", text)

        async def decompress() -> float:
            with Stopwatch() as watch:
                await asyncio.to_thread(zstandard.ZstdDecompressor().decompress, packed)
            return watch.seconds

        async def get() -> float:
            with Stopwatch() as watch:
                data = await tenant.get("c3/logs")
            assert len(data) == sizes.size
            return watch.seconds

        with phase(ctx, f"C3 {mib} MiB"):
            paired = await interleave(sizes.rounds, decompress, get)
    notes = "SQLite + local directory; baseline: zstandard.ZstdDecompressor().decompress of the whole zstd -3 output"
    return [
        throughput_row(
            "C3",
            "local+sqlite",
            f"get of {mib} MiB of JSON logs vs zstd decompression",
            paired,
            mib,
            "MiB/s",
            TARGET,
            notes,
        )
    ]
