"""H3: the server's peak resident memory during a streamed 1 GiB PUT and GET, above the idle server.

Each transfer runs against a fresh ``blobstore serve`` process (SQLite + local
directory), because the kernel's high-water mark (VmHWM) cannot be reset.
Baseline: the server's VmRSS after a warm-up PUT and GET of 3 MiB. Figure: MiB
of the peak (VmHWM, or the 5 ms samples if higher) above that baseline.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from benchmarks.harness import Context, Row, Target, phase
from benchmarks.http_servers import blobstore_server, rss_kib

TARGET = Target("<=", 64, "MiB")
MiB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    size: int


QUICK = Sizes(256 * MiB)
FULL = Sizes(1024 * MiB)


class Sampler(threading.Thread):
    """Polls a process's VmRSS every 5 ms and keeps the highest."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss_kib(self.pid)["VmRSS"])
            time.sleep(0.005)

    def stop(self) -> None:
        self._done.set()
        self.join()


async def stream(size: int) -> AsyncIterator[bytes]:
    """``size`` new bytes: a unique first MiB, then one random MiB repeated."""
    filler = os.urandom(MiB)
    yield os.urandom(MiB)
    sent = MiB
    while sent < size:
        chunk = filler[: size - sent]
        sent += len(chunk)
        yield chunk


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    home = ctx.workdir / "h3"
    rows = []
    for op in ("put", "get"):
        with blobstore_server(home) as server:
            async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=1800) as http:
                await _put(http, "warm", stream(3 * MiB))
                await _get(http, "warm")
                if op == "get" and (await http.head("/v1/tenants/bench/objects/big")).status_code != 200:
                    await _put(http, "big", stream(sizes.size))  # stored by the previous server
                await asyncio.sleep(0.2)
                before = rss_kib(server.pid)
                sampler = Sampler(server.pid)
                sampler.start()
                with phase(ctx, f"H3 {op} {sizes.size // MiB} MiB"):
                    started = time.perf_counter()
                    if op == "put":
                        await _put(http, "big", stream(sizes.size))
                    else:
                        await _get(http, "big")
                    seconds = time.perf_counter() - started
                sampler.stop()
                after = rss_kib(server.pid)
        rows.append(_row(op, sizes.size, before, after, sampler.peak, seconds))
    return rows


async def _put(http: httpx.AsyncClient, key: str, chunks: AsyncIterator[bytes]) -> None:
    (await http.put(f"/v1/tenants/bench/objects/{key}", content=chunks)).raise_for_status()


async def _get(http: httpx.AsyncClient, key: str) -> None:
    async with http.stream("GET", f"/v1/tenants/bench/objects/{key}") as response:
        response.raise_for_status()
        async for _ in response.aiter_raw():
            pass


def _row(op: str, size: int, before: dict[str, int], after: dict[str, int], sampled: int, seconds: float) -> Row:
    idle = before["VmRSS"] / 1024
    peak = max(after["VmHWM"], sampled) / 1024
    what = f"server peak RSS, streamed {size // MiB} MiB {op.upper()}"
    notes = (
        f"idle VmRSS {idle:.0f} MiB, VmHWM after {after['VmHWM'] / 1024:.0f} MiB "
        f"(before {before['VmHWM'] / 1024:.0f}), sampled peak {sampled / 1024:.0f} MiB; "
        f"{size / MiB / seconds:.0f} MiB/s"
    )
    return Row("H3", "local+sqlite", what, peak, idle, "MiB", peak / idle, TARGET, figure=peak - idle, notes=notes)
