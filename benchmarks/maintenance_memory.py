"""P13: peak resident memory of ``gc`` and of ``fsck`` over 1,000,000 objects (SQLite + local directory).

Set-up (not timed): N small object files under the store's fan-out: half
belong to live blobs with one reference each (one tenant, usage counters
exact), a quarter to blobs unreferenced long ago, a quarter are orphans (no
row). Each maintenance run happens in a fresh child process
(:mod:`benchmarks.memory_probe`): first fsck over everything (it reports the
N/2 reclaimable objects as problems), then GC with grace 0, which reclaims them.
Figure: MiB of peak RSS above the child's RSS just before the run; target at
most 64 MiB, whatever N.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.deployments import open_store, sqlite_bulk
from benchmarks.harness import Context, Row, phase
from benchmarks.memory import peak_rss_row, probe_in_child
from blobstore.storage.layout import object_key_for


@dataclass(frozen=True)
class Sizes:
    objects: int


QUICK = Sizes(20_000)
FULL = Sizes(1_000_000)


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    home = ctx.workdir / "p13"
    async with open_store(home) as store:
        await store.tenant("bench").put("seed", b"creates the tenant row")
    with phase(ctx, f"P13 set-up: {sizes.objects:,} blobs, references and files"):
        await asyncio.to_thread(_load, home, sizes.objects)
    rows = []
    for op in ("fsck", "gc"):
        with phase(ctx, f"P13 {op} over {sizes.objects:,} objects"):
            result = await asyncio.to_thread(probe_in_child, op, home, 0)
        speed = f"{sizes.objects / result['seconds']:,.0f} objects/s"
        rows.append(peak_rss_row("P13", f"peak RSS of {op} over {sizes.objects:,} objects", result, speed))
    return rows


def _load(home: Path, count: int) -> None:
    """``count`` object files (16 bytes, fsync-free): half referenced, a quarter unreferenced, a quarter orphans."""
    now = datetime.now(UTC).replace(tzinfo=None)
    long_ago = now - timedelta(days=30)
    keys = [object_key_for(os.urandom(32).hex()) for _ in range(count)]
    blobs = home / "blobs"
    for key in keys:
        path = blobs / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"0123456789abcdef")
    referenced, unreferenced = keys[: count // 2], keys[count // 2 : count * 3 // 4]
    db = home / "blobstore.db"
    sqlite_bulk(
        db,
        "INSERT INTO blobs (id, scope, digest, size, object_key, state, refcount, created_at, unreferenced_since) "
        "VALUES (?, '', ?, 16, ?, 'live', ?, ?, ?)",
        (
            (
                FIRST_ID + i,
                key.rsplit("/", 1)[1][:64],
                key,
                *((1, now, None) if i < len(referenced) else (0, long_ago, long_ago)),
            )
            for i, key in enumerate(referenced + unreferenced)
        ),
    )
    sqlite_bulk(
        db,
        "INSERT INTO refs (tenant_id, key, blob_id, size, metadata, created_at) "
        "SELECT t.id, 'object/' || b.id, b.id, 16, '{}', b.created_at FROM blobs b, tenants t "
        "WHERE t.name = 'bench' AND b.id >= ? AND b.refcount = 1",
        [(FIRST_ID,)],
    )
    sqlite_bulk(
        db,
        "UPDATE tenants SET used_bytes = used_bytes + ?, used_objects = used_objects + ? WHERE name = 'bench'",
        [(16 * len(referenced), len(referenced))],
    )


#: Ids of the loaded blobs start here, far above the seed put's.
FIRST_ID = 1_000_000_000
