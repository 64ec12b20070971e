"""C4: a 4 KiB ranged read from the middle of a 256 MiB compressed blob, against the same read of a raw blob.

Subject: ``Tenant.open(key, byte_range=...)`` of 4 KiB in the middle of a 256 MiB blob of seeded JSON logs
stored with compression ``auto`` (SQLite + local directory): it fetches the frames the range overlaps,
decompresses and verifies them. Baseline: the same read of the same bytes stored with
``BLOBSTORE_COMPRESSION=off`` (raw frames, still verified). Each round reads 20 ranges at different
offsets around the middle, one of them across a frame boundary. The storage's reads are logged: the row's
notes give the requests, bytes and frames (counted from the blob's frame index) the compressed side fetched.
"""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path

from benchmarks import corpus
from benchmarks.deployments import open_store
from benchmarks.harness import Batch, Context, Row, Stopwatch, Target, interleave, latency_row, phase
from blobstore.db import hot_path
from blobstore.storage.frames import FrameIndex
from blobstore.storage.local import LocalStorage
from blobstore.store import Tenant

MiB = 1024 * 1024
SEED = 21
TARGET = Target("<=", 2)
RANGE = 4096
READS = 20


@dataclass(frozen=True)
class Sizes:
    size: int
    rounds: int


QUICK = Sizes(256 * MiB, rounds=5)
FULL = Sizes(256 * MiB, rounds=9)


class CountingStorage(LocalStorage):
    """A local directory that logs the byte ranges read from it and counts the bytes they return."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.ranges: list[tuple[int, int] | None] = []
        self.bytes_read = 0

    async def read(self, key: str, byte_range: tuple[int, int] | None = None) -> AsyncGenerator[bytes, None]:
        self.ranges.append(byte_range)
        async for chunk in super().read(key, byte_range):
            self.bytes_read += len(chunk)
            yield chunk


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    with phase(ctx, "C4 data"):
        text = corpus.json_logs(random.Random(SEED), sizes.size)[: sizes.size]
    home = ctx.workdir / "c4"
    counted = CountingStorage(home / "auto" / "blobs")
    middle = sizes.size // 2
    # One read straddles the frame boundary at the middle; the others lie at odd offsets after it.
    starts = [middle - RANGE // 2] + [middle + step * 37_171 for step in range(1, READS)]
    async with (
        open_store(home / "auto", storage=counted) as store,
        open_store(home / "off", compression="off") as raw_store,
    ):
        compressed, raw = store.tenant("bench"), raw_store.tenant("bench")
        with phase(ctx, f"C4 puts of {sizes.size // MiB} MiB"):
            await compressed.put("c4/logs", text)
            await raw.put("c4/logs", text)
        del text
        with phase(ctx, "C4 ranged reads"):
            paired = await interleave(sizes.rounds, _reader(raw, starts), _reader(compressed, starts))
        counted.ranges.clear()
        counted.bytes_read = 0
        await _reader(compressed, starts)()
        ref = await hot_path.find_ref_named(store.database, "bench", "c4/logs")
    assert ref is not None
    assert ref.frames is not None
    frames = [_frames_in(FrameIndex.decode(ref.frames), stored) for stored in counted.ranges]
    notes = (
        f"SQLite + local directory; baseline: the same reads of the blob stored raw; the compressed side made "
        f"{len(counted.ranges) / READS:g} storage request(s) per read, of {counted.bytes_read / READS / 1024:.0f} "
        f"KiB and {sum(frames) / READS:g} frames on average, at most {max(frames)} frames"
    )
    what = f"4 KiB ranged read from the middle of a {sizes.size // MiB} MiB blob: zstd frames vs raw"
    return [latency_row("C4", "local+sqlite", what, paired, READS, TARGET, notes)]


def _frames_in(index: FrameIndex, stored: tuple[int, int] | None) -> int:
    """How many frames a storage read of the ``stored`` byte range (None: all) fetched."""
    if stored is None:
        return len(index.frames)
    return sum(1 for frame in index.frames if frame.stored_offset <= stored[1] and stored[0] < frame.stored_end)


def _reader(tenant: Tenant, starts: list[int]) -> Batch:
    async def read() -> float:
        with Stopwatch() as watch:
            for start in starts:
                async with tenant.open("c4/logs", byte_range=(start, start + RANGE - 1)) as stream:
                    assert len(await stream.read()) == RANGE
        return watch.seconds

    return read
