"""P3: put of a 256 MiB file whose bytes the store already holds.

Subject: ``Tenant.put(path)`` under a new key: blobstore hashes the file where
it lies and, finding the blob, binds the key in one transaction without
writing to storage. Baseline: BLAKE3 alone over the same file, the way
blobstore hashes it (``ingest.new_hasher`` with ``update_mmap``, in a worker
thread). The file stays in the page cache, so both sides measure hashing, not the disk.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

from benchmarks.deployments import open_store
from benchmarks.harness import Context, Row, Stopwatch, Target, interleave, phase, throughput_row
from blobstore.core.ingest import new_hasher

MiB = 1024 * 1024
TARGET = Target(">=", 0.5)


@dataclass(frozen=True)
class Sizes:
    size: int
    rounds: int


QUICK = Sizes(256 * MiB, rounds=5)
FULL = Sizes(256 * MiB, rounds=9)


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    home = ctx.workdir / "p3"
    home.mkdir(parents=True)
    path = home / "input.bin"
    await asyncio.to_thread(_write_random, path, sizes.size)
    keys = itertools.count()
    async with open_store(home) as store:
        tenant = store.tenant("bench")
        await tenant.put("p3/original", path)

        async def baseline() -> float:
            with Stopwatch() as watch:
                await asyncio.to_thread(_blake3_file, path)
            return watch.seconds

        async def subject() -> float:
            with Stopwatch() as watch:
                info = await tenant.put(f"p3/{next(keys)}", path)
            assert info.deduplicated
            return watch.seconds

        with phase(ctx, f"P3 {sizes.size // MiB} MiB"):
            paired = await interleave(sizes.rounds, baseline, subject)
    path.unlink()
    what = f"put of a {sizes.size // MiB} MiB file already stored"
    notes = "SQLite + local directory; baseline: blake3(max_threads=AUTO).update_mmap over the file in a thread"
    return [throughput_row("P3", "local+sqlite", what, paired, sizes.size / MiB, "MiB/s", TARGET, notes)]


def _blake3_file(path: Path) -> str:
    hasher = new_hasher()
    hasher.update_mmap(path)
    return str(hasher.hexdigest())


def _write_random(path: Path, size: int) -> None:
    with path.open("wb") as out:
        for offset in range(0, size, 16 * MiB):
            out.write(os.urandom(min(16 * MiB, size - offset)))
