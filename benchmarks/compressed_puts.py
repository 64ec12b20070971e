"""C2: put of 64 MiB, compressible against zstd alone and random against compression off.

Compressible: ``Tenant.put(bytes)`` of 64 MiB of seeded JSON logs (benchmarks/corpus.py) into SQLite + a
local directory, compression ``auto``, against python-zstandard level 3 compressing the same bytes in the
same process (one call, one thread). Random: a put of 64 MiB of random bytes with compression ``auto``
against the same put into a store with ``BLOBSTORE_COMPRESSION=off`` (today's raw put). Every put stores
new bytes (a different first 8 bytes per put), so none is a dedup hit.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
from dataclasses import dataclass

import zstandard

from benchmarks import corpus
from benchmarks.deployments import open_store
from benchmarks.harness import Batch, Context, Row, Stopwatch, Target, interleave, phase, throughput_row
from blobstore.store import Tenant

MiB = 1024 * 1024
SEED = 21
COMPRESSIBLE_TARGET = Target(">=", 0.7)
RANDOM_TARGET = Target(">=", 0.9)


@dataclass(frozen=True)
class Sizes:
    size: int
    rounds: int


QUICK = Sizes(64 * MiB, rounds=5)
FULL = Sizes(64 * MiB, rounds=9)


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    home = ctx.workdir / "c2"
    with phase(ctx, "C2 data"):
        text = corpus.json_logs(random.Random(SEED), sizes.size)[: sizes.size]
        noise = os.urandom(sizes.size)
    counter = itertools.count()
    mib = sizes.size // MiB
    rows = []
    async with open_store(home / "auto") as store, open_store(home / "off", compression="off") as raw_store:
        auto, off = store.tenant("bench"), raw_store.tenant("bench")

        async def compress() -> float:
            with Stopwatch() as watch:
                await asyncio.to_thread(zstandard.ZstdCompressor(level=3).compress, text)
            return watch.seconds

        with phase(ctx, f"C2 compressible {mib} MiB"):
            paired = await interleave(sizes.rounds, compress, _putter(auto, text, counter))
        notes = "SQLite + local directory; baseline: zstandard.ZstdCompressor(level=3).compress of the same bytes"
        rows.append(
            throughput_row(
                "C2",
                "compressible",
                f"put of {mib} MiB of JSON logs vs zstd -3 alone",
                paired,
                mib,
                "MiB/s",
                COMPRESSIBLE_TARGET,
                notes,
            )
        )
        with phase(ctx, f"C2 random {mib} MiB"):
            paired = await interleave(sizes.rounds, _putter(off, noise, counter), _putter(auto, noise, counter))
        notes = "SQLite + local directory; baseline: the same put with BLOBSTORE_COMPRESSION=off"
        rows.append(
            throughput_row(
                "C2",
                "random",
                f"put of {mib} MiB of random bytes vs compression off",
                paired,
                mib,
                "MiB/s",
                RANDOM_TARGET,
                notes,
            )
        )
    return rows


def _putter(tenant: Tenant, data: bytes, counter: itertools.count[int]) -> Batch:
    """A timed put of ``data`` made new by its first 8 bytes (the bytes are prepared before the clock starts)."""

    async def put() -> float:
        number = next(counter)
        fresh = number.to_bytes(8, "big") + data[8:]
        with Stopwatch() as watch:
            info = await tenant.put(f"c2/{number}", fresh)
        assert not info.deduplicated
        return watch.seconds

    return put
