"""P2: throughput of puts of new bytes (1 MiB and 64 MiB) to a local directory and to S3.

Subject: ``Tenant.put`` of fresh random bytes (hash, record the upload, write
the object, commit): local directory with SQLite (the embedded default), and
S3 with PostgreSQL (production). Baseline: the raw backend write of the same
bytes: for a directory ``mkstemp``, write, fsync, rename, fsync of the
directory; for S3 one ``put_object`` with an aioboto3 client configured like
blobstore's, or a multipart upload (16 MiB parts, 4 at a time) at 64 MiB.
The S3 endpoint is moto's server running in this very process (threads
sharing the GIL), far slower than a real S3; both sides pay that alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.deployments import S3Bucket, open_store, postgres_database, s3_bucket
from benchmarks.harness import (
    Context,
    Row,
    Stopwatch,
    Target,
    guarded,
    interleave,
    phase,
    throughput_row,
    unmeasured,
)
from blobstore import Tenant
from blobstore.core.identity import MARKER_KEY

MiB = 1024 * 1024
TARGETS = {MiB: Target(">=", 0.7), 64 * MiB: Target(">=", 0.9)}
_PART = 16 * MiB


@dataclass(frozen=True)
class Sizes:
    #: blob size -> puts per batch
    puts: dict[int, int]
    rounds: int


QUICK = Sizes({MiB: 16, 64 * MiB: 1}, rounds=5)
FULL = Sizes({MiB: 48, 64 * MiB: 3}, rounds=7)


def _what(size: int) -> str:
    return f"unique puts, {size // MiB} MiB"


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    rows = []
    for size, count in sizes.puts.items():
        rows += await guarded(_local(ctx, size, count, sizes.rounds), "P2", "local+sqlite", _what(size), TARGETS[size])
    if not ctx.s3 or ctx.postgres_admin_url is None:
        why = "S3 disabled for this run" if not ctx.s3 else "PostgreSQL disabled for this run"
        rows += [unmeasured("P2", "s3+postgres", _what(size), TARGETS[size], "skip", why) for size in sizes.puts]
    else:
        rows += await guarded(_s3(ctx, sizes), "P2", "s3+postgres", _what(max(sizes.puts)), TARGETS[max(sizes.puts)])
    return rows


class _Payloads:
    """Fresh random blobs for each batch; both sides of a round write the same ones."""

    def __init__(self, size: int, count: int) -> None:
        self.size, self.count = size, count
        self._round: list[bytes] = []
        self._used = 0

    def next_batch(self) -> list[bytes]:
        if self._used % 2 == 0:
            self._round = [os.urandom(self.size) for _ in range(self.count)]
        self._used += 1
        return self._round


def _batches(
    payloads: _Payloads, tenant: Tenant, raw_write: Callable[[bytes], Awaitable[Any]]
) -> tuple[Callable[[], Awaitable[float]], Callable[[], Awaitable[float]]]:
    keys = itertools.count()

    async def baseline() -> float:
        blobs = payloads.next_batch()
        with Stopwatch() as watch:
            for blob in blobs:
                await raw_write(blob)
        return watch.seconds

    async def subject() -> float:
        blobs = payloads.next_batch()
        with Stopwatch() as watch:
            for blob in blobs:
                await tenant.put(f"p2/{next(keys)}", blob)
        return watch.seconds

    return baseline, subject


async def _local(ctx: Context, size: int, count: int, rounds: int) -> list[Row]:
    home = ctx.workdir / f"p2-local-{size}"
    raw_root = home / "raw"
    (raw_root / ".tmp").mkdir(parents=True)
    names = itertools.count()

    async def raw_write(blob: bytes) -> None:
        await asyncio.to_thread(_write_durably, raw_root, f"object-{next(names)}", blob)

    async with open_store(home) as store:
        baseline, subject = _batches(_Payloads(size, count), store.tenant("bench"), raw_write)
        with phase(ctx, f"P2 local {size // MiB} MiB"):
            paired = await interleave(rounds, baseline, subject)
    notes = "SQLite + local directory; baseline: mkstemp, write, fsync, rename, fsync dir (one thread hop)"
    return [
        throughput_row("P2", "local+sqlite", _what(size), paired, size * count / MiB, "MiB/s", TARGETS[size], notes)
    ]


def _write_durably(root: Path, name: str, blob: bytes) -> None:
    fd, temp = tempfile.mkstemp(dir=root / ".tmp")
    with os.fdopen(fd, "wb") as out:
        out.write(blob)
        out.flush()
        os.fsync(out.fileno())
    Path(temp).replace(root / name)
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


async def _s3(ctx: Context, sizes: Sizes) -> list[Row]:
    rows = []
    with postgres_database(ctx) as url:
        async with s3_bucket() as bucket, bucket.client() as s3:
            names = itertools.count()

            async def raw_write(blob: bytes) -> None:
                await _s3_write(s3, bucket.name, f"raw/{next(names)}", blob)

            async with open_store(
                ctx.workdir / "p2-s3",
                database_url=url,
                storage_url=f"s3://{bucket.name}/store",
                s3_endpoint_url=bucket.endpoint.url,
            ) as store:
                for size, count in sizes.puts.items():
                    baseline, subject = _batches(_Payloads(size, count), store.tenant("bench"), raw_write)
                    with phase(ctx, f"P2 s3 {size // MiB} MiB"):
                        paired = await interleave(sizes.rounds, baseline, subject)
                    await _empty(s3, bucket)
                    notes = (
                        "PostgreSQL + moto's S3 server in this process (threads sharing the GIL, far slower than "
                        "real S3); baseline: aioboto3 put_object"
                        + (", multipart 16 MiB parts x 4 concurrent" if size > _PART else "")
                    )
                    rows.append(
                        throughput_row(
                            "P2", "s3+postgres", _what(size), paired, size * count / MiB, "MiB/s", TARGETS[size], notes
                        )
                    )
    return rows


async def _s3_write(s3: Any, bucket: str, key: str, blob: bytes) -> None:
    """put_object, or a multipart upload of 16 MiB parts, 4 at a time, for anything larger than a part."""
    if len(blob) <= _PART:
        await s3.put_object(Bucket=bucket, Key=key, Body=blob)
        return
    upload = await s3.create_multipart_upload(Bucket=bucket, Key=key)
    slots = asyncio.Semaphore(4)

    async def part(number: int, offset: int) -> dict[str, Any]:
        async with slots:
            response = await s3.upload_part(
                Bucket=bucket,
                Key=key,
                UploadId=upload["UploadId"],
                PartNumber=number,
                Body=blob[offset : offset + _PART],
            )
        return {"PartNumber": number, "ETag": response["ETag"]}

    parts = await asyncio.gather(*(part(n, off) for n, off in enumerate(range(0, len(blob), _PART), 1)))
    await s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": list(parts)}
    )


async def _empty(s3: Any, bucket: S3Bucket) -> None:
    """Delete the objects written so far (not the store's marker), so moto does not pile them up."""
    async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket.name):
        keys = [item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith(MARKER_KEY)]
        if objects := [{"Key": key} for key in keys]:
            with contextlib.suppress(Exception):
                await s3.delete_objects(Bucket=bucket.name, Delete={"Objects": objects, "Quiet": True})
