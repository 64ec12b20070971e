"""P11: dedup-hit puts from 8 OS processes into one tenant vs into 8 different tenants, on PostgreSQL.

Subject: 8 processes, each putting the same 4 KiB (already stored) under new
keys of the **same** tenant. Baseline: the same 8 processes, each into a tenant
of its own. Every write of a tenant locks the tenant's row first, so the
subject measures how much writers of one tenant queue behind that row. Each
process opens its store before the clock starts (they wait at a barrier on
stdin); the clock stops when the last one is done. Storage: a local directory.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.deployments import open_store, postgres_database
from benchmarks.harness import Context, Row, Target, interleave, phase, throughput_row, unmeasured
from blobstore import BlobStore, Settings

TARGET = Target(">=", 0.7)
WHAT = "dedup-hit puts from 8 processes: one tenant vs 8 tenants"
PROCESSES = 8
BLOB = b"p11" * 1365 + b"x"  # 4 KiB, the same in every process
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Sizes:
    puts: int  # per process and batch
    rounds: int


QUICK = Sizes(puts=30, rounds=3)
FULL = Sizes(puts=100, rounds=5)


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    if ctx.postgres_admin_url is None:
        return [unmeasured("P11", "postgres", WHAT, TARGET, "skip", "PostgreSQL disabled for this run")]
    home = ctx.workdir / "p11"
    with postgres_database(ctx) as url:
        async with open_store(home, database_url=url) as store:
            for tenant in ["one", *(f"t{i}" for i in range(PROCESSES))]:
                await store.tenant(tenant).put("seed", BLOB)
        settings = (home, url, (home / "blobs").as_uri())
        batches = iter(range(10**6))

        async def one_tenant() -> float:
            return await _batch(settings, ["one"] * PROCESSES, next(batches), sizes.puts)

        async def own_tenants() -> float:
            return await _batch(settings, [f"t{i}" for i in range(PROCESSES)], next(batches), sizes.puts)

        with phase(ctx, "P11 postgres"):
            paired = await interleave(sizes.rounds, own_tenants, one_tenant)
    notes = f"{PROCESSES} processes x {sizes.puts} puts per batch; baseline: each process into a tenant of its own"
    return [throughput_row("P11", "postgres", WHAT, paired, PROCESSES * sizes.puts, "puts/s", TARGET, notes)]


async def _batch(settings: tuple[Path, str, str], tenants: list[str], batch: int, puts: int) -> float:
    """Start one worker per tenant, release them together, and time until the last one is done."""
    home, url, storage = settings
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.tenant_contention",
            str(home),
            url,
            storage,
            tenant,
            f"b{batch}/w{number}",
            str(puts),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        for number, tenant in enumerate(tenants)
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert (await worker.stdout.readline()).strip() == b"ready"
    started = time.perf_counter()
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write(b"go\n")
        await worker.stdin.drain()
    for worker in workers:
        assert await worker.wait() == 0
    return time.perf_counter() - started


async def _worker(home: str, url: str, storage: str, tenant: str, prefix: str, puts: int) -> None:
    settings = Settings(home=Path(home), database_url=url, storage_url=storage)
    async with await BlobStore.open(settings) as store:
        handle = store.tenant(tenant)
        await handle.put(f"{prefix}/warm", BLOB)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        for i in range(puts):
            await handle.put(f"{prefix}/{i}", BLOB)


if __name__ == "__main__":
    home_, url_, storage_, tenant_, prefix_, puts_ = sys.argv[1:]
    asyncio.run(_worker(home_, url_, storage_, tenant_, prefix_, int(puts_)))
