"""P8: GC reclaiming 100,000 unreferenced blobs, against a raw delete loop over as many objects.

Setup of each batch (never timed): N small objects written straight into the
store's local directory under blobstore's object keys, and N blob rows
inserted in bulk as ``live``, refcount 0, unreferenced for two hours (past
the one-hour grace). Subject: ``store.gc()``, all of it: the plan (the
reclaimable query and the scan of storage for orphans) and the execution
(tombstone, delete, forget, in batches of 1000). Baseline: ``Path.unlink`` of
N objects laid out the same way in another directory, in one worker thread.
Both sides ``sync`` after their setup, so no write-back of the fresh objects
runs while they are timed (objects GC reclaims are hours old, long on disk).
S3 is not measured here (moto's delete_objects would measure moto).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.deployments import open_store, postgres_database, raw_postgres, sqlite_bulk
from benchmarks.harness import Context, Row, Stopwatch, Target, guarded, interleave, phase, throughput_row, unmeasured
from blobstore import BlobStore
from blobstore.storage.layout import object_key_for

TARGET = Target(">=", 0.5)
BLOB = b"x" * 100


@dataclass(frozen=True)
class Sizes:
    blobs: int
    rounds: int = 3


QUICK = Sizes(blobs=5_000)
FULL = Sizes(blobs=100_000)

_COLUMNS = ["scope", "digest", "size", "object_key", "state", "refcount", "created_at", "unreferenced_since"]
#: Inserts blob rows for object keys, unreferenced since the given time.
Loader = Callable[[list[str], datetime], Awaitable[None]]


def _what(blobs: int) -> str:
    return f"GC reclaiming {blobs:,} blobs"


async def run(ctx: Context, sizes: Sizes | None = None) -> list[Row]:
    sizes = sizes or (QUICK if ctx.quick else FULL)
    what = _what(sizes.blobs)
    rows = await guarded(_sqlite(ctx, sizes), "P8", "local+sqlite", what, TARGET)
    if ctx.postgres_admin_url is None:
        rows.append(unmeasured("P8", "local+postgres", what, TARGET, "skip", "PostgreSQL disabled for this run"))
    else:
        rows += await guarded(_postgres(ctx, sizes), "P8", "local+postgres", what, TARGET)
    return rows


def _write_objects(root: Path, keys: list[str]) -> None:
    for key in keys:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(BLOB)


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        path.unlink()


def _fresh_keys(fanout: list[str]) -> list[str]:
    """New object keys, one in each of the fan-out directories of ``fanout`` (digest prefixes).

    Reusing the directories keeps every round in the steady state of a store that has them all
    already, instead of timing (and later removing) tens of thousands of new directories.
    """
    return [object_key_for(prefix + secrets.token_hex(30)) for prefix in fanout]


async def _measure(ctx: Context, store: BlobStore, home: Path, variant: str, sizes: Sizes, load: Loader) -> Row:
    storage_root = home / "blobs"
    raw_root = home / "raw"
    stamp = itertools.count()
    fanout = [secrets.token_hex(2) for _ in range(sizes.blobs)]

    async def baseline() -> float:
        keys = _fresh_keys(fanout)
        await asyncio.to_thread(_write_objects, raw_root, keys)
        await asyncio.to_thread(os.sync)
        with Stopwatch() as watch:
            await asyncio.to_thread(_unlink_all, [raw_root / key for key in keys])
        return watch.seconds

    async def subject() -> float:
        keys = _fresh_keys(fanout)
        await asyncio.to_thread(_write_objects, storage_root, keys)
        past = datetime.now(UTC) - timedelta(hours=2, seconds=next(stamp))
        await load(keys, past)
        await asyncio.to_thread(os.sync)
        with Stopwatch() as watch:
            stats = await store.gc()
        assert stats.blobs_reclaimed == sizes.blobs, stats
        return watch.seconds

    with phase(ctx, f"P8 {variant} {sizes.blobs:,} blobs"):
        paired = await interleave(sizes.rounds, baseline, subject)
    notes = (
        "baseline: a Path.unlink loop (one worker thread) over as many objects in the same fan-out layout; "
        "both sides sync before timing"
    )
    return throughput_row("P8", variant, _what(sizes.blobs), paired, sizes.blobs, "blobs/s", TARGET, notes)


def _blob_row(key: str, past: object) -> tuple[object, ...]:
    """A live, unreferenced blob row (in ``_COLUMNS`` order) for an object key."""
    return ("", key.rsplit("/", 1)[1][:64], len(BLOB), key, "live", 0, past, past)


def _sqlite_time(value: datetime) -> str:
    """A UTC datetime as SQLAlchemy stores it in SQLite."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


async def _sqlite(ctx: Context, sizes: Sizes) -> list[Row]:
    home = ctx.workdir / "p8-sqlite"
    async with open_store(home) as store:
        sql = f"INSERT INTO blobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"

        async def load(keys: list[str], past: datetime) -> None:
            rows = [_blob_row(key, _sqlite_time(past)) for key in keys]
            await asyncio.to_thread(sqlite_bulk, home / "blobstore.db", sql, rows)

        return [await _measure(ctx, store, home, "local+sqlite", sizes, load)]


async def _postgres(ctx: Context, sizes: Sizes) -> list[Row]:
    home = ctx.workdir / "p8-postgres"
    with postgres_database(ctx) as url:
        async with open_store(home, database_url=url) as store, raw_postgres(url) as raw:

            async def load(keys: list[str], past: datetime) -> None:
                rows = [_blob_row(key, past.replace(tzinfo=None)) for key in keys]
                await raw.copy_records_to_table("blobs", records=rows, columns=_COLUMNS)
                await raw.execute("ANALYZE blobs")

            return [await _measure(ctx, store, home, "local+postgres", sizes, load)]
