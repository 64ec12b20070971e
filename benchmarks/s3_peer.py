"""S3: the same boto3 workload against blobstore's S3 API and against moto's S3 server.

moto is a Python S3 implementation, the nearest peer runnable here; each
server runs in a process of its own. Workloads: 16 threads (each its own boto3
client) PUT new 4 KiB objects; 16 threads GET one 4 KiB object; one client PUTs
a 64 MiB object (``put_object``, one request), then GETs it. blobstore is
SQLite + a local directory and fsyncs every write; moto keeps objects in memory.
Rounds ABBA; the notes give each server's CPU per request or per 64 MiB.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.harness import Batch, Context, Row, Target, interleave, phase, throughput_row
from benchmarks.http_clients import CLIENTS, CpuMeter, cpu_note
from benchmarks.http_servers import Server, blobstore_server, moto_server
from benchmarks.s3_clients import boto3_client, threaded

SMALL = 4096
BUCKET = "bench"
WHAT = "the same boto3 workload against blobstore's S3 API vs moto's S3 server"
TARGET = Target(">=", 1)


@dataclass(frozen=True)
class Sizes:
    requests_per_client: int
    rounds: int
    large: int


QUICK = Sizes(requests_per_client=25, rounds=4, large=64 * 1024 * 1024)
FULL = Sizes(requests_per_client=100, rounds=6, large=64 * 1024 * 1024)


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    with blobstore_server(ctx.workdir / "s3", s3=True) as server, moto_server() as moto:
        ours, theirs = _Side(server), _Side(moto)
        large = os.urandom(sizes.large)
        requests = CLIENTS * sizes.requests_per_client
        large_label = f"{sizes.large / 2**20:g} MiB"
        workloads: dict[str, tuple[Callable[[_Side], Batch], int, float, str]] = {
            "PUT 4 KiB": (lambda side: side.small_puts(sizes.requests_per_client), requests, requests, "req/s"),
            "GET 4 KiB": (lambda side: side.small_gets(sizes.requests_per_client), requests, requests, "req/s"),
            f"PUT {large_label}": (lambda side: side.large_put(large), 1, sizes.large / 2**20, "MiB/s"),
            f"GET {large_label}": (lambda side: side.large_get(large), 1, sizes.large / 2**20, "MiB/s"),
        }
        rows = []
        for variant, (workload, count, work, unit) in workloads.items():
            mine, others = CpuMeter(server.pid), CpuMeter(moto.pid)
            with phase(ctx, f"S3 {variant}: {sizes.rounds} rounds"):
                paired = await interleave(
                    sizes.rounds, others.metered(workload(theirs), count), mine.metered(workload(ours), count)
                )
            notes = (
                "blobstore serve (SQLite + local directory, fsynced) vs moto's server (in memory), boto3 default "
                f"configuration; {cpu_note(mine, others)}"
            )
            rows.append(throughput_row("S3", variant, WHAT, paired, work, unit, TARGET, notes))
    return rows


class _Side:
    """One S3 server under the workloads: its clients, its bucket and the 4 KiB object its GETs read."""

    def __init__(self, server: Server) -> None:
        assert server.s3 is not None
        self.clients = [boto3_client(server.s3) for _ in range(CLIENTS)]
        self.small = os.urandom(SMALL)
        self.keys = itertools.count()
        self.clients[0].create_bucket(Bucket=BUCKET)
        self.clients[0].put_object(Bucket=BUCKET, Key="small", Body=self.small)

    def small_puts(self, requests_per_client: int) -> Batch:
        def put(client: Any, number: int, sent: int) -> None:
            client.put_object(Bucket=BUCKET, Key=f"puts/{next(self.keys)}", Body=os.urandom(SMALL))

        return threaded(self.clients, requests_per_client, put)

    def small_gets(self, requests_per_client: int) -> Batch:
        def get(client: Any, number: int, sent: int) -> None:
            if client.get_object(Bucket=BUCKET, Key="small")["Body"].read() != self.small:
                raise RuntimeError("GET answered other bytes")

        return threaded(self.clients, requests_per_client, get)

    def large_put(self, data: bytes) -> Batch:
        def put(client: Any, number: int, sent: int) -> None:
            client.put_object(Bucket=BUCKET, Key="large", Body=data)

        return threaded(self.clients[:1], 1, put)

    def large_get(self, data: bytes) -> Batch:
        def get(client: Any, number: int, sent: int) -> None:
            if client.get_object(Bucket=BUCKET, Key="large")["Body"].read() != data:
                raise RuntimeError("GET answered other bytes")

        return threaded(self.clients[:1], 1, get)
