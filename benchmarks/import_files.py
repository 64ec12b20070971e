"""I1: import of 10,000 files of 64 KiB (30% duplicates) from a local directory into SQLite + a local directory.

Subject: ``blobstore import`` as the library runs it (list and select the
tree, then ``import_source`` with the CLI's default 4 jobs) into a fresh
store each round. Baseline: ``cp -r`` of the same tree to a fresh directory.
Both read the tree from the page cache; blobstore also hashes every file,
records every key in SQLite (one synchronous commit per file) and fsyncs
each new object, where ``cp`` does neither.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
from dataclasses import dataclass

from benchmarks.deployments import open_store
from benchmarks.harness import Context, Row, Stopwatch, Target, interleave, phase, throughput_row
from benchmarks.trees import write_tree
from blobstore.transfer import import_source, open_source, plan_import

KiB = 1024
MiB = 1024 * KiB
TARGET = Target(">=", 0.3)
JOBS = 4


@dataclass(frozen=True)
class Sizes:
    files: int
    size: int
    rounds: int
    duplicates: float = 0.3


QUICK = Sizes(files=2000, size=64 * KiB, rounds=3)
FULL = Sizes(files=10_000, size=64 * KiB, rounds=5)


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    work = ctx.workdir / "i1"
    source = work / "source"
    with phase(ctx, f"I1 writing {sizes.files:,} files of {sizes.size // KiB} KiB"):
        total = await asyncio.to_thread(
            write_tree, source, files=sizes.files, size=sizes.size, duplicates=sizes.duplicates
        )
    rounds = itertools.count()

    async def baseline() -> float:
        target = work / f"copy-{next(rounds)}"
        process = await asyncio.create_subprocess_exec("cp", "-r", str(source), str(target))
        with Stopwatch() as watch:
            code = await process.wait()
        assert code == 0, "cp -r failed"
        await asyncio.to_thread(shutil.rmtree, target)
        return watch.seconds

    async def subject() -> float:
        home = work / f"store-{next(rounds)}"
        async with open_store(home) as store, open_source(str(source)) as files:
            with Stopwatch() as watch:
                plan = await plan_import(files)
                result = await import_source(store.tenant("bench"), files, plan, jobs=JOBS)
        assert result.imported == sizes.files, result.failures[:3]
        await asyncio.to_thread(shutil.rmtree, home)
        return watch.seconds

    with phase(ctx, "I1 import vs cp -r"):
        paired = await interleave(sizes.rounds, baseline, subject)
    await asyncio.to_thread(shutil.rmtree, work)
    what = f"import of {sizes.files:,} files of {sizes.size // KiB} KiB ({sizes.duplicates:.0%} duplicates)"
    notes = f"local -> SQLite + local directory, {JOBS} jobs; baseline: cp -r of the same tree (page cache)"
    return [throughput_row("I1", "local+sqlite", what, paired, total / MiB, "MiB/s", TARGET, notes)]
