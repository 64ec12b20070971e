"""H2: PUT of 64 MiB of new bytes over HTTP vs the in-process ``Tenant.put`` of the same bytes.

Subject: httpx streams the bytes to ``blobstore serve`` (SQLite + local
directory), which hashes them as it writes them into the storage's staging
place and then publishes them under their key (a rename). Baseline: ``Tenant.put`` of
the same bytes object in this process, on a store of its own. Every put is of
bytes stored nowhere yet (a unique first MiB), so neither side deduplicates.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import httpx

from benchmarks.deployments import open_store
from benchmarks.harness import Context, Row, Target, interleave, phase, throughput_row
from benchmarks.http_servers import blobstore_server

TARGET = Target(">=", 0.7)
MiB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    size: int
    rounds: int


QUICK = Sizes(size=64 * MiB, rounds=4)
FULL = Sizes(size=64 * MiB, rounds=8)


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    filler = os.urandom(MiB) * max(0, sizes.size // MiB - 1)
    counter = iter(range(10**9))

    def fresh() -> tuple[str, bytes]:
        n = next(counter)
        return f"put-{n}", (os.urandom(MiB) + filler)[: sizes.size]

    async with open_store(ctx.workdir / "h2-local") as store:
        tenant = store.tenant("bench")
        with blobstore_server(ctx.workdir / "h2-server") as server:
            async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=600) as http:

                async def over_http() -> float:
                    key, data = fresh()
                    started = time.perf_counter()
                    response = await http.put(f"/v1/tenants/bench/objects/{key}", content=data)
                    seconds = time.perf_counter() - started
                    response.raise_for_status()
                    return seconds

                async def in_process() -> float:
                    key, data = fresh()
                    started = time.perf_counter()
                    await tenant.put(key, data)
                    return time.perf_counter() - started

                with phase(ctx, f"H2 {sizes.size // MiB} MiB puts, {sizes.rounds} rounds"):
                    paired = await interleave(sizes.rounds, in_process, over_http)
    return [
        throughput_row(
            "H2",
            "local+sqlite",
            f"PUT of {sizes.size // MiB} MiB over HTTP vs in-process Tenant.put",
            paired,
            sizes.size / MiB,
            "MiB/s",
            TARGET,
            notes="new bytes every put; server: one blobstore serve process",
        )
    ]
