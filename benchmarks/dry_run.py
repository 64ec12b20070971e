"""I2: dry run of an import of a 1 GiB tree (1 MiB files, 30% duplicates).

Subject: ``blobstore import --dry-run`` as the library runs it: list and
select the tree, hash every file the way the store does (4 jobs), look the
digests up in the store, and build the report. Baseline: BLAKE3 alone over
the same files, one after another in a worker thread, the way P3's baseline
hashes (``blake3(max_threads=AUTO).update_mmap``). Both read the page cache.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path

from benchmarks.deployments import open_store
from benchmarks.harness import Context, Row, Stopwatch, Target, interleave, phase, throughput_row
from benchmarks.trees import write_tree
from blobstore.core.ingest import new_hasher
from blobstore.transfer import dry_run, open_source, plan_import

MiB = 1024 * 1024
TARGET = Target(">=", 0.7)
JOBS = 4


@dataclass(frozen=True)
class Sizes:
    files: int
    size: int
    rounds: int
    duplicates: float = 0.3


QUICK = Sizes(files=256, size=MiB, rounds=3)
FULL = Sizes(files=1024, size=MiB, rounds=5)


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    work = ctx.workdir / "i2"
    source = work / "source"
    with phase(ctx, f"I2 writing {sizes.files:,} files of {sizes.size // MiB} MiB"):
        total = await asyncio.to_thread(
            write_tree, source, files=sizes.files, size=sizes.size, duplicates=sizes.duplicates
        )
    paths = sorted(path for path in source.rglob("*") if path.is_file())

    async def baseline() -> float:
        with Stopwatch() as watch:
            await asyncio.to_thread(_blake3_files, paths)
        return watch.seconds

    async with open_store(work / "store") as store, open_source(str(source)) as files:

        async def subject() -> float:
            with Stopwatch() as watch:
                report = await dry_run(store, "bench", files, await plan_import(files), jobs=JOBS)
            assert report.files == sizes.files, report.failures[:3]
            return watch.seconds

        with phase(ctx, "I2 dry run vs BLAKE3"):
            paired = await interleave(sizes.rounds, baseline, subject)
    await asyncio.to_thread(shutil.rmtree, work)
    what = f"dry run of a {total / 2**30:.2g} GiB tree ({sizes.files:,} files of {sizes.size // MiB} MiB)"
    notes = f"{JOBS} jobs, SQLite store; baseline: blake3(max_threads=AUTO).update_mmap over each file in a thread"
    return [throughput_row("I2", "local+sqlite", what, paired, total / MiB, "MiB/s", TARGET, notes)]


def _blake3_files(paths: list[Path]) -> None:
    for path in paths:
        hasher = new_hasher()
        hasher.update_mmap(path)
        hasher.hexdigest()
