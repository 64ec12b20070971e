"""S2: boto3's ``upload_file`` of a large file (a multipart upload with s3transfer's default threads and 8 MiB
parts) through the S3 API, against a native HTTP PUT of a file of the same size streamed by httpx, on one
``blobstore serve`` process (SQLite + a local directory); and the server's memory meanwhile.

Every round uploads a file of fresh random bytes (written before the clock starts), so neither side dedups.
The memory row is the server's peak RSS (VmHWM) after every round of both sides, above its RSS when idle.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.harness import Batch, Context, Row, Target, interleave, phase, throughput_row
from benchmarks.http_servers import Server, blobstore_server, rss_kib
from benchmarks.s3_clients import boto3_client

WHAT = "boto3 upload_file (multipart) vs the native HTTP PUT of the same size, one server"
SPEED_TARGET = Target(">=", 0.7)
MEMORY_TARGET = Target("<=", 64, "MiB")
BUCKET = "bench"


@dataclass(frozen=True)
class Sizes:
    size: int
    rounds: int


QUICK = Sizes(size=256 * 1024 * 1024, rounds=2)
FULL = Sizes(size=256 * 1024 * 1024, rounds=4)


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    label = f"{sizes.size / 2**20:g} MiB"
    with blobstore_server(ctx.workdir / "s2", s3=True) as server:
        assert server.s3 is not None
        client = boto3_client(server.s3)
        client.create_bucket(Bucket=BUCKET)
        source = ctx.workdir / "s2-upload"
        uploads = itertools.count()
        idle = rss_kib(server.pid)["VmRSS"]

        def s3_upload() -> Batch:
            async def batch() -> float:
                await asyncio.to_thread(_fresh_file, source, sizes.size)
                started = time.perf_counter()
                await asyncio.to_thread(client.upload_file, str(source), BUCKET, f"s3/{next(uploads)}")
                return time.perf_counter() - started

            return batch

        with phase(ctx, f"S2: {label}, {sizes.rounds} rounds"):
            paired = await interleave(sizes.rounds, _native_put(server, source, sizes.size, uploads), s3_upload())
        peak = rss_kib(server.pid)["VmHWM"]
    speed = throughput_row(
        "S2",
        f"upload {label}",
        WHAT,
        paired,
        sizes.size / 2**20,
        "MiB/s",
        SPEED_TARGET,
        "boto3 default TransferConfig (8 MiB parts, 10 threads) vs httpx streaming the file in one PUT",
    )
    memory = Row(
        "S2",
        f"server RSS, {label} uploads",
        "server peak RSS above idle over every upload of both sides",
        peak / 1024,
        idle / 1024,
        "MiB",
        peak / idle,
        MEMORY_TARGET,
        figure=(peak - idle) / 1024,
        notes=f"idle VmRSS {idle / 1024:.0f} MiB, VmHWM after every round {peak / 1024:.0f} MiB",
    )
    return [speed, memory]


def _native_put(server: Server, source: Path, size: int, uploads: itertools.count[int]) -> Batch:
    def put() -> float:
        _fresh_file(source, size)
        with source.open("rb") as body, httpx.Client(base_url=server.url, headers=server.headers, timeout=600) as http:
            started = time.perf_counter()
            answer = http.put(f"/v1/tenants/bench/objects/native/{next(uploads)}", content=body)
            elapsed = time.perf_counter() - started
        if answer.status_code != 201:
            raise RuntimeError(f"native PUT: {answer.status_code} {answer.text[:200]}")
        return elapsed

    async def batch() -> float:
        return await asyncio.to_thread(put)

    return batch


def _fresh_file(path: Path, size: int) -> None:
    """``path`` holding ``size`` fresh random bytes, synced so its dirty pages do not slow the server's fsyncs."""
    with path.open("wb") as out:
        for _ in range(0, size, 2**20):
            out.write(os.urandom(2**20))
        out.flush()
        os.fsync(out.fileno())
