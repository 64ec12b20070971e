"""S1: boto3 GETs of one 4 KiB object through the S3 API (``blobstore serve --s3-port``) vs the native HTTP API.

16 threads, each with its own boto3 client, GET object ``small`` of bucket
``bench`` through the S3 API; baseline: the same 16 threads GET the same object
(the native key ``bench/small`` of tenant ``bench``) through the native HTTP
API of the same server process, each with its own httpx client. Rounds ABBA;
the notes give the server's CPU per request on each API.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import httpx

from benchmarks.harness import Context, Row, Target, interleave, phase, throughput_row
from benchmarks.http_clients import CLIENTS, CpuMeter, cpu_note
from benchmarks.http_servers import blobstore_server
from benchmarks.s3_clients import boto3_client, threaded

SMALL = 4096
BUCKET = "bench"
WHAT = "boto3 GETs of 4 KiB, 16 threads, one server: S3 API vs the native HTTP API"
TARGET = Target(">=", 0.8)


@dataclass(frozen=True)
class Sizes:
    requests_per_client: int
    rounds: int


QUICK = Sizes(requests_per_client=25, rounds=4)
FULL = Sizes(requests_per_client=100, rounds=6)


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    with blobstore_server(ctx.workdir / "s1", s3=True) as server:
        assert server.s3 is not None
        seeder = boto3_client(server.s3)
        seeder.create_bucket(Bucket=BUCKET)
        payload = os.urandom(SMALL)
        seeder.put_object(Bucket=BUCKET, Key="small", Body=payload)
        s3_clients = [boto3_client(server.s3) for _ in range(CLIENTS)]
        native_clients = [httpx.Client(base_url=server.url, headers=server.headers) for _ in range(CLIENTS)]

        def s3_get(client: Any, number: int, sent: int) -> None:
            if client.get_object(Bucket=BUCKET, Key="small")["Body"].read() != payload:
                raise RuntimeError("GET through the S3 API answered other bytes")

        def native_get(client: httpx.Client, number: int, sent: int) -> None:
            response = client.get(f"/v1/tenants/bench/objects/{BUCKET}/small")
            if response.status_code != 200 or response.content != payload:
                raise RuntimeError(f"native GET: {response.status_code} {response.text[:200]}")

        requests = CLIENTS * sizes.requests_per_client
        native, s3 = CpuMeter(server.pid), CpuMeter(server.pid)
        try:
            with phase(ctx, f"S1: {CLIENTS} threads x {sizes.requests_per_client} GETs, {sizes.rounds} rounds"):
                paired = await interleave(
                    sizes.rounds,
                    native.metered(threaded(native_clients, sizes.requests_per_client, native_get), requests),
                    s3.metered(threaded(s3_clients, sizes.requests_per_client, s3_get), requests),
                )
        finally:
            for client in native_clients:
                client.close()
    notes = f"one blobstore serve (SQLite + local directory); boto3 vs httpx clients; {cpu_note(s3, native)}"
    return [throughput_row("S1", "GET 4 KiB", WHAT, paired, requests, "req/s", TARGET, notes)]
