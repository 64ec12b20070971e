"""C3: get of 64 MiB of compressible data against zstd decompression alone.

Subjects: ``Tenant.get`` of a blob of 64 MiB of seeded JSON logs (benchmarks/corpus.py) stored with
compression ``auto`` in SQLite + a local directory: it reads the object, decompresses and verifies each
frame, hashes the whole plaintext and joins it into one ``bytes``; and the same read streamed
(``Tenant.open``, as HTTP GET serves it), which does all of that but the join. Baseline: python-zstandard
decompressing the same bytes compressed whole at level 3, in the same process (one call, one thread). The
object stays in the page cache.
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
NOTES = "SQLite + local directory; baseline: zstandard.ZstdDecompressor().decompress of the whole zstd -3 output"


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

        async def streamed() -> float:
            received = 0
            with Stopwatch() as watch:
                async with tenant.open("c3/logs") as stream:
                    async for chunk in stream:
                        received += len(chunk)
            assert received == sizes.size
            return watch.seconds

        rows = []
        for variant, subject, how in (("get", get, "Tenant.get"), ("streamed", streamed, "Tenant.open, streamed")):
            with phase(ctx, f"C3 {variant} {mib} MiB"):
                paired = await interleave(sizes.rounds, decompress, subject)
            what = f"{how}: {mib} MiB of JSON logs vs zstd decompression"
            rows.append(throughput_row("C3", variant, what, paired, mib, "MiB/s", TARGET, NOTES))
    return rows
