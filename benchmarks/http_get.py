"""H1: GETs of a 4 KiB object over HTTP, 16 concurrent clients, one server process.

Subject: ``blobstore serve`` (SQLite + local directory; token check, key lookup,
verified streamed read and egress record per request). Baseline: uvicorn with a
bare Starlette app returning 4 KiB from memory. The same load generator (httpx,
16 connections, each client issuing its GETs back to back) drives both, ABBA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import httpx

from benchmarks.deployments import postgres_database
from benchmarks.harness import Context, Row, Target, interleave, phase, throughput_row, unmeasured
from benchmarks.http_clients import CLIENTS, CpuMeter, cpu_note, expect, timed_clients
from benchmarks.http_servers import Server, bare_server, blobstore_server

TARGET = Target(">=", 0.5)
WHAT = "GETs/s of 4 KiB, 16 concurrent clients, one server process"


@dataclass(frozen=True)
class Sizes:
    gets_per_client: int
    rounds: int


QUICK = Sizes(gets_per_client=50, rounds=4)
FULL = Sizes(gets_per_client=200, rounds=6)


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    rows = [await _measure(ctx, sizes, "local+sqlite", None)]
    if ctx.postgres_admin_url is None:
        rows.append(unmeasured("H1", "local+postgres", WHAT, TARGET, "skip", "PostgreSQL disabled for this run"))
    else:
        with postgres_database(ctx) as url:
            rows.append(await _measure(ctx, sizes, "local+postgres", url))
    return rows


async def _measure(ctx: Context, sizes: Sizes, variant: str, database_url: str | None) -> Row:
    with blobstore_server(ctx.workdir / f"h1-{variant}", database_url) as subject, bare_server() as baseline:
        payload = os.urandom(4096)
        async with httpx.AsyncClient(base_url=subject.url, headers=subject.headers) as http:
            (await http.put("/v1/tenants/bench/objects/small", content=payload)).raise_for_status()
        with phase(ctx, f"H1 {variant}: {CLIENTS} clients x {sizes.gets_per_client} GETs, {sizes.rounds} rounds"):
            gets = CLIENTS * sizes.gets_per_client
            theirs, ours = CpuMeter(baseline.pid), CpuMeter(subject.pid)
            paired = await interleave(
                sizes.rounds,
                theirs.metered(lambda: timed_gets(baseline, "/anything", sizes.gets_per_client), gets),
                ours.metered(
                    lambda: timed_gets(subject, "/v1/tenants/bench/objects/small", sizes.gets_per_client), gets
                ),
            )
    return throughput_row(
        "H1",
        variant,
        WHAT,
        paired,
        gets,
        "GETs/s",
        TARGET,
        notes=f"baseline: bare uvicorn + Starlette answering 4 KiB from memory; {cpu_note(ours, theirs)}",
    )


async def timed_gets(server: Server, path: str, gets: int) -> float:
    """Seconds for CLIENTS clients to each GET ``path`` (4 KiB) ``gets`` times over keep-alive connections."""

    async def get(http: httpx.AsyncClient, _client: int, _number: int) -> None:
        response = await http.get(path)
        expect(response, 200, f"GET {path}")
        if len(response.content) != 4096:
            raise RuntimeError(f"GET {path}: {len(response.content)} bytes")

    return await timed_clients(server, gets, get)
