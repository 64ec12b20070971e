"""The load generator of the HTTP request-rate benchmarks (H1, PEER-HTTP): concurrent keep-alive clients.

``timed_clients`` opens one httpx pool of ``CLIENTS`` keep-alive connections
to a server and has ``CLIENTS`` clients each send their requests back to back;
it returns the seconds the whole batch took. Both sides of a row are driven by
the same code, so what the client costs is the same on both. A :class:`CpuMeter`
adds up the CPU time the server process spent on the batches it wraps: on a
shared machine, CPU per request is steadier than requests per second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from benchmarks.harness import Batch
from benchmarks.http_servers import Server, cpu_seconds

#: Concurrent clients (and keep-alive connections) of one batch.
CLIENTS = 16

#: One request and the check of its answer: ``(pool, client number, request number) -> None``.
Request = Callable[[httpx.AsyncClient, int, int], Awaitable[None]]


async def timed_clients(server: Server, requests_per_client: int, request: Request) -> float:
    """Seconds for :data:`CLIENTS` clients to each send ``requests_per_client`` requests to ``server``."""
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers, limits=limits, timeout=60) as http:

        async def client(number: int) -> None:
            for sent in range(requests_per_client):
                await request(http, number, sent)

        started = time.perf_counter()
        await asyncio.gather(*(client(number) for number in range(CLIENTS)))
        return time.perf_counter() - started


def expect(response: httpx.Response, status: int, what: str) -> None:
    """RuntimeError unless ``response`` has ``status``."""
    if response.status_code != status:
        raise RuntimeError(f"{what}: {response.status_code} {response.text[:200]}")


@dataclass
class CpuMeter:
    """The CPU seconds server process ``pid`` spent over the batches :meth:`metered` ran, and their requests."""

    pid: int
    seconds: float = 0.0
    requests: int = 0

    def metered(self, batch: Batch, requests: int) -> Batch:
        """``batch``, adding its server CPU time and its ``requests`` here each time it runs."""

        async def run() -> float:
            before = cpu_seconds(self.pid)
            elapsed = await batch()
            self.seconds += cpu_seconds(self.pid) - before
            self.requests += requests
            return elapsed

        return run

    @property
    def ms_per_request(self) -> float:
        return 1000 * self.seconds / max(self.requests, 1)


def cpu_note(subject: CpuMeter, baseline: CpuMeter) -> str:
    """``server CPU per request: 1.23 ms vs 0.45 ms (2.7x)``."""
    ratio = subject.ms_per_request / baseline.ms_per_request if baseline.seconds else float("nan")
    return f"server CPU per request: {subject.ms_per_request:.2f} ms vs {baseline.ms_per_request:.2f} ms ({ratio:.1f}x)"
